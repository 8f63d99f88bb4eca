use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Agents: the workspace's enrollment secret (hashed), one enrolled agent per
/// machine with its token (hashed), and per machine what its agent reported:
/// phase, the last report's sequence number, the error, when it last checked in.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Workspaces::Table)
                    .add_column(string_null(Workspaces::EnrollmentSecretHash))
                    .to_owned(),
            )
            .await?;
        // SQLite alters one column per statement.
        for column in [
            ColumnDef::new(SourceMachines::MigrationPhase)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(SourceMachines::LastReportSeq)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(SourceMachines::ErrorCode)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(SourceMachines::ErrorMessage)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(SourceMachines::StateChangedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(SourceMachines::LastCheckInAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SourceMachines::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("source_machines_state")
                    .table(SourceMachines::Table)
                    .col(SourceMachines::WorkspaceId)
                    .col(SourceMachines::MigrationState)
                    .col(SourceMachines::SourceId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(uuid(Agents::WorkspaceId))
                    .col(string(Agents::MachineId))
                    .col(string(Agents::TokenHash).unique_key())
                    .col(timestamp_with_time_zone(Agents::EnrolledAt))
                    .primary_key(
                        Index::create()
                            .col(Agents::WorkspaceId)
                            .col(Agents::MachineId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Agents::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("source_machines_state")
                    .table(SourceMachines::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            SourceMachines::MigrationPhase,
            SourceMachines::LastReportSeq,
            SourceMachines::ErrorCode,
            SourceMachines::ErrorMessage,
            SourceMachines::StateChangedAt,
            SourceMachines::LastCheckInAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SourceMachines::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Workspaces::Table)
                    .drop_column(Workspaces::EnrollmentSecretHash)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    EnrollmentSecretHash,
}

#[derive(DeriveIden)]
enum SourceMachines {
    Table,
    WorkspaceId,
    SourceId,
    MigrationState,
    MigrationPhase,
    LastReportSeq,
    ErrorCode,
    ErrorMessage,
    StateChangedAt,
    LastCheckInAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    WorkspaceId,
    MachineId,
    TokenHash,
    EnrolledAt,
}
