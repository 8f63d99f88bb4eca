//! The schema migration that shapes the snapshot for browsing, applied to a
//! database the migrations before it made (with a snapshot in it), rolled back
//! and applied again.

use std::collections::BTreeMap;

use migration::{Migrator, MigratorTrait};
use migration_portal::db::{execute, query, snapshot};
use sea_orm::{DatabaseBackend, DatabaseConnection};
use uuid::Uuid;

use crate::helpers::{Backend, fresh_postgres_database};

const MIGRATION: &str = "m20261206_000023_index_snapshot_reads";
const TABLES: &str =
    "'source_groups', 'source_users', 'source_machines', 'source_plans', 'sync_staging'";

/// Each index of the snapshot's tables: its columns, in order.
async fn indexes(db: &DatabaseConnection) -> BTreeMap<String, Vec<String>> {
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => format!(
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename IN ({TABLES}) AND indexname NOT LIKE '%_pkey'"
        ),
        _ => format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({TABLES})"
        ),
    };
    query(db, &sql, vec![])
        .await
        .expect("indexes")
        .iter()
        .map(|r| {
            let name: String = r.try_get("", "name").expect("name");
            let sql: String = r.try_get("", "sql").expect("sql");
            let list = &sql[sql.rfind('(').expect("(") + 1..sql.rfind(')').expect(")")];
            let columns = list
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .collect();
            (name, columns)
        })
        .collect()
}

async fn columns(db: &DatabaseConnection, table: &str) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => format!(
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
        _ => format!("SELECT name FROM pragma_table_info('{table}')"),
    };
    query(db, &sql, vec![])
        .await
        .expect("columns")
        .iter()
        .map(|r| r.try_get("", "name").expect("name"))
        .collect()
}

/// PostgreSQL: whether the staging area is written to the WAL.
async fn staging_logged(db: &DatabaseConnection) -> bool {
    let rows = query(
        db,
        "SELECT relpersistence::text AS p FROM pg_class WHERE relname = 'sync_staging'",
        vec![],
    )
    .await
    .expect("persistence");
    let p: String = rows[0].try_get("", "p").expect("p");
    p == "p"
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn the_snapshot_read_migration_upgrades_a_synced_database_and_rolls_back() {
    for backend in Backend::enabled() {
        let dir = tempfile::tempdir().expect("dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("upgrade.db").display()),
            Backend::Postgres => fresh_postgres_database().await,
        };
        let db = migration_portal::db::connect(&migration_portal::config::DatabaseConfig {
            url,
            max_connections: 4,
            busy_timeout_ms: 10_000,
            acquire_timeout_ms: 10_000,
        })
        .await
        .expect("connect");
        let before_it = Migrator::migrations()
            .iter()
            .position(|m| m.name() == MIGRATION)
            .expect("the migration is listed");
        Migrator::up(&db, Some(before_it as u32))
            .await
            .expect("the migrations before it");
        // A snapshot synced before: root > branch > leaf, a user in the leaf with a machine.
        let workspace = Uuid::now_v7();
        for (table, id, parent, group, extra) in [
            ("source_groups", "r", None, None, ""),
            ("source_groups", "b", Some("r"), Some("r"), ""),
            ("source_groups", "l", Some("b"), Some("b"), ""),
            ("source_users", "u", Some("l"), Some("l"), ""),
            ("source_machines", "m", Some("u"), Some("l"), "ready"),
        ] {
            execute(
                &db,
                &format!(
                    "INSERT INTO {table} (workspace_id, source_id, parent_source_id, data, group_source_id, size_bytes, readiness, synced_at) \
                     VALUES ($1, $2, $3, '{{}}', $4, 7, $5, $6)"
                ),
                vec![
                    workspace.into(),
                    id.into(),
                    parent.map(str::to_string).into(),
                    group.map(str::to_string).into(),
                    (!extra.is_empty()).then(|| extra.to_string()).into(),
                    chrono::Utc::now().into(),
                ],
            )
            .await
            .expect("a snapshot row");
        }
        let before = indexes(&db).await;
        assert!(
            before.contains_key("source_groups_group_idx"),
            "{backend:?}: {before:?}"
        );

        Migrator::up(&db, None).await.expect("upgrade");
        let after = indexes(&db).await;
        let dropped = [
            "source_groups_group_idx",
            "source_users_group_idx",
            "source_plans_group_idx",
        ];
        for gone in dropped {
            assert!(!after.contains_key(gone), "{backend:?}: {gone} dropped");
        }
        let wanted = [
            (
                "source_groups_parent_idx",
                cols(&[
                    "workspace_id",
                    "parent_source_id",
                    "source_id",
                    "removed_at",
                ]),
            ),
            (
                "source_users_parent_idx",
                cols(&["workspace_id", "parent_source_id", "removed_at"]),
            ),
            (
                "source_machines_parent_idx",
                cols(&["workspace_id", "parent_source_id", "source_id"]),
            ),
            (
                "source_plans_parent_idx",
                cols(&["workspace_id", "parent_source_id", "source_id"]),
            ),
            (
                "source_groups_tree_idx",
                cols(&["workspace_id", "tree_lo", "removed_at"]),
            ),
            (
                "source_users_tree_idx",
                cols(&["workspace_id", "tree_pos", "removed_at"]),
            ),
            (
                "source_machines_tree_idx",
                cols(&[
                    "workspace_id",
                    "tree_pos",
                    "readiness",
                    "migration_state",
                    "size_bytes",
                    "removed_at",
                ]),
            ),
            (
                "source_groups_search_idx",
                cols(&["workspace_id", "search", "source_id"]),
            ),
            (
                "source_users_search_idx",
                cols(&["workspace_id", "search", "source_id"]),
            ),
            (
                "source_machines_search_idx",
                cols(&["workspace_id", "search", "source_id"]),
            ),
        ];
        for (name, columns) in &wanted {
            assert_eq!(after.get(*name), Some(columns), "{backend:?}: {name}");
        }
        for (name, columns) in &before {
            if !dropped.contains(&name.as_str()) && !wanted.iter().any(|(w, _)| w == name) {
                assert_eq!(
                    after.get(name),
                    Some(columns),
                    "{backend:?}: {name} untouched"
                );
            }
        }
        assert!(
            columns(&db, "source_groups")
                .await
                .contains(&"tree_lo".to_string())
        );
        if backend == Backend::Postgres {
            assert!(!staging_logged(&db).await, "the staging area is unlogged");
        }
        // Until its next sync the snapshot has no positions: its rollups walk the tree.
        let rollups = snapshot::rollups(&db, workspace, &["r".to_string(), "b".to_string()])
            .await
            .expect("rollups");
        for (group, groups) in [("r", 2), ("b", 1)] {
            let rollup = &rollups[group];
            assert_eq!(
                (
                    rollup.groups,
                    rollup.users,
                    rollup.machines,
                    rollup.data_size_bytes
                ),
                (groups, 1, 1, 7),
                "{backend:?}: rollup of {group}"
            );
        }

        for (group, subgroups, users) in [("b", 1, 0), ("l", 0, 1)] {
            let contents = snapshot::contents(&db, workspace, group)
                .await
                .expect("contents")
                .expect("the group is there");
            assert_eq!(
                (contents.subgroups, contents.users, contents.rollup.machines),
                (subgroups, users, 1),
                "{backend:?}: contents of {group}"
            );
        }
        assert!(
            snapshot::contents(&db, workspace, "nowhere")
                .await
                .expect("contents")
                .is_none()
        );

        // It and every later migration.
        let steps = Migrator::migrations().len() - before_it;
        Migrator::down(&db, Some(steps as u32))
            .await
            .expect("roll back");
        assert_eq!(
            indexes(&db).await,
            before,
            "{backend:?}: the indexes before, as they were"
        );
        for table in ["source_groups", "source_users", "source_machines"] {
            let columns = columns(&db, table).await;
            assert!(
                !columns.iter().any(|c| c.starts_with("tree_")),
                "{backend:?}: {table} without positions: {columns:?}"
            );
        }
        if backend == Backend::Postgres {
            assert!(
                staging_logged(&db).await,
                "the staging area is logged again"
            );
        }
        Migrator::up(&db, None).await.expect("upgrade again");
        assert_eq!(
            indexes(&db).await,
            after,
            "{backend:?}: the same upgrade again"
        );
    }
}
