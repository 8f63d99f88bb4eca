use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An agent's last check-in time is kept on its `agents` row, no longer on its
/// machine's: the times written every second (`db::check_ins`) touch a narrow row
/// the check-in's token look-up has just read, instead of a wide one elsewhere. On
/// PostgreSQL each such write was a row moved to another page with an entry added
/// to every index of `source_machines`, and, after each checkpoint, a full page
/// image in the WAL; `agents` pages are left a fifth free so that the writes stay
/// on their page. A machine flagged as not seen is found by a partial index, so
/// that the flush's check for such machines reads nothing when there is none.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(last_check_in_at())
                    .to_owned(),
            )
            .await?;
        for sql in [
            "UPDATE agents SET last_check_in_at = (SELECT m.last_check_in_at FROM source_machines m \
             WHERE m.workspace_id = agents.workspace_id AND m.source_id = agents.machine_id)",
            "ALTER TABLE source_machines DROP COLUMN last_check_in_at",
            "CREATE INDEX IF NOT EXISTS source_machines_not_seen ON source_machines (workspace_id, source_id) \
             WHERE not_seen_at IS NOT NULL",
        ] {
            db.execute_unprepared(sql).await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("ALTER TABLE agents SET (fillfactor = 80)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("ALTER TABLE agents RESET (fillfactor)")
                .await?;
        }
        db.execute_unprepared("DROP INDEX IF EXISTS source_machines_not_seen")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SourceMachines::Table)
                    .add_column(last_check_in_at())
                    .to_owned(),
            )
            .await?;
        for sql in [
            "UPDATE source_machines SET last_check_in_at = (SELECT g.last_check_in_at FROM agents g \
             WHERE g.workspace_id = source_machines.workspace_id AND g.machine_id = source_machines.source_id)",
            "ALTER TABLE agents DROP COLUMN last_check_in_at",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// The column as `source_machines` had it (SQLite: text that reads as a time).
fn last_check_in_at() -> ColumnDef {
    ColumnDef::new(Agents::LastCheckInAt)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    LastCheckInAt,
}

#[derive(DeriveIden)]
enum SourceMachines {
    Table,
}
