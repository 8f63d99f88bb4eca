use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What the agents tell of their machines beyond the reports: the client version
/// the agent reports at check-in (the source learns it only at its next sync),
/// and since when a pending or migrating machine is flagged as not seen (set
/// once per absence, so `machine.not_seen` is told once; cleared when it checks in).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(SourceMachines::Table)
                    .add_column(text_null(SourceMachines::ReportedClientVersion))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SourceMachines::Table)
                    .add_column(timestamp_with_time_zone_null(SourceMachines::NotSeenAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SourceMachines::Table)
                    .drop_column(SourceMachines::NotSeenAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SourceMachines::Table)
                    .drop_column(SourceMachines::ReportedClientVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SourceMachines {
    Table,
    ReportedClientVersion,
    NotSeenAt,
}
