//! Pre-check of the whole `large` hierarchy (10,000 groups, 100,000 users,
//! 150,000 machines, ~400,000 backup plans) from a synced snapshot, on SQLite
//! (and PostgreSQL when MP_TEST_POSTGRES_URL is set): the whole job's work
//! (read and parse the snapshot, plan, build the report, store it), with every
//! login already answered by the target, as on a pre-check after the first. The
//! floors beside it are a bare read of the same rows from the same database and a
//! bare write of the report it stored.
//! Per run: the time, its phases, the floor and the ratio, the resident set
//! before, its peak during the pre-check and after. (Browsing has a benchmark
//! of its own.)
//!
//! cargo bench --bench precheck_large

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use migration_portal::config::DatabaseConfig;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::SourceClient;
use migration_portal::db::{self, prechecks};
use migration_portal::domain::plan::{Node, Selection};
use migration_portal::domain::report::Section;
use migration_portal::jobs::precheck::{PrecheckRun, precheck_run};
use migration_portal::jobs::sync;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use uuid::Uuid;

async fn bare_read(db: &DatabaseConnection, workspace: Uuid) -> anyhow::Result<(usize, usize)> {
    let (mut rows, mut bytes) = (0, 0);
    for table in [
        "source_groups",
        "source_users",
        "source_machines",
        "source_plans",
    ] {
        let query = Query::select()
            .column(Alias::new("data"))
            .from(Alias::new(table))
            .and_where(Expr::col(Alias::new("workspace_id")).eq(workspace))
            .and_where(Expr::col(Alias::new("removed_at")).is_null())
            .to_owned();
        for row in db.query_all(&query).await? {
            let data: String = row.try_get("", "data")?;
            rows += 1;
            bytes += data.len();
        }
    }
    Ok((rows, bytes))
}

/// The pre-check's second floor: its report's chunks, as stored, written again
/// under another id the way the pre-check writes them (then both are removed, so
/// that the database does not grow from run to run). Answers the seconds, the
/// chunks and their bytes.
async fn bare_write(
    db: &DatabaseConnection,
    precheck: Uuid,
) -> anyhow::Result<(f64, usize, usize)> {
    let query = Query::select()
        .columns(["section", "first_entry", "entries", "data"].map(Alias::new))
        .from(Alias::new("precheck_chunks"))
        .and_where(Expr::col(Alias::new("precheck_id")).eq(precheck))
        .to_owned();
    let mut rows = Vec::new();
    for row in db.query_all(&query).await? {
        let name: String = row.try_get("", "section")?;
        let section =
            Section::parse(&name).ok_or_else(|| anyhow::anyhow!("unknown section {name}"))?;
        rows.push(prechecks::ChunkRow {
            section,
            first_entry: row.try_get::<i32>("", "first_entry")? as usize,
            entries: row.try_get::<i32>("", "entries")? as usize,
            data: row.try_get("", "data")?,
        });
    }
    let (chunks, bytes) = (rows.len(), rows.iter().map(|r| r.data.len()).sum());
    let copy = Uuid::now_v7();
    let (send, received) = tokio::sync::mpsc::channel(rows.len().max(1));
    for row in rows {
        send.send(row).await?;
    }
    drop(send);
    let started = Instant::now();
    prechecks::write_report_chunks(db, copy, received).await?;
    let seconds = started.elapsed().as_secs_f64();
    prechecks::forget_report(db, copy).await?;
    prechecks::forget_report(db, precheck).await?;
    Ok((seconds, chunks, bytes))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = generate(&GenSpec::sized(Size::Large, 1));
    let root = base.truth.root_group_id.clone();
    let logins: Vec<String> = base
        .users
        .iter()
        .map(|u| u.login.clone())
        .chain(base.groups.iter().map(|g| g.name.clone()))
        .collect();
    let sim = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base)?;
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
    // MP_BENCH_KEEP_DB=1 leaves the SQLite file behind, to look at query plans;
    // MP_BENCH_REUSE_DB=DIR keeps it in DIR and, when DIR holds one already, skips its sync.
    let reuse = std::env::var_os("MP_BENCH_REUSE_DB").map(std::path::PathBuf::from);
    let dir_path = if let Some(reuse) = &reuse {
        std::fs::create_dir_all(reuse)?;
        reuse.clone()
    } else if std::env::var_os("MP_BENCH_KEEP_DB").is_some() {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    let kept = dir_path.join("workspace.txt");
    let targets = common::backends(&dir_path.join("precheck.db")).await?;
    for (backend, url) in targets {
        let database = db::connect_upgraded(&DatabaseConfig {
            url,
            max_connections: 4,
            busy_timeout_ms: 30_000,
            acquire_timeout_ms: 10_000,
        })
        .await?;
        let reused = std::fs::read_to_string(&kept)
            .ok()
            .filter(|_| reuse.is_some() && backend == "sqlite")
            .and_then(|text| {
                let (id, time) = text.trim().split_once(' ')?;
                Some((id.parse::<Uuid>().ok()?, time.parse().ok()))
            });
        let (workspace, source_time) = match reused {
            Some(kept) => kept,
            None => {
                let workspace = Uuid::now_v7();
                let source_time =
                    sync_and_answer(&database, workspace, &source, &logins, backend).await?;
                if reuse.is_some() && backend == "sqlite" {
                    let time = source_time.map(|t| t.to_rfc3339()).unwrap_or_default();
                    std::fs::write(&kept, format!("{workspace} {time}"))?;
                }
                (workspace, source_time)
            }
        };
        for run in 1..=3 {
            let (started, cpu) = (Instant::now(), common::cpu());
            let (rows, bytes) = bare_read(&database, workspace).await?;
            let floor = started.elapsed().as_secs_f64();
            let floor_cpu = common::cpu() - cpu;
            let precheck_id = Uuid::now_v7();
            let rss = common::status_kib("VmRSS:");
            common::reset_peak();
            let (started, cpu) = (Instant::now(), common::cpu());
            let request = PrecheckRun {
                db: &database,
                workspace_id: workspace,
                precheck_id,
                source_time,
                snapshot_synced_at: None,
                selection: Selection(vec![Node::Group(root.clone())]),
                target: None,
                concurrency: 1,
                options: Default::default(),
                profile: migration_portal::domain::provisioning::Profile::standard(),
                root: Uuid::nil(),
            };
            let report = precheck_run(request, |_| async { Ok(()) }, || false)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let used = common::cpu() - cpu;
            let peak = common::status_kib("VmHWM:").saturating_sub(rss) / 1024;
            let (write, chunks, written) = bare_write(&database, precheck_id).await?;
            println!(
                "precheck_large: {backend}, run {run}: pre-check {seconds:.2} s, phases {}; bare read of the same {rows} rows ({} MiB) {floor:.2} s; ratio {:.1}; bare write of its report ({chunks} chunks, {} MiB) {write:.2} s, ratio to read and write {:.1}; CPU seconds (this process / the whole machine): pre-check {:.2} / {:.2}, bare read {:.2} / {:.2}; RSS {} MiB before, peak +{peak} MiB, {} MiB after; {} machines planned",
                report["seconds"],
                bytes / (1 << 20),
                seconds / floor,
                written / (1 << 20),
                seconds / (floor + write),
                used.process,
                used.machine,
                floor_cpu.process,
                floor_cpu.machine,
                rss / 1024,
                common::status_kib("VmRSS:") / 1024,
                report["counts"]["machines"]
            );
        }
    }
    Ok(())
}

/// Syncs the install base into a new workspace and records an answer on every
/// login, as a pre-check after the first finds them; answers the source's time.
async fn sync_and_answer(
    database: &DatabaseConnection,
    workspace: Uuid,
    source: &SourceClient,
    logins: &[String],
    backend: &str,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    let rss = common::status_kib("VmRSS:");
    common::reset_peak();
    let started = Instant::now();
    let result = sync::sync(database, Uuid::now_v7(), workspace, source, |_| async {
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
        "precheck_large: {backend}: sync {total} entities in {seconds:.1} s = {:.0} entities/s; RSS {} MiB before, peak +{} MiB, {} MiB after",
        total as f64 / seconds,
        rss / 1024,
        common::status_kib("VmHWM:").saturating_sub(rss) / 1024,
        common::status_kib("VmRSS:") / 1024
    );
    let checked = chrono::Utc::now();
    let answers: Vec<(String, bool)> = logins.iter().map(|l| (l.clone(), false)).collect();
    prechecks::record_login_answers(database, workspace, &answers, checked).await?;
    Ok(result["source_time"].as_str().and_then(|t| t.parse().ok()))
}
