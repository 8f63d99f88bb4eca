//! Pre-check of the whole `large` hierarchy (10,000 groups, 100,000 users,
//! 150,000 machines, ~400,000 backup plans) from a synced snapshot, on SQLite
//! (and PostgreSQL when MP_TEST_POSTGRES_URL is set): the whole job's work
//! (read and parse the snapshot, plan, build the report, store it), with every
//! login already answered by the target, as on a pre-check after the first. The
//! floor beside it is a bare read of the same rows from the same database.
//!
//! cargo bench --bench precheck_large

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use migration_portal::config::DatabaseConfig;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::SourceClient;
use migration_portal::db::snapshot::{self, Kind};
use migration_portal::db::{self, prechecks};
use migration_portal::domain::plan::{Node, Selection};
use migration_portal::jobs::precheck::{PrecheckRun, precheck_run};
use migration_portal::jobs::sync;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use uuid::Uuid;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident set to the current one (Linux 4.0+), so a peak is one step's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

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
    // MP_BENCH_KEEP_DB=1 leaves the SQLite file behind, to look at query plans.
    let dir_path = if std::env::var_os("MP_BENCH_KEEP_DB").is_some() {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    let targets = common::backends(&dir_path.join("precheck.db")).await?;
    for (backend, url) in targets {
        let database = db::connect_upgraded(&DatabaseConfig {
            url,
            max_connections: 4,
            busy_timeout_ms: 30_000,
            acquire_timeout_ms: 10_000,
        })
        .await?;
        let workspace = Uuid::now_v7();
        let rss = status_kib("VmRSS:");
        reset_peak();
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
            "precheck_large: {backend}: sync {total} entities in {seconds:.1} s = {:.0} entities/s, peak RSS +{} MiB over the {} MiB before",
            total as f64 / seconds,
            status_kib("VmHWM:").saturating_sub(rss) / 1024,
            rss / 1024
        );
        // Browsing: the whole install base's rollup, a page of the root's children with theirs, a search.
        let mut rollup_ms = Vec::new();
        let mut rollup = Default::default();
        for _ in 0..3 {
            let started = Instant::now();
            rollup = snapshot::rollups(&database, workspace, std::slice::from_ref(&root))
                .await?
                .remove(&root)
                .unwrap_or_default();
            rollup_ms.push(format!("{:.0}", started.elapsed().as_secs_f64() * 1000.0));
        }
        let rollup_ms = rollup_ms.join(", ");
        let started = Instant::now();
        let children = snapshot::children(
            &database,
            workspace,
            &root,
            &[Kind::Group, Kind::User],
            None,
            51,
        )
        .await?;
        let ids: Vec<String> = children
            .iter()
            .filter(|c| c.row.kind == Kind::Group)
            .map(|c| c.row.id.clone())
            .collect();
        let child_rollups = snapshot::rollups(&database, workspace, &ids).await?;
        let children_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let hits = snapshot::search(&database, workspace, "ann", &Kind::ALL, None, 51).await?;
        let search_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "precheck_large: {backend}: root rollup ({} machines) {rollup_ms} ms (three runs); first page of the root's children with {} subtree rollups {children_ms:.0} ms; search \"ann\" (first {} hits) {search_ms:.0} ms",
            rollup.machines,
            child_rollups.len(),
            hits.len()
        );
        // A pre-check after the first: the target has answered every login.
        let checked = chrono::Utc::now();
        let answers: Vec<(String, bool)> = logins.iter().map(|l| (l.clone(), false)).collect();
        prechecks::record_login_answers(&database, workspace, &answers, checked).await?;
        for run in 1..=3 {
            let started = Instant::now();
            let (rows, bytes) = bare_read(&database, workspace).await?;
            let floor = started.elapsed().as_secs_f64();
            let precheck_id = Uuid::now_v7();
            let rss = status_kib("VmRSS:");
            reset_peak();
            let started = Instant::now();
            let request = PrecheckRun {
                db: &database,
                workspace_id: workspace,
                precheck_id,
                source_time: result["source_time"].as_str().and_then(|t| t.parse().ok()),
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
            let peak = status_kib("VmHWM:").saturating_sub(rss) / 1024;
            println!(
                "precheck_large: {backend}, run {run}: pre-check {seconds:.2} s (peak RSS +{peak} MiB; phases {}); bare read of the same {rows} rows ({} MiB) {floor:.2} s; ratio {:.1}; {} machines planned",
                report["seconds"],
                bytes / (1 << 20),
                seconds / floor,
                report["counts"]["machines"]
            );
        }
    }
    Ok(())
}
