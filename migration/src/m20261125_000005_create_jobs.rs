use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(uuid(Jobs::Id).primary_key())
                    .col(string(Jobs::Kind))
                    .col(text(Jobs::Payload))
                    .col(string(Jobs::Status))
                    .col(string_null(Jobs::UniqueKey))
                    .col(integer(Jobs::Attempt))
                    .col(integer(Jobs::MaxAttempts))
                    .col(big_integer(Jobs::RunAtMs))
                    .col(big_integer_null(Jobs::LockedUntilMs))
                    .col(string_null(Jobs::LockedBy))
                    .col(text_null(Jobs::LastError))
                    .col(text_null(Jobs::Progress))
                    .col(text_null(Jobs::Result))
                    .col(uuid_null(Jobs::TenantId))
                    .col(uuid_null(Jobs::WorkspaceId))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        // What a claim scans: the eligible jobs in run order.
        manager
            .create_index(
                Index::create()
                    .name("jobs_status_run_at")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::RunAtMs)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // A partial unique index (both backends have them): one active job per key.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS jobs_active_unique_key ON jobs (unique_key) \
                 WHERE status IN ('queued', 'running')",
            )
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    Status,
    UniqueKey,
    Attempt,
    MaxAttempts,
    RunAtMs,
    LockedUntilMs,
    LockedBy,
    LastError,
    Progress,
    Result,
    TenantId,
    WorkspaceId,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}
