use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Workspaces::Table)
                    .if_not_exists()
                    .col(uuid(Workspaces::Id).primary_key())
                    .col(uuid(Workspaces::TenantId))
                    .col(string(Workspaces::Name))
                    .col(string(Workspaces::SourceUrl))
                    .col(string(Workspaces::SourceLogin))
                    .col(binary(Workspaces::SourcePassword))
                    .col(string(Workspaces::TargetUrl))
                    .col(string(Workspaces::TargetClientId))
                    .col(binary(Workspaces::TargetClientSecret))
                    .col(integer(Workspaces::Version))
                    .col(timestamp_with_time_zone(Workspaces::CreatedAt))
                    .col(timestamp_with_time_zone(Workspaces::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Listing is always "this tenant's workspaces, in id (creation) order".
        manager
            .create_index(
                Index::create()
                    .name("workspaces_tenant_id_id")
                    .table(Workspaces::Table)
                    .col(Workspaces::TenantId)
                    .col(Workspaces::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Workspaces::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
    TenantId,
    Name,
    SourceUrl,
    SourceLogin,
    SourcePassword,
    TargetUrl,
    TargetClientId,
    TargetClientSecret,
    Version,
    CreatedAt,
    UpdatedAt,
}
