//! One typed configuration: defaults < optional TOML file < environment (`MP_*`).
//!
//! Nested keys use a double underscore in the environment: `auth.issuer` is
//! `MP_AUTH__ISSUER`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub connectors: ConnectorsConfig,
    pub worker: WorkerSettings,
    pub webhooks: WebhookSettings,
    pub metrics: MetricsConfig,
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,sqlx=warn`.
    pub log_level: String,
    /// Base64 of 32 random bytes: the AES-256-GCM key that seals stored credentials.
    #[serde(skip_serializing)]
    pub secret_key: Option<SecretString>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// How long a SQLite writer waits for the lock before failing.
    pub busy_timeout_ms: u64,
    /// How long a request waits for a pooled connection; past it, 503 `overloaded`.
    pub acquire_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The cloud's identity provider; its `/.well-known/openid-configuration` names the JWKS.
    pub issuer: Option<String>,
    /// The `aud` a partner token must carry.
    pub audience: Option<String>,
    /// Least time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_refresh_cooldown_secs: u64,
    /// Keys older than this are refreshed in the background of the next request; a key
    /// the issuer retired stops working at most this long after.
    pub jwks_max_age_secs: u64,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Actix worker threads; 0 means one per core.
    pub workers: usize,
    /// Agent requests handled at once; more answer 429 with `Retry-After`. 0: four per
    /// database connection ([`Config::agent_max_in_flight`]).
    pub agent_max_in_flight: usize,
    /// Largest client log an agent may upload.
    pub agent_max_log_bytes: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Let workspaces point at loopback, private and link-local addresses. Off by
    /// default: partners choose those URLs, and must not reach the service's own network.
    pub allow_private_networks: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs run at once by one process.
    pub concurrency: usize,
    /// A claimed job is another worker's to take over when its lease lapses.
    pub lease_secs: u64,
    pub poll_interval_ms: u64,
    /// On shutdown, how long running jobs may take before they are given back.
    pub shutdown_grace_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// How long a receiver has to answer.
    pub timeout_ms: u64,
    /// Deliveries one process has in hand at once, in a lane of their own: slow
    /// receivers never hold up the other jobs. A delivery holds its place until its
    /// outcome is written (behind the database's write lock on SQLite, shared with
    /// the agents): at 16, a lane full of deliveries waiting on their writes sent
    /// about 115 a second at `large` on SQLite, and the machines' outcomes queued
    /// at the fleet's peaks (p99 1.1-1.7 s).
    pub concurrency: usize,
    /// Requests to one subscription's receiver at once in one process, so that one
    /// slow receiver cannot take the whole lane. At 4, one receiver on loopback took
    /// about 185 deliveries a second at `medium` and `large` on SQLite (each send
    /// about 20 ms on the loaded machine), and the machines' outcomes queued at
    /// their peak (p99 1.2 s); at 8, 229 a second and p99 0.5 s at `medium`.
    pub per_subscription: usize,
    /// The wait before each retry of a failed delivery, in seconds.
    pub retry_schedule_secs: Vec<f64>,
    /// A subscription whose deliveries failed this many times in a row…
    pub disable_after_failures: u32,
    /// …for at least this long is disabled.
    pub disable_after_secs: u64,
}

impl WebhookSettings {
    pub fn retry_policy(&self) -> crate::domain::webhooks::RetryPolicy {
        crate::domain::webhooks::RetryPolicy {
            schedule: self
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 7.0 * 86_400.0)))
                .collect(),
            disable_after_failures: self.disable_after_failures.max(1),
            disable_after: Duration::from_secs(self.disable_after_secs),
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let policy = crate::domain::webhooks::RetryPolicy::default();
        Self {
            timeout_ms: 10_000,
            concurrency: 64,
            per_subscription: 8,
            retry_schedule_secs: policy.schedule.iter().map(Duration::as_secs_f64).collect(),
            disable_after_failures: policy.disable_after_failures,
            disable_after_secs: policy.disable_after.as_secs(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`; unset, it is
    /// open to anyone who reaches the port (keep it off the internet then).
    #[serde(skip_serializing)]
    pub bearer_token: Option<SecretString>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: DatabaseConfig {
                url: "sqlite://migration-portal.db".into(),
                max_connections: 10,
                busy_timeout_ms: 5_000,
                acquire_timeout_ms: 10_000,
            },
            auth: AuthConfig {
                issuer: None,
                audience: None,
                jwks_refresh_cooldown_secs: 30,
                jwks_max_age_secs: 300,
                leeway_secs: 30,
            },
            http: HttpConfig {
                max_body_bytes: 256 * 1024,
                workers: 0,
                agent_max_in_flight: 0,
                agent_max_log_bytes: 1 << 20,
            },
            connectors: ConnectorsConfig {
                allow_private_networks: false,
            },
            worker: WorkerSettings {
                concurrency: 4,
                lease_secs: 60,
                poll_interval_ms: 500,
                shutdown_grace_secs: 20,
            },
            webhooks: WebhookSettings::default(),
            metrics: MetricsConfig::default(),
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            secret_key: None,
        }
    }
}

/// Admitted agent requests per pooled connection, when `http.agent_max_in_flight` is 0: a
/// request holds its connection for part of its time only (reading the body, answering).
const AGENT_REQUESTS_PER_CONNECTION: usize = 4;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, then the TOML file if given, then `MP_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Unknown MP_* variables are errors (a typo must not pass silently), except the
        // ones that are not settings: the config file's path and the test suite's.
        let env = Env::prefixed("MP_")
            .filter(|key| {
                key != "config" && !key.as_str().to_ascii_lowercase().starts_with("test_")
            })
            .split("__");
        figment = figment.merge(env);
        figment.extract().map_err(|e| ConfigError(describe(e)))
    }

    pub fn auth_issuer(&self) -> Result<&str, ConfigError> {
        self.auth
            .issuer
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "auth.issuer (MP_AUTH__ISSUER) is required: the cloud identity provider's URL"
                        .into(),
                )
            })
    }

    pub fn auth_audience(&self) -> Result<&str, ConfigError> {
        self.auth
            .audience
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "auth.audience (MP_AUTH__AUDIENCE) is required: the `aud` partner tokens carry"
                        .into(),
                )
            })
    }

    /// The token `GET /metrics` requires, if any; a blank one is refused rather than read as "open".
    pub fn metrics_token(&self) -> Result<Option<SecretString>, ConfigError> {
        use secrecy::ExposeSecret;
        match &self.metrics.bearer_token {
            Some(token) if token.expose_secret().trim().is_empty() => {
                Err(ConfigError("metrics.bearer_token (MP_METRICS__BEARER_TOKEN) is empty: set a token, or leave it unset for an open /metrics".into()))
            }
            token => Ok(token.clone()),
        }
    }

    /// Agent requests handled at once: `http.agent_max_in_flight`, or when it is 0 four per
    /// pooled connection, so that the admitted ones get a connection well within the
    /// acquire timeout and a herd beyond them is refused at once (429), not queued.
    pub fn agent_max_in_flight(&self) -> usize {
        match self.http.agent_max_in_flight {
            0 => (self.database.max_connections as usize).max(1) * AGENT_REQUESTS_PER_CONNECTION,
            n => n,
        }
    }

    pub fn jwks_refresh_cooldown(&self) -> Duration {
        Duration::from_secs(self.auth.jwks_refresh_cooldown_secs)
    }
}

/// Figment names the key and where it came from; add the variable to set.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let var = format!("MP_{}", e.path.join("__").to_uppercase());
            if key.is_empty() {
                e.to_string()
            } else {
                format!("setting `{key}` ({var}): {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_match_the_documentation() {
        let c = Config::default();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://migration-portal.db");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.database.max_connections, 10);
        assert_eq!(c.database.acquire_timeout_ms, 10_000);
        assert_eq!(c.http.agent_max_in_flight, 0);
    }

    #[test]
    fn agent_admission_follows_the_pool_unless_it_is_set() {
        let mut c = Config::default();
        assert_eq!(c.agent_max_in_flight(), 40);
        c.database.max_connections = 2;
        assert_eq!(c.agent_max_in_flight(), 8);
        c.http.agent_max_in_flight = 3;
        assert_eq!(c.agent_max_in_flight(), 3);
    }

    #[test]
    fn the_environment_overrides_the_file_which_overrides_the_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file("mp.toml", "bind = \"0.0.0.0:9000\"\n[auth]\nissuer = \"https://file.example\"\naudience = \"file\"\n")?;
            jail.set_env("MP_AUTH__AUDIENCE", "env");
            jail.set_env("MP_LOG_FORMAT", "json");
            let c = Config::load(Some(Path::new("mp.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
            assert_eq!(
                c.auth_issuer().map_err(|e| e.to_string())?,
                "https://file.example"
            );
            assert_eq!(c.auth_audience().map_err(|e| e.to_string())?, "env");
            assert_eq!(c.log_format, LogFormat::Json);
            assert_eq!(c.database.url, "sqlite://migration-portal.db");
            Ok(())
        });
    }

    #[test]
    fn unknown_variables_are_refused_but_the_config_path_and_test_settings_are_not_settings() {
        Jail::expect_with(|jail| {
            jail.set_env("MP_CONFIG", "elsewhere.toml");
            jail.set_env("MP_TEST_POSTGRES_URL", "postgres://x");
            assert!(Config::load(None).is_ok());
            jail.set_env("MP_DATABSE__URL", "sqlite://typo.db");
            let message = Config::load(None).expect_err("typo").to_string();
            assert!(message.contains("databse"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn the_metrics_token_comes_from_the_environment_and_a_blank_one_is_refused() {
        use secrecy::ExposeSecret;
        Jail::expect_with(|jail| {
            assert!(
                Config::load(None)
                    .map_err(|e| e.to_string())?
                    .metrics_token()
                    .map_err(|e| e.to_string())?
                    .is_none(),
                "open by default"
            );
            jail.set_env("MP_METRICS__BEARER_TOKEN", "scrape-me");
            let token = Config::load(None)
                .map_err(|e| e.to_string())?
                .metrics_token()
                .map_err(|e| e.to_string())?;
            assert_eq!(
                token
                    .as_ref()
                    .map(|t| t.expose_secret().to_string())
                    .as_deref(),
                Some("scrape-me")
            );
            jail.set_env("MP_METRICS__BEARER_TOKEN", " ");
            let message = Config::load(None)
                .map_err(|e| e.to_string())?
                .metrics_token()
                .expect_err("blank")
                .to_string();
            assert!(message.contains("MP_METRICS__BEARER_TOKEN"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn malformed_settings_are_named_with_their_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("MP_HTTP__MAX_BODY_BYTES", "lots");
            let message = Config::load(None).expect_err("malformed").to_string();
            assert!(
                message.contains("http.max_body_bytes")
                    && message.contains("MP_HTTP__MAX_BODY_BYTES"),
                "{message}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[database]\nurl = 5\nunknown = true\n")?;
            let message = Config::load(Some(Path::new("bad.toml")))
                .expect_err("malformed")
                .to_string();
            assert!(message.contains("database"), "{message}");
            Ok(())
        });
    }
}
