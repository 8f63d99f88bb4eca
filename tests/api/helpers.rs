//! `spawn_app`: the service on port 0 with its own database (a fresh SQLite file,
//! or a fresh PostgreSQL database when `MP_TEST_POSTGRES_URL` is set) and its own
//! identity provider on loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use migration_portal::app::{Application, KeyPolicy};
use migration_portal::config::{Config, LogFormat};
use migration_portal::sim::idp::{IdentityProvider, generate_key};
use migration_portal::telemetry;
use rsa::RsaPrivateKey;
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use tracing_subscriber::fmt::MakeWriter;
use uuid::Uuid;

pub const AUDIENCE: &str = "migration-portal-test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// SQLite always; PostgreSQL too when `MP_TEST_POSTGRES_URL` is set.
    pub fn enabled() -> Vec<Backend> {
        let mut backends = vec![Backend::Sqlite];
        if postgres_admin_url().is_some() {
            backends.push(Backend::Postgres);
        }
        backends
    }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var("MP_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Two RSA keys per test binary: generating them is the slow part of a test.
pub fn test_keys() -> &'static [RsaPrivateKey] {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..2).map(|_| generate_key()).collect())
}

/// Every log line of this test binary, as JSON lines.
#[derive(Clone)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs(Arc::new(Mutex::new(Vec::new())));
        telemetry::init(
            LogFormat::Json,
            "debug,hyper=info,h2=info,rustls=info",
            logs.clone(),
        )
        .expect("one subscriber per test binary");
        logs
    })
}

pub struct TestApp {
    pub address: String,
    pub backend: Backend,
    pub idp: IdentityProvider,
    pub http: reqwest::Client,
    pub database_url: String,
    pub sqlite_file: Option<PathBuf>,
    pub secret_key: SecretString,
    /// A partner admin of `tenant`.
    pub tenant: Uuid,
    pub token: String,
    /// What the app counts; workers a test runs record into it, as the app's own would.
    pub metrics: std::sync::Arc<migration_portal::metrics::Metrics>,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    logs();
    let idp = IdentityProvider::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        AUDIENCE,
        &test_keys()[0],
    )
    .expect("identity provider");
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, sqlite_file) = match backend {
        Backend::Sqlite => {
            let file = dir.path().join("test.db");
            (format!("sqlite://{}", file.display()), Some(file))
        }
        Backend::Postgres => (fresh_postgres_database().await, None),
    };
    let secret_key = SecretString::from(migration_portal::crypto::generate_key().expect("key"));
    let mut config = Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    config.database.url = database_url.clone();
    config.database.max_connections = 5;
    config.auth.issuer = Some(idp.issuer().to_string());
    config.auth.audience = Some(AUDIENCE.to_string());
    config.http.workers = 2;
    config.secret_key = Some(secret_key.clone());
    // The simulators listen on loopback.
    config.connectors.allow_private_networks = true;
    configure(&mut config);
    let app = Application::build(&config, KeyPolicy::Required)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics = app.metrics();
    tokio::spawn(app.run_until_stopped());
    let tenant = Uuid::new_v4();
    let token = idp.partner_token(tenant);
    // Idle connections are dropped well before the server's keep-alive (5 s) closes
    // them: a request sent on one the server is closing fails with IncompleteMessage.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("client");
    TestApp {
        address,
        backend,
        idp,
        http,
        database_url,
        sqlite_file,
        secret_key,
        tenant,
        token,
        metrics,
        _dir: dir,
    }
}

pub async fn fresh_postgres_database() -> String {
    let admin = postgres_admin_url().expect("MP_TEST_POSTGRES_URL");
    let name = format!("mp_test_{}", Uuid::new_v4().simple());
    let conn = Database::connect(&admin)
        .await
        .expect("PostgreSQL at MP_TEST_POSTGRES_URL");
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    conn.close().await.ok();
    let mut url = url::Url::parse(&admin).expect("MP_TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Runs `test` once per enabled backend, each on a fresh app.
pub async fn on_each_backend(test: impl AsyncFn(&TestApp)) {
    for backend in Backend::enabled() {
        eprintln!("-- on {backend:?}");
        let app = spawn_app(backend).await;
        test(&app).await;
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn token_for(&self, tenant: Uuid) -> String {
        self.idp.partner_token(tenant)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    pub fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(token).json(body)
    }

    pub fn patch_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.http
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(token)
    }

    /// Creates a workspace for `token`'s tenant and returns its JSON.
    pub async fn create_workspace(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let response = self
            .post_json("/api/v1/workspaces", token, body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "create workspace");
        response.json().await.expect("json")
    }

    /// Every workspace of `token`'s tenant, all pages.
    pub async fn all_workspaces(&self, token: &str) -> Vec<serde_json::Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/workspaces?limit=500&cursor={c}"),
                None => "/api/v1/workspaces?limit=500".to_string(),
            };
            let page: serde_json::Value = self
                .get(&path, token)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }
}

/// Nothing listens on the discard port: checks fail at once, without leaving the machine.
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// A workspace body whose secrets are unique to the call.
pub fn workspace_body(name: &str) -> (serde_json::Value, String, String) {
    let password = format!("src-pass-{}", Uuid::new_v4().simple());
    let client_secret = format!("client-secret-{}", Uuid::new_v4().simple());
    let body = serde_json::json!({
        "name": name,
        "source": {"url": NOWHERE, "login": "root-group", "password": password},
        "target": {"url": format!("{NOWHERE}/cloud"), "client_id": "api-client-1", "client_secret": client_secret},
    });
    (body, password, client_secret)
}

/// Asserts an RFC 9457 answer with `status` and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "status; body: {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type:?}; body: {text}"
    );
    let problem: serde_json::Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(problem["status"], status, "{problem}");
    for field in ["type", "title", "detail", "code"] {
        assert!(
            problem[field].as_str().is_some_and(|s| !s.is_empty()),
            "problem lacks {field}: {problem}"
        );
    }
    problem
}

/// A migrated database of its own, without an app.
pub async fn fresh_db(backend: Backend) -> (sea_orm::DatabaseConnection, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("jobs.db").display()),
        Backend::Postgres => fresh_postgres_database().await,
    };
    let config = migration_portal::config::DatabaseConfig {
        url,
        max_connections: 8,
        busy_timeout_ms: 10_000,
        acquire_timeout_ms: 10_000,
    };
    let db = migration_portal::db::connect_upgraded(&config)
        .await
        .expect("connect and migrate");
    (db, dir)
}

/// Runs `python3 ARGS` able to import `module`, installing `packages` (exact pins,
/// `pip install` arguments) into the test target dir on first use: a folder per
/// `name`, so that tools with different dependencies do not overwrite each other.
pub fn python_with(
    name: &str,
    module: &str,
    packages: &[&str],
    args: &[&str],
) -> std::process::Output {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let deps = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = |args: &[&str]| {
        std::process::Command::new("python3")
            .env("PYTHONPATH", &deps)
            .args(args)
            .output()
            .expect("python3 runs")
    };
    {
        let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
        if !python(&["-c", &format!("import {module}")])
            .status
            .success()
        {
            let installed = std::process::Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(&deps)
                .args(packages)
                .output()
                .expect("pip runs");
            assert!(
                installed.status.success(),
                "pip install {packages:?}: {}",
                String::from_utf8_lossy(&installed.stderr)
            );
        }
    }
    python(args)
}
