//! Connecting to the database (SQLite or PostgreSQL) and upgrading its schema
//! (the `migration` crate's schema migrations; migration waves are `migrations`).

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    QueryResult, Statement, Value,
};

use crate::config::DatabaseConfig;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error(
        "setting `database.url` (MP_DATABASE__URL): expected sqlite://… or postgres://…, got scheme `{0}`"
    )]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbSetupError> {
    open(config, false, 1).await
}

/// A pool over `config`'s database that keeps `kept` connections open; `lazy`: its
/// connections are opened when first needed, not one at once.
async fn open(
    config: &DatabaseConfig,
    lazy: bool,
    kept: u32,
) -> Result<DatabaseConnection, DbSetupError> {
    let scheme = config.url.split(':').next().unwrap_or_default();
    if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
        return Err(DbSetupError::UnsupportedUrl(scheme.to_string()));
    }
    let busy_timeout = Duration::from_millis(config.busy_timeout_ms);
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        // Connections kept open: the first requests after a quiet spell do not spend
        // their time opening them (see `KEPT_OPEN`).
        .min_connections(kept)
        // A connection is pinged before it is handed out only after 30 s idle (a server or
        // a firewall may have dropped it), not on every acquire: the ping was a round trip
        // more on every request, and a waiter that timed out during it dropped the
        // connection, so that under a herd the pool kept opening connections it then lost.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false)
        .connect_lazy(lazy)
        .map_sqlx_sqlite_opts(move |o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
                // No memory map: each pooled connection maps the file on its own (up to
                // the map's size each), and every page a map touches counts in the
                // process's resident set: at `large` one `serve` held 1.4 GiB of mapped
                // file pages beside 250 MiB of its own, 2.6 GiB at its peak. Pages are
                // read through the OS page cache instead, with SQLite's own cache of
                // 16 MiB per connection.
                .pragma("mmap_size", "0")
                .pragma("cache_size", "-16384")
        });
    // Turning a new SQLite file to WAL takes a lock that `busy_timeout` does not wait
    // for, so processes opening a new file together may be told "database is locked".
    let mut attempts = 0;
    loop {
        attempts += 1;
        match Database::connect(options.clone()).await {
            Err(e) if attempts < 10 && is_busy(&e) => {
                tokio::time::sleep(Duration::from_millis(20 * attempts)).await
            }
            other => return Ok(other?),
        }
    }
}

/// Connections the serving pool keeps open, idle or not: on PostgreSQL up to
/// [`KEPT_OPEN`], and never more than half the pool (so that opening them at start
/// leaves connections for the first requests); one on SQLite, whose connections
/// open in well under a millisecond and each hold a page cache of their own.
fn kept_open(config: &DatabaseConfig) -> u32 {
    let postgres = config.url.starts_with("postgres");
    if postgres {
        (config.max_connections / 2).clamp(1, KEPT_OPEN)
    } else {
        1
    }
}

/// Opening a PostgreSQL connection over TLS took 90 ms on loopback here (sqlx with
/// rustls; 5 ms without TLS, 7 ms for `psql` with it), and a pool opens one whenever
/// none is idle, which a handler's second query can find as the first's connection
/// goes back to the pool in a task of its own: the root's rollup, two queries, took
/// 150-180 ms instead of 50 the first time, and again now and then.
const KEPT_OPEN: u32 = 4;

/// Opens the pool's kept connections now, at once (see [`KEPT_OPEN`]), rather
/// than in the first requests. PostgreSQL only ([`kept_open`]).
pub async fn warm_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let pool = db.get_postgres_connection_pool();
    let held = futures_util::future::try_join_all(
        (0..pool.options().get_min_connections()).map(|_| pool.acquire()),
    )
    .await
    .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    drop(held);
    Ok(())
}

fn is_busy(e: &DbErr) -> bool {
    e.to_string().contains("database is locked")
}

/// Upgrades the schema on a pool of its own, then opens the pool to serve from. Pooled
/// SQLite connections that lived through a schema change were seen to keep the
/// old schema (an upsert then missed an index the migration had just created).
/// Start-up waits for its connections at least [`STARTUP_ACQUIRE_TIMEOUT`]; the pool
/// that serves opens its connections as requests need them, within
/// `database.acquire_timeout_ms` (which may be short: a request that waits longer is
/// told to come back), the upgrade having shown the database reachable.
pub async fn connect_upgraded(config: &DatabaseConfig) -> Result<DatabaseConnection, DbSetupError> {
    // On PostgreSQL the upgrade holds one connection for its lock and migrates on another.
    let startup = DatabaseConfig {
        max_connections: config.max_connections.max(2),
        acquire_timeout_ms: config
            .acquire_timeout_ms
            .max(STARTUP_ACQUIRE_TIMEOUT.as_millis() as u64),
        ..config.clone()
    };
    let migrating = connect(&startup).await?;
    upgrade_schema(&migrating).await?;
    migrating.close().await?;
    open(config, true, kept_open(config)).await
}

const STARTUP_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies pending schema migrations. On PostgreSQL, instances starting together take
/// turns under an advisory lock. On SQLite each migration is one transaction and
/// writers queue, so a process that lost a race sees what the winner applied and
/// carries on from there.
pub async fn upgrade_schema(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Migrator::up(db, None).await {
                Ok(()) => return Ok(()),
                Err(_) if Migrator::get_pending_migrations(db).await?.is_empty() => return Ok(()),
                Err(e) if attempts >= 5 => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50 * attempts)).await,
            }
        }
    }
    // The lock is held by one pooled connection while the migrator uses others.
    let mut holder = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    let lock = |sql: &'static str| sea_orm::sqlx::query(sql).bind(MIGRATION_LOCK);
    lock("SELECT pg_advisory_lock($1)")
        .execute(&mut *holder)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    let result = Migrator::up(db, None).await;
    let unlocked = lock("SELECT pg_advisory_unlock($1)")
        .execute(&mut *holder)
        .await;
    result?;
    unlocked
        .map(drop)
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))
}

/// An arbitrary constant naming "schema migration" among PostgreSQL advisory locks.
const MIGRATION_LOCK: i64 = 0x6d70_6d69_6772_6174;

/// True when `err` is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// `text` for a `LIKE … ESCAPE '\\'` pattern: its wildcards and backslashes match themselves.
pub fn like_literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if matches!(c, '%' | '_' | '\\') {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A page position: the last id seen. Ids are UUIDv7, so id order is creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub after: Option<uuid::Uuid>,
}

impl Page {
    /// Up to `limit + 1` rows of `query` after the cursor, by `id` (UUIDv7:
    /// creation order); the one over the limit tells that there are more.
    pub async fn of<E: sea_orm::EntityTrait>(
        self,
        db: &impl ConnectionTrait,
        query: sea_orm::Select<E>,
        id: E::Column,
    ) -> Result<Vec<E::Model>, DbErr> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
        let query = match self.after {
            Some(after) => query.filter(id.gt(after)),
            None => query,
        };
        query.order_by_asc(id).limit(self.limit + 1).all(db).await
    }
}

/// A raw statement written with `$n` placeholders: PostgreSQL takes them as
/// they are; SQLite takes bare `?` when they run 1, 2, 3… in order (a bulk
/// insert), else the same numbers as `?n`. (SQLite finds a numbered parameter's
/// name by a linear scan, so binding thousands of them is quadratic: it made the
/// sync of `large` three times slower.)
pub fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DatabaseBackend::Postgres => sql.to_string(),
        _ if in_order(sql) => strip_numbers(sql),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Each `$n` in `sql`, in order.
fn placeholders(sql: &str) -> impl Iterator<Item = (usize, usize, Option<usize>)> + '_ {
    sql.match_indices('$').map(move |(at, _)| {
        let digits = sql[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        (at, digits, sql[at + 1..at + 1 + digits].parse().ok())
    })
}

fn in_order(sql: &str) -> bool {
    placeholders(sql)
        .enumerate()
        .all(|(i, (_, _, n))| n == Some(i + 1))
}

fn strip_numbers(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut from = 0;
    for (at, digits, _) in placeholders(sql) {
        out.push_str(&sql[from..at]);
        out.push('?');
        from = at + 1 + digits;
    }
    out.push_str(&sql[from..]);
    out
}

/// Runs a raw statement (see [`statement`]).
pub async fn execute(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<(), DbErr> {
    db.execute_raw(statement(db.get_database_backend(), sql, values))
        .await
        .map(drop)
}

/// The rows of a raw query (see [`statement`]).
pub async fn query(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(statement(db.get_database_backend(), sql, values))
        .await
}

/// PostgreSQL: one `COPY table (columns) FROM STDIN`, its rows sent in parts,
/// each row a list of fields (`None` is NULL) in COPY's text format. Many times
/// faster than bound INSERTs (no parameters to bind, nothing to parse per row);
/// one statement for all the parts, because a COPY per part stalled some 40 ms
/// at its end each time: sqlx leaves Nagle's algorithm on, and the end of a COPY
/// is a small write right after a large one. It holds a pooled connection until
/// [`CopyIn::finish`] or [`CopyIn::abort`].
pub struct CopyIn(
    sea_orm::sqlx::postgres::PgCopyIn<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>>,
);

fn sqlx_error(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()))
}

impl CopyIn {
    pub async fn start(db: &DatabaseConnection, statement: &str) -> Result<Self, DbErr> {
        use sea_orm::sqlx::postgres::PgPoolCopyExt;
        db.get_postgres_connection_pool()
            .copy_in_raw(statement)
            .await
            .map(Self)
            .map_err(sqlx_error)
    }

    /// Sends `rows`; after a failure the COPY is only good for [`CopyIn::abort`].
    pub async fn send(
        &mut self,
        rows: impl IntoIterator<Item = Vec<Option<String>>>,
    ) -> Result<(), DbErr> {
        let mut text = String::new();
        for row in rows {
            for (i, field) in row.iter().enumerate() {
                if i > 0 {
                    text.push('\t');
                }
                copy_field(&mut text, field.as_deref());
            }
            text.push('\n');
        }
        self.0
            .send(text.as_bytes())
            .await
            .map(drop)
            .map_err(sqlx_error)
    }

    /// Ends the COPY: its rows are written. The number of rows.
    pub async fn finish(self) -> Result<u64, DbErr> {
        self.0.finish().await.map_err(sqlx_error)
    }

    /// Gives the COPY up, writing none of its rows. Best effort: a COPY left open
    /// would spoil its connection for the next user, and sqlx fails one it drops.
    pub async fn abort(self, why: &str) {
        let _ = self.0.abort(why).await;
    }
}

/// A field of COPY's text format: `\N` for NULL, the four characters that
/// delimit fields and rows escaped. (U+0000 cannot be sent; callers keep it out.)
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_delimits_and_mark_null() {
        let field = |v: Option<&str>| {
            let mut out = String::new();
            copy_field(&mut out, v);
            out
        };
        assert_eq!(field(None), "\\N");
        assert_eq!(field(Some("")), "");
        assert_eq!(field(Some("\\N")), "\\\\N");
        assert_eq!(field(Some("a\tb\nc\rd\\e")), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(
            field(Some("{\"x\":\"\\u0000 é\"}")),
            "{\"x\":\"\\\\u0000 é\"}"
        );
    }

    #[test]
    fn sqlite_gets_bare_placeholders_only_when_they_run_in_order() {
        let sql = |s: &str| statement(DatabaseBackend::Sqlite, s, vec![]).sql;
        assert_eq!(
            sql("INSERT INTO t VALUES ($1, $2), ($3, $4)"),
            "INSERT INTO t VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            sql("SELECT $1 WHERE a = $2 OR b = $1"),
            "SELECT ?1 WHERE a = ?2 OR b = ?1"
        );
        assert_eq!(sql("SELECT $2, $1"), "SELECT ?2, ?1");
        assert_eq!(sql("SELECT 1"), "SELECT 1");
        assert_eq!(
            statement(DatabaseBackend::Postgres, "SELECT $1, $2", vec![]).sql,
            "SELECT $1, $2"
        );
    }
}

pub mod agent_reports;
pub mod agents;
pub mod check_ins;
pub mod events;
pub mod idempotency;
pub mod migrations;
pub mod prechecks;
pub mod registration;
pub mod scoped;
pub mod snapshot;
pub mod snapshot_tree;
pub mod subscriptions;
pub mod webhooks;
pub mod workspaces;
