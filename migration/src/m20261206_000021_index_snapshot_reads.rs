use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Indexes shaped for the snapshot's reads, so that the plan is right without
/// statistics (a snapshot is read at once after its first sync, before any):
///
/// - `*_parent_idx` ends with `source_id`: the children of an object come in id
///   order from the index. Without it SQLite read a machine's plans `ORDER BY
///   source_id` by walking the primary key through every plan of the workspace.
/// - `source_groups_parent_idx` and `source_users_parent_idx` hold `removed_at`,
///   `source_machines_group_idx` what a rollup sums: a subtree's rollup walks and
///   sums these indexes, never the rows (which hold the source's JSON).
/// - `*_search_idx` (`search`, `source_id`): a search scans names, not whole rows,
///   in the order a page is listed in, and stops when the page is full.
/// - The `group_source_id` index of groups, users and plans goes: a group's and a
///   user's group is its parent (the parent index serves), and plans have none.
///
/// On PostgreSQL the staging area is unlogged: it is one sync attempt's scratch
/// space, which a retry fills again, so writing it to the WAL buys nothing.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too: run statement by statement on the pool, a
    /// `DROP INDEX` on one connection was seen not to be there for the `CREATE INDEX`
    /// of the same name on the next; and a failure leaves nothing half done.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("source_groups_group_idx", Snapshot::SourceGroups),
            ("source_users_group_idx", Snapshot::SourceUsers),
            ("source_plans_group_idx", Snapshot::SourcePlans),
        ] {
            drop_index(manager, name, table).await?;
        }
        for (name, table, columns) in new_indexes() {
            drop_index(manager, &name, table).await?;
            create(manager, &name, table, &columns).await?;
        }
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sync_staging SET UNLOGGED")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sync_staging SET LOGGED")
                .await?;
        }
        for (name, table, _) in new_indexes() {
            drop_index(manager, &name, table).await?;
        }
        for table in SNAPSHOT {
            for (suffix, column) in [
                ("parent", Snapshot::ParentSourceId),
                ("group", Snapshot::GroupSourceId),
            ] {
                let name = format!("{}_{suffix}_idx", table.to_string());
                create(manager, &name, table, &[Snapshot::WorkspaceId, column]).await?;
            }
        }
        Ok(())
    }
}

const SNAPSHOT: [Snapshot; 4] = [
    Snapshot::SourceGroups,
    Snapshot::SourceUsers,
    Snapshot::SourceMachines,
    Snapshot::SourcePlans,
];

fn new_indexes() -> Vec<(String, Snapshot, Vec<Snapshot>)> {
    use Snapshot::*;
    let mut indexes = vec![
        (
            SourceGroups,
            "parent",
            vec![WorkspaceId, ParentSourceId, SourceId, RemovedAt],
        ),
        (
            SourceUsers,
            "parent",
            vec![WorkspaceId, ParentSourceId, RemovedAt],
        ),
        (
            SourceMachines,
            "parent",
            vec![WorkspaceId, ParentSourceId, SourceId],
        ),
        (
            SourcePlans,
            "parent",
            vec![WorkspaceId, ParentSourceId, SourceId],
        ),
        (
            SourceMachines,
            "group",
            vec![
                WorkspaceId,
                GroupSourceId,
                Readiness,
                MigrationState,
                SizeBytes,
                RemovedAt,
            ],
        ),
    ];
    for table in [SourceGroups, SourceUsers, SourceMachines] {
        indexes.push((table, "search", vec![WorkspaceId, Search, SourceId]));
    }
    indexes
        .into_iter()
        .map(|(table, suffix, columns)| (format!("{}_{suffix}_idx", table.to_string()), table, columns))
        .collect()
}

/// Raw SQL: sea-query writes SQLite's DROP INDEX with the table as a schema
/// qualifier, which `IF EXISTS` then silently finds nothing under.
async fn drop_index(manager: &SchemaManager<'_>, name: &str, _table: Snapshot) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
        .await
        .map(drop)
}

async fn create(
    manager: &SchemaManager<'_>,
    name: &str,
    table: Snapshot,
    columns: &[Snapshot],
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(*column);
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Snapshot {
    SourceGroups,
    SourceUsers,
    SourceMachines,
    SourcePlans,
    WorkspaceId,
    SourceId,
    ParentSourceId,
    GroupSourceId,
    Search,
    SizeBytes,
    Readiness,
    MigrationState,
    RemovedAt,
}
