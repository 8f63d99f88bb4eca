//! Secrets the service hands out (agent tokens, enrollment secrets) are random
//! and kept as digests, and every secret presented is compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// SHA-256 of a secret or token, hex: what is stored and compared.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random secret: `prefix` and the URL-safe base64 of `bytes` random bytes.
pub fn random_secret(prefix: &str, bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    rand::rng().fill(random.as_mut_slice());
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random))
}
