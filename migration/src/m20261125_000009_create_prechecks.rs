use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Pre-check reports (kept, so a later one can be compared with them), their
/// sections in chunks of entries, and the target's answers on logins per workspace.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Prechecks::Table)
                    .if_not_exists()
                    .col(uuid(Prechecks::Id).primary_key())
                    .col(uuid(Prechecks::WorkspaceId))
                    .col(uuid(Prechecks::TenantId))
                    .col(uuid(Prechecks::JobId))
                    .col(text(Prechecks::Selection))
                    .col(boolean(Prechecks::CheckLogins))
                    .col(text_null(Prechecks::Planning))
                    .col(timestamp_with_time_zone_null(Prechecks::SnapshotSyncedAt))
                    .col(timestamp_with_time_zone(Prechecks::CreatedAt))
                    .col(timestamp_with_time_zone_null(Prechecks::CompletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("prechecks_workspace_created")
                    .table(Prechecks::Table)
                    .col(Prechecks::WorkspaceId)
                    .col(Prechecks::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PrecheckChunks::Table)
                    .if_not_exists()
                    .col(uuid(PrecheckChunks::PrecheckId))
                    .col(string(PrecheckChunks::Section))
                    .col(integer(PrecheckChunks::Chunk))
                    .col(integer(PrecheckChunks::FirstEntry))
                    .col(integer(PrecheckChunks::Entries))
                    .col(text(PrecheckChunks::Data))
                    .primary_key(
                        Index::create()
                            .col(PrecheckChunks::PrecheckId)
                            .col(PrecheckChunks::Section)
                            .col(PrecheckChunks::Chunk),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginChecks::Table)
                    .if_not_exists()
                    .col(uuid(LoginChecks::WorkspaceId))
                    .col(string(LoginChecks::Login))
                    .col(boolean(LoginChecks::Taken))
                    .col(timestamp_with_time_zone(LoginChecks::CheckedAt))
                    .primary_key(
                        Index::create()
                            .col(LoginChecks::WorkspaceId)
                            .col(LoginChecks::Login),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginChecks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PrecheckChunks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Prechecks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Prechecks {
    Table,
    Id,
    WorkspaceId,
    TenantId,
    JobId,
    Selection,
    CheckLogins,
    Planning,
    SnapshotSyncedAt,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum PrecheckChunks {
    Table,
    PrecheckId,
    Section,
    Chunk,
    FirstEntry,
    Entries,
    Data,
}

#[derive(DeriveIden)]
enum LoginChecks {
    Table,
    WorkspaceId,
    Login,
    Taken,
    CheckedAt,
}
