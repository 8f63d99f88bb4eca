//! The issuer's signing keys: found through OIDC discovery, cached, refreshed
//! once on an unknown `kid` (with a cooldown), shared by concurrent requests,
//! and kept serving when the issuer cannot be reached. Old keys are refreshed in
//! the background: only a request with an unknown `kid` waits for the issuer.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use serde::Deserialize;

#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    issuer: String,
    cooldown: Duration,
    max_age: Duration,
    keys: RwLock<KeySnapshot>,
    /// Held while fetching, so that concurrent misses share one fetch.
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Default)]
struct KeySnapshot {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    generation: u64,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    jwks_uri: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request to {0} failed: {1}")]
    Http(String, reqwest::Error),
    #[error("discovery document names issuer {found}, expected {expected}")]
    IssuerMismatch { found: String, expected: String },
}

impl JwksCache {
    pub fn new(http: reqwest::Client, issuer: &str, cooldown: Duration, max_age: Duration) -> Self {
        let inner = Inner {
            http,
            issuer: issuer.trim_end_matches('/').to_string(),
            cooldown,
            max_age,
            keys: RwLock::new(KeySnapshot::default()),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The key for `kid`: fetched first when unknown; when old, served as it is
    /// while a background task fetches the key set again.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let (found, generation, stale) = {
            let snapshot = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
            let stale = snapshot.fetched_at.is_none_or(|t| t.elapsed() > self.inner.max_age);
            (snapshot.keys.get(kid).cloned(), snapshot.generation, stale)
        };
        match found {
            Some(key) => {
                if stale {
                    let inner = self.inner.clone();
                    tokio::spawn(async move { inner.refresh(generation).await });
                }
                Some(key)
            }
            None => {
                self.inner.refresh(generation).await;
                self.inner.keys.read().unwrap_or_else(|e| e.into_inner()).keys.get(kid).cloned()
            }
        }
    }
}

impl Inner {
    async fn refresh(&self, seen_generation: u64) {
        let mut state = self.refresh.lock().await;
        let current = self.keys.read().unwrap_or_else(|e| e.into_inner()).generation;
        if current != seen_generation {
            return; // another request refreshed while this one waited
        }
        if state.last_attempt.is_some_and(|t| t.elapsed() < self.cooldown) {
            return;
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch(&mut state).await {
            Ok(keys) => {
                let mut snapshot = self.keys.write().unwrap_or_else(|e| e.into_inner());
                tracing::info!(keys = keys.len(), "issuer signing keys refreshed");
                *snapshot = KeySnapshot { keys, fetched_at: Some(Instant::now()), generation: snapshot.generation + 1 };
            }
            Err(error) => {
                // Keep serving the keys we have: an issuer outage must not log everyone out.
                state.jwks_uri = None;
                tracing::warn!(%error, "could not refresh issuer signing keys; keeping the cached ones");
            }
        }
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<HashMap<String, DecodingKey>, FetchError> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let discovery: Discovery = self.get_json(&url).await?;
                if discovery.issuer.trim_end_matches('/') != self.issuer {
                    return Err(FetchError::IssuerMismatch { found: discovery.issuer, expected: self.issuer.clone() });
                }
                state.jwks_uri = Some(discovery.jwks_uri.clone());
                discovery.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        Ok(usable_rs256_keys(&set))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let wrap = |e| FetchError::Http(url.to_string(), e);
        self.http.get(url).send().await.map_err(wrap)?.error_for_status().map_err(wrap)?.json().await.map_err(wrap)
    }
}

/// RSA signing keys with a `kid` that are, or may be, RS256; everything else is ignored.
fn usable_rs256_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|jwk| matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)))
        .filter(|jwk| matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect()
}
