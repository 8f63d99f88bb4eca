use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// PostgreSQL compresses a pre-check's report chunks (a large install base's
/// report is some 90 MB of JSON) with lz4 where the server has it: pglz, its
/// default, took most of the time of storing a report. SQLite stores them as
/// they are.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_compression(manager, "lz4").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_compression(manager, "pglz").await
    }
}

async fn set_compression(manager: &SchemaManager<'_>, method: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if manager.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    // A server built without lz4 does not list it: it keeps pglz.
    let offered = db
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT 1 AS offered FROM pg_settings WHERE name = 'default_toast_compression' AND $1 = ANY(enumvals)",
            [method.into()],
        ))
        .await?
        .is_some();
    if offered {
        db.execute_unprepared(&format!(
            "ALTER TABLE precheck_chunks ALTER COLUMN data SET COMPRESSION {method}"
        ))
        .await?;
    }
    Ok(())
}
