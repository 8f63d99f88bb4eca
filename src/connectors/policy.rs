//! How a connector talks to one remote system: timeouts, retries with backoff,
//! the pace ([`Limit`]), the answer size it reads, and whether private
//! addresses may be contacted.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;
use validator::Validate;

use super::error::ConnectorError;
use super::guard;
use super::send::RequestObserver;

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
