//! Syncs all of `large` from `sim backupagent` into a fresh SQLite snapshot (and a
//! PostgreSQL one when MP_TEST_POSTGRES_URL is set): the whole sync job's work,
//! staging and the one-transaction apply, then a re-sync with nothing changed.
//!
//! Beside it, from the same run, the floor: a bare read of the same data through
//! the source client (pages of the sync's size, nothing written), so the share of
//! the database is visible. Each sync prints its phases and the process's peak
//! resident set before and after (the simulator's copy of `large` included).
//!
//! cargo bench --bench sync_large

mod common;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use migration_portal::config::DatabaseConfig;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::{SourceApi, SourceClient, for_each_page};
use migration_portal::db;
use migration_portal::jobs::sync;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use secrecy::SecretString;
use uuid::Uuid;

/// The sync's page size.
const PAGE: u32 = 1000;

/// Every entity read through the source client, one page at a time, nothing kept.
async fn bare_read(source: &SourceClient) -> anyhow::Result<u64> {
    let mut total = 0;
    total += for_each_page(
        |c| async move { source.groups(c.as_deref(), PAGE).await },
        drop,
    )
    .await?;
    total += for_each_page(
        |c| async move { source.users(c.as_deref(), PAGE).await },
        drop,
    )
    .await?;
    total += for_each_page(
        |c| async move { source.plans(c.as_deref(), PAGE).await },
        drop,
    )
    .await?;
    total += for_each_page(
        |c| async move { source.machines(c.as_deref(), PAGE).await },
        drop,
    )
    .await?;
    Ok(total)
}

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
    let started = Instant::now();
    let read = bare_read(&source).await?;
    let floor_seconds = started.elapsed().as_secs_f64();
    println!(
        "sync_large: floor, bare source read: {read} entities in {floor_seconds:.1} s = {:.0} entities/s",
        read as f64 / floor_seconds
    );
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
            let hwm_before = common::status_kib("VmHWM:");
            common::reset_peak();
            let rss_before = common::status_kib("VmRSS:");
            let phases = Mutex::new(Vec::new());
            let started = Instant::now();
            let result = sync::sync(&database, Uuid::now_v7(), workspace, &source, |p| {
                let at = started.elapsed().as_secs_f64();
                let mut phases = phases.lock().unwrap_or_else(|e| e.into_inner());
                // A reading report holds the counts of every kind read so far: name the new one.
                let phase = match p["phase"].as_str() {
                    Some("reading") => p["read"]
                        .as_object()
                        .and_then(|r| {
                            r.keys()
                                .find(|k| !phases.iter().any(|(seen, _)| seen == *k))
                                .cloned()
                        })
                        .unwrap_or_default(),
                    other => other.unwrap_or_default().to_string(),
                };
                phases.push((phase, at));
                async { Ok(()) }
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let total: u64 = ["groups", "users", "machines", "plans"]
                .iter()
                .filter_map(|k| result[k]["total"].as_u64())
                .sum();
            // Each phase ends where the next begins; the last (applying) with the sync.
            let phases = phases.into_inner().unwrap_or_else(|e| e.into_inner());
            let mut from = 0.0;
            let mut spans = Vec::new();
            for (name, at) in &phases {
                if name == "applying" {
                    break;
                }
                spans.push(format!("{name} {:.1} s", at - from));
                from = *at;
            }
            spans.push(format!("applying {:.1} s", seconds - from));
            println!(
                "sync_large: {backend}, {run}: {total} entities in {seconds:.1} s = {:.0} entities/s (floor {:.0}/s, the database's share {:.0}%); {}; RSS {} MiB before, peak {} MiB before, {} MiB during; now {} MiB anonymous, {} MiB file-backed",
                total as f64 / seconds,
                read as f64 / floor_seconds,
                100.0 * (1.0 - floor_seconds / seconds).max(0.0),
                spans.join(", "),
                rss_before / 1024,
                hwm_before / 1024,
                common::status_kib("VmHWM:") / 1024,
                common::status_kib("RssAnon:") / 1024,
                common::status_kib("RssFile:") / 1024,
            );
        }
    }
    Ok(())
}
