use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Client logs agents upload, gzip-compressed, listed per machine.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MachineLogs::Table)
                    .if_not_exists()
                    .col(uuid(MachineLogs::Id).primary_key())
                    .col(uuid(MachineLogs::WorkspaceId))
                    .col(string(MachineLogs::MachineId))
                    .col(timestamp_with_time_zone(MachineLogs::UploadedAt))
                    .col(big_integer(MachineLogs::SizeBytes))
                    .col(blob(MachineLogs::Data))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("machine_logs_machine")
                    .table(MachineLogs::Table)
                    .col(MachineLogs::WorkspaceId)
                    .col(MachineLogs::MachineId)
                    .col(MachineLogs::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MachineLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MachineLogs {
    Table,
    Id,
    WorkspaceId,
    MachineId,
    UploadedAt,
    SizeBytes,
    Data,
}
