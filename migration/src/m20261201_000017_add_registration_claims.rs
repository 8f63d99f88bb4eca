use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// At most one live registration token per machine: the cloud's id of the token a
/// machine holds (to revoke it when it is renewed, and to tell ours from leftovers),
/// and a claim per cloud user while a token is made for one of its machines, so
/// that one request at a time makes tokens of that user's scope and a token whose
/// answer was lost can be told apart in the tenant's listing.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MachineAssignments::Table)
                    .add_column(text_null(MachineAssignments::RegistrationTokenId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("machine_assignments_target_user")
                    .table(MachineAssignments::Table)
                    .col(MachineAssignments::TargetUserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RegistrationClaims::Table)
                    .col(uuid(RegistrationClaims::WorkspaceId))
                    .col(uuid(RegistrationClaims::TargetUserId))
                    .col(uuid(RegistrationClaims::Claim))
                    .col(timestamp_with_time_zone(RegistrationClaims::ClaimedAt))
                    .primary_key(
                        Index::create()
                            .col(RegistrationClaims::WorkspaceId)
                            .col(RegistrationClaims::TargetUserId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RegistrationClaims::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("machine_assignments_target_user")
                    .table(MachineAssignments::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MachineAssignments::Table)
                    .drop_column(MachineAssignments::RegistrationTokenId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MachineAssignments {
    Table,
    TargetUserId,
    RegistrationTokenId,
}

#[derive(DeriveIden)]
enum RegistrationClaims {
    Table,
    WorkspaceId,
    TargetUserId,
    Claim,
    ClaimedAt,
}
