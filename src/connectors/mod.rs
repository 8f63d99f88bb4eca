//! HTTP clients of the outside systems, behind traits: the BackupAgent server
//! (the source) and the cloud's Account Management API (the target).
//!
//! Both share one request discipline ([`Throttle`] + [`send`]): a per-workspace
//! rate limit and concurrency cap, timeouts, and retries with exponential
//! backoff and jitter on 5xx, 429 (honouring `Retry-After`) and transport
//! failures. Requests that create something are not retried blindly after the
//! server may have acted; the target's `ensure_*` helpers look up first instead.

pub mod check;
pub mod offering;
pub mod source;
pub mod target;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use url::Url;
use utoipa::ToSchema;
use validator::Validate;

/// The pace toward one remote system, set per workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Validate, ToSchema)]
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
    pub const SOURCE_DEFAULT: Limit = Limit {
        rate_per_sec: 50,
        concurrency: 8,
    };
    pub const TARGET_DEFAULT: Limit = Limit {
        rate_per_sec: 100,
        concurrency: 16,
    };
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
    /// A `Retry-After` longer than this ends the call (the job is rescheduled instead).
    pub max_retry_after: Duration,
    /// Requests per second toward the remote; `None` for no limit.
    pub rate_per_sec: Option<u32>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Largest answer body read.
    pub max_body_bytes: usize,
    /// Whether loopback, private and link-local addresses may be contacted. Off in
    /// production: partners choose the URLs, and they must not reach our own network.
    pub allow_private_networks: bool,
    /// Told of every request sent (metrics); `None` for nobody.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

/// What became of one HTTP request to a remote (one attempt of a call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A 2xx answer.
    Ok,
    /// A 4xx answer other than 429.
    ClientError,
    /// 429.
    RateLimited,
    /// A 5xx answer.
    ServerError,
    /// Any other status (redirects are not followed).
    UnexpectedStatus,
    /// No (complete) answer: refused connection, timeout, reset.
    TransportError,
    /// Not sent: the address is one this service does not contact.
    RefusedAddress,
    /// An answer larger than the policy reads.
    TooLarge,
}

impl RequestOutcome {
    pub const ALL: [RequestOutcome; 8] = [
        RequestOutcome::Ok,
        RequestOutcome::ClientError,
        RequestOutcome::RateLimited,
        RequestOutcome::ServerError,
        RequestOutcome::UnexpectedStatus,
        RequestOutcome::TransportError,
        RequestOutcome::RefusedAddress,
        RequestOutcome::TooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::ClientError => "client_error",
            RequestOutcome::RateLimited => "rate_limited",
            RequestOutcome::ServerError => "server_error",
            RequestOutcome::UnexpectedStatus => "unexpected_status",
            RequestOutcome::TransportError => "transport_error",
            RequestOutcome::RefusedAddress => "refused_address",
            RequestOutcome::TooLarge => "too_large",
        }
    }

    fn of_status(status: StatusCode) -> Self {
        match status {
            s if s.is_success() => RequestOutcome::Ok,
            StatusCode::TOO_MANY_REQUESTS => RequestOutcome::RateLimited,
            s if s.is_client_error() => RequestOutcome::ClientError,
            s if s.is_server_error() => RequestOutcome::ServerError,
            _ => RequestOutcome::UnexpectedStatus,
        }
    }
}

/// Told of each request a connector sends, retries included: `operation` names
/// the call (`create_tenant`, …), `elapsed` the request itself, not its wait for the throttle.
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    fn observe(&self, operation: &'static str, outcome: RequestOutcome, elapsed: Duration);
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_attempts: 6,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            rate_per_sec: Some(100),
            concurrency: 16,
            max_body_bytes: 32 * 1024 * 1024,
            allow_private_networks: false,
            observer: None,
        }
    }
}

impl HttpPolicy {
    /// The default policy at the pace of `limit`.
    pub fn limited(limit: Limit) -> Self {
        Self {
            rate_per_sec: Some(limit.rate_per_sec),
            concurrency: limit.concurrency as usize,
            ..Self::default()
        }
    }

    /// A client for `base`, refusing private addresses unless allowed.
    pub fn client(
        &self,
        system: &'static str,
        base: &Url,
    ) -> Result<reqwest::Client, ConnectorError> {
        self.check_url(system, base)?;
        self.any_client(system)
    }

    /// Refuses a URL whose host is a loopback, private or reserved address, unless
    /// allowed (a name is judged when it resolves, by the client's resolver).
    pub fn check_url(&self, system: &'static str, url: &Url) -> Result<(), ConnectorError> {
        if self.allow_private_networks {
            Ok(())
        } else {
            guard::check_url(system, url)
        }
    }

    /// A client for URLs each checked with [`HttpPolicy::check_url`] before use.
    pub fn any_client(&self, system: &'static str) -> Result<reqwest::Client, ConnectorError> {
        // No proxy from the environment: a proxy resolves names itself, past the guard.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("migration-portal/", env!("CARGO_PKG_VERSION")));
        if !self.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(guard::PublicOnly));
        }
        builder.build().map_err(|e| ConnectorError::Unavailable {
            system,
            attempts: 0,
            last: format!("HTTP client: {e}"),
        })
    }

    /// Exponential delays with jitter, one per retry.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }
}

/// Parses a base URL given by a partner.
pub(crate) fn base_url(system: &'static str, text: &str) -> Result<Url, ConnectorError> {
    Url::parse(text.trim_end_matches('/'))
        .map_err(|e| ConnectorError::Decode(format!("URL: {e}"), system))
}

/// The remote's answer or why there is none. Remote errors keep the remote's code and message.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConnectorError {
    /// A final answer from the remote (4xx other than 429, or 5xx after all attempts).
    #[error("{system} answered {status}{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Remote {
        system: &'static str,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// No answer after all attempts (timeouts, refused connections, repeated 429s).
    #[error("{system} unreachable after {attempts} attempts: {last}")]
    Unavailable {
        system: &'static str,
        attempts: usize,
        last: String,
    },
    /// An answer that is not what the contract says.
    #[error("{system} answered something unreadable: {0}", system = .1)]
    Decode(String, &'static str),
    /// The address is one this service does not contact (loopback, private, link-local).
    #[error("{system} at a refused address: {reason}")]
    NotAllowed {
        system: &'static str,
        reason: String,
    },
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

    /// The cloud refused a write made against a version that is no longer current
    /// (409, code 1001): read again, then decide.
    pub fn is_version_conflict(&self) -> bool {
        self.is_status(409) && self.remote_code() == Some("1001")
    }

    /// Worth trying again later: the remote did not give a final answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Remote { status, .. } => *status == 429 || *status >= 500,
            Self::Unavailable { .. } => true,
            Self::Decode(..) | Self::NotAllowed { .. } => false,
        }
    }
}

/// The per-workspace rate limit and concurrency cap toward one remote; a pace
/// set `within` another keeps to both (a migration's pace inside its workspace's).
#[derive(Clone)]
pub struct Throttle {
    rate: Option<Arc<DefaultDirectRateLimiter>>,
    slots: Arc<Semaphore>,
    outer: Option<Arc<Throttle>>,
}

impl Throttle {
    pub fn new(policy: &HttpPolicy) -> Self {
        let rate = policy
            .rate_per_sec
            .and_then(NonZeroU32::new)
            .map(|per_sec| {
                // A burst of a tenth of a second keeps the average without a thundering start.
                let burst = NonZeroU32::new((per_sec.get() / 10).max(1)).unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(
                    Quota::per_second(per_sec).allow_burst(burst),
                ))
            });
        Self {
            rate,
            slots: Arc::new(Semaphore::new(policy.concurrency.max(1))),
            outer: None,
        }
    }

    /// This pace inside `outer`: every request waits for both.
    pub fn within(self, outer: &Throttle) -> Self {
        Self {
            outer: Some(Arc::new(outer.clone())),
            ..self
        }
    }

    /// Waits for a slot and the rate of every layer; the slots are held while the permits live.
    async fn admit(&self) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
        let mut permits = Vec::new();
        let mut layer = Some(self);
        while let Some(throttle) = layer {
            permits.push(throttle.slots.clone().acquire_owned().await.ok()?);
            if let Some(rate) = &throttle.rate {
                rate.until_ready().await;
            }
            layer = throttle.outer.as_deref();
        }
        Some(permits)
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

/// One attempt's outcome, before deciding whether to retry.
enum Attempt {
    Success(Reply),
    /// A final refusal of ours (the answer is too large): no retry.
    Final(ConnectorError),
    /// The remote answered, not successfully.
    Refused {
        status: StatusCode,
        retry_after: Option<Duration>,
        error: ConnectorError,
    },
    /// No (complete) answer.
    Transport {
        not_sent: bool,
        error: ConnectorError,
    },
}

impl Attempt {
    fn outcome(&self) -> RequestOutcome {
        match self {
            Attempt::Success(reply) => RequestOutcome::of_status(reply.status),
            Attempt::Final(_) => RequestOutcome::TooLarge,
            Attempt::Refused { status, .. } => RequestOutcome::of_status(*status),
            Attempt::Transport {
                error: ConnectorError::NotAllowed { .. },
                ..
            } => RequestOutcome::RefusedAddress,
            Attempt::Transport { .. } => RequestOutcome::TransportError,
        }
    }
}

/// A successful answer.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Sends the request built by `build` under the throttle, reading the answer body
/// (capped) while holding the slot, retrying as `replay` allows. Answers a
/// successful response; otherwise a [`ConnectorError`].
pub(crate) async fn send(
    system: &'static str,
    operation: &'static str,
    policy: &HttpPolicy,
    throttle: &Throttle,
    replay: Replay,
    build: impl Fn() -> RequestBuilder,
) -> Result<Reply, ConnectorError> {
    let mut delays = policy.backoff();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let attempt = {
            let _slots = throttle
                .admit()
                .await
                .ok_or_else(|| ConnectorError::Unavailable {
                    system,
                    attempts,
                    last: "connector closed".into(),
                })?;
            let started = Instant::now();
            let attempt = attempt(system, policy, attempts, build()).await;
            if let Some(observer) = &policy.observer {
                observer.observe(operation, attempt.outcome(), started.elapsed());
            }
            attempt
        };
        let (error, retry_after, may_replay) = match attempt {
            Attempt::Success(reply) => return Ok(reply),
            Attempt::Final(error) => return Err(error),
            Attempt::Refused {
                status,
                retry_after,
                error,
            } => {
                if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                    return Err(error);
                }
                let may_replay = replay == Replay::Safe || status == StatusCode::TOO_MANY_REQUESTS;
                (error, retry_after, may_replay)
            }
            Attempt::Transport { not_sent, error } => {
                let may_replay = !matches!(error, ConnectorError::NotAllowed { .. })
                    && (replay == Replay::Safe || not_sent);
                (error, None, may_replay)
            }
        };
        if !may_replay {
            return Err(error);
        }
        if let Some(wait) = retry_after.filter(|wait| *wait > policy.max_retry_after) {
            return Err(ConnectorError::Unavailable {
                system,
                attempts,
                last: format!("asked to wait {} s before retrying", wait.as_secs()),
            });
        }
        let Some(delay) = delays.next() else {
            return Err(match error {
                ConnectorError::Unavailable { last, .. } => ConnectorError::Unavailable {
                    system,
                    attempts,
                    last,
                },
                ConnectorError::Remote {
                    status: 429,
                    message,
                    ..
                } => ConnectorError::Unavailable {
                    system,
                    attempts,
                    last: format!("rate limited: {message}"),
                },
                other => other,
            });
        };
        // The server's Retry-After wins over a shorter backoff.
        let delay = retry_after.map_or(delay, |wait| wait.max(delay));
        tracing::debug!(system, attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
        tokio::time::sleep(delay).await;
    }
}

async fn attempt(
    system: &'static str,
    policy: &HttpPolicy,
    attempts: usize,
    request: RequestBuilder,
) -> Attempt {
    let transport = |e: reqwest::Error| {
        let not_sent = e.is_connect();
        let error = match guard::refusal(&e) {
            Some(reason) => ConnectorError::NotAllowed { system, reason },
            None => ConnectorError::Unavailable {
                system,
                attempts,
                last: transport_reason(&e),
            },
        };
        Attempt::Transport { not_sent, error }
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return transport(e),
    };
    let status = response.status();
    let retry_after = retry_after(&response);
    let body = match read_capped(response, policy.max_body_bytes).await {
        Ok(body) => body,
        Err(Ok(e)) => return transport(e),
        Err(Err(limit)) => {
            return Attempt::Final(ConnectorError::Decode(
                format!("an answer larger than {limit} bytes"),
                system,
            ));
        }
    };
    if status.is_success() {
        return Attempt::Success(Reply { status, body });
    }
    Attempt::Refused {
        status,
        retry_after,
        error: remote_error(system, status, &body),
    }
}

/// The body, or a transport error, or the cap that was exceeded.
async fn read_capped(
    mut response: Response,
    max: usize,
) -> Result<Bytes, Result<reqwest::Error, usize>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Ok)? {
        if body.len() + chunk.len() > max {
            return Err(Err(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
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
        Some(url) => format!(
            "{kind} ({}://{}{})",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        ),
        None => kind.to_string(),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

/// Both systems answer `{"error": {"code": …, "message": …}}`; the cloud's token
/// endpoint answers `{"error": "access_denied", "error_description": …}` (its
/// `tokenError`); anything else keeps the status.
fn remote_error(system: &'static str, status: StatusCode, body: &[u8]) -> ConnectorError {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Api {
            error: Detail,
        },
        OAuth {
            error: String,
            error_description: Option<String>,
        },
    }
    #[derive(Deserialize)]
    struct Detail {
        code: Option<serde_json::Value>,
        message: Option<String>,
    }
    let (code, message) = match serde_json::from_slice::<Body>(body) {
        Ok(Body::Api { error }) => (
            error
                .code
                .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string)),
            error.message.unwrap_or_default(),
        ),
        Ok(Body::OAuth {
            error,
            error_description,
        }) => (Some(error), error_description.unwrap_or_default()),
        Err(_) => (
            None,
            status.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    ConnectorError::Remote {
        system,
        status: status.as_u16(),
        code,
        message,
    }
}

/// Parses an answer. The error names where the answer went wrong, never the
/// value found there (it could be a password).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    system: &'static str,
    body: &[u8],
) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "a value of the wrong shape",
            serde_json::error::Category::Eof => "a truncated answer",
            serde_json::error::Category::Io => "an unreadable answer",
        };
        ConnectorError::Decode(
            format!("{what} at line {} column {}", e.line(), e.column()),
            system,
        )
    })
}

/// Refuses addresses partners must not make the service contact.
mod guard {
    use std::net::{IpAddr, SocketAddr};

    use reqwest::dns::{Addrs, Name, Resolve, Resolving};
    use url::{Host, Url};

    use super::ConnectorError;

    const REFUSED: &str = "resolves only to loopback, private, link-local or reserved addresses";

    /// Globally routable unicast addresses only.
    pub fn is_public(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let [first, second, ..] = a.octets();
                !(a.is_private()
                    || a.is_loopback()
                    || a.is_link_local()
                    || a.is_unspecified()
                    || a.is_broadcast()
                    || a.is_multicast()
                    || a.is_documentation()
                    || first == 0
                    || first >= 240
                    || (first == 100 && (64..128).contains(&second))
                    || (first == 198 && (18..20).contains(&second))
                    || (first == 192 && second == 0 && a.octets()[2] == 0)
                    || (first == 192 && second == 88 && a.octets()[2] == 99))
            }
            IpAddr::V6(a) => {
                let s = a.segments();
                let embedded = |hi: u16, lo: u16| {
                    IpAddr::V4(std::net::Ipv4Addr::from(
                        (u32::from(hi) << 16) | u32::from(lo),
                    ))
                };
                if let Some(v4) = a.to_ipv4_mapped() {
                    return is_public(IpAddr::V4(v4));
                }
                // Forms that carry an IPv4 address and can reach it: judge that address.
                if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    || (s[..6] == [0, 0, 0, 0, 0, 0] && !a.is_loopback() && !a.is_unspecified())
                {
                    return is_public(embedded(s[6], s[7])); // NAT64, IPv4-compatible
                }
                if s[0] == 0x2002 {
                    return is_public(embedded(s[1], s[2])); // 6to4
                }
                !(a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (s[0] & 0xfe00) == 0xfc00
                    || (s[0] & 0xffc0) == 0xfe80
                    || (s[0] & 0xffc0) == 0xfec0
                    || (s[0] == 0x2001 && s[1] == 0x0db8)
                    || (s[0] == 0x2001 && s[1] == 0)) // Teredo
            }
        }
    }

    /// A URL whose host is a literal address: checked here (the resolver never sees it).
    pub fn check_url(system: &'static str, url: &Url) -> Result<(), ConnectorError> {
        let ip = match url.host() {
            Some(Host::Ipv4(a)) => IpAddr::V4(a),
            Some(Host::Ipv6(a)) => IpAddr::V6(a),
            _ => return Ok(()),
        };
        if is_public(ip) {
            Ok(())
        } else {
            Err(ConnectorError::NotAllowed {
                system,
                reason: format!("{ip} is a loopback, private, link-local or reserved address"),
            })
        }
    }

    /// Resolves names, keeping only public addresses: a name that resolves to
    /// our own network (or is rebound to it) is refused at connect time.
    pub struct PublicOnly;

    impl Resolve for PublicOnly {
        fn resolve(&self, name: Name) -> Resolving {
            let host = name.as_str().to_string();
            Box::pin(async move {
                let found: Vec<SocketAddr> =
                    tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                let public: Vec<SocketAddr> =
                    found.into_iter().filter(|a| is_public(a.ip())).collect();
                if public.is_empty() {
                    return Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!("{host} {REFUSED}"),
                    )) as _);
                }
                Ok(Box::new(public.into_iter()) as Addrs)
            })
        }
    }

    /// The resolver's refusal, found in a transport error's causes.
    pub fn refusal(error: &reqwest::Error) -> Option<String> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(io) = e
                .downcast_ref::<std::io::Error>()
                .filter(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
            {
                return Some(io.to_string());
            }
            cause = e.source();
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_globally_routable_addresses_are_public() {
            let cases = [
                ("8.8.8.8", true),
                ("93.184.216.34", true),
                ("2606:4700::1111", true),
                ("127.0.0.1", false),
                ("10.1.2.3", false),
                ("172.16.0.1", false),
                ("192.168.1.1", false),
                ("169.254.169.254", false),
                ("100.64.0.1", false),
                ("0.0.0.0", false),
                ("255.255.255.255", false),
                ("224.0.0.1", false),
                ("192.0.2.1", false),
                ("::1", false),
                ("::", false),
                ("fc00::1", false),
                ("fd12:3456::1", false),
                ("fe80::1", false),
                ("ff02::1", false),
                ("::ffff:127.0.0.1", false),
                ("::ffff:8.8.8.8", true),
                ("2001:db8::1", false),
                ("64:ff9b::7f00:1", false),
                ("64:ff9b::808:808", true),
                ("::7f00:1", false),
                ("2002:7f00:1::1", false),
                ("2002:808:808::1", true),
                ("2001:0:1::1", false),
                ("fec0::1", false),
                ("198.18.0.1", false),
                ("192.0.0.8", false),
                ("192.88.99.1", false),
            ];
            for (ip, public) in cases {
                assert_eq!(is_public(ip.parse().expect("ip")), public, "{ip}");
            }
        }

        #[test]
        fn literal_private_hosts_are_refused_before_any_connection() {
            let exotic = [
                "http://2130706433/",
                "http://0x7f.1/",
                "http://0177.0.0.1/",
                "http://127.1/",
                "http://[::ffff:7f00:1]/",
                "http://[0:0:0:0:0:0:0:1]/",
            ];
            for url in [
                "http://127.0.0.1:9",
                "http://[::1]/",
                "https://169.254.169.254/latest",
                "http://10.0.0.5:6379",
            ]
            .into_iter()
            .chain(exotic)
            {
                assert!(
                    check_url("test", &Url::parse(url).expect("url")).is_err(),
                    "{url}"
                );
            }
            for url in [
                "https://eu2-cloud.acronis.com",
                "http://8.8.8.8",
                "http://localhost:8080",
            ] {
                assert!(
                    check_url("test", &Url::parse(url).expect("url")).is_ok(),
                    "{url}: names are the resolver's job"
                );
            }
        }

        #[tokio::test]
        async fn a_name_that_resolves_to_loopback_is_refused_by_the_resolver() {
            let result = PublicOnly
                .resolve("localhost".parse::<Name>().expect("name"))
                .await;
            let error = result.err().expect("refused");
            assert!(error.to_string().contains(REFUSED), "{error}");
        }
    }
}
