//! HTTP clients of the outside systems, behind traits: the BackupAgent server
//! (the source) and the cloud's Account Management API (the target).
//!
//! Both share one request discipline ([`Throttle`] + [`send`]): a per-workspace
//! rate limit and concurrency cap, timeouts, and retries with exponential
//! backoff and jitter on 5xx, 429 (honouring `Retry-After`) and transport
//! failures. Requests that create something are not retried blindly after the
//! server may have acted; the target's `ensure_*` helpers look up first instead.

pub mod check;
pub mod source;
pub mod target;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;
use tokio::sync::Semaphore;

/// The pace toward one remote system, set per workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests per second (each instance of the service keeps to it on its own).
    #[validate(range(min = 1, max = 10000))]
    #[schema(minimum = 1, maximum = 10000, example = 100)]
    pub rate_per_sec: u32,
    /// Requests in flight at once.
    #[validate(range(min = 1, max = 256))]
    #[schema(minimum = 1, maximum = 256, example = 16)]
    pub concurrency: u32,
}

impl Limit {
    pub const SOURCE_DEFAULT: Limit = Limit { rate_per_sec: 50, concurrency: 8 };
    pub const TARGET_DEFAULT: Limit = Limit { rate_per_sec: 100, concurrency: 16 };
}

/// How a connector talks to one remote system; per workspace.
#[derive(Clone, Debug)]
pub struct HttpPolicy {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Requests per second toward the remote; `None` for no limit.
    pub rate_per_sec: Option<u32>,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_attempts: 6,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            rate_per_sec: Some(100),
            concurrency: 16,
        }
    }
}

impl HttpPolicy {
    /// The default policy at the pace of `limit`.
    pub fn limited(limit: Limit) -> Self {
        Self { rate_per_sec: Some(limit.rate_per_sec), concurrency: limit.concurrency as usize, ..Self::default() }
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("migration-portal/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }
}

/// The remote's answer or why there is none. Remote errors keep the remote's code and message.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConnectorError {
    /// A final answer from the remote (4xx other than 429, or 5xx after all attempts).
    #[error("{system} answered {status}{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Remote { system: &'static str, status: u16, code: Option<String>, message: String },
    /// No answer after all attempts (timeouts, refused connections, repeated 429s).
    #[error("{system} unreachable after {attempts} attempts: {last}")]
    Unavailable { system: &'static str, attempts: usize, last: String },
    /// An answer that is not what the contract says.
    #[error("{system} answered something unreadable: {0}", system = .1)]
    Decode(String, &'static str),
}

impl ConnectorError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Remote { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn remote_code(&self) -> Option<&str> {
        match self {
            Self::Remote { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_status(&self, status: u16) -> bool {
        self.status() == Some(status)
    }

    /// Worth trying again later: the remote did not give a final answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Remote { status, .. } => *status == 429 || *status >= 500,
            Self::Unavailable { .. } => true,
            Self::Decode(..) => false,
        }
    }
}

/// The per-workspace rate limit and concurrency cap toward one remote.
#[derive(Clone)]
pub struct Throttle {
    rate: Option<Arc<DefaultDirectRateLimiter>>,
    slots: Arc<Semaphore>,
}

impl Throttle {
    pub fn new(policy: &HttpPolicy) -> Self {
        let rate = policy.rate_per_sec.and_then(NonZeroU32::new).map(|per_sec| {
            // A burst of a tenth of a second keeps the average without a thundering start.
            let burst = NonZeroU32::new((per_sec.get() / 10).max(1)).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)))
        });
        Self { rate, slots: Arc::new(Semaphore::new(policy.concurrency.max(1))) }
    }
}

/// Whether a request may be sent again after the remote may have acted on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Reads and idempotent writes: retry on any transient failure.
    Safe,
    /// Creates: retry only when the remote surely did nothing (429, refused connection).
    OnlyIfNotProcessed,
}

/// Sends the request built by `build` under the throttle, retrying as `replay` allows.
/// Answers the response when its status is a success; otherwise a [`ConnectorError`].
pub(crate) async fn send(
    system: &'static str,
    policy: &HttpPolicy,
    throttle: &Throttle,
    replay: Replay,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, ConnectorError> {
    let mut delays = policy.backoff();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let outcome = {
            let _slot = throttle.slots.acquire().await.map_err(|_| ConnectorError::Unavailable {
                system,
                attempts,
                last: "connector closed".into(),
            })?;
            if let Some(rate) = &throttle.rate {
                rate.until_ready().await;
            }
            build().send().await
        };
        let (error, retry_after, may_replay) = match outcome {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(&response);
                let error = remote_error(system, response).await;
                let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                if !transient {
                    return Err(error);
                }
                let may_replay = replay == Replay::Safe || status == StatusCode::TOO_MANY_REQUESTS;
                (error, retry_after, may_replay)
            }
            Err(e) => {
                let not_sent = e.is_connect();
                let error = ConnectorError::Unavailable { system, attempts, last: transport_reason(&e) };
                (error, None, replay == Replay::Safe || not_sent)
            }
        };
        if !may_replay {
            return Err(error);
        }
        let Some(delay) = delays.next() else {
            return Err(match error {
                ConnectorError::Unavailable { last, .. } => ConnectorError::Unavailable { system, attempts, last },
                ConnectorError::Remote { status: 429, message, .. } => {
                    ConnectorError::Unavailable { system, attempts, last: format!("rate limited: {message}") }
                }
                other => other,
            });
        };
        // The server's Retry-After wins over a shorter backoff.
        let delay = retry_after.map_or(delay, |ra| ra.max(delay));
        tracing::debug!(system, attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
        tokio::time::sleep(delay).await;
    }
}

/// `reqwest`'s error text without the URL's query (which could carry anything).
fn transport_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    match e.url() {
        Some(url) => format!("{kind} ({}://{}{})", url.scheme(), url.host_str().unwrap_or_default(), url.path()),
        None => kind.to_string(),
    }
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Both systems answer `{"error": {"code": …, "message": …}}`; anything else keeps the status.
async fn remote_error(system: &'static str, response: Response) -> ConnectorError {
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        code: Option<serde_json::Value>,
        message: Option<String>,
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<Body>(&text) {
        Ok(Body { error }) => (
            error.code.map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string)),
            error.message.unwrap_or_default(),
        ),
        Err(_) => (None, status.canonical_reason().unwrap_or("error").to_string()),
    };
    ConnectorError::Remote { system, status: status.as_u16(), code, message }
}

pub(crate) async fn decode<T: serde::de::DeserializeOwned>(system: &'static str, response: Response) -> Result<T, ConnectorError> {
    let bytes = response.bytes().await.map_err(|e| ConnectorError::Unavailable { system, attempts: 1, last: transport_reason(&e) })?;
    serde_json::from_slice(&bytes).map_err(|e| ConnectorError::Decode(e.to_string(), system))
}
