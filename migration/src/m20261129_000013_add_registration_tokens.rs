use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The one-time registration token a released machine's agent registers with,
/// sealed (AES-256-GCM), and when it expires.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(MachineAssignments::Table)
                    .add_column(blob_null(MachineAssignments::RegistrationToken))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MachineAssignments::Table)
                    .add_column(timestamp_with_time_zone_null(
                        MachineAssignments::RegistrationExpiresAt,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MachineAssignments::Table)
                    .drop_column(MachineAssignments::RegistrationExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MachineAssignments::Table)
                    .drop_column(MachineAssignments::RegistrationToken)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MachineAssignments {
    Table,
    RegistrationToken,
    RegistrationExpiresAt,
}
