use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The snapshot shaped for its reads, so that the plan is right without
/// statistics (a snapshot is read at once after its first sync, before any):
///
/// - The group tree in positions: a sync numbers each group in a depth-first
///   walk (`tree_lo`) and gives it the last number of its subtree (`tree_hi`);
///   users and machines carry their group's number (`tree_pos`). A subtree's
///   rollup is then three range scans of `*_tree_idx`, which hold what is summed,
///   instead of a walk that seeks the users and machines of each group in turn
///   (10,000 seeks per table for the root of `large`). Until a snapshot's next
///   sync its positions are NULL and the rollup walks.
/// - `*_parent_idx` ends with `source_id`: the children of an object come in id
///   order from the index. Without it SQLite read a machine's plans `ORDER BY
///   source_id` by walking the primary key through every plan of the workspace.
///   Those of groups and users hold `removed_at`, for the walk.
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
        for table in [
            Snapshot::SourceGroups,
            Snapshot::SourceUsers,
            Snapshot::SourcePlans,
        ] {
            drop_index(manager, &name(table, "group")).await?;
        }
        for (table, column) in tree_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        for (table, suffix, columns) in new_indexes() {
            let name = name(table, suffix);
            drop_index(manager, &name).await?;
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

    /// Back to the schema of the migrations before: the indexes they made, and
    /// no tree positions.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sync_staging SET LOGGED")
                .await?;
        }
        for (table, suffix, _) in new_indexes() {
            drop_index(manager, &name(table, suffix)).await?;
        }
        for (table, column) in tree_columns() {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        use Snapshot::*;
        for (table, suffix, column) in [
            (SourceGroups, "parent", ParentSourceId),
            (SourceGroups, "group", GroupSourceId),
            (SourceUsers, "parent", ParentSourceId),
            (SourceUsers, "group", GroupSourceId),
            (SourceMachines, "parent", ParentSourceId),
            (SourcePlans, "parent", ParentSourceId),
            (SourcePlans, "group", GroupSourceId),
        ] {
            create(manager, &name(table, suffix), table, &[WorkspaceId, column]).await?;
        }
        Ok(())
    }
}

fn tree_columns() -> [(Snapshot, Snapshot); 4] {
    use Snapshot::*;
    [
        (SourceGroups, TreeLo),
        (SourceGroups, TreeHi),
        (SourceUsers, TreePos),
        (SourceMachines, TreePos),
    ]
}

/// The indexes this migration makes, a `parent` one of the same name replacing
/// the one before.
fn new_indexes() -> Vec<(Snapshot, &'static str, Vec<Snapshot>)> {
    use Snapshot::*;
    vec![
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
        (SourceGroups, "tree", vec![WorkspaceId, TreeLo, RemovedAt]),
        (SourceUsers, "tree", vec![WorkspaceId, TreePos, RemovedAt]),
        (
            SourceMachines,
            "tree",
            vec![
                WorkspaceId,
                TreePos,
                Readiness,
                MigrationState,
                SizeBytes,
                RemovedAt,
            ],
        ),
        (SourceGroups, "search", vec![WorkspaceId, Search, SourceId]),
        (SourceUsers, "search", vec![WorkspaceId, Search, SourceId]),
        (
            SourceMachines,
            "search",
            vec![WorkspaceId, Search, SourceId],
        ),
    ]
}

fn name(table: Snapshot, suffix: &str) -> String {
    format!("{}_{suffix}_idx", table.to_string())
}

/// Raw SQL: sea-query writes SQLite's DROP INDEX with the table as a schema
/// qualifier, which `IF EXISTS` then silently finds nothing under.
async fn drop_index(manager: &SchemaManager<'_>, name: &str) -> Result<(), DbErr> {
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
    TreeLo,
    TreeHi,
    TreePos,
}
