use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SNAPSHOT: [Snapshot; 4] = [
    Snapshot::SourceGroups,
    Snapshot::SourceUsers,
    Snapshot::SourceMachines,
    Snapshot::SourcePlans,
];

/// What browsing and rollups read without parsing `data`: the group an object
/// belongs to, a lowercase search text, a machine's data size and readiness;
/// and when the workspace's snapshot was taken, on our clock and on the source's.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in SNAPSHOT.into_iter().chain([Snapshot::SyncStaging]) {
            // SQLite alters one column per statement.
            for column in [
                ColumnDef::new(Snapshot::GroupSourceId)
                    .string()
                    .null()
                    .to_owned(),
                ColumnDef::new(Snapshot::Search).text().null().to_owned(),
                ColumnDef::new(Snapshot::SizeBytes)
                    .big_integer()
                    .not_null()
                    .default(0)
                    .to_owned(),
                ColumnDef::new(Snapshot::Readiness)
                    .string()
                    .null()
                    .to_owned(),
            ] {
                manager
                    .alter_table(Table::alter().table(table).add_column(column).to_owned())
                    .await?;
            }
        }
        for table in SNAPSHOT {
            for (suffix, column) in [
                ("parent", Snapshot::ParentSourceId),
                ("group", Snapshot::GroupSourceId),
            ] {
                manager
                    .create_index(
                        Index::create()
                            .name(format!("{}_{suffix}_idx", table.to_string()))
                            .table(table)
                            .col(Snapshot::WorkspaceId)
                            .col(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        for column in [Workspaces::SnapshotSyncedAt, Workspaces::SnapshotSourceTime] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Workspaces::Table)
                        .add_column(timestamp_with_time_zone_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Workspaces::SnapshotSyncedAt, Workspaces::SnapshotSourceTime] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Workspaces::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in SNAPSHOT {
            for suffix in ["parent", "group"] {
                manager
                    .drop_index(
                        Index::drop()
                            .name(format!("{}_{suffix}_idx", table.to_string()))
                            .table(table)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        for table in SNAPSHOT.into_iter().chain([Snapshot::SyncStaging]) {
            for column in [
                Snapshot::GroupSourceId,
                Snapshot::Search,
                Snapshot::SizeBytes,
                Snapshot::Readiness,
            ] {
                manager
                    .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                    .await?;
            }
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
    ParentSourceId,
    GroupSourceId,
    Search,
    SizeBytes,
    Readiness,
}

#[derive(DeriveIden, Clone, Copy)]
enum Workspaces {
    Table,
    SnapshotSyncedAt,
    SnapshotSourceTime,
}
