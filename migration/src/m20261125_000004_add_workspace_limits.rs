use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Requests per second and requests in flight toward each system.
const COLUMNS: [(Workspaces, i32); 4] = [
    (Workspaces::SourceRatePerSec, 50),
    (Workspaces::SourceConcurrency, 8),
    (Workspaces::TargetRatePerSec, 100),
    (Workspaces::TargetConcurrency, 16),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for (column, default) in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Workspaces::Table)
                        .add_column(integer(column).default(default))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (column, _) in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Workspaces::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Workspaces {
    Table,
    SourceRatePerSec,
    SourceConcurrency,
    TargetRatePerSec,
    TargetConcurrency,
}
