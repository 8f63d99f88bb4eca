//! Credentials at rest: AES-256-GCM with a key from configuration.
//!
//! A sealed value is `version (1) || nonce (12) || ciphertext+tag`, and the
//! associated data names the row and field, so a sealed value copied to another
//! row or column does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// Derived from the key: fingerprints of requests that carry secrets are keyed,
    /// so a stored fingerprint cannot be used to guess the secret offline.
    fingerprint_key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("secret_key (MP_SECRET_KEY) must be the base64 of exactly 32 bytes")]
    BadKey,
    #[error("a stored secret could not be opened (wrong key or damaged data)")]
    Unseal,
    #[error("the system random generator failed")]
    Random,
}

impl SecretBox {
    pub fn from_base64(key: &SecretString) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.expose_secret().trim())
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::from_key(key))
    }

    /// A fixed, publicly known key for local development only.
    pub fn insecure_dev() -> Self {
        Self::from_key(Sha256::digest(b"migration-portal insecure development key").into())
    }

    fn from_key(key: [u8; 32]) -> Self {
        let fingerprint_key = Sha256::new()
            .chain_update(b"fingerprint\0")
            .chain_update(key)
            .finalize()
            .into();
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
            fingerprint_key,
        }
    }

    /// Keyed SHA-256 (hex) of `data`.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        hex(&Sha256::new()
            .chain_update(self.fingerprint_key)
            .chain_update(data)
            .finalize())
    }

    pub fn seal(&self, plaintext: &str, context: &str) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Random)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<SecretString, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Unseal)?;
        let plaintext = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Unseal)
    }
}

/// A fresh random `secret_key`, base64.
pub fn generate_key() -> Result<String, CryptoError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| CryptoError::Random)?;
    Ok(STANDARD.encode(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_hides_the_plaintext() {
        let sb = SecretBox::insecure_dev();
        let sealed = sb
            .seal("hunter2-password", "workspaces:1:source_password")
            .unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"hunter"));
        let opened = sb.open(&sealed, "workspaces:1:source_password").unwrap();
        assert_eq!(opened.expose_secret(), "hunter2-password");
    }

    #[test]
    fn a_sealed_value_does_not_open_in_another_context_or_with_another_key() {
        let sb = SecretBox::insecure_dev();
        let sealed = sb.seal("s3cret", "workspaces:1:source_password").unwrap();
        assert!(sb.open(&sealed, "workspaces:2:source_password").is_err());
        let other =
            SecretBox::from_base64(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap();
        assert!(other.open(&sealed, "workspaces:1:source_password").is_err());
    }

    #[test]
    fn fingerprints_depend_on_the_key_and_the_data() {
        let a = SecretBox::insecure_dev();
        let b = SecretBox::from_base64(&SecretString::from(STANDARD.encode([9u8; 32]))).unwrap();
        assert_eq!(a.fingerprint(b"x"), a.fingerprint(b"x"));
        assert_ne!(a.fingerprint(b"x"), a.fingerprint(b"y"));
        assert_ne!(a.fingerprint(b"x"), b.fingerprint(b"x"));
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let sb = SecretBox::insecure_dev();
        assert_ne!(sb.seal("x", "c").unwrap(), sb.seal("x", "c").unwrap());
    }

    #[test]
    fn keys_that_are_not_32_bytes_of_base64_are_refused() {
        for key in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 16]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert!(
                SecretBox::from_base64(&SecretString::from(key.to_string())).is_err(),
                "{key:?}"
            );
        }
    }
}
