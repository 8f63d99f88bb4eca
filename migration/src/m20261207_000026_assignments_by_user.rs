use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `machine_assignments` by cloud user, then workspace and machine, so that a
/// user's machines in a workspace, in machine order, are one range of the index.
/// With the index on `target_user_id` alone, SQLite (no statistics) read them
/// `ORDER BY machine_id` through the primary key instead: every assignment of the
/// workspace, 150,000 at `large`, for each registration job (one per cloud user),
/// which took most of a core through the migration of `large`.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too, as `m20261206_000023_index_snapshot_reads`:
    /// the `DROP INDEX` and the `CREATE INDEX` of the same name on one connection.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(
            manager,
            &[
                Assignments::TargetUserId,
                Assignments::WorkspaceId,
                Assignments::MachineId,
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, &[Assignments::TargetUserId]).await
    }
}

async fn replace(manager: &SchemaManager<'_>, columns: &[Assignments]) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .name("machine_assignments_target_user")
                .table(Assignments::Table)
                .to_owned(),
        )
        .await?;
    let mut index = Index::create();
    index
        .name("machine_assignments_target_user")
        .table(Assignments::Table);
    for column in columns {
        index.col(column.clone());
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden, Clone)]
enum Assignments {
    #[sea_orm(iden = "machine_assignments")]
    Table,
    TargetUserId,
    WorkspaceId,
    MachineId,
}
