//! Syncs all of `large` from `sim backupagent` into a fresh SQLite snapshot (and a
//! PostgreSQL one when MP_TEST_POSTGRES_URL is set): the whole sync job's work,
//! staging and the one-transaction apply, then a re-sync with nothing changed.
//!
//! cargo bench --bench sync_large

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use migration_portal::config::DatabaseConfig;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::SourceClient;
use migration_portal::db;
use migration_portal::jobs::sync;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use secrecy::SecretString;
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = SourceSim::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        generate(&GenSpec::sized(Size::Large, 1)),
    )?;
    let (login, password) = sim.credentials();
    let policy = HttpPolicy {
        rate_per_sec: None,
        allow_private_networks: true,
        ..HttpPolicy::default()
    };
    let source = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from(password),
        policy,
    )?;
    let dir = tempfile::tempdir()?;
    let targets = common::backends(&dir.path().join("sync.db")).await?;
    for (backend, url) in targets {
        let database = db::connect_upgraded(&DatabaseConfig {
            url,
            max_connections: 4,
            busy_timeout_ms: 30_000,
            acquire_timeout_ms: 10_000,
        })
        .await?;
        let workspace = Uuid::now_v7();
        for run in ["first sync", "re-sync, nothing changed"] {
            let started = Instant::now();
            let result = sync::sync(&database, Uuid::now_v7(), workspace, &source, |_| async {
                Ok(())
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let total: u64 = ["groups", "users", "machines", "plans"]
                .iter()
                .filter_map(|k| result[k]["total"].as_u64())
                .sum();
            println!(
                "sync_large: {backend}, {run}: {total} entities in {seconds:.1} s = {:.0} entities/s",
                total as f64 / seconds
            );
        }
    }
    Ok(())
}
