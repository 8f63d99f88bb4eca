//! Migrates a subtree of `large` holding about 10,000 backup users against
//! `sim cloud` with 20 ms latency and a 200 req/s limit, with the workspace's
//! pace set to that limit: the achieved request rate as a share of the limit,
//! and items (tenants, admins, users) per second. The logins were answered by an
//! earlier pre-check, as in the product's flow. SQLite, and PostgreSQL when
//! MP_TEST_POSTGRES_URL is set (MP_BENCH_BACKENDS=sqlite or postgres picks one).
//!
//! cargo bench --bench migrate_large

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use migration_portal::app::job_handlers;
use migration_portal::config::DatabaseConfig;
use migration_portal::connectors::source::SourceClient;
use migration_portal::connectors::{HttpPolicy, Limit};
use migration_portal::crypto::SecretBox;
use migration_portal::db::workspaces::{CloudClient, NewWorkspace, SourceLogin};
use migration_portal::db::{self, migrations, prechecks, workspaces};
use migration_portal::domain::migration::MigrationStatus;
use migration_portal::domain::plan::Node;
use migration_portal::jobs::{SuperviseMigration, sync};
use migration_portal::planning::MigrationOptions;
use migration_portal::queue::store as queue;
use migration_portal::queue::{NewJob, Worker, WorkerConfig};
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig, Faults};
use migration_portal::sim::idp::generate_key;
use migration_portal::sim::install_base::{GenSpec, InstallBase, Size, generate};
use secrecy::SecretString;
use uuid::Uuid;

const LIMIT: u32 = 200;
const WANTED_USERS: usize = 10_000;

/// The group whose subtree holds the number of users nearest `WANTED_USERS`.
fn subtree_of_about(base: &InstallBase, wanted: usize) -> (String, usize) {
    let parent: HashMap<&str, Option<&str>> = base
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.parent_id.as_deref()))
        .collect();
    let mut users: HashMap<&str, usize> = HashMap::new();
    for user in &base.users {
        let mut group = Some(user.group_id.as_str());
        while let Some(g) = group {
            *users.entry(g).or_default() += 1;
            group = parent.get(g).copied().flatten();
        }
    }
    let (group, n) = users
        .into_iter()
        .filter(|(g, _)| *g != base.truth.root_group_id)
        .min_by_key(|(_, n)| n.abs_diff(wanted))
        .expect("groups");
    (group.to_string(), n)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = generate(&GenSpec::sized(Size::Large, 1));
    let (group, users_in_subtree) = subtree_of_about(&base, WANTED_USERS);
    let existing: Vec<String> = base.cloud_existing_logins();
    let taken: std::collections::HashSet<String> =
        existing.iter().map(|l| l.to_lowercase()).collect();
    let logins: Vec<(String, bool)> = base
        .users
        .iter()
        .map(|u| u.login.clone())
        .chain(base.groups.iter().map(|g| g.name.clone()))
        .map(|l| {
            let t = taken.contains(&l.to_lowercase());
            (l, t)
        })
        .collect();
    let source_sim = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base)?;
    let (login, password) = source_sim.credentials();
    let secrets = SecretBox::from_base64(&SecretString::from(
        migration_portal::crypto::generate_key()?,
    ))?;
    let dir = tempfile::tempdir()?;
    let targets = common::backends(&dir.path().join("migrate.db")).await?;
    let key = generate_key();
    for (backend, url) in targets {
        let faults = Faults {
            latency_ms: 20,
            rate_limit_per_sec: Some(LIMIT),
            ..Faults::default()
        };
        let config = CloudSimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults,
            existing_logins: existing.clone(),
            ..CloudSimConfig::default()
        };
        let cloud = CloudSim::start(config, &key)?;
        let partner = cloud.root_client();
        let database = db::connect_upgraded(&DatabaseConfig {
            url,
            max_connections: 8,
            busy_timeout_ms: 30_000,
            acquire_timeout_ms: 10_000,
        })
        .await?;
        let source_password = SecretString::from(password.clone());
        let client_secret = SecretString::from(partner.client_secret.clone());
        let workspace = workspaces::insert(
            &database,
            &secrets,
            NewWorkspace {
                tenant_id: partner.tenant_id,
                name: "bench",
                source: SourceLogin {
                    url: &source_sim.base_url(),
                    login: &login,
                    password: &source_password,
                },
                target: CloudClient {
                    url: &cloud.base_url(),
                    client_id: &partner.client_id,
                    client_secret: &client_secret,
                },
                connection_check: None,
                source_limit: Limit {
                    rate_per_sec: 10_000,
                    concurrency: 32,
                },
                target_limit: Limit {
                    rate_per_sec: LIMIT,
                    concurrency: 16,
                },
                provisioning: None,
            },
        )
        .await?;
        let policy = HttpPolicy {
            rate_per_sec: None,
            allow_private_networks: true,
            ..HttpPolicy::default()
        };
        let source = SourceClient::new(
            &source_sim.base_url(),
            &login,
            source_password.clone(),
            policy,
        )?;
        let synced = Instant::now();
        sync::sync(
            &database,
            Uuid::now_v7(),
            workspace.id,
            &source,
            |_| async { Ok(()) },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "migrate_large: {backend}: synced large in {:.1} s",
            synced.elapsed().as_secs_f64()
        );
        prechecks::record_login_answers(&database, workspace.id, &logins, chrono::Utc::now())
            .await?;
        let migration_id = Uuid::now_v7();
        let job = NewJob {
            tenant_id: Some(partner.tenant_id),
            workspace_id: Some(workspace.id),
            unique_key: Some(format!("migration:{migration_id}")),
            ..SuperviseMigration::of(partner.tenant_id, workspace.id, migration_id)
        };
        let job = queue::enqueue(&database, job).await?;
        let now = chrono::Utc::now();
        migrations::insert(
            &database,
            entity::migration::Model {
                id: migration_id,
                workspace_id: workspace.id,
                tenant_id: partner.tenant_id,
                precheck_id: None,
                selection: serde_json::to_string(&vec![Node::Group(group.clone())])?,
                options: serde_json::to_string(&MigrationOptions::default())?,
                status: MigrationStatus::Planning.as_str().into(),
                replan: None,
                snapshot_synced_at: None,
                job_id: job.id,
                error: None,
                created_at: now,
                updated_at: now,
                completed_at: None,
            },
        )
        .await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let config = WorkerConfig {
            concurrency: 8,
            poll_interval: Duration::from_millis(20),
            ..WorkerConfig::default()
        };
        let worker = tokio::spawn(
            Worker::new(
                database.clone(),
                config,
                job_handlers(secrets.clone(), true, None),
            )
            .run(stopped),
        );
        let started = Instant::now();
        // Planning ends when the first items are queued; the transfer is timed from there.
        let mut planned_at = None;
        let mut requests_at_plan = 0;
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let migration = migrations::get(&database, migration_id)
                .await?
                .expect("migration");
            if planned_at.is_none() && migration.status != MigrationStatus::Planning.as_str() {
                planned_at = Some(Instant::now());
                requests_at_plan = cloud.inspect()["counters"]["total"].as_u64().unwrap_or(0);
            }
            if MigrationStatus::parse(&migration.status).is_some_and(MigrationStatus::is_final) {
                break;
            }
            if last.elapsed() > Duration::from_secs(30) {
                let counts = migrations::counts(&database, migration_id).await?;
                let done: u64 = counts
                    .values()
                    .map(|s| s[&migration_portal::domain::transfer::ItemState::Done])
                    .sum();
                println!(
                    "migrate_large: {backend}: {done} items done after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
        }
        let finished = Instant::now();
        let _ = stop.send(true);
        worker.await?;
        let migration = migrations::get(&database, migration_id)
            .await?
            .expect("migration");
        let counts = migrations::counts(&database, migration_id).await?;
        let state = cloud.inspect();
        let requests = state["counters"]["total"].as_u64().unwrap_or(0) - requests_at_plan;
        let limited = state["counters"]["rate_limited"].as_u64().unwrap_or(0);
        let planned_at = planned_at.unwrap_or(started);
        let transfer = (finished - planned_at).as_secs_f64();
        let items: u64 = counts.values().flat_map(|s| s.values()).sum();
        let users = counts[&migration_portal::domain::transfer::ItemKind::User]
            [&migration_portal::domain::transfer::ItemState::Done];
        let rate = requests as f64 / transfer;
        println!(
            "migrate_large: {backend}: subtree {group} ({users_in_subtree} users): {} ; planning {:.1} s; transfer of {items} items ({users} users done) in {transfer:.1} s = {:.1} items/s; {requests} target requests = {rate:.1} req/s = {:.1}% of the {LIMIT} req/s limit; {limited} answered 429; {:.2} requests per item",
            migration.status,
            (planned_at - started).as_secs_f64(),
            items as f64 / transfer,
            100.0 * rate / f64::from(LIMIT),
            requests as f64 / items as f64
        );
        let duplicates = &state["duplicates"];
        let twins: usize = duplicates.as_object().map_or(0, |d| {
            d.values().map(|v| v.as_array().map_or(0, Vec::len)).sum()
        });
        println!("migrate_large: {backend}: duplicates left in the cloud: {twins}");
        cloud.stop().await;
    }
    Ok(())
}
