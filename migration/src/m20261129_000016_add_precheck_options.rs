use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A pre-check's request options (initial-backup bandwidth and threshold) as
/// JSON; earlier pre-checks have none and were computed with the defaults.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Prechecks::Table)
                    .add_column(text_null(Prechecks::Options))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Prechecks::Table)
                    .drop_column(Prechecks::Options)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Prechecks {
    Table,
    Options,
}
