//! `sim backupagent`: a BackupAgent server on loopback serving one generated
//! install base through the source contract in `openapi/backupagent-source.json`.

mod routes;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::install_base::{
    Counts, GenSpec, InstallBase, MutationReport, Mutations, Size, Truth, default_as_of, generate,
};

pub use routes::PATHS;

/// The version the account endpoint reports.
pub const SERVER_VERSION: &str = "5.5.0.16012";

#[derive(Debug, clap::Args)]
pub struct BackupAgentArgs {
    #[arg(long, default_value = "127.0.0.1:8083")]
    pub bind: SocketAddr,
    #[arg(long, value_enum, default_value_t = Size::Small)]
    pub size: Size,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override the size's group count (the top-level group included).
    #[arg(long)]
    pub groups: Option<usize>,
    #[arg(long)]
    pub users: Option<usize>,
    #[arg(long)]
    pub machines: Option<usize>,
    /// The instant last-seen times count back from: RFC 3339, or `now` (default: a fixed instant).
    #[arg(long, value_parser = parse_as_of)]
    pub as_of: Option<DateTime<Utc>>,
}

fn parse_as_of(value: &str) -> Result<DateTime<Utc>, String> {
    if value == "now" {
        let now = Utc::now();
        return Ok(now - chrono::Duration::nanoseconds(now.timestamp_subsec_nanos().into()));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

impl BackupAgentArgs {
    pub fn spec(&self) -> GenSpec {
        let (groups, users, machines) = self.size.counts();
        GenSpec::custom(
            self.groups.unwrap_or(groups),
            self.users.unwrap_or(users),
            self.machines.unwrap_or(machines),
            self.seed,
        )
        .as_of(self.as_of.unwrap_or_else(default_as_of))
    }
}

pub async fn run(args: BackupAgentArgs) -> anyhow::Result<()> {
    let spec = args.spec();
    let base = tokio::task::spawn_blocking(move || generate(&spec)).await?;
    let counts = base.counts();
    let as_of = base.spec.as_of;
    let sim = SourceSim::start(args.bind, base)?;
    let (login, password) = sim.credentials();
    println!("BackupAgent server: {}", sim.base_url());
    println!("top-level group login: {login:?} password: {password:?}");
    println!(
        "groups {} users {} machines {} plans {} (seed {}, as of {})",
        counts.groups,
        counts.users,
        counts.machines,
        counts.plans,
        args.seed,
        as_of.to_rfc3339()
    );
    println!("ground truth: {}/sim/backupagent/truth", sim.base_url());
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}

/// Requests served, per endpoint.
#[derive(Default, Serialize)]
pub struct Requests {
    pub total: AtomicU64,
    pub account: AtomicU64,
    pub groups: AtomicU64,
    pub users: AtomicU64,
    pub machines: AtomicU64,
    pub plans: AtomicU64,
    pub passwords: AtomicU64,
    pub unauthorized: AtomicU64,
}

impl Requests {
    fn count(&self, counter: &AtomicU64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct SourceState {
    base: RwLock<InstallBase>,
    login: String,
    password: String,
    pub requests: Requests,
}

impl SourceState {
    fn read(&self) -> RwLockReadGuard<'_, InstallBase> {
        self.base.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, InstallBase> {
        self.base.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running BackupAgent server on loopback.
pub struct SourceSim {
    state: web::Data<SourceState>,
    handle: ServerHandle,
    addr: SocketAddr,
}

impl SourceSim {
    /// Binds `bind` (port 0 for any) and serves `base` until stopped; call inside a tokio runtime.
    pub fn start(bind: SocketAddr, base: InstallBase) -> std::io::Result<SourceSim> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let (login, password) = base.credentials();
        let state = web::Data::new(SourceState {
            base: RwLock::new(base),
            login,
            password,
            requests: Requests::default(),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(routes::routes)
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = super::run_in_background(server);
        Ok(SourceSim {
            state,
            handle,
            addr,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Login and password of the top-level group.
    pub fn credentials(&self) -> (String, String) {
        (self.state.login.clone(), self.state.password.clone())
    }

    pub fn truth(&self) -> Truth {
        self.state.read().truth.clone()
    }

    pub fn counts(&self) -> Counts {
        self.state.read().counts()
    }

    /// Logins to pre-seed the cloud simulator with.
    pub fn cloud_existing_logins(&self) -> Vec<String> {
        self.state.read().cloud_existing_logins()
    }

    /// Reads the served install base as it is now.
    pub fn with_base<R>(&self, f: impl FnOnce(&InstallBase) -> R) -> R {
        f(&self.state.read())
    }

    /// Changes the served install base by hand, for what [`Mutations`] do not
    /// make (a field changed without `updated_at`, a value at a type's edge).
    pub fn edit<R>(&self, f: impl FnOnce(&mut InstallBase) -> R) -> R {
        f(&mut self.state.write())
    }

    pub fn mutate(&self, m: Mutations) -> MutationReport {
        self.state.write().mutate(&m)
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.total.load(Ordering::Relaxed)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}
