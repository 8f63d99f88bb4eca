use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyRecords::Table)
                    .if_not_exists()
                    .col(uuid(IdempotencyRecords::TenantId))
                    .col(string(IdempotencyRecords::Operation))
                    .col(string(IdempotencyRecords::Key))
                    .col(string(IdempotencyRecords::RequestHash))
                    .col(integer(IdempotencyRecords::StatusCode))
                    .col(string_null(IdempotencyRecords::Location))
                    .col(text(IdempotencyRecords::ResponseBody))
                    .col(timestamp_with_time_zone(IdempotencyRecords::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyRecords::TenantId)
                            .col(IdempotencyRecords::Operation)
                            .col(IdempotencyRecords::Key),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyRecords::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    TenantId,
    Operation,
    Key,
    RequestHash,
    StatusCode,
    Location,
    ResponseBody,
    CreatedAt,
}
