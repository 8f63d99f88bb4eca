//! Sending one call: under the throttle, with the answer body capped, retried
//! as the policy and the call's [`Replay`] allow, each request told to the
//! policy's observer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::error::{ConnectorError, remote_error};
use super::guard;
use super::policy::HttpPolicy;
use super::throttle::Throttle;

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
                // 408: the remote did not receive the whole request in time (RFC 9110,
                // 15.5.9) and so did not act on it; like 429, sent again whatever it was.
                let not_acted_on = matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                );
                if !not_acted_on && !status.is_server_error() {
                    return Err(error);
                }
                let may_replay = replay == Replay::Safe || not_acted_on;
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
