use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The copy of a workspace's source install base, and the staging area a sync
/// fills before it replaces the copy in one transaction.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, parent) in [
            (Snapshot::SourceGroups, Snapshot::ParentSourceId),
            (Snapshot::SourceUsers, Snapshot::ParentSourceId),
            (Snapshot::SourceMachines, Snapshot::ParentSourceId),
            (Snapshot::SourcePlans, Snapshot::ParentSourceId),
        ] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .if_not_exists()
                        .col(uuid(Snapshot::WorkspaceId))
                        .col(string(Snapshot::SourceId))
                        // The group's parent, the user's group, the machine's user, the plan's machine.
                        .col(string_null(parent))
                        .col(text(Snapshot::Data))
                        .col(string(Snapshot::MigrationState).default("idle"))
                        .col(timestamp_with_time_zone_null(Snapshot::RemovedAt))
                        .col(timestamp_with_time_zone(Snapshot::SyncedAt))
                        .primary_key(
                            Index::create()
                                .col(Snapshot::WorkspaceId)
                                .col(Snapshot::SourceId),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Snapshot::SyncStaging)
                    .if_not_exists()
                    .col(uuid(Snapshot::JobId))
                    .col(string(Snapshot::Kind))
                    .col(string(Snapshot::SourceId))
                    .col(string_null(Snapshot::ParentSourceId))
                    .col(text(Snapshot::Data))
                    .primary_key(
                        Index::create()
                            .col(Snapshot::JobId)
                            .col(Snapshot::Kind)
                            .col(Snapshot::SourceId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Snapshot::SyncStaging,
            Snapshot::SourcePlans,
            Snapshot::SourceMachines,
            Snapshot::SourceUsers,
            Snapshot::SourceGroups,
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Snapshot {
    SourceGroups,
    SourceUsers,
    SourceMachines,
    SourcePlans,
    SyncStaging,
    WorkspaceId,
    SourceId,
    ParentSourceId,
    Data,
    MigrationState,
    RemovedAt,
    SyncedAt,
    JobId,
    Kind,
}
