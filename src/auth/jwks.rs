//! The issuer's signing keys: found through OIDC discovery, cached, refreshed
//! once on an unknown `kid` (with a cooldown), shared by concurrent requests,
//! and kept serving when the issuer cannot be reached. Old keys are refreshed in
//! the background: only a request with an unknown `kid` waits for the issuer.
//!
//! Each request to the issuer is retried on transient failures (refused
//! connections, timeouts, 5xx, 429), jittered, within [`FETCH_BUDGET`]. A fetch
//! that fails all the same does not hold the cooldown: the next one may go after
//! [`FAILURE_BACKOFF_MIN`], doubling up to [`FAILURE_BACKOFF_MAX`] while the
//! issuer stays down; until then a token whose key is not cached is told to come
//! back later ([`MissingKey::IssuerUnavailable`]), never that it is invalid.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use serde::Deserialize;

/// Retries of one request to the issuer after its first attempt.
const RETRIES: usize = 2;
/// The first retry's delay (doubling, plus up to as much jitter).
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a whole fetch (discovery and key set, retries included) may take.
pub const FETCH_BUDGET: Duration = Duration::from_secs(2);
/// The wait after a failed fetch before the next one, doubling per failure in a row.
pub const FAILURE_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(8);

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
    /// Held while fetching, so that concurrent misses share one fetch and its outcome.
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
    /// The last successful fetch: the cooldown runs from it.
    fetched_at: Option<Instant>,
    /// Failed fetches in a row, and when the next may go.
    failures: u32,
    retry_at: Option<Instant>,
    jwks_uri: Option<String>,
}

/// Why there is no key for a `kid`.
#[derive(Debug, PartialEq)]
pub enum MissingKey {
    /// The issuer's key set (fetched now or within the cooldown) does not hold it.
    NotPublished,
    /// The key set cannot be fetched now; ask again after `retry_after`.
    IssuerUnavailable { retry_after: Duration },
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer from {0}: {1}")]
    Unreachable(String, reqwest::Error),
    #[error("{0} answered {1}")]
    Status(String, reqwest::StatusCode),
    #[error("{0} answered something unreadable: {1}")]
    Unreadable(String, String),
    #[error("the key set at {0} holds no usable RS256 signing key")]
    NoKeys(String),
    #[error("discovery document names issuer {found}, expected {expected}")]
    IssuerMismatch { found: String, expected: String },
    #[error("no key set within {}s", FETCH_BUDGET.as_secs())]
    OutOfTime,
}

impl FetchError {
    /// Worth another attempt at once: the issuer gave no final answer.
    fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(..) => true,
            Self::Status(_, status) => {
                status.is_server_error() || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
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
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The key for `kid`: fetched first when unknown; when old, served as it is
    /// while a background task fetches the key set again.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, MissingKey> {
        let (found, generation, stale) = {
            let snapshot = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
            let stale = snapshot
                .fetched_at
                .is_none_or(|t| t.elapsed() > self.inner.max_age);
            (snapshot.keys.get(kid).cloned(), snapshot.generation, stale)
        };
        if let Some(key) = found {
            if stale {
                let inner = self.inner.clone();
                tokio::spawn(async move { inner.refresh_in_background(generation).await });
            }
            return Ok(key);
        }
        self.inner
            .refresh(generation)
            .await
            .map_err(|retry_after| MissingKey::IssuerUnavailable { retry_after })?;
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .get(kid)
            .cloned()
            .ok_or(MissingKey::NotPublished)
    }
}

impl Inner {
    fn generation(&self) -> u64 {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Refreshes unless another request just did, the cooldown holds, or the
    /// back-off after a failure does (then `Err` with the time left).
    async fn refresh(&self, seen_generation: u64) -> Result<(), Duration> {
        let mut state = self.refresh.lock().await;
        self.refresh_locked(&mut state, seen_generation).await
    }

    /// Old keys still serve: skip when a refresh is under way instead of queueing behind it.
    async fn refresh_in_background(&self, seen_generation: u64) {
        if let Ok(mut state) = self.refresh.try_lock() {
            let _ = self.refresh_locked(&mut state, seen_generation).await;
        }
    }

    async fn refresh_locked(
        &self,
        state: &mut RefreshState,
        seen_generation: u64,
    ) -> Result<(), Duration> {
        if self.generation() != seen_generation {
            return Ok(()); // another request refreshed while this one waited
        }
        let now = Instant::now();
        match state.retry_at {
            Some(retry_at) if now < retry_at => return Err(retry_at - now),
            None if state
                .fetched_at
                .is_some_and(|t| t.elapsed() < self.cooldown) =>
            {
                return Ok(());
            }
            _ => {}
        }
        let fetched = tokio::time::timeout(FETCH_BUDGET, self.fetch(state))
            .await
            .unwrap_or(Err(FetchError::OutOfTime));
        match fetched {
            Ok(keys) => {
                *state = RefreshState {
                    fetched_at: Some(now),
                    jwks_uri: state.jwks_uri.take(),
                    ..RefreshState::default()
                };
                let mut snapshot = self.keys.write().unwrap_or_else(|e| e.into_inner());
                tracing::info!(keys = keys.len(), "issuer signing keys refreshed");
                *snapshot = KeySnapshot {
                    keys,
                    fetched_at: Some(Instant::now()),
                    generation: snapshot.generation + 1,
                };
                Ok(())
            }
            Err(error) => {
                // Keep serving the keys we have: an issuer outage must not log everyone out.
                state.jwks_uri = None;
                state.failures = state.failures.saturating_add(1);
                let backoff = failure_backoff(state.failures, self.cooldown);
                state.retry_at = Some(Instant::now() + backoff);
                tracing::warn!(%error, failures = state.failures, retry_in_ms = backoff.as_millis() as u64, "could not refresh issuer signing keys; keeping the cached ones");
                Err(backoff)
            }
        }
    }

    async fn fetch(
        &self,
        state: &mut RefreshState,
    ) -> Result<HashMap<String, DecodingKey>, FetchError> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let discovery: Discovery = self.get_json(&url).await?;
                if discovery.issuer.trim_end_matches('/') != self.issuer {
                    return Err(FetchError::IssuerMismatch {
                        found: discovery.issuer,
                        expected: self.issuer.clone(),
                    });
                }
                state.jwks_uri = Some(discovery.jwks_uri.clone());
                discovery.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        // An empty set would log everyone out: it is the issuer's failure, the cached keys stay.
        Some(usable_rs256_keys(&set))
            .filter(|keys| !keys.is_empty())
            .ok_or(FetchError::NoKeys(jwks_uri))
    }

    /// GET with retries of transient failures, jittered.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(RETRY_MIN_DELAY)
            .with_max_times(RETRIES)
            .with_jitter()
            .build();
        loop {
            match self.get_json_once(url).await {
                Err(error) if error.is_transient() => match delays.next() {
                    Some(delay) => {
                        tracing::debug!(%error, delay_ms = delay.as_millis() as u64, "issuer request failed; trying again");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(error),
                },
                answer => return answer,
            }
        }
    }

    async fn get_json_once<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, FetchError> {
        let unreachable = |e| FetchError::Unreachable(url.to_string(), e);
        let response = self
            .http
            .get(url)
            .timeout(ATTEMPT_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(url.to_string(), response.status()));
        }
        let body = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&body)
            .map_err(|e| FetchError::Unreadable(url.to_string(), e.to_string()))
    }
}

/// 1 s, 2 s, 4 s… up to the maximum, and never longer than the cooldown a success imposes.
fn failure_backoff(failures: u32, cooldown: Duration) -> Duration {
    let cap = FAILURE_BACKOFF_MAX.min(cooldown).max(FAILURE_BACKOFF_MIN);
    FAILURE_BACKOFF_MIN
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(cap)
}

/// RSA signing keys with a `kid` that are, or may be, RS256; everything else is ignored.
fn usable_rs256_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|jwk| matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)))
        .filter(|jwk| {
            matches!(
                jwk.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            )
        })
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_fetches_back_off_doubling_up_to_the_maximum_or_the_cooldown() {
        let secs = Duration::from_secs;
        let cases = [
            (1, secs(30), secs(1)),
            (2, secs(30), secs(2)),
            (3, secs(30), secs(4)),
            (4, secs(30), secs(8)),
            (5, secs(30), secs(8)),
            (u32::MAX, secs(30), secs(8)),
            (3, secs(3), secs(3)),
            (1, secs(0), secs(1)),
            (4, secs(0), secs(1)),
        ];
        for (failures, cooldown, expected) in cases {
            assert_eq!(
                failure_backoff(failures, cooldown),
                expected,
                "{failures} failures, cooldown {cooldown:?}"
            );
        }
    }
}
