//! Connecting to the database (SQLite or PostgreSQL) and applying migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::DatabaseConfig;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("setting `database.url` (MP_DATABASE__URL): expected sqlite://… or postgres://…, got scheme `{0}`")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbSetupError> {
    let scheme = config.url.split(':').next().unwrap_or_default();
    if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
        return Err(DbSetupError::UnsupportedUrl(scheme.to_string()));
    }
    let busy_timeout = Duration::from_millis(config.busy_timeout_ms);
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
        });
    // Turning a new SQLite file to WAL takes a lock that `busy_timeout` does not wait
    // for, so processes opening a new file together may be told "database is locked".
    let mut attempts = 0;
    loop {
        attempts += 1;
        match Database::connect(options.clone()).await {
            Err(e) if attempts < 10 && is_busy(&e) => tokio::time::sleep(Duration::from_millis(20 * attempts)).await,
            other => return Ok(other?),
        }
    }
}

fn is_busy(e: &DbErr) -> bool {
    e.to_string().contains("database is locked")
}

/// Migrates on a pool of its own, then opens the pool to serve from. Pooled
/// SQLite connections that lived through a schema change were seen to keep the
/// old schema (an upsert then missed an index the migration had just created).
pub async fn connect_migrated(config: &DatabaseConfig) -> Result<DatabaseConnection, DbSetupError> {
    let migrating = connect(config).await?;
    migrate(&migrating).await?;
    migrating.close().await?;
    connect(config).await
}

/// Applies pending migrations. On PostgreSQL, instances starting together take
/// turns under an advisory lock. On SQLite each migration is one transaction and
/// writers queue, so a process that lost a race sees what the winner applied and
/// carries on from there.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
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
    let mut holder = db.get_postgres_connection_pool().acquire().await.map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    let lock = |sql: &'static str| sea_orm::sqlx::query(sql).bind(MIGRATION_LOCK);
    lock("SELECT pg_advisory_lock($1)").execute(&mut *holder).await.map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    let result = Migrator::up(db, None).await;
    let unlocked = lock("SELECT pg_advisory_unlock($1)").execute(&mut *holder).await;
    result?;
    unlocked.map(drop).map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))
}

/// An arbitrary constant naming "schema migration" among PostgreSQL advisory locks.
const MIGRATION_LOCK: i64 = 0x6d70_6d69_6772_6174;

/// True when `err` is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// A page position: the last id seen. Ids are UUIDv7, so id order is creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub after: Option<uuid::Uuid>,
}

pub mod idempotency;
pub mod prechecks;
pub mod workspaces;
