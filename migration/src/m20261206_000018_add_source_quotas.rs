use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [Snapshot; 3] = [
    Snapshot::SourceGroups,
    Snapshot::SourceUsers,
    Snapshot::SyncStaging,
];

/// The storage quota BackupAgent gives a group or a user, in bytes (NULL: none):
/// BIGINT, so that every byte count round-trips exactly on both databases.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(
                            ColumnDef::new(Snapshot::StorageQuotaBytes)
                                .big_integer()
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Snapshot::StorageQuotaBytes)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Snapshot {
    SourceGroups,
    SourceUsers,
    SyncStaging,
    StorageQuotaBytes,
}
