use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Migrations (waves), their items (a tenant, admin or backup user each), the
/// source -> target id mapping kept across waves, what the agents are given per
/// released machine, and the operations log.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Migrations::Table)
                    .if_not_exists()
                    .col(uuid(Migrations::Id).primary_key())
                    .col(uuid(Migrations::WorkspaceId))
                    .col(uuid(Migrations::TenantId))
                    .col(uuid_null(Migrations::PrecheckId))
                    .col(text(Migrations::Selection))
                    .col(text(Migrations::Options))
                    .col(string(Migrations::Status))
                    .col(text_null(Migrations::Replan))
                    .col(timestamp_with_time_zone_null(Migrations::SnapshotSyncedAt))
                    .col(uuid(Migrations::JobId))
                    .col(text_null(Migrations::Error))
                    .col(timestamp_with_time_zone(Migrations::CreatedAt))
                    .col(timestamp_with_time_zone(Migrations::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Migrations::CompletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("migrations_workspace")
                    .table(Migrations::Table)
                    .col(Migrations::WorkspaceId)
                    .col(Migrations::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MigrationItems::Table)
                    .if_not_exists()
                    .col(uuid(MigrationItems::MigrationId))
                    .col(string(MigrationItems::Key))
                    .col(uuid(MigrationItems::WorkspaceId))
                    .col(string(MigrationItems::Kind))
                    .col(integer(MigrationItems::Seq))
                    .col(string(MigrationItems::SourceId))
                    .col(string_null(MigrationItems::ParentKey))
                    .col(string(MigrationItems::State))
                    .col(string_null(MigrationItems::Step))
                    .col(text(MigrationItems::Planned))
                    .col(uuid_null(MigrationItems::TargetId))
                    .col(uuid_null(MigrationItems::JobId))
                    .col(integer(MigrationItems::Attempts).default(0))
                    .col(string_null(MigrationItems::ErrorCode))
                    .col(text_null(MigrationItems::ErrorMessage))
                    .col(timestamp_with_time_zone(MigrationItems::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(MigrationItems::MigrationId)
                            .col(MigrationItems::Key),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "migration_items_state",
                vec![
                    MigrationItems::MigrationId,
                    MigrationItems::State,
                    MigrationItems::Seq,
                ],
            ),
            (
                "migration_items_parent",
                vec![MigrationItems::MigrationId, MigrationItems::ParentKey],
            ),
            // Listing items in plan order without a state filter.
            (
                "migration_items_seq",
                vec![MigrationItems::MigrationId, MigrationItems::Seq],
            ),
            ("migration_items_job", vec![MigrationItems::JobId]),
        ] {
            let mut index = Index::create()
                .name(name)
                .table(MigrationItems::Table)
                .if_not_exists()
                .to_owned();
            for col in cols {
                index.col(col);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(TargetMappings::Table)
                    .if_not_exists()
                    .col(uuid(TargetMappings::WorkspaceId))
                    .col(string(TargetMappings::Key))
                    .col(uuid(TargetMappings::TargetId))
                    .col(uuid(TargetMappings::MigrationId))
                    .col(timestamp_with_time_zone(TargetMappings::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(TargetMappings::WorkspaceId)
                            .col(TargetMappings::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MachineAssignments::Table)
                    .if_not_exists()
                    .col(uuid(MachineAssignments::WorkspaceId))
                    .col(string(MachineAssignments::MachineId))
                    .col(uuid(MachineAssignments::MigrationId))
                    .col(string(MachineAssignments::UserId))
                    .col(uuid(MachineAssignments::TargetUserId))
                    .col(uuid(MachineAssignments::TargetTenantId))
                    .col(text(MachineAssignments::Plans))
                    .col(timestamp_with_time_zone(MachineAssignments::ReleasedAt))
                    .primary_key(
                        Index::create()
                            .col(MachineAssignments::WorkspaceId)
                            .col(MachineAssignments::MachineId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(uuid(Events::Id).primary_key())
                    .col(uuid(Events::WorkspaceId))
                    .col(timestamp_with_time_zone(Events::At))
                    .col(string(Events::Actor))
                    .col(string(Events::SubjectKind))
                    .col(string(Events::SubjectId))
                    .col(uuid_null(Events::MigrationId))
                    .col(string(Events::Kind))
                    .col(text(Events::Message))
                    .col(text_null(Events::Data))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_workspace")
                    .table(Events::Table)
                    .col(Events::WorkspaceId)
                    .col(Events::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The log is read by workspace, and filtered by subject, migration or kind, in id order.
        for (name, filter) in [
            ("events_subject", Events::SubjectId),
            ("events_migration", Events::MigrationId),
            ("events_kind", Events::Kind),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Events::Table)
                        .col(Events::WorkspaceId)
                        .col(filter)
                        .col(Events::Id)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MachineAssignments::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TargetMappings::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MigrationItems::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Migrations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Migrations {
    Table,
    Id,
    WorkspaceId,
    TenantId,
    PrecheckId,
    Selection,
    Options,
    Status,
    Replan,
    SnapshotSyncedAt,
    JobId,
    Error,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MigrationItems {
    Table,
    MigrationId,
    Key,
    WorkspaceId,
    Kind,
    Seq,
    SourceId,
    ParentKey,
    State,
    Step,
    Planned,
    TargetId,
    JobId,
    Attempts,
    ErrorCode,
    ErrorMessage,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TargetMappings {
    Table,
    WorkspaceId,
    Key,
    TargetId,
    MigrationId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MachineAssignments {
    Table,
    WorkspaceId,
    MachineId,
    MigrationId,
    UserId,
    TargetUserId,
    TargetTenantId,
    Plans,
    ReleasedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    Id,
    WorkspaceId,
    At,
    Actor,
    SubjectKind,
    SubjectId,
    MigrationId,
    Kind,
    Message,
    Data,
}
