//! The `sync` job: copies a workspace's source install base into the snapshot.
//!
//! Pages are staged first (one page in memory at a time); then, in one
//! transaction, the snapshot takes what changed: new and changed objects are
//! upserted, vanished ones deleted, or only flagged when their machine is in a
//! migration. A sync that fails before that transaction leaves the previous
//! snapshot as it was.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value as DbValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::clients::ClientPool;
use super::connector as remote;
use crate::connectors::ConnectorError;
use crate::connectors::source::{SourceApi, SourcePage};
use crate::crypto::SecretBox;
use crate::db::{execute, snapshot_tree, statement};
use crate::domain::machines::{Clock, MachineFacts, OFFLINE_AFTER_DAYS};
use crate::domain::support::{Platform, SupportMatrix};
use crate::queue::{Job, JobError, JobHandler, JobRun, NewJob, database};

/// Copies a workspace's source install base into its snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncWorkspace {
    pub workspace_id: Uuid,
}

impl Job for SyncWorkspace {
    const KIND: &'static str = "sync";
}

impl SyncWorkspace {
    /// At most one sync of a workspace at a time: asking again answers the running one.
    pub fn of(tenant_id: Uuid, workspace_id: Uuid) -> NewJob<Self> {
        NewJob {
            unique_key: Some(format!("sync:{workspace_id}")),
            tenant_id: Some(tenant_id),
            workspace_id: Some(workspace_id),
            ..NewJob::new(Self { workspace_id })
        }
    }
}
const PAGE: u32 = 1000;
const STAGE_BATCH: usize = 500;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Groups,
    Users,
    Machines,
    Plans,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Groups, Kind::Users, Kind::Machines, Kind::Plans];

    fn name(self) -> &'static str {
        match self {
            Kind::Groups => "groups",
            Kind::Users => "users",
            Kind::Machines => "machines",
            Kind::Plans => "plans",
        }
    }

    /// Groups and users carry a storage quota in a column of their own.
    fn has_quota(self) -> bool {
        matches!(self, Kind::Groups | Kind::Users)
    }

    /// Users and machines carry their group's position in the tree.
    fn has_tree_pos(self) -> bool {
        matches!(self, Kind::Users | Kind::Machines)
    }

    fn table(self) -> &'static str {
        match self {
            Kind::Groups => "source_groups",
            Kind::Users => "source_users",
            Kind::Machines => "source_machines",
            Kind::Plans => "source_plans",
        }
    }
}

pub struct SyncHandler {
    secrets: SecretBox,
    pool: Arc<ClientPool>,
}

impl SyncHandler {
    pub fn new(secrets: SecretBox, pool: Arc<ClientPool>) -> Self {
        Self { secrets, pool }
    }
}

#[async_trait]
impl JobHandler for SyncHandler {
    type Job = SyncWorkspace;

    async fn run(&self, job: SyncWorkspace, run: &JobRun) -> Result<Value, JobError> {
        let workspace_id = job.workspace_id;
        let workspace = super::workspace_of(run, workspace_id).await?;
        let clients = self.pool.clients(&workspace, &self.secrets)?;
        sync(
            run.db(),
            run.job.id,
            workspace_id,
            clients.source.as_ref(),
            |p| async move { run.progress(p).await },
        )
        .await
    }
}

/// Stages every object of the source, then applies the difference in one transaction.
pub async fn sync<P, PF>(
    db: &DatabaseConnection,
    job: Uuid,
    workspace: Uuid,
    source: &dyn SourceApi,
    progress: P,
) -> Result<Value, JobError>
where
    P: Fn(Value) -> PF,
    PF: Future<Output = Result<(), JobError>>,
{
    let staged = stage_all(db, job, source, &progress).await;
    let result = match staged {
        Ok(source_time) => {
            progress(json!({"phase": "applying"})).await?;
            apply(db, job, workspace, source_time).await
        }
        Err(e) => Err(e),
    };
    // The staging area is this attempt's alone; a retry stages again.
    clear_staging(db, job).await?;
    result
}

/// The staging area is one attempt's alone: emptied before it stages and after.
async fn clear_staging(db: &DatabaseConnection, job: Uuid) -> Result<(), JobError> {
    execute(
        db,
        "DELETE FROM sync_staging WHERE job_id = $1",
        vec![job.into()],
    )
    .await
    .map(drop)
    .map_err(database)
}

async fn stage_all<P, PF>(
    db: &DatabaseConnection,
    job: Uuid,
    source: &dyn SourceApi,
    progress: &P,
) -> Result<DateTime<Utc>, JobError>
where
    P: Fn(Value) -> PF,
    PF: Future<Output = Result<(), JobError>>,
{
    clear_staging(db, job).await?;
    // Last-seen times are judged on the server's clock, not ours.
    let source_time = source
        .account()
        .await
        .map_err(remote)?
        .server_time
        .unwrap_or_else(Utc::now);
    let clock = Clock {
        now: source_time,
        offline_after: chrono::Duration::days(OFFLINE_AFTER_DAYS),
    };
    let matrix = SupportMatrix::default();
    let mut counts = serde_json::Map::new();
    let mut report = |kind: Kind, n: u64| {
        counts.insert(kind.name().into(), json!(n));
        json!({"phase": "reading", "read": counts.clone()})
    };
    let n = stage(
        db,
        job,
        Kind::Groups,
        |c| async move { source.groups(c.as_deref(), PAGE).await },
        |g| Staged {
            id: g.id.clone(),
            parent: g.parent_id.clone(),
            group: g.parent_id.clone(),
            search: search_text([
                Some(&g.name),
                g.admin.as_ref().map(|a| &a.login),
                g.admin.as_ref().and_then(|a| a.email.as_ref()),
            ]),
            size: 0,
            readiness: None,
            quota: quota(g.storage_quota_bytes),
        },
    )
    .await?;
    progress(report(Kind::Groups, n)).await?;
    // What a machine's readiness needs of its user and plans, kept until the machines are staged.
    let mut users: HashMap<String, (String, bool)> = HashMap::new();
    let n = stage(
        db,
        job,
        Kind::Users,
        |c| async move { source.users(c.as_deref(), PAGE).await },
        |u| {
            users.insert(u.id.clone(), (u.group_id.clone(), u.auto_update));
            Staged {
                id: u.id.clone(),
                parent: Some(u.group_id.clone()),
                group: Some(u.group_id.clone()),
                search: search_text([Some(&u.login), u.email.as_ref()]),
                size: 0,
                readiness: None,
                quota: quota(u.storage_quota_bytes),
            }
        },
    )
    .await?;
    progress(report(Kind::Users, n)).await?;
    let mut plan_types: HashMap<String, Vec<String>> = HashMap::new();
    let n = stage(
        db,
        job,
        Kind::Plans,
        |c| async move { source.plans(c.as_deref(), PAGE).await },
        |p| {
            plan_types
                .entry(p.machine_id.clone())
                .or_default()
                .push(p.kind.clone());
            Staged {
                id: p.id.clone(),
                parent: Some(p.machine_id.clone()),
                group: None,
                search: None,
                size: 0,
                readiness: None,
                quota: None,
            }
        },
    )
    .await?;
    progress(report(Kind::Plans, n)).await?;
    let n = stage(
        db,
        job,
        Kind::Machines,
        |c| async move { source.machines(c.as_deref(), PAGE).await },
        |m| {
            let user = users.get(&m.user_id);
            let facts = MachineFacts {
                platform: Platform::from_family(&m.os.family),
                os_name: &m.os.name,
                client_version: m.client_version.as_deref(),
                auto_update: user.is_some_and(|u| u.1),
                last_seen_at: m.last_seen_at,
                plan_types: plan_types
                    .get(&m.id)
                    .map(|t| t.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
            };
            Staged {
                id: m.id.clone(),
                parent: Some(m.user_id.clone()),
                group: user.map(|u| u.0.clone()),
                search: search_text([Some(&m.hostname)]),
                size: i64::try_from(m.data_size_bytes).unwrap_or(i64::MAX),
                readiness: Some(matrix.assess(&facts, clock).readiness.as_str()),
                quota: None,
            }
        },
    )
    .await?;
    progress(report(Kind::Machines, n)).await?;
    Ok(source_time)
}

/// One staged row: the object's keys and the facts browsing reads without parsing `data`.
struct Staged {
    id: String,
    parent: Option<String>,
    group: Option<String>,
    search: Option<String>,
    size: i64,
    readiness: Option<&'static str>,
    /// Groups and users: their storage quota in bytes.
    quota: Option<i64>,
}

/// A quota as BIGINT: beyond its range (8 EiB) is as good as unlimited, so the largest it holds.
fn quota(bytes: Option<u64>) -> Option<i64> {
    bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX))
}

/// Lowercase, one value per line, so a search never matches across two of them;
/// without U+0000, which no search can hold.
fn search_text<'a>(values: impl IntoIterator<Item = Option<&'a String>>) -> Option<String> {
    let text: Vec<String> = values
        .into_iter()
        .flatten()
        .map(|v| v.to_lowercase().replace('\0', ""))
        .collect();
    (!text.is_empty()).then(|| text.join("\n"))
}

const STAGE_COLUMNS: usize = 10;

const STAGE_INTO: &str = "sync_staging (job_id, kind, source_id, parent_source_id, data, group_source_id, search, size_bytes, readiness, storage_quota_bytes)";

/// Pages through one kind, writing each page to the staging area while the
/// next one is fetched.
async fn stage<T, F, Fut>(
    db: &DatabaseConnection,
    job: Uuid,
    kind: Kind,
    fetch: F,
    row: impl FnMut(&T) -> Staged,
) -> Result<u64, JobError>
where
    T: Serialize,
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<SourcePage<T>, ConnectorError>>,
{
    let mut sink = Sink::open(db, job, kind).await?;
    match stage_pages(&mut sink, kind, fetch, row).await {
        Ok(seen) => sink.finish().await.map(|()| seen),
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

async fn stage_pages<T, F, Fut>(
    sink: &mut Sink<'_>,
    kind: Kind,
    fetch: F,
    mut row: impl FnMut(&T) -> Staged,
) -> Result<u64, JobError>
where
    T: Serialize,
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<SourcePage<T>, ConnectorError>>,
{
    let mut cursor: Option<String> = None;
    let mut page = fetch(None).await.map_err(remote)?;
    let mut seen = 0u64;
    loop {
        let mut rows = Vec::with_capacity(page.items.len());
        for item in &page.items {
            rows.push(staged_row(kind, item, &mut row)?);
        }
        seen += rows.len() as u64;
        let next = match page.next_cursor.take() {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(JobError::Fatal(
                    "the BackupAgent server handed back the same page cursor twice".into(),
                ));
            }
            next => next,
        };
        let fetch_next = async {
            match &next {
                Some(c) => Some(fetch(Some(c.clone())).await),
                None => None,
            }
        };
        let (written, fetched) = tokio::join!(sink.write(rows), fetch_next);
        written?;
        match fetched {
            Some(fetched) => page = fetched.map_err(remote)?,
            None => return Ok(seen),
        }
        cursor = next;
    }
}

/// One staged row as its columns, `data` the object as the source sent it.
fn staged_row<T: Serialize>(
    kind: Kind,
    item: &T,
    row: &mut impl FnMut(&T) -> Staged,
) -> Result<(Staged, String), JobError> {
    let staged = row(item);
    // Text with U+0000 is kept (escaped in `data`, left out of `search`), but no
    // database key can hold it: PostgreSQL refuses it, SQLite cuts comparisons at it.
    if let Some(id) = [
        Some(&staged.id),
        staged.parent.as_ref(),
        staged.group.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find(|id| id.contains('\0'))
    {
        return Err(JobError::Fatal(format!(
            "the BackupAgent server sent a {} whose id or parent id {:?} holds U+0000, which cannot be stored: correct it there and sync again",
            kind.name().trim_end_matches('s'),
            id
        )));
    }
    let data =
        serde_json::to_string(item).map_err(|e| JobError::Fatal(format!("encoding: {e}")))?;
    Ok((staged, data))
}

/// Where one kind's pages are staged: one COPY on PostgreSQL, multi-row INSERTs
/// of `STAGE_BATCH` rows on SQLite.
enum Sink<'a> {
    Postgres {
        copy: crate::db::CopyIn,
        job: String,
        kind: Kind,
    },
    Sqlite {
        db: &'a DatabaseConnection,
        job: Uuid,
        kind: Kind,
    },
}

impl<'a> Sink<'a> {
    async fn open(db: &'a DatabaseConnection, job: Uuid, kind: Kind) -> Result<Self, JobError> {
        if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let copy = crate::db::CopyIn::start(db, &format!("COPY {STAGE_INTO} FROM STDIN"))
                .await
                .map_err(database)?;
            return Ok(Sink::Postgres {
                copy,
                job: job.to_string(),
                kind,
            });
        }
        Ok(Sink::Sqlite { db, job, kind })
    }

    async fn write(&mut self, rows: Vec<(Staged, String)>) -> Result<(), JobError> {
        match self {
            Sink::Postgres { copy, job, kind } => {
                let fields = rows.into_iter().map(|(s, data)| {
                    vec![
                        Some(job.clone()),
                        Some(kind.name().to_string()),
                        Some(s.id),
                        s.parent,
                        Some(data),
                        s.group,
                        s.search,
                        Some(s.size.to_string()),
                        s.readiness.map(str::to_string),
                        s.quota.map(|q| q.to_string()),
                    ]
                });
                copy.send(fields).await.map_err(database)
            }
            Sink::Sqlite { db, job, kind } => insert_staged(db, *job, *kind, rows).await,
        }
    }

    async fn finish(self) -> Result<(), JobError> {
        match self {
            Sink::Postgres { copy, .. } => copy.finish().await.map(drop).map_err(database),
            Sink::Sqlite { .. } => Ok(()),
        }
    }

    async fn abort(self) {
        if let Sink::Postgres { copy, .. } = self {
            copy.abort("the sync stopped staging").await;
        }
    }
}

/// SQLite: a page's rows as multi-row INSERTs of `STAGE_BATCH` rows.
async fn insert_staged(
    db: &DatabaseConnection,
    job: Uuid,
    kind: Kind,
    rows: Vec<(Staged, String)>,
) -> Result<(), JobError> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<(Staged, String)> = rows.by_ref().take(STAGE_BATCH).collect();
        let mut values = Vec::with_capacity(chunk.len() * STAGE_COLUMNS);
        let mut marks = Vec::with_capacity(chunk.len());
        for (i, (staged, data)) in chunk.into_iter().enumerate() {
            let row: Vec<String> = (1..=STAGE_COLUMNS)
                .map(|n| format!("${}", i * STAGE_COLUMNS + n))
                .collect();
            marks.push(format!("({})", row.join(", ")));
            values.extend([
                job.into(),
                kind.name().into(),
                staged.id.into(),
                staged.parent.into(),
                data.into(),
                staged.group.into(),
                staged.search.into(),
                staged.size.into(),
                staged.readiness.map(str::to_string).into(),
                staged.quota.into(),
            ]);
        }
        let sql = format!("INSERT INTO {STAGE_INTO} VALUES {}", marks.join(", "));
        execute(db, &sql, values).await.map_err(database)?;
    }
    Ok(())
}

/// The snapshot takes the staged install base, in one transaction.
async fn apply(
    db: &DatabaseConnection,
    job: Uuid,
    workspace: Uuid,
    source_time: DateTime<Utc>,
) -> Result<Value, JobError> {
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // Statistics for the rows just staged, so the comparisons below join by index.
        execute(db, "ANALYZE sync_staging", vec![])
            .await
            .map_err(database)?;
    }
    let txn = db.begin().await.map_err(database)?;
    // Whole microseconds: both databases store it exactly, so equality holds.
    let now = Utc::now().trunc_subsecs(6);
    // The sync before this one: the last that saw what this one finds gone.
    let previous_sync: Option<DateTime<Utc>> = txn
        .query_one_raw(statement(
            txn.get_database_backend(),
            "SELECT snapshot_synced_at FROM workspaces WHERE id = $1",
            vec![workspace.into()],
        ))
        .await
        .map_err(database)?
        .map(|row| row.try_get_by_index(0))
        .transpose()
        .map_err(database)?
        .flatten();
    let mut result = serde_json::Map::new();
    for kind in Kind::ALL {
        let table = kind.table();
        let args = || -> Vec<DbValue> { vec![workspace.into(), job.into(), kind.name().into()] };
        // Every staged object ends up in the snapshot, not removed: they are its total.
        let [total, added, changed] = counts(
            &txn,
            &format!(
                "SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE t.source_id IS NULL) AS added, \
                   COUNT(*) FILTER (WHERE t.data <> s.data OR t.removed_at IS NOT NULL) AS changed \
                 FROM sync_staging s LEFT JOIN {table} t ON t.workspace_id = $1 AND t.source_id = s.source_id \
                 WHERE s.job_id = $2 AND s.kind = $3"
            ),
            args(),
        )
        .await?;
        let mut upsert_args = args();
        upsert_args.push(now.into());
        // A changed quota is a changed `data` too, so `changed` above counts it.
        let mut columns = String::new();
        let mut values = String::new();
        let mut set = String::new();
        let mut join = "";
        let mut updated: Vec<&str> = vec![
            "parent_source_id",
            "data",
            "group_source_id",
            "search",
            "size_bytes",
            "readiness",
        ];
        if kind.has_quota() {
            columns.push_str(", storage_quota_bytes");
            values.push_str(", s.storage_quota_bytes");
            set.push_str(", storage_quota_bytes = excluded.storage_quota_bytes");
            updated.push("storage_quota_bytes");
        }
        // The groups are numbered by now (below, in the first round). A join, which
        // PostgreSQL hashes, rather than a subquery that probes the groups per row.
        if kind.has_tree_pos() {
            columns.push_str(", tree_pos");
            values.push_str(", g.tree_lo");
            set.push_str(", tree_pos = excluded.tree_pos");
            updated.push("tree_pos");
            join = " LEFT JOIN source_groups g ON g.workspace_id = $1 AND g.source_id = s.group_source_id";
        }
        // Nothing staged is in the snapshot yet (a first sync): a plain INSERT, without
        // PostgreSQL's speculative insertion per row. Otherwise only what differs is
        // written: on PostgreSQL every update is a new row version with its index
        // entries, and rewriting the whole unchanged snapshot took twice the first
        // sync's time. A row's `synced_at` is therefore the sync that last changed it
        // (see `Row::seen_at` for the sync that last saw it).
        let on_conflict = if added == total {
            String::new()
        } else {
            let differs = updated
                .iter()
                .map(|c| format!("{table}.{c} IS DISTINCT FROM excluded.{c}"))
                .collect::<Vec<_>>()
                .join(" OR ");
            format!(
                " ON CONFLICT (workspace_id, source_id) DO UPDATE SET parent_source_id = excluded.parent_source_id, \
                 data = excluded.data, group_source_id = excluded.group_source_id, search = excluded.search, \
                 size_bytes = excluded.size_bytes, readiness = excluded.readiness{set}, removed_at = NULL, synced_at = excluded.synced_at \
                 WHERE {differs} OR {table}.removed_at IS NOT NULL"
            )
        };
        execute(&txn, &format!(
            "INSERT INTO {table} (workspace_id, source_id, parent_source_id, data, group_source_id, search, size_bytes, readiness{columns}, migration_state, synced_at) \
             SELECT $1, s.source_id, s.parent_source_id, s.data, s.group_source_id, s.search, s.size_bytes, s.readiness{values}, 'idle', $4 \
             FROM sync_staging s{join} WHERE s.job_id = $2 AND s.kind = $3{on_conflict}"
        ), upsert_args).await.map_err(database)?;
        // The objects not staged are gone from the source: forgotten, unless
        // mid-migration (then flagged, and their `synced_at` becomes the last sync that
        // saw them). Whether there are any is a count that an index answers; only then
        // are they looked for, each row against the staging area's key (the staging
        // area has its statistics by now: without them PostgreSQL was seen to take
        // minutes over this anti-join).
        let unseen = format!(
            "NOT EXISTS (SELECT 1 FROM sync_staging s WHERE s.job_id = $2 AND s.kind = $3 AND s.source_id = {table}.source_id)"
        );
        let [in_snapshot] = counts(
            &txn,
            &format!("SELECT COUNT(*) FROM {table} WHERE workspace_id = $1"),
            vec![workspace.into()],
        )
        .await?;
        let stale = in_snapshot - total;
        let mut removed = 0;
        if stale > 0 {
            [removed] = counts(
                &txn,
                &format!("SELECT COUNT(*) FROM {table} WHERE workspace_id = $1 AND removed_at IS NULL AND {unseen}"),
                args(),
            )
            .await?;
            execute(&txn, &format!("DELETE FROM {table} WHERE workspace_id = $1 AND migration_state = 'idle' AND {unseen}"), args())
                .await
                .map_err(database)?;
            let mut flag_args = args();
            flag_args.extend([now.into(), previous_sync.into()]);
            execute(&txn, &format!("UPDATE {table} SET removed_at = $4, synced_at = COALESCE($5, synced_at) WHERE workspace_id = $1 AND removed_at IS NULL AND {unseen}"), flag_args)
                .await
                .map_err(database)?;
            if kind.has_tree_pos() {
                // What is kept follows its group's new number (or leaves the tree with it).
                let position =
                    snapshot_tree::position_of_group(&format!("{table}.group_source_id"));
                execute(&txn, &format!("UPDATE {table} SET tree_pos = {position} WHERE workspace_id = $1 AND tree_pos IS DISTINCT FROM {position} AND {unseen}"), args())
                    .await
                    .map_err(database)?;
            }
        }
        if let Kind::Groups = kind {
            snapshot_tree::renumber(&txn, workspace)
                .await
                .map_err(database)?;
        }
        result.insert(
            kind.name().into(),
            json!({"total": total, "added": added, "changed": changed, "removed": removed}),
        );
    }
    execute(
        &txn,
        "UPDATE workspaces SET snapshot_synced_at = $2, snapshot_source_time = $3 WHERE id = $1",
        vec![workspace.into(), now.into(), source_time.into()],
    )
    .await
    .map_err(database)?;
    result.insert("source_time".into(), json!(source_time));
    let event = crate::db::events::NewEvent {
        actor: "portal:sync".into(),
        subject_kind: "workspace",
        subject_id: workspace.to_string(),
        migration_id: None,
        kind: "sync.completed".into(),
        message: "the snapshot now matches the source".into(),
        data: Some(Value::Object(result.clone())),
    };
    super::record_events(&txn, workspace, vec![event])
        .await
        .map_err(database)?;
    txn.commit().await.map_err(database)?;
    refresh_statistics(db).await;
    Ok(Value::Object(result))
}

/// PostgreSQL: the apply rewrote the workspace's rows, so the planner's statistics
/// and the visibility map (which lets a rollup read its indexes alone) are behind
/// until autovacuum comes by; without them a rollup was seen to scan every
/// machine, or to fetch every row its index named. VACUUM's work is bounded by
/// the pages the apply touched, ANALYZE's by its sample. Plans are read by
/// index scans that fetch their rows anyway: statistics only. A failure here
/// leaves the sync done; autovacuum catches up later.
async fn refresh_statistics(db: &DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return;
    }
    for sql in [
        "VACUUM (ANALYZE) source_groups, source_users, source_machines",
        "ANALYZE source_plans",
    ] {
        if let Err(error) = execute(db, sql, vec![]).await {
            tracing::warn!(%error, sql, "refreshing the snapshot's statistics failed");
        }
    }
}

/// The columns `N` counts of a one-row query, in the order they are selected.
async fn counts<const N: usize>(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<DbValue>,
) -> Result<[i64; N], JobError> {
    let row = db
        .query_one_raw(statement(db.get_database_backend(), sql, values))
        .await
        .map_err(database)?
        .ok_or_else(|| JobError::Fatal("a count answered no row".into()))?;
    let mut out = [0; N];
    for (i, n) in out.iter_mut().enumerate() {
        *n = row
            .try_get_by_index::<Option<i64>>(i)
            .map_err(database)?
            .unwrap_or_default();
    }
    Ok(out)
}
