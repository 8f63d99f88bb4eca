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
    Ok(Database::connect(options).await?)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// True when `err` is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

pub mod idempotency;
pub mod workspaces;
