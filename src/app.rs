//! Builds the actix application; `Application::build` binds, tests use port 0.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use sea_orm::DatabaseConnection;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

use crate::api::state::AppState;
use crate::api::{self, RouteTable, docs::ApiDoc, extract};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::db;
use crate::error::problem_safety_net;
use crate::metrics::Metrics;

/// Where the key that seals credentials comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPolicy {
    /// `secret_key` must be configured.
    Required,
    /// Fall back to a fixed, public development key (`--insecure-dev-key`).
    AllowInsecureDevKey,
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

/// What a `serve` process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    ApiAndWorker,
    ApiOnly,
    WorkerOnly,
}

/// The job handlers of this build; each job kind has one. Their requests to the
/// cloud are counted in `metrics` when given.
pub fn job_handlers(
    secrets: SecretBox,
    allow_private_networks: bool,
    metrics: Option<std::sync::Arc<Metrics>>,
) -> Vec<crate::queue::Handler> {
    job_handlers_with(
        secrets,
        allow_private_networks,
        metrics,
        &crate::config::WebhookSettings::default(),
    )
}

/// Every job's handler; webhook deliveries as `webhooks` says.
pub fn job_handlers_with(
    secrets: SecretBox,
    allow_private_networks: bool,
    metrics: Option<std::sync::Arc<Metrics>>,
    webhooks: &crate::config::WebhookSettings,
) -> Vec<crate::queue::Handler> {
    let pool = std::sync::Arc::new(
        crate::jobs::clients::ClientPool::new(allow_private_networks).observed_by(metrics),
    );
    let sender = std::sync::Arc::new(crate::jobs::webhook::Sender::new(
        secrets.clone(),
        webhooks,
        allow_private_networks,
    ));
    use crate::queue::Handler;
    let statuses = std::sync::Arc::new(crate::jobs::statuses::MigrationStatuses::default());
    let transfer = std::sync::Arc::new(crate::jobs::transfer::TransferHandler::new(
        secrets.clone(),
        pool.clone(),
        statuses.clone(),
    ));
    vec![
        Handler::new(crate::jobs::sync::SyncHandler::new(
            secrets.clone(),
            pool.clone(),
        )),
        Handler::new(crate::jobs::precheck::PrecheckHandler::new(
            secrets.clone(),
            pool.clone(),
        )),
        Handler::new(crate::jobs::migration::MigrationHandler::new(
            secrets.clone(),
            pool.clone(),
        )),
        Handler::new(transfer.clone()),
        Handler::new(crate::jobs::transfer::TenantTransfers(transfer)),
        Handler::new(crate::jobs::registration::RegistrationHandler::new(
            secrets, pool, statuses,
        )),
        Handler::new(crate::jobs::webhook::WebhookHandler::new(sender, webhooks)),
    ]
}

/// The key that seals credentials, as configuration and policy allow.
fn secret_box(config: &Config, key_policy: KeyPolicy) -> anyhow::Result<SecretBox> {
    match (&config.secret_key, key_policy) {
        (Some(key), _) => Ok(SecretBox::from_base64(key)?),
        (None, KeyPolicy::AllowInsecureDevKey) => {
            tracing::warn!(
                "using the public development key to seal credentials: never do this with real credentials"
            );
            Ok(SecretBox::insecure_dev())
        }
        (None, KeyPolicy::Required) => anyhow::bail!(
            "setting `secret_key` (MP_SECRET_KEY) is required to seal stored credentials; \
             create one with `migration-portal gen-key`, or pass --insecure-dev-key for local development"
        ),
    }
}

/// Serves the API, runs the worker, or both, until SIGINT or SIGTERM; then the
/// API drains its requests and the worker finishes or gives back its jobs.
pub async fn serve(config: &Config, key_policy: KeyPolicy, role: Role) -> anyhow::Result<()> {
    // Registered before anything announces readiness, so a signal never finds the default action.
    let mut signals = ShutdownSignals::install()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if role == Role::WorkerOnly {
        let secrets = secret_box(config, key_policy)?;
        let db = db::connect_upgraded(&config.database).await?;
        // No HTTP server here, so nothing to serve metrics from (see README, Metrics).
        let handlers = job_handlers_with(
            secrets,
            config.connectors.allow_private_networks,
            None,
            &config.webhooks,
        );
        let worker = crate::queue::Worker::new(db, (&config.worker).into(), handlers);
        tracing::info!(worker = %worker.id(), "worker running");
        let running = tokio::spawn(crate::jobs::run(worker, stopped));
        signals.wait().await;
        let _ = stop.send(true);
        running.await?;
        return Ok(());
    }
    let app = Application::build(config, key_policy).await?;
    let worker = (role == Role::ApiAndWorker)
        .then(|| tokio::spawn(crate::jobs::run(app.worker(config), stopped)));
    let handle = app.server.handle();
    tracing::info!(port = app.port(), ?role, "serving");
    let mut server = tokio::spawn(app.run_until_stopped());
    let served = tokio::select! {
        served = &mut server => served,
        _ = signals.wait() => {
            handle.stop(true).await;
            server.await
        }
    };
    let _ = stop.send(true);
    if let Some(worker) = worker {
        worker.await?;
    }
    Ok(served??)
}

struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What the first requests would otherwise wait for, done at start: the pool's
/// first connections ([`db::warm_up`]). Nothing waits for it; a failure here is a
/// request's failure later.
async fn warm_up(state: web::Data<AppState>) {
    if let Err(error) = db::warm_up(&state.db).await {
        tracing::warn!(%error, "could not open database connections at start");
    }
}

impl Application {
    pub async fn build(config: &Config, key_policy: KeyPolicy) -> anyhow::Result<Self> {
        let secrets = secret_box(config, key_policy)?;
        let metrics_token = config.metrics_token()?;
        let issuer = config.auth_issuer()?;
        let audience = config.auth_audience()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let auth = Authenticator::new(
            http,
            issuer,
            audience,
            config.jwks_refresh_cooldown(),
            Duration::from_secs(config.auth.jwks_max_age_secs),
            Duration::from_secs(config.auth.leeway_secs),
        );
        let db = db::connect_upgraded(&config.database).await?;
        let listener = TcpListener::bind(config.bind).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (setting `bind`, MP_BIND): {e}",
                config.bind
            )
        })?;
        let port = listener.local_addr()?.port();
        let allow_private_networks = config.connectors.allow_private_networks;
        if allow_private_networks {
            tracing::warn!(
                "connectors may contact loopback and private addresses (connectors.allow_private_networks)"
            );
        }
        let admission = std::sync::Arc::new(crate::api::admission::Admission::new(
            config.agent_max_in_flight(),
        ));
        let agent_max_log_bytes = config.http.agent_max_log_bytes;
        let check_ins = std::sync::Arc::new(crate::db::check_ins::CheckIns::default());
        tokio::spawn(flush_check_ins(
            db.clone(),
            std::sync::Arc::downgrade(&check_ins),
        ));
        let spec = api::openapi();
        let metrics = Metrics::new(api::documented_routes(&spec))?;
        let clients = std::sync::Arc::new(
            crate::jobs::clients::ClientPool::new(allow_private_networks)
                .observed_by(Some(metrics.clone())),
        );
        let webhooks = std::sync::Arc::new(crate::jobs::webhook::Sender::new(
            secrets.clone(),
            &config.webhooks,
            allow_private_networks,
        ));
        let state = web::Data::new(AppState {
            db,
            secrets,
            auth,
            allow_private_networks,
            admission,
            agent_max_log_bytes,
            agent_tokens: std::sync::Arc::new(crate::auth::agent::AgentTokens::new(
                AGENT_TOKEN_QUERIES,
            )),
            check_ins,
            clients,
            metrics,
            metrics_token,
            webhooks,
        });
        tokio::spawn(warm_up(state.clone()));
        let server = run(listener, state.clone(), config, &spec)?;
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What this application counts; its worker and tests' workers record into it.
    pub fn metrics(&self) -> std::sync::Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// A worker over this application's database, key, connector settings and metrics.
    pub fn worker(&self, config: &Config) -> crate::queue::Worker {
        let handlers = job_handlers_with(
            self.state.secrets.clone(),
            self.state.allow_private_networks,
            Some(self.metrics()),
            &config.webhooks,
        );
        crate::queue::Worker::new(self.state.db.clone(), (&config.worker).into(), handlers)
            .with_metrics(self.metrics())
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    config: &Config,
    spec: &utoipa::openapi::OpenApi,
) -> std::io::Result<Server> {
    let routes = web::Data::new(RouteTable::from_spec(spec));
    // The document as `api::openapi` completes it, not the app's partial one.
    let served = spec.clone();
    let max_body = config.http.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(api::input::refuse_control_characters))
            .wrap(ErrorHandlers::new().default_handler(problem_safety_net))
            .wrap(from_fn(request_context))
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .app_data(state.clone())
            .app_data(routes.clone())
            .app_data(extract::path_config())
            .app_data(extract::query_config())
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(extract::BodyLimit(max_body))
            .configure(api::routes)
            .openapi_service(|_| {
                SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", served.clone())
            })
            .default_service(web::to(api::fallback))
            .into_app()
    })
    // A new connection's first request head must arrive within this time (actix:
    // 5 s, then a 408 written on the connection). Actix measures it from its worker's
    // cached clock: at `large`, with the whole fleet checking in, that clock lagged
    // enough that fresh connections of the partner's client got the 408 before their
    // request was written ("received unexpected message from connection", four times
    // in a row). Slow-header clients are still cut off, after half a minute.
    .client_request_timeout(Duration::from_secs(30))
    .listen(listener)?;
    if config.http.workers > 0 {
        server = server.workers(config.http.workers);
    }
    Ok(server.run())
}

/// Writes agents' check-in times once a second while the application lives.
async fn flush_check_ins(
    db: DatabaseConnection,
    check_ins: std::sync::Weak<crate::db::check_ins::CheckIns>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let Some(check_ins) = check_ins.upgrade() else {
            return;
        };
        let scheduled = match check_ins.flush(&db).await {
            Ok((_, deliveries)) => crate::jobs::webhook::schedule(&db, deliveries).await,
            Err(error) => Err(error),
        };
        if let Err(error) = scheduled {
            tracing::warn!(%error, "could not write agents' check-in times; they are dropped");
        }
    }
}

/// The request id of this request (from `X-Request-Id` when it is sane, else new).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Agent token look-up queries in flight at once, each for every token waiting
/// (a few of the pool's connections; more only added waits on a 2-core machine).
const AGENT_TOKEN_QUERIES: usize = 4;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let id = value.to_str().ok()?;
    let sane = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| id.to_string())
}

/// One span per request carrying the request id; one log line per response;
/// `X-Request-Id` on every response; the request counted by its route pattern.
/// Paths are logged, query strings and headers are not.
async fn request_context<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(accepted_request_id)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    // Handlers' errors arrive here as responses; an Err is a middleware failure that
    // actix renders itself, so it is only logged.
    let mut response = match next.call(req).instrument(span.clone()).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(error) => {
            span.in_scope(|| tracing::error!(%error, "request failed in middleware"));
            return Err(error);
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
        state.metrics.http_request(
            response.request().match_pattern(),
            response.request().method(),
            status,
            elapsed,
        );
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "request completed"
        )
    });
    Ok(response)
}
