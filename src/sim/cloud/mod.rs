//! `sim cloud`: the cloud's Account Management API v2 as its published document
//! (`openapi/acronis-account-management-v2.json`, see `docs/cloud-contract.md`) has it, in memory, with its identity provider (issuer = the base URL),
//! protection plans, applications with offering items and pricing ([`catalogue`],
//! [`offering`], [`pricing`]), fault injection and an inspection endpoint.
//!
//! At start it holds a root partner tenant ("Sim Root Partner") with an API client,
//! and an unrelated partner ("Other Partner") outside the root's subtree that holds
//! the pre-seeded users of [`CloudSimConfig::existing_logins`].
//!
//! Routes besides the cloud's: `POST /sim/cloud/clients` `{"tenant_id"}` registers
//! another API client; `GET|PUT /sim/cloud/faults` reads or replaces the [`Faults`];
//! `GET /sim/cloud/state` is [`CloudSim::inspect`]; `GET|PUT|DELETE /sim/cloud/exchanges`
//! reads, switches (`{"recording": bool}`) or clears the [`exchanges`] log;
//! `GET|PUT /sim/cloud/offering_items` reads the root's catalogue or turns items of it
//! off (`{"off": [names]}`, see `offering_api`); `POST /sim/cloud/agents/register`
//! registers a machine's agent with a registration token (not in the published
//! document: the real agent registers elsewhere; see `agents`);
//! `POST /sim/idp/rotate` rotates the signing key. Our choices where the real API is unknown are documented in the
//! module of each resource ([`errors`] for the error codes).

mod agents;
mod auth;
pub mod catalogue;
pub mod errors;
mod exchanges;
mod faults;
mod inspect;
pub mod offering;
mod offering_api;
mod policies;
pub mod pricing;
mod registration;
mod state;
mod tenants;
mod users;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, middleware, web};
use anyhow::Context;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub use faults::Faults;
pub use policies::{BACKUP_TYPE, ROOT_TYPE, WEEK_NUMBERS, WEEKDAYS, check_plan};
pub use registration::MAX_EXPIRES_IN_SECS;
pub use state::TenantKind;
pub use tenants::{
    DEFAULT_PAGE_LIMIT, MAX_INTERNAL_TAG_CHARS, MAX_NAME_CHARS, MAX_UUIDS, REFUSED_NAME_CHARS,
    name_problem,
};
pub use users::{LOGIN_MIN_CHARS, LOGIN_SPECIAL_CHARS, MIN_PASSWORD_CHARS, ROLES, login_problem};

use crate::sim::idp::{self, ClientCredentials, IdpState};
use errors::{CloudError, CloudResult, JsonBody};
use faults::FaultState;
use state::{Store, Tenant, User};

pub const ROOT_TENANT_NAME: &str = "Sim Root Partner";
pub const OTHER_PARTNER_NAME: &str = "Other Partner";

#[derive(Clone, Debug)]
pub struct CloudSimConfig {
    pub bind: SocketAddr,
    pub audience: String,
    pub faults: Faults,
    /// Logins taken by users of "Other Partner", outside the root's subtree.
    pub existing_logins: Vec<String>,
    pub seed: u64,
    /// Keep every exchange served (see [`exchanges`]) from the start.
    pub record_exchanges: bool,
}

impl Default for CloudSimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            audience: "migration-portal".into(),
            faults: Faults::default(),
            existing_logins: Vec::new(),
            seed: 0,
            record_exchanges: false,
        }
    }
}

/// The state every handler shares.
struct Cloud {
    store: Mutex<Store>,
    root_tenant_id: Uuid,
    faults: FaultState,
    exchanges: exchanges::Exchanges,
}

impl Cloud {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tenants and users the simulator starts with; answers (root, other partner).
fn seed_store(store: &mut Store, existing_logins: &[String]) -> (Uuid, Uuid) {
    let top_level = |store: &mut Store, name: &str| {
        let now = Utc::now();
        let id = store.new_id();
        let seq = store.next_seq();
        let contact_id = store.new_id();
        store.insert_tenant(Tenant {
            id,
            seq,
            version: 1,
            created_at: now,
            updated_at: now,
            name: name.into(),
            kind: TenantKind::Partner,
            parent_id: None,
            contact: json!({}),
            contact_id,
            enabled: true,
            customer_id: None,
            internal_tag: None,
            language: "en".into(),
            extra: Default::default(),
        });
        id
    };
    let root = top_level(store, ROOT_TENANT_NAME);
    let other = top_level(store, OTHER_PARTNER_NAME);
    take_logins(store, other, existing_logins);
    (root, other)
}

/// Users of `tenant` (another partner's) holding `logins`, as if someone else had them.
fn take_logins(store: &mut Store, other: Uuid, existing_logins: &[String]) {
    for login in existing_logins
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
    {
        if store.login_taken(login) {
            continue;
        }
        let (id, seq, personal_tenant_id) = (store.new_id(), store.next_seq(), store.new_id());
        store.insert_user(User {
            id,
            seq,
            version: 1,
            tenant_id: other,
            login: Some(login.to_string()),
            contact: None,
            enabled: true,
            language: "en".into(),
            business_types: None,
            notifications: None,
            external_id: None,
            idp_id: None,
            personal_tenant_id,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            activated: true,
            activation_emails_sent: 0,
            password_hash: None,
            access_policies: Vec::new(),
        });
    }
}

/// A running cloud simulator on loopback.
pub struct CloudSim {
    cloud: web::Data<Cloud>,
    idp: web::Data<IdpState>,
    handle: ServerHandle,
    addr: SocketAddr,
    root_tenant_id: Uuid,
    other_tenant_id: Uuid,
    root_client: ClientCredentials,
}

impl CloudSim {
    /// Binds `config.bind` (port 0 for any) and serves on the current tokio runtime until stopped.
    pub fn start(config: CloudSimConfig, key: &rsa::RsaPrivateKey) -> std::io::Result<CloudSim> {
        config.faults.validate().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.bind)?;
        let addr = listener.local_addr()?;
        let idp = web::Data::new(IdpState::new(
            format!("http://{addr}"),
            config.audience.clone(),
            key,
        ));
        let mut store = Store::new(config.seed);
        let (root_tenant_id, other_tenant_id) = seed_store(&mut store, &config.existing_logins);
        let cloud = web::Data::new(Cloud {
            store: Mutex::new(store),
            root_tenant_id,
            faults: FaultState::new(config.faults, config.seed),
            exchanges: Default::default(),
        });
        cloud.exchanges.set_recording(config.record_exchanges);
        let root_client = idp.register_client(root_tenant_id);
        let (app_cloud, app_idp) = (cloud.clone(), idp.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_cloud.clone())
                .app_data(app_idp.clone())
                .app_data(web::QueryConfig::default().error_handler(errors::query_error))
                .wrap(middleware::from_fn(faults::inject))
                .wrap(middleware::ErrorHandlers::new().default_handler(errors::rewrite_foreign))
                .wrap(middleware::from_fn(exchanges::record))
                .configure(idp::routes)
                .configure(users::routes)
                .configure(tenants::routes)
                .configure(registration::routes)
                .configure(policies::routes)
                .configure(catalogue::routes)
                .configure(offering_api::routes)
                .configure(pricing::routes)
                .configure(agents::routes)
                .configure(sim_routes)
                .default_service(web::to(|| async {
                    CloudResult::<HttpResponse>::Err(CloudError::not_found("Route"))
                }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = super::run_in_background(server);
        Ok(CloudSim {
            cloud,
            idp,
            handle,
            addr,
            root_tenant_id,
            other_tenant_id,
            root_client,
        })
    }

    /// `http://127.0.0.1:PORT`, also the token issuer.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn root_tenant_id(&self) -> Uuid {
        self.root_tenant_id
    }

    /// Another partner's user takes `login` now (a conflict that appears after a pre-check).
    pub fn take_login(&self, login: &str) {
        let mut store = self.cloud.store.lock().unwrap_or_else(|e| e.into_inner());
        take_logins(&mut store, self.other_tenant_id, &[login.to_string()]);
    }

    pub fn root_client(&self) -> ClientCredentials {
        self.root_client.clone()
    }

    /// An API client acting as partner admin of `tenant_id`.
    pub fn register_client(&self, tenant_id: Uuid) -> ClientCredentials {
        self.idp.register_client(tenant_id)
    }

    pub fn idp(&self) -> &IdpState {
        &self.idp
    }

    /// Replaces the faults (rates outside 0..=1 are clamped; a rate limit of 0 means none).
    pub fn set_faults(&self, mut faults: Faults) {
        faults.fail_rate = faults.fail_rate.clamp(0.0, 1.0);
        faults.fail_after_commit_rate = faults.fail_after_commit_rate.clamp(0.0, 1.0);
        faults.rate_limit_per_sec = faults.rate_limit_per_sec.filter(|r| *r > 0);
        self.cloud.faults.set(faults);
    }

    pub fn faults(&self) -> Faults {
        self.cloud.faults.get()
    }

    /// The request counters of [`CloudSim::inspect`] alone (cheap: nothing held is copied).
    pub fn counters(&self) -> Value {
        self.cloud.faults.counters.to_json()
    }

    /// Everything held, the request counters and the duplicates (`GET /sim/cloud/state`).
    pub fn inspect(&self) -> Value {
        inspect::inspect(&self.cloud.store(), &self.cloud.faults.counters)
    }

    /// Starts or stops keeping the exchanges served (see [`exchanges`]).
    pub fn record_exchanges(&self, on: bool) {
        self.cloud.exchanges.set_recording(on);
    }

    /// Every exchange kept so far, oldest first: `method`, `path`, `query`, `auth`
    /// (the credentials' scheme), `request_content_type`, `request_body`, `status`,
    /// `response_content_type`, `response_body` (bodies as text, secrets masked), `retry_after`.
    pub fn exchanges(&self) -> Vec<Value> {
        self.cloud.exchanges.all()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn sim_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sim/cloud/clients", web::post().to(new_client))
        .service(
            web::resource("/sim/cloud/faults")
                .route(web::get().to(get_faults))
                .route(web::put().to(put_faults)),
        )
        .route("/sim/cloud/state", web::get().to(get_state))
        .service(
            web::resource("/sim/cloud/exchanges")
                .route(web::get().to(get_exchanges))
                .route(web::put().to(put_exchanges))
                .route(web::delete().to(delete_exchanges)),
        );
}

fn exchanges_json(cloud: &Cloud) -> Value {
    json!({ "recording": cloud.exchanges.recording(), "exchanges": cloud.exchanges.all() })
}

async fn get_exchanges(cloud: web::Data<Cloud>) -> HttpResponse {
    HttpResponse::Ok().json(exchanges_json(&cloud))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recording {
    recording: bool,
}

async fn put_exchanges(cloud: web::Data<Cloud>, recording: JsonBody<Recording>) -> CloudResult {
    let recording = recording.parse()?;
    cloud.exchanges.set_recording(recording.recording);
    Ok(HttpResponse::Ok().json(exchanges_json(&cloud)))
}

async fn delete_exchanges(cloud: web::Data<Cloud>) -> HttpResponse {
    cloud.exchanges.clear();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    tenant_id: Uuid,
}

async fn new_client(
    cloud: web::Data<Cloud>,
    idp: web::Data<IdpState>,
    new: JsonBody<NewClient>,
) -> CloudResult {
    let new = new.parse()?;
    if !cloud.store().tenants.contains_key(&new.tenant_id) {
        return Err(CloudError::tenant_not_found());
    }
    let client = idp.register_client(new.tenant_id);
    Ok(HttpResponse::Created().json(json!({
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "tenant_id": client.tenant_id,
    })))
}

async fn get_faults(cloud: web::Data<Cloud>) -> HttpResponse {
    HttpResponse::Ok().json(cloud.faults.get())
}

async fn put_faults(cloud: web::Data<Cloud>, faults: JsonBody<Faults>) -> CloudResult {
    let faults = faults.parse()?;
    faults.validate().map_err(CloudError::invalid)?;
    cloud.faults.set(faults);
    Ok(HttpResponse::Ok().json(cloud.faults.get()))
}

async fn get_state(cloud: web::Data<Cloud>) -> HttpResponse {
    HttpResponse::Ok().json(inspect::inspect(&cloud.store(), &cloud.faults.counters))
}

#[derive(Debug, clap::Args)]
pub struct CloudArgs {
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub bind: SocketAddr,
    #[arg(long, default_value = "migration-portal")]
    pub audience: String,
    /// Milliseconds every API request waits.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0-1) of API requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// API requests per second; the excess gets 429 with Retry-After.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Share (0-1) of creating requests that do their work, then answer 503.
    #[arg(long, default_value_t = 0.0)]
    pub fail_after_commit: f64,
    /// A file of logins taken outside the root's subtree, one per line.
    #[arg(long)]
    pub existing_logins: Option<PathBuf>,
    /// Seed of every random draw (faults, ids, registration codes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep every exchange served, for `GET /sim/cloud/exchanges`.
    #[arg(long)]
    pub record_exchanges: bool,
}

pub async fn run(args: CloudArgs) -> anyhow::Result<()> {
    let existing_logins = match &args.existing_logins {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    let faults = Faults {
        latency_ms: args.latency_ms,
        fail_rate: args.fail_rate,
        rate_limit_per_sec: args.rate_limit,
        fail_after_commit_rate: args.fail_after_commit,
    };
    faults.validate().map_err(anyhow::Error::msg)?;
    let config = CloudSimConfig {
        bind: args.bind,
        audience: args.audience,
        faults,
        existing_logins,
        seed: args.seed,
        record_exchanges: args.record_exchanges,
    };
    let key = idp::generate_key();
    let sim = CloudSim::start(config.clone(), &key)
        .with_context(|| format!("binding {}", config.bind))?;
    let client = sim.root_client();
    let base = sim.base_url();
    println!(
        "cloud simulator: {base} (issuer; audience {})",
        config.audience
    );
    println!("root tenant {ROOT_TENANT_NAME:?}: {}", sim.root_tenant_id());
    println!(
        "API client: id {} secret {}",
        client.client_id, client.client_secret
    );
    println!(
        "token: curl -s -u {}:{} -d grant_type=client_credentials {base}/api/2/idp/token",
        client.client_id, client.client_secret
    );
    println!("state: curl -s {base}/sim/cloud/state");
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}
