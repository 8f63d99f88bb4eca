//! The sync job: the snapshot equals the source after a sync and after a re-sync,
//! keeps machines mid-migration, and stays as it was when a sync fails.

use std::collections::BTreeMap;

use async_trait::async_trait;
use migration_portal::connectors::ConnectorError;
use migration_portal::connectors::source::{
    SourceAccount, SourceApi, SourceGroup, SourceMachine, SourcePage, SourcePlan, SourceUser,
};
use migration_portal::jobs::sync;
use migration_portal::sim::install_base::{GenSpec, InstallBase, Mutations, Size, generate};
use sea_orm::{ConnectionTrait, Statement};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::Backend;
use crate::world::{World, world};

const TABLES: [&str; 4] = [
    "source_groups",
    "source_users",
    "source_machines",
    "source_plans",
];

impl World {
    /// Every live row of the snapshot: id -> its parent and fields, per table.
    async fn snapshot(&self) -> BTreeMap<&'static str, BTreeMap<String, Option<String>>> {
        let mut all = BTreeMap::new();
        for table in TABLES {
            let sql = format!(
                "SELECT source_id, parent_source_id, data FROM {table} WHERE workspace_id = '{}' AND removed_at IS NULL",
                self.workspace
            );
            let sql = if self.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
                // SQLite keeps UUIDs as 16-byte blobs.
                sql.replace(
                    &format!("'{}'", self.workspace),
                    &format!("X'{}'", self.workspace.simple()),
                )
            } else {
                sql
            };
            let rows = self
                .db
                .query_all_raw(Statement::from_string(self.db.get_database_backend(), sql))
                .await
                .expect("query");
            let rows = rows
                .iter()
                .map(|r| {
                    let parent = r
                        .try_get::<Option<String>>("", "parent_source_id")
                        .expect("parent");
                    let data: Value =
                        serde_json::from_str(&r.try_get::<String>("", "data").expect("data"))
                            .expect("json");
                    (
                        r.try_get::<String>("", "source_id").expect("id"),
                        Some(fingerprint(table, parent, &data)),
                    )
                })
                .collect();
            all.insert(table, rows);
        }
        all
    }
}

impl World {
    /// The workspace's resource at `path` (below `/api/v1/workspaces/{id}`), as JSON.
    async fn answer(&self, path: &str) -> Value {
        let response = self
            .app
            .get(
                &format!("/api/v1/workspaces/{}{path}", self.workspace),
                &self.token,
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    /// The source ids of `table`'s live rows, in source-id order.
    async fn live_ids(&self, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT source_id FROM {table} WHERE workspace_id = $1 AND removed_at IS NULL ORDER BY source_id"
        );
        let backend = self.db.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Sqlite => sql.replace('$', "?"),
            _ => sql,
        };
        self.db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [self.workspace.into()],
            ))
            .await
            .expect("query")
            .iter()
            .map(|r| r.try_get::<String>("", "source_id").expect("id"))
            .collect()
    }

    /// `sql`'s `COUNT(*) AS n`, with the workspace as `$1`.
    async fn count(&self, sql: String) -> i64 {
        self.db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                sql,
                [self.workspace.into()],
            ))
            .await
            .expect("query")
            .expect("a count")
            .try_get::<i64>("", "n")
            .expect("n")
    }

    /// Users and machines still in the source whose tree position is not their group's.
    async fn misplaced(&self) -> i64 {
        let mut misplaced = 0;
        for table in ["source_users", "source_machines"] {
            misplaced += self
                .count(format!(
                    "SELECT COUNT(*) AS n FROM {table} t LEFT JOIN source_groups g \
                     ON g.workspace_id = t.workspace_id AND g.source_id = t.group_source_id \
                     WHERE t.workspace_id = $1 AND t.removed_at IS NULL AND t.tree_pos IS DISTINCT FROM g.tree_lo"
                ))
                .await;
        }
        misplaced
    }

    /// The `synced_at` the API answers for the object at `path`.
    async fn seen_at(&self, path: &str) -> chrono::DateTime<chrono::Utc> {
        time(&self.answer(path).await["synced_at"])
    }

    /// When the last sync ended, as the API says.
    async fn last_sync(&self) -> chrono::DateTime<chrono::Utc> {
        time(&self.answer("/hierarchy").await["snapshot_synced_at"])
    }

    /// Per table, the rows the last sync wrote (their `synced_at` is its time).
    async fn written_by_last_sync(&self) -> BTreeMap<&'static str, i64> {
        let mut written = BTreeMap::new();
        for table in TABLES {
            let n = self
                .count(format!(
                    "SELECT COUNT(*) AS n FROM {table} t JOIN workspaces w ON w.id = t.workspace_id \
                     WHERE w.id = $1 AND t.synced_at = w.snapshot_synced_at"
                ))
                .await;
            written.insert(table, n);
        }
        written
    }
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("a time: {value}"))
        .to_utc()
}

/// The fields a sync must carry over, with the parent, as one comparable string.
fn fingerprint(table: &str, parent: Option<String>, data: &Value) -> String {
    let fields: &[&str] = match table {
        "source_groups" => &["name", "admin", "storage_quota_bytes"],
        "source_users" => &["login", "email", "auto_update", "storage_quota_bytes"],
        "source_machines" => &[
            "hostname",
            "os",
            "client_version",
            "last_seen_at",
            "data_size_bytes",
        ],
        _ => &[
            "name",
            "type",
            "schedule",
            "inclusion_filters",
            "retention_days",
        ],
    };
    let picked: Vec<String> = fields
        .iter()
        .map(|f| format!("{f}={}", normalized(&data[*f])))
        .collect();
    format!("{parent:?} {}", picked.join(" "))
}

/// Times compared as instants, objects without their null fields.
fn normalized(value: &Value) -> Value {
    match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| json!(t.timestamp()))
            .unwrap_or_else(|_| value.clone()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The source as the simulator holds it, in the snapshot's shape.
fn truth(base: &InstallBase) -> BTreeMap<&'static str, BTreeMap<String, Option<String>>> {
    fn rows<T: serde::Serialize>(
        table: &'static str,
        items: &[T],
        key: impl Fn(&T) -> (String, Option<String>),
    ) -> BTreeMap<String, Option<String>> {
        items
            .iter()
            .map(|item| {
                let (id, parent) = key(item);
                let data = serde_json::to_value(item).expect("json");
                (id, Some(fingerprint(table, parent, &data)))
            })
            .collect()
    }
    BTreeMap::from([
        (
            "source_groups",
            rows("source_groups", &base.groups, |g| {
                (g.id.clone(), g.parent_id.clone())
            }),
        ),
        (
            "source_users",
            rows("source_users", &base.users, |u| {
                (u.id.clone(), Some(u.group_id.clone()))
            }),
        ),
        (
            "source_machines",
            rows("source_machines", &base.machines, |m| {
                (m.id.clone(), Some(m.user_id.clone()))
            }),
        ),
        (
            "source_plans",
            rows("source_plans", &base.plans, |p| {
                (p.id.clone(), Some(p.machine_id.clone()))
            }),
        ),
    ])
}

#[tokio::test]
async fn a_sync_copies_the_source_and_a_re_sync_follows_its_changes() {
    for backend in Backend::enabled() {
        let world = world(backend, generate(&GenSpec::sized(Size::Small, 11))).await;
        let first = world.sync().await;
        let expected = world.source.with_base(truth);
        assert_eq!(
            world.snapshot().await,
            expected,
            "{backend:?}: the snapshot equals the source"
        );
        assert_eq!(
            first["response"]["users"]["added"].as_u64(),
            Some(expected["source_users"].len() as u64),
            "{first}"
        );
        // A sync that finds nothing changed: it writes no row, and is the last to see
        // what the source then drops (a stored time that only a removal's flag sets).
        world.sync().await;
        let unchanged_sync = world.last_sync().await;

        // A machine of a user about to be removed is mid-migration: it must survive, flagged.
        let removed_user = world
            .source
            .with_base(|b| {
                b.users
                    .iter()
                    .rev()
                    .find(|u| b.machines.iter().any(|m| m.user_id == u.id))
                    .map(|u| u.id.clone())
            })
            .expect("a user with machines");
        let (report, migrating) = {
            let victim_machine = world
                .source
                .with_base(|b| {
                    b.machines
                        .iter()
                        .find(|m| m.user_id == removed_user)
                        .map(|m| m.id.clone())
                })
                .expect("machine");
            let mark = format!(
                "UPDATE source_machines SET migration_state = 'migrating' WHERE source_id = '{victim_machine}'"
            );
            world.db.execute_unprepared(&mark).await.expect("mark");
            // Remove exactly that user (the simulator removes the last ones by its own order): retry seeds until it does.
            let mut report = None;
            for seed in 0..200 {
                let probe = world.source.with_base(|b| {
                    let mut copy = b.clone();
                    copy.mutate(&Mutations {
                        seed,
                        add_users: 3,
                        move_users: 3,
                        remove_users: 3,
                        upgrade_clients: 3,
                        ..Mutations::default()
                    })
                });
                if probe.removed_users.contains(&removed_user) {
                    report = Some(world.source.mutate(Mutations {
                        seed,
                        add_users: 3,
                        move_users: 3,
                        remove_users: 3,
                        upgrade_clients: 3,
                        ..Mutations::default()
                    }));
                    break;
                }
            }
            (report, victim_machine)
        };
        let report = report.expect("some seed removes the chosen user");
        assert!(
            report.removed_machines.contains(&migrating),
            "its machine goes with it"
        );
        let second = world.sync().await;
        let expected = world.source.with_base(truth);
        assert_eq!(
            world.snapshot().await,
            expected,
            "{backend:?}: the re-synced snapshot equals the changed source"
        );
        // What the planner reads: every live row once, in source-id order (SQLite reads
        // them hundreds at a time, each read picking up after the last).
        let read = migration_portal::db::prechecks::load_snapshot(&world.db, world.workspace)
            .await
            .expect("snapshot");
        let ids = |ids: Vec<&String>| ids.into_iter().cloned().collect::<Vec<_>>();
        for (table, read) in [
            (
                "source_groups",
                ids(read.groups.iter().map(|g| &g.id).collect()),
            ),
            (
                "source_users",
                ids(read.users.iter().map(|u| &u.id).collect()),
            ),
            (
                "source_machines",
                ids(read.machines.iter().map(|m| &m.id).collect()),
            ),
            (
                "source_plans",
                ids(read.plans.iter().map(|p| &p.id).collect()),
            ),
        ] {
            assert_eq!(read, world.live_ids(table).await, "{backend:?}: {table}");
        }
        let users = &second["response"]["users"];
        assert_eq!(
            users["added"].as_u64(),
            Some(report.added_users.len() as u64),
            "{second}"
        );
        assert_eq!(
            users["removed"].as_u64(),
            Some(report.removed_users.len() as u64),
            "{second}"
        );
        assert!(
            users["changed"].as_u64().unwrap_or(0) >= report.moved_users.len() as u64,
            "{second}"
        );
        {
            let kept = world
                .db
                .query_one_raw(Statement::from_string(
                    world.db.get_database_backend(),
                    format!("SELECT migration_state, removed_at IS NOT NULL AS flagged FROM source_machines WHERE source_id = '{migrating}'"),
                ))
                .await
                .expect("query")
                .expect("the machine mid-migration is kept");
            assert_eq!(
                kept.try_get::<String>("", "migration_state")
                    .expect("state"),
                "migrating"
            );
            assert!(
                kept.try_get::<bool>("", "flagged").expect("flag"),
                "{backend:?}: flagged as removed from the source"
            );
        }
        // What a re-sync finds unchanged it does not write, yet every object still
        // there was found by it, and the one gone since was last found by the one before.
        let second_sync = world.last_sync().await;
        let written = world.written_by_last_sync().await;
        assert!(
            written["source_plans"] < expected["source_plans"].len() as i64
                && written["source_users"] < expected["source_users"].len() as i64,
            "{backend:?}: the re-sync rewrote only what changed: {written:?}"
        );
        assert_eq!(
            world.misplaced().await,
            0,
            "{backend:?}: every user and machine at its group's position after moves"
        );
        let kept_user = world
            .source
            .with_base(|b| b.users.first().map(|u| u.id.clone()))
            .expect("a user");
        let (user, machine) = (
            format!("/users/{kept_user}"),
            format!("/machines/{migrating}"),
        );
        assert_eq!(
            world.seen_at(&user).await,
            second_sync,
            "{backend:?}: a user still in the source was seen by the last sync"
        );
        assert_eq!(
            world.seen_at(&machine).await,
            unchanged_sync,
            "{backend:?}: a machine gone from the source was last seen by the sync before"
        );
        // Nothing changed: nothing written, the snapshot as it was, the objects seen now.
        world.sync().await;
        let third_sync = world.last_sync().await;
        assert!(third_sync > second_sync);
        let written = world.written_by_last_sync().await;
        assert!(
            written.values().all(|n| *n == 0),
            "{backend:?}: a re-sync of an unchanged source writes no row: {written:?}"
        );
        assert_eq!(world.snapshot().await, expected, "{backend:?}");
        assert_eq!(world.seen_at(&user).await, third_sync, "{backend:?}");
        assert_eq!(world.seen_at(&machine).await, unchanged_sync, "{backend:?}");
        // Deleting the workspace takes its snapshot with it.
        let path = format!("/api/v1/workspaces/{}", world.workspace);
        assert_eq!(
            world
                .app
                .delete(&path, &world.token)
                .send()
                .await
                .expect("delete")
                .status(),
            204
        );
        assert!(
            world.snapshot().await.values().all(BTreeMap::is_empty),
            "{backend:?}: no orphaned snapshot rows"
        );
    }
}

/// A source that fails at the plans: the sync dies after staging most of it.
/// With `true`, the first page of plans comes (and is staged) and the next fails.
struct FailingAtPlans<'a>(&'a dyn SourceApi, bool);

#[async_trait]
impl SourceApi for FailingAtPlans<'_> {
    async fn account(&self) -> Result<SourceAccount, ConnectorError> {
        self.0.account().await
    }
    async fn groups(
        &self,
        c: Option<&str>,
        l: u32,
    ) -> Result<SourcePage<SourceGroup>, ConnectorError> {
        self.0.groups(c, l).await
    }
    async fn users(
        &self,
        c: Option<&str>,
        l: u32,
    ) -> Result<SourcePage<SourceUser>, ConnectorError> {
        self.0.users(c, l).await
    }
    async fn machines(
        &self,
        c: Option<&str>,
        l: u32,
    ) -> Result<SourcePage<SourceMachine>, ConnectorError> {
        self.0.machines(c, l).await
    }
    async fn plans(
        &self,
        c: Option<&str>,
        l: u32,
    ) -> Result<SourcePage<SourcePlan>, ConnectorError> {
        if self.1 && c.is_none() {
            let mut page = self.0.plans(None, l).await?;
            page.next_cursor = Some("more".into());
            return Ok(page);
        }
        Err(ConnectorError::Remote {
            system: "test",
            status: 500,
            code: None,
            message: "disk on fire".into(),
        })
    }
    async fn user_password(&self, id: &str) -> Result<SecretString, ConnectorError> {
        self.0.user_password(id).await
    }
}

#[tokio::test]
async fn a_failed_sync_leaves_the_snapshot_as_it_was() {
    for backend in Backend::enabled() {
        let world = world(backend, generate(&GenSpec::sized(Size::Small, 11))).await;
        world.sync().await;
        let before = world.snapshot().await;
        world.source.mutate(Mutations {
            seed: 5,
            add_users: 4,
            move_users: 4,
            remove_users: 4,
            upgrade_clients: 4,
            ..Mutations::default()
        });
        let (login, password) = world.source.credentials();
        let policy = migration_portal::connectors::HttpPolicy {
            allow_private_networks: true,
            max_attempts: 1,
            ..Default::default()
        };
        let client = migration_portal::connectors::source::SourceClient::new(
            &world.source.base_url(),
            &login,
            SecretString::from(password),
            policy,
        )
        .expect("client");
        // At the first page of plans, and at the second (the first one staged).
        for after_a_page in [false, true] {
            let result = sync::sync(
                &world.db,
                Uuid::now_v7(),
                world.workspace,
                &FailingAtPlans(&client, after_a_page),
                |_| async { Ok(()) },
            )
            .await;
            assert!(result.is_err(), "{backend:?}: the sync failed");
            assert_eq!(
                world.snapshot().await,
                before,
                "{backend:?}: nothing of the failed sync reached the snapshot"
            );
            let staged = world
                .db
                .query_one_raw(Statement::from_string(
                    world.db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM sync_staging".to_string(),
                ))
                .await
                .expect("count")
                .expect("row");
            assert_eq!(
                staged.try_get::<i64>("", "n").expect("n"),
                0,
                "{backend:?}: the staging area is cleared"
            );
        }
        // The connections the failed syncs staged on serve the next one.
        sync::sync(
            &world.db,
            Uuid::now_v7(),
            world.workspace,
            &client,
            |_| async { Ok(()) },
        )
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: the next sync: {e}"));
        assert_ne!(
            world.snapshot().await,
            before,
            "{backend:?}: the next sync applies"
        );
    }
}
