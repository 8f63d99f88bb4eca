//! The whole product end to end on a whole install base, the service running as
//! separate processes of the built binary: create the workspace, sync, pre-check
//! everything, migrate everything (on PostgreSQL one of two workers is SIGKILLed
//! when a third of the items are done, and started again), then every machine's
//! simulated agent migrates it (`sim fleet`, sped up, the default failure mix) and
//! the failed ones are retried until every machine has settled. Each phase is timed
//! with the request rates; each process's peak memory is shown; the truth check
//! (machines against the fleet's ground truth, each migration's counts against its
//! items, no duplicates in the cloud) makes the run fail when it does not hold. Status
//! propagation is timed: each step report the service answered, and each webhook
//! delivery of a machine's outcome to a receiver of the bench's.
//!
//! The simulators (`sim backupagent` with the install base, `sim cloud` at 5 ms and
//! 5,000 req/s so that the service's own cost is measured) and the fleet run in this
//! process. On PostgreSQL two `serve --api-only` and two `serve --worker-only` share
//! one database, and the fleet's requests are split between the two APIs; on SQLite
//! one `serve` runs both on a file.
//!
//! MP_E2E_SIZE=small|medium|large (default large); MP_E2E_PHASE_SECS, the time each
//! phase may take (default 300, 900, 1800 by size); MP_E2E_INTERVAL_MS, between an
//! agent's check-ins (default 500, 10000, 60000 by size); MP_E2E_SERVICE_<KEY> is
//! passed to the service as MP_<KEY>; MP_E2E_KEEP=1 keeps the service's output, the SQLite
//! file and the PostgreSQL database after a run that passed (a failed run keeps them anyway).
//! SQLite, and PostgreSQL when MP_TEST_POSTGRES_URL is set (MP_BENCH_BACKENDS=sqlite or
//! postgres picks one).
//!
//! cargo bench --bench e2e_large

mod common;
mod e2e;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig, Faults};
use migration_portal::sim::fleet::{Fleet, FleetConfig, FleetMachine};
use migration_portal::sim::idp::generate_key;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use migration_portal::sim::partner::{all_machines, client_credentials_token, compare_with_truth};
use serde_json::{Value, json};

use e2e::api::{Api, Deadline, Served};
use e2e::processes::{BINARY, Service, Settings, peak_rss_kib};
use e2e::{propagation, truth};

const AUDIENCE: &str = "migration-portal";
/// The cloud's pace: high enough that the service, not the cloud, sets the speed.
const CLOUD_RATE_LIMIT: u32 = 5_000;
const CLOUD_LATENCY_MS: u64 = 5;

struct Options {
    size: Size,
    phase: Duration,
    interval: Duration,
    /// How often the bench reads the migration while it waits: at `large` one read
    /// (its item and machine counts) costs the database about half a second, and
    /// read twice a second it took half a core from the service it measures.
    poll: Duration,
}

fn options() -> anyhow::Result<Options> {
    let size = match std::env::var("MP_E2E_SIZE").as_deref() {
        Ok("small") => Size::Small,
        Ok("medium") => Size::Medium,
        Ok("large") | Err(_) => Size::Large,
        Ok(other) => anyhow::bail!("MP_E2E_SIZE={other}: small, medium or large"),
    };
    let (phase_secs, interval_ms, poll_ms) = match size {
        Size::Small => (300, 500, 500),
        Size::Medium => (900, 10_000, 2_000),
        Size::Large => (1_800, 60_000, 5_000),
    };
    let number = |name: &str, default: u64| -> anyhow::Result<u64> {
        std::env::var(name).map_or(Ok(default), |v| {
            v.parse()
                .with_context(|| format!("{name}={v}: a whole number"))
        })
    };
    Ok(Options {
        size,
        phase: Duration::from_secs(number("MP_E2E_PHASE_SECS", phase_secs)?),
        interval: Duration::from_millis(number("MP_E2E_INTERVAL_MS", interval_ms)?),
        poll: Duration::from_millis(poll_ms),
    })
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// What one run needs from the bench's process: the simulators and the machines.
struct World<'a> {
    source: &'a SourceSim,
    cloud: &'a CloudSim,
    machines: &'a [FleetMachine],
    options: &'a Options,
    backend: &'static str,
}

/// A phase's clock and the request counters at its start.
struct Meter {
    started: Instant,
    served: Served,
    cloud: u64,
    source: u64,
}

impl Meter {
    async fn start(world: &World<'_>, api: &Api, service: &Service) -> anyhow::Result<Meter> {
        service.start_phase();
        Ok(Meter {
            started: Instant::now(),
            served: api.served().await?,
            cloud: world.cloud.counters()["total"].as_u64().unwrap_or(0),
            source: world.source.requests(),
        })
    }

    /// Prints the phase's time and what was asked of whom, per second.
    async fn report(
        self,
        world: &World<'_>,
        api: &Api,
        service: &Service,
        phase: &str,
    ) -> anyhow::Result<()> {
        let secs = self.started.elapsed().as_secs_f64();
        let served = api.served().await?;
        let counters = world.cloud.counters();
        let cloud = counters["total"].as_u64().unwrap_or(0) - self.cloud;
        let source = world.source.requests() - self.source;
        let rate = |n: u64| n as f64 / secs.max(0.001);
        let requests = served.requests - self.served.requests;
        let check_ins = served.check_ins - self.served.check_ins;
        println!(
            "e2e_large: {}: {phase}: {secs:.1} s; the service answered {requests} requests ({:.0}/s; {} turned away with 429/503, {} other 5xx; {check_ins} check-ins = {:.0}/s); it asked the cloud {cloud} ({:.0}/s) and the source {source} ({:.0}/s)",
            world.backend,
            rate(requests),
            served.turned_away - self.served.turned_away,
            served.server_errors - self.served.server_errors,
            rate(check_ins),
            rate(cloud),
            rate(source),
        );
        let peaks: Vec<String> = service
            .phase_peaks_mib()
            .into_iter()
            .map(|(name, mib)| format!("{name} {mib} MiB"))
            .collect();
        println!(
            "e2e_large: {}: {phase}: peak resident memory in the phase: {}",
            world.backend,
            peaks.join(", ")
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let generated = Instant::now();
    let base = generate(&GenSpec::sized(options.size, 1));
    let machines = FleetMachine::from_install_base(&base);
    let existing = base.cloud_existing_logins();
    println!(
        "e2e_large: {:?}: {} groups, {} users, {} machines generated in {:.1} s; phases may take {:?} each; agents check in every {:?}",
        options.size,
        base.groups.len(),
        base.users.len(),
        machines.len(),
        generated.elapsed().as_secs_f64(),
        options.phase,
        options.interval
    );
    let source = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base)?;
    let work = tempfile::Builder::new().prefix("e2e_large-").tempdir()?;
    let binary = work.path().join("migration-portal");
    std::fs::copy(BINARY, &binary)?;
    let key = generate_key();
    let keep = std::env::var("MP_E2E_KEEP").is_ok_and(|v| v == "1");
    let mut failed = Vec::new();
    for (backend, url) in common::backends(&work.path().join("e2e.db")).await? {
        let faults = Faults {
            latency_ms: CLOUD_LATENCY_MS,
            rate_limit_per_sec: Some(CLOUD_RATE_LIMIT),
            ..Faults::default()
        };
        let config = CloudSimConfig {
            audience: AUDIENCE.into(),
            faults,
            existing_logins: existing.clone(),
            ..CloudSimConfig::default()
        };
        let cloud = CloudSim::start(config, &key)?;
        let world = World {
            source: &source,
            cloud: &cloud,
            machines: &machines,
            options: &options,
            backend,
        };
        let outcome = run(&world, &url, &binary, work.path()).await;
        cloud.stop().await;
        match outcome {
            Ok(()) if backend == "postgres" && !keep => drop_database(&url).await?,
            Ok(()) => {}
            Err(e) => {
                println!("e2e_large: {backend}: FAILED: {e:#}");
                failed.push(backend);
            }
        }
    }
    println!(
        "e2e_large: this process (simulators and fleet): peak RSS {}",
        mib(peak_rss_kib("self").unwrap_or(0))
    );
    if keep && failed.is_empty() {
        println!("e2e_large: kept in {}", work.keep().display());
    } else if !failed.is_empty() {
        let kept = work.keep();
        anyhow::bail!(
            "failed on {failed:?}; the service's output is in {} (the PostgreSQL database is kept)",
            kept.display()
        );
    }
    Ok(())
}

async fn drop_database(url: &str) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    let name = url::Url::parse(url)?
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = sea_orm::Database::connect(std::env::var("MP_TEST_POSTGRES_URL")?).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    Ok(())
}

/// One run on one database: start the service, drive it, stop it, show each process's peak.
async fn run(world: &World<'_>, url: &str, binary: &Path, work: &Path) -> anyhow::Result<()> {
    let log_dir = work.join(world.backend);
    std::fs::create_dir_all(&log_dir)?;
    let settings = Settings {
        binary: binary.to_path_buf(),
        database_url: url.to_string(),
        issuer: world.cloud.base_url(),
        audience: AUDIENCE.into(),
        log_dir,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        // The service closes a connection idle for 5 s (actix's keep-alive): one reused
        // just then fails with "unexpected message"; idle ones are dropped before that.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()?;
    let mut service = Service::start(world.backend == "postgres", settings)?;
    let outcome = match service.ready(&http).await {
        Ok(()) => drive(world, &mut service, http).await,
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        for line in service.stopped_on_their_own() {
            println!("e2e_large: {}: {line}", world.backend);
        }
    }
    for (name, peak) in service.stop() {
        println!(
            "e2e_large: {}: {name}: peak RSS {}",
            world.backend,
            mib(peak)
        );
    }
    outcome
}

async fn drive(
    world: &World<'_>,
    service: &mut Service,
    http: reqwest::Client,
) -> anyhow::Result<()> {
    let backend = world.backend;
    let phase = world.options.phase;
    let partner = world.cloud.root_client();
    let token = client_credentials_token(
        &http,
        &world.cloud.base_url(),
        &partner.client_id,
        &partner.client_secret,
    )
    .await?;
    let api = Api {
        http,
        bases: service.bases(),
        token,
    };

    let meter = Meter::start(world, &api, service).await?;
    let (login, password) = world.source.credentials();
    // Each process keeps to the workspace's pace on its own: the workers share the cloud's.
    let target_rate = CLOUD_RATE_LIMIT / service.worker_count() as u32;
    let body = json!({
        "name": "End to end",
        "source": {"url": world.source.base_url(), "login": login, "password": password},
        "target": {"url": world.cloud.base_url(), "client_id": partner.client_id, "client_secret": partner.client_secret},
        "limits": {
            "source": {"rate_per_sec": 10_000, "concurrency": 32},
            "target": {"rate_per_sec": target_rate, "concurrency": 64},
        },
    });
    let workspace = api
        .post("/api/v1/workspaces", Some(&body), Some("e2e-workspace"))
        .await?;
    let id = workspace["id"]
        .as_str()
        .context("the workspace has an id")?
        .to_string();
    meter
        .report(world, &api, service, "create the workspace")
        .await?;

    let meter = Meter::start(world, &api, service).await?;
    let sync = api
        .post(&format!("/api/v1/workspaces/{id}/syncs"), None, None)
        .await?;
    let operation = format!(
        "/api/v1/operations/{}",
        sync["id"].as_str().context("the sync is an operation")?
    );
    api.wait_for(&operation, &Deadline::new("sync", phase))
        .await?;
    meter.report(world, &api, service, "sync").await?;

    let meter = Meter::start(world, &api, service).await?;
    let hierarchy = api
        .get(&format!("/api/v1/workspaces/{id}/hierarchy"))
        .await?;
    let root = hierarchy["root"]["id"]
        .as_str()
        .context("the hierarchy has a root")?;
    let selection = json!({"selection": [{"kind": "group", "id": root}]});
    let precheck = api
        .post(
            &format!("/api/v1/workspaces/{id}/prechecks"),
            Some(&selection),
            Some("e2e-precheck"),
        )
        .await?;
    let operation = precheck["operation"]
        .as_str()
        .context("the pre-check has an operation")?;
    api.wait_for(operation, &Deadline::new("pre-check", phase))
        .await?;
    meter
        .report(world, &api, service, "pre-check of the whole base")
        .await?;

    let meter = Meter::start(world, &api, service).await?;
    let precheck_id = precheck["id"].as_str().context("the pre-check has an id")?;
    let migration = api
        .post(
            &format!("/api/v1/workspaces/{id}/migrations"),
            Some(&json!({"precheck_id": precheck_id})),
            Some("e2e-migration"),
        )
        .await?;
    let migration_id = migration["id"]
        .as_str()
        .context("the migration has an id")?;
    let migration = format!("/api/v1/workspaces/{id}/migrations/{migration_id}");
    let done = migrate(world, service, &api, &migration).await?;
    meter
        .report(world, &api, service, "migration of everything")
        .await?;
    println!(
        "e2e_large: {backend}: migration {}: {} items; by kind and state {}",
        done["status"], done["items"], done["counts"]
    );

    let meter = Meter::start(world, &api, service).await?;
    let secret = api
        .post(
            &format!("/api/v1/workspaces/{id}/enrollment-secret"),
            None,
            None,
        )
        .await?;
    let secret = secret["enrollment_secret"]
        .as_str()
        .context("an enrollment secret")?;
    // The partner's webhook receiver, told of every machine that settles.
    let receiver = propagation::Receiver::start()?;
    let types = [
        "machine.migrated",
        "machine.failed",
        "machine.manual_action_required",
    ];
    api.post(
        &format!("/api/v1/workspaces/{id}/webhooks"),
        Some(&json!({"url": receiver.url, "event_types": types})),
        Some("e2e-webhook"),
    )
    .await?;
    // The machines dealt out to the API instances in turn, a fleet for each.
    let fleets: Vec<Fleet> = api
        .bases
        .iter()
        .enumerate()
        .map(|(i, base)| {
            let machines = world
                .machines
                .iter()
                .skip(i)
                .step_by(api.bases.len())
                .cloned()
                .collect();
            Fleet::start(FleetConfig {
                base_url: base.clone(),
                workspace_id: id.parse().unwrap_or_default(),
                enrollment_secret: secret.to_string(),
                machines,
                interval: world.options.interval,
                seed: 1 + i as u64,
                mix: Default::default(),
            })
        })
        .collect();
    let settled = Settling {
        world,
        api: &api,
        service,
        workspace: &id,
        migration: &migration,
        fleets: &fleets,
        webhooks: &receiver,
    };
    let shown = settled
        .until(meter, "fleet", "fleet until every machine settled")
        .await?;

    let meter = Meter::start(world, &api, service).await?;
    let failed: Vec<String> = shown
        .iter()
        .filter(|m| m["state"] == "failed")
        .filter_map(|m| m["machine_id"].as_str().map(str::to_string))
        .collect();
    let retried = retry(&api, &id, &failed).await;
    println!(
        "e2e_large: {backend}: POST …/machines/{{machine_id}}/retry (no bulk form) for {} failed machines: {retried} back to pending",
        failed.len()
    );
    settled
        .until(meter, "retry", "retries until every machine settled")
        .await?;

    let reports: Vec<u32> = fleets.iter().flat_map(Fleet::report_times_ms).collect();
    println!(
        "e2e_large: {backend}: propagation: step reports answered (the machine's new state is in `GET …/machines` from then on), {}",
        propagation::percentiles(reports)
    );
    println!(
        "e2e_large: {backend}: propagation: webhook deliveries of machine.migrated, .failed and .manual_action_required, from the event to its arrival, {}",
        propagation::percentiles(receiver.delays_ms())
    );
    receiver.stop().await;
    let mut truth = std::collections::BTreeMap::new();
    for fleet in fleets {
        truth.extend(fleet.stop().await);
    }
    check_truth(world, &api, &id, &truth).await
}

/// What a phase that waits for the fleet to settle needs.
struct Settling<'a> {
    world: &'a World<'a>,
    api: &'a Api,
    service: &'a Service,
    workspace: &'a str,
    migration: &'a str,
    fleets: &'a [Fleet],
    webhooks: &'a propagation::Receiver,
}

impl Settling<'_> {
    /// Waits until every machine has settled (at most the phase's time), prints the
    /// phase's figures and the machines by state; answers the machines as shown.
    async fn until(
        &self,
        meter: Meter,
        phase: &'static str,
        title: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let backend = self.world.backend;
        let shown = truth::settle(
            self.api,
            self.workspace,
            self.migration,
            self.fleets,
            self.webhooks,
            &Deadline::new(phase, self.world.options.phase),
            self.world.options.poll,
            &format!("e2e_large: {backend}: {phase}"),
        )
        .await?;
        meter
            .report(self.world, self.api, self.service, title)
            .await?;
        println!(
            "e2e_large: {backend}: machines by state {:?}",
            truth::by_state(&shown)
        );
        Ok(shown)
    }
}

/// Polls the migration until it is final; on PostgreSQL SIGKILLs a worker once a
/// third of the items are done and starts it again. Answers the migration.
async fn migrate(
    world: &World<'_>,
    service: &mut Service,
    api: &Api,
    migration: &str,
) -> anyhow::Result<Value> {
    let deadline = Deadline::new("migration", world.options.phase);
    let mut crashed = service.workers.len() < 2;
    let mut printed = Instant::now();
    loop {
        let value = api.get(migration).await?;
        let (items, finished) = (
            value["items"].as_u64().unwrap_or(0),
            value["finished"].as_u64().unwrap_or(0),
        );
        let status = value["status"].as_str().unwrap_or_default();
        if [
            "completed",
            "completed_with_failures",
            "failed",
            "cancelled",
        ]
        .contains(&status)
        {
            return Ok(value);
        }
        if !crashed && items > 0 && finished * 3 >= items {
            let what = service.crash_and_restart_worker()?;
            println!(
                "e2e_large: {}: {what} at {finished} of {items} items",
                world.backend
            );
            crashed = true;
        }
        if deadline.passed() || printed.elapsed() > Duration::from_secs(15) {
            println!(
                "e2e_large: {}: migration {status}: {finished} of {items} items finished; {}",
                world.backend, value["counts"]
            );
            printed = Instant::now();
        }
        if deadline.passed() {
            println!("{}", api.queue().await);
            anyhow::bail!("migration: not final after {:?}", deadline.within);
        }
        let gone = service.stopped_on_their_own();
        anyhow::ensure!(gone.is_empty(), "{}", gone.join("\n"));
        tokio::time::sleep(world.options.poll).await;
    }
}

/// Retries each failed machine, a few at a time; answers how many went back to pending.
async fn retry(api: &Api, workspace: &str, machines: &[String]) -> usize {
    futures_util::stream::iter(machines)
        .map(|machine| async move {
            let path = format!("/api/v1/workspaces/{workspace}/machines/{machine}/retry");
            api.post(&path, None, None).await
        })
        .buffer_unordered(16)
        .filter(|answer| std::future::ready(answer.is_ok()))
        .count()
        .await
}

/// Every machine against the fleet's ground truth, each migration's counts against
/// its items, no duplicates in the cloud; fails when one does not hold.
async fn check_truth(
    world: &World<'_>,
    api: &Api,
    workspace: &str,
    truth: &std::collections::BTreeMap<String, migration_portal::sim::fleet::Truth>,
) -> anyhow::Result<()> {
    let backend = world.backend;
    let shown = all_machines(&api.http, api.base(), workspace, &api.token).await?;
    let (checked, mismatched) = compare_with_truth(&shown, truth);
    let counts = truth::migration_counts(api, workspace).await?;
    let duplicates = truth::duplicates(&world.cloud.inspect());
    println!(
        "e2e_large: {backend}: truth: {} of {checked} machines the fleet can tell about differ (of {}); {} migrations whose counts differ from their items; {duplicates} duplicates in the cloud",
        mismatched.len(),
        shown.len(),
        counts.len()
    );
    for line in mismatched.iter().take(10).chain(counts.iter()) {
        println!("e2e_large: {backend}:   {line}");
    }
    anyhow::ensure!(
        mismatched.is_empty() && counts.is_empty() && duplicates == 0,
        "the truth check failed"
    );
    Ok(())
}
