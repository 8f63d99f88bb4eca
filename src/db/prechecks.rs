//! Pre-check reports, their entries, the snapshot they are computed from, and
//! the target's answers on logins.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::login_check;
use entity::precheck::{self, Entity as Prechecks};
use entity::precheck_chunk::{self, Entity as Chunks};
use futures_util::StreamExt;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, Statement, StreamTrait, TransactionTrait,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::plan::Snapshot;
use crate::domain::report::{EncodedEntry, Entry, Section};

/// The live rows of a workspace's snapshot, in source-id order. The four
/// tables are read and parsed at once, each on a pooled connection of its own.
pub async fn load_snapshot(db: &DatabaseConnection, workspace_id: Uuid) -> Result<Snapshot, DbErr> {
    fn spawn<T: DeserializeOwned + Send + 'static>(
        db: &DatabaseConnection,
        table: &'static str,
        workspace_id: Uuid,
    ) -> tokio::task::JoinHandle<Result<Vec<T>, DbErr>> {
        let db = db.clone();
        tokio::spawn(async move { rows(&db, table, workspace_id).await })
    }
    fn joined<T>(r: Result<Result<T, DbErr>, tokio::task::JoinError>) -> Result<T, DbErr> {
        r.map_err(|e| DbErr::Custom(format!("reading the snapshot: {e}")))?
    }
    let plans = spawn(db, "source_plans", workspace_id);
    let machines = spawn(db, "source_machines", workspace_id);
    let users = spawn(db, "source_users", workspace_id);
    let groups = spawn(db, "source_groups", workspace_id);
    Ok(Snapshot {
        groups: joined(groups.await)?,
        users: joined(users.await)?,
        machines: joined(machines.await)?,
        plans: joined(plans.await)?,
    })
}

/// Parses rows as they arrive, so reading and parsing overlap.
async fn rows<T: DeserializeOwned>(
    db: &DatabaseConnection,
    table: &str,
    workspace_id: Uuid,
) -> Result<Vec<T>, DbErr> {
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        return sqlite_rows(db, table, workspace_id).await;
    }
    let query = Query::select()
        .column(Alias::new("data"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("workspace_id")).eq(workspace_id))
        .and_where(Expr::col(Alias::new("removed_at")).is_null())
        .order_by(Alias::new("source_id"), Order::Asc)
        .to_owned();
    let mut rows = db.stream(&query).await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await {
        let data: String = row?.try_get("", "data")?;
        out.push(parse(table, &data)?);
    }
    Ok(out)
}

fn parse<T: DeserializeOwned>(table: &str, data: &str) -> Result<T, DbErr> {
    serde_json::from_str(data)
        .map_err(|e| DbErr::Custom(format!("{table}: a snapshot row does not parse: {e}")))
}

/// Rows read from SQLite at once, joined into one text.
const SQLITE_ROWS_AT_ONCE: usize = 500;

/// What separates the rows of one read: a character JSON text cannot hold
/// outside its strings, nor escape-free inside them.
const RECORD_SEPARATOR: char = '\u{1e}';

/// As [`rows`], on SQLite: [`SQLITE_ROWS_AT_ONCE`] rows in one, joined by a
/// [`RECORD_SEPARATOR`], each read picking up after the last one's source id,
/// all in one read transaction.
/// SQLite runs on a thread of its own per connection, which hands each row to
/// the reading task in a message of its own: read a row at a time, the two
/// threads spent more time waking each other than reading or parsing (at
/// `large`, the connections' threads took 38% of the pre-check's CPU, most of it
/// in the kernel's futex wake-ups and context switches).
async fn sqlite_rows<T: DeserializeOwned>(
    db: &DatabaseConnection,
    table: &str,
    workspace_id: Uuid,
) -> Result<Vec<T>, DbErr> {
    // The reads of one table see one state of it, as one statement would.
    let txn = db.begin().await?;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (resume, values) = match &after {
            Some(last) => (
                "AND source_id > $2",
                vec![workspace_id.into(), last.clone().into()],
            ),
            None => ("", vec![workspace_id.into()]),
        };
        let sql = format!(
            "SELECT group_concat(data, char(30) ORDER BY source_id) AS data, max(source_id) AS last, count(*) AS n \
             FROM (SELECT source_id, data FROM {table} WHERE workspace_id = $1 AND removed_at IS NULL {resume} \
                   ORDER BY source_id LIMIT {SQLITE_ROWS_AT_ONCE})"
        )
        .replace('$', "?");
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                sql,
                values,
            ))
            .await?
            .ok_or_else(|| DbErr::Custom(format!("{table}: an aggregate answered no row")))?;
        let read: i64 = row.try_get("", "n")?;
        if read > 0 {
            let data: String = row.try_get("", "data")?;
            for text in data.split(RECORD_SEPARATOR) {
                out.push(parse(table, text)?);
            }
        }
        if (read as usize) < SQLITE_ROWS_AT_ONCE {
            txn.commit().await?;
            return Ok(out);
        }
        after = Some(row.try_get("", "last")?);
    }
}

/// The target's answers younger than `since`: lowercase login -> taken.
pub async fn login_answers(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    since: DateTime<Utc>,
) -> Result<HashMap<String, (bool, DateTime<Utc>)>, DbErr> {
    let rows = login_check::Entity::find()
        .filter(login_check::Column::WorkspaceId.eq(workspace_id))
        .filter(login_check::Column::CheckedAt.gte(since))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.login, (r.taken, r.checked_at)))
        .collect())
}

/// Keeps the target's answers, one per lowercase login (PostgreSQL refuses an
/// upsert that names a row twice).
pub async fn record_login_answers(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    answers: &[(String, bool)],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let answers: Vec<(String, bool)> = answers
        .iter()
        .map(|(login, taken)| (login.to_lowercase(), *taken))
        .collect::<HashMap<_, _>>()
        .into_iter()
        .collect();
    for batch in answers.chunks(200) {
        let models = batch.iter().map(|(login, taken)| login_check::ActiveModel {
            workspace_id: Set(workspace_id),
            login: Set(login.clone()),
            taken: Set(*taken),
            checked_at: Set(at),
        });
        login_check::Entity::insert_many(models)
            .on_conflict(
                OnConflict::columns([login_check::Column::WorkspaceId, login_check::Column::Login])
                    .update_columns([login_check::Column::Taken, login_check::Column::CheckedAt])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

pub async fn insert(db: &impl ConnectionTrait, model: precheck::Model) -> Result<(), DbErr> {
    Prechecks::insert(precheck::ActiveModel::from(model))
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// A stored piece of a report's section: `entries` entries from the section's
/// `first_entry`, as the JSON text of [`chunk_text`].
pub struct ChunkRow {
    pub section: Section,
    pub first_entry: usize,
    pub entries: usize,
    pub data: String,
}

/// Entries per stored chunk: a page read decodes at most two chunks.
pub const CHUNK: usize = 500;

/// Writes a pre-check's report chunks as they come, until `rows` closes. The
/// pre-check first loses its report (any chunks of an earlier attempt, and its
/// completion, so that nobody reads a report half written); it shows again when
/// [`complete_report`] names it complete. Chunks are written a statement at a time,
/// not in one transaction: on SQLite one transaction would hold the database's
/// write lock for as long as the report takes to build.
pub async fn write_report_chunks(
    db: &DatabaseConnection,
    id: Uuid,
    mut rows: tokio::sync::mpsc::Receiver<ChunkRow>,
) -> Result<(), DbErr> {
    forget_report(db, id).await?;
    let mut batch = Vec::with_capacity(ROWS_PER_INSERT);
    while rows.recv_many(&mut batch, ROWS_PER_INSERT).await > 0 {
        let models = batch.drain(..).map(|row| {
            debug_assert_eq!(
                row.first_entry % CHUNK,
                0,
                "chunks start at a multiple of CHUNK"
            );
            precheck_chunk::ActiveModel {
                precheck_id: Set(id),
                section: Set(row.section.as_str().to_string()),
                chunk: Set((row.first_entry / CHUNK) as i32),
                first_entry: Set(row.first_entry as i32),
                entries: Set(row.entries as i32),
                data: Set(row.data),
            }
        });
        Chunks::insert_many(models)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The pre-check without a report: not complete, and no chunks.
pub async fn forget_report(db: &DatabaseConnection, id: Uuid) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    Prechecks::update_many()
        .col_expr(precheck::Column::Planning, Expr::value(None::<String>))
        .col_expr(
            precheck::Column::CompletedAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(precheck::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    Chunks::delete_many()
        .filter(precheck_chunk::Column::PrecheckId.eq(id))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// The report's chunks are written ([`write_report_chunks`]): its planning section
/// and its completion make it visible, once the stored chunks are checked to hold
/// each section whole (the number of entries `planning.sections` names, in
/// consecutive full chunks), so that a report whose writing another attempt of the
/// job interfered with is never shown (its job is retried).
pub async fn complete_report(
    db: &impl ConnectionTrait,
    id: Uuid,
    planning: &Value,
    snapshot_synced_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let stored = db
        .query_all_raw(crate::db::statement(
            db.get_database_backend(),
            "SELECT section, COUNT(*) AS chunks, MAX(chunk) AS last, SUM(entries) AS entries \
             FROM precheck_chunks WHERE precheck_id = $1 GROUP BY section",
            vec![id.into()],
        ))
        .await?;
    let mut found: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for row in stored {
        found.insert(
            row.try_get("", "section")?,
            (
                row.try_get("", "chunks")?,
                row.try_get::<Option<i32>>("", "last")?
                    .map_or(-1, i64::from),
                row.try_get::<Option<i64>>("", "entries")?.unwrap_or(0),
            ),
        );
    }
    let lengths = planning["sections"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (section, length) in &lengths {
        let length = length.as_u64().unwrap_or(0) as i64;
        let chunks = (length + CHUNK as i64 - 1) / CHUNK as i64;
        let expected = (chunks, chunks - 1, length);
        let got = found.remove(section).unwrap_or((0, -1, 0));
        if got != expected {
            return Err(DbErr::Custom(format!(
                "the report's {section} section is stored as {got:?} (chunks, last chunk, entries), expected {expected:?}"
            )));
        }
    }
    if let Some(section) = found.keys().next() {
        return Err(DbErr::Custom(format!(
            "the report has chunks of a section its planning does not name: {section}"
        )));
    }
    Prechecks::update_many()
        .col_expr(
            precheck::Column::Planning,
            Expr::value(planning.to_string()),
        )
        .col_expr(
            precheck::Column::SnapshotSyncedAt,
            Expr::value(snapshot_synced_at),
        )
        .col_expr(precheck::Column::CompletedAt, Expr::value(Utc::now()))
        .filter(precheck::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Chunks written by one statement.
const ROWS_PER_INSERT: usize = 50;

/// A chunk as stored: `[[key, value], ...]`, as `serde_json` writes a list of pairs.
pub fn chunk_text(entries: &[EncodedEntry]) -> String {
    let size: usize = entries
        .iter()
        .map(|e| e.key.len() + e.value.len() + 8)
        .sum();
    let mut text = String::with_capacity(size + 2);
    text.push('[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push('[');
        // A JSON string's text (its `Display`), which cannot fail.
        text.push_str(&Value::from(e.key.as_str()).to_string());
        text.push(',');
        text.push_str(&e.value);
        text.push(']');
    }
    text.push(']');
    text
}

/// The completed pre-check of the workspace made just before `id`.
pub async fn previous(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<precheck::Model>, DbErr> {
    Prechecks::find()
        .filter(precheck::Column::WorkspaceId.eq(workspace_id))
        .filter(precheck::Column::Id.lt(id))
        .filter(precheck::Column::CompletedAt.is_not_null())
        .order_by_desc(precheck::Column::Id)
        .one(db)
        .await
}

/// Up to `limit + 1` entries of a section from position `offset`.
pub async fn entries(
    db: &impl ConnectionTrait,
    id: Uuid,
    section: Section,
    offset: u64,
    limit: u64,
) -> Result<Vec<Entry>, DbErr> {
    let first_chunk = offset / CHUNK as u64;
    let last_chunk = (offset + limit) / CHUNK as u64;
    let chunks = Chunks::find()
        .filter(precheck_chunk::Column::PrecheckId.eq(id))
        .filter(precheck_chunk::Column::Section.eq(section.as_str()))
        .filter(precheck_chunk::Column::Chunk.between(first_chunk as i32, last_chunk as i32))
        .order_by_asc(precheck_chunk::Column::Chunk)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for chunk in chunks {
        for (i, entry) in decode(&chunk)?.into_iter().enumerate() {
            let position = chunk.first_entry as u64 + i as u64;
            if position >= offset && position <= offset + limit {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// Every entry of a section, in order.
pub async fn all_entries(
    db: &impl ConnectionTrait,
    id: Uuid,
    section: Section,
) -> Result<Vec<Entry>, DbErr> {
    let chunks = Chunks::find()
        .filter(precheck_chunk::Column::PrecheckId.eq(id))
        .filter(precheck_chunk::Column::Section.eq(section.as_str()))
        .order_by_asc(precheck_chunk::Column::Chunk)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(decode(&chunk)?);
    }
    Ok(out)
}

/// Every entry of a section, in order, as JSON text (as [`EncodedReport`] holds it).
pub async fn all_entries_encoded(
    db: &(impl ConnectionTrait + StreamTrait),
    id: Uuid,
    section: Section,
) -> Result<Vec<EncodedEntry>, DbErr> {
    let mut chunks = Chunks::find()
        .filter(precheck_chunk::Column::PrecheckId.eq(id))
        .filter(precheck_chunk::Column::Section.eq(section.as_str()))
        .order_by_asc(precheck_chunk::Column::Chunk)
        .stream(db)
        .await?;
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let pairs: Vec<(String, Box<serde_json::value::RawValue>)> =
            serde_json::from_str(&chunk.data)
                .map_err(|e| DbErr::Custom(format!("a report chunk does not parse: {e}")))?;
        out.extend(pairs.into_iter().map(|(key, value)| EncodedEntry {
            key,
            value: value.get().to_owned(),
        }));
    }
    Ok(out)
}

fn decode(chunk: &precheck_chunk::Model) -> Result<Vec<Entry>, DbErr> {
    let pairs: Vec<(String, Value)> = serde_json::from_str(&chunk.data)
        .map_err(|e| DbErr::Custom(format!("a report chunk does not parse: {e}")))?;
    Ok(pairs
        .into_iter()
        .map(|(key, value)| Entry { key, value })
        .collect())
}

/// A workspace's reports and login answers go with it.
pub async fn delete_for_workspace(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> Result<(), DbErr> {
    let ids = Query::select()
        .column(precheck::Column::Id)
        .from(Prechecks)
        .and_where(precheck::Column::WorkspaceId.eq(workspace_id))
        .to_owned();
    Chunks::delete_many()
        .filter(precheck_chunk::Column::PrecheckId.in_subquery(ids))
        .exec(db)
        .await?;
    Prechecks::delete_many()
        .filter(precheck::Column::WorkspaceId.eq(workspace_id))
        .exec(db)
        .await?;
    login_check::Entity::delete_many()
        .filter(login_check::Column::WorkspaceId.eq(workspace_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Positions of the selection's nodes that the workspace's live snapshot lacks.
pub async fn missing_nodes(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    nodes: &[crate::domain::plan::Node],
) -> Result<Vec<usize>, DbErr> {
    use crate::domain::plan::Node;
    let mut present = HashSet::new();
    for (table, kind) in [("source_groups", "group"), ("source_users", "user")] {
        let ids: Vec<&str> = nodes
            .iter()
            .filter_map(|n| match (n, kind) {
                (Node::Group(id), "group") | (Node::User(id), "user") => Some(id.as_str()),
                _ => None,
            })
            .collect();
        for batch in ids.chunks(500) {
            let query = Query::select()
                .column(Alias::new("source_id"))
                .from(Alias::new(table))
                .and_where(Expr::col(Alias::new("workspace_id")).eq(workspace_id))
                .and_where(Expr::col(Alias::new("removed_at")).is_null())
                .and_where(Expr::col(Alias::new("source_id")).is_in(batch.iter().copied()))
                .to_owned();
            for row in db.query_all(&query).await? {
                present.insert((kind, row.try_get::<String>("", "source_id")?));
            }
        }
    }
    Ok(nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| match n {
            Node::Group(id) => !present.contains(&("group", id.clone())),
            Node::User(id) => !present.contains(&("user", id.clone())),
        })
        .map(|(i, _)| i)
        .collect())
}
