//! Storage quotas of the BackupAgent install base: planted by the generator in
//! the shares asked, served by `sim backupagent`, decoded by the source client,
//! stored by the sync (BIGINT, both databases), changed by mutations and shown
//! by the hierarchy.

use std::collections::{BTreeMap, HashMap};

use migration_portal::connectors::source::{SourceGroup, SourceUser};
use migration_portal::sim::install_base::quotas::{
    GROUP_SHARE, GROUPS_OVER_SHARE, QUOTA_SIZES, USER_SHARE, USERS_OVER_SHARE,
};
use migration_portal::sim::install_base::{
    GenSpec, InstallBase, Mutations, QuotaTruth, Size, generate,
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::world::{World, world};

/// What the generator's `planted` gives: `share` of `total`, at least `min`.
fn planted(total: usize, share: f64, min: usize) -> usize {
    ((total as f64 * share).round() as usize)
        .max(min)
        .min(total)
}

/// Each user's data, summed from the machines the install base holds.
fn user_data(base: &InstallBase) -> HashMap<&str, u64> {
    let mut data: HashMap<&str, u64> = HashMap::new();
    for m in &base.machines {
        *data.entry(m.user_id.as_str()).or_default() += m.data_size_bytes;
    }
    data
}

/// Each group's data: its own users' machines.
fn group_data(base: &InstallBase) -> HashMap<&str, u64> {
    let users = user_data(base);
    let mut data: HashMap<&str, u64> = HashMap::new();
    for u in &base.users {
        *data.entry(u.group_id.as_str()).or_default() +=
            users.get(u.id.as_str()).copied().unwrap_or(0);
    }
    data
}

/// Every user's and group's quota as the install base holds it now (`None`: none).
fn served_quotas(base: &InstallBase) -> BTreeMap<String, Option<u64>> {
    base.groups
        .iter()
        .map(|g| (g.id.clone(), g.storage_quota_bytes))
        .chain(
            base.users
                .iter()
                .map(|u| (u.id.clone(), u.storage_quota_bytes)),
        )
        .collect()
}

/// The shares the brief asks for, the truth equal to the data, and who is over
/// (recomputed here from the machines, not taken from the truth).
fn assert_quotas_planted(base: &InstallBase) -> (usize, usize, usize, usize) {
    let t: &QuotaTruth = &base.truth.quotas;
    let (groups, users) = (base.groups.len(), base.users.len());
    assert_eq!(
        t.users.len(),
        planted(users, USER_SHARE, 1),
        "users with a quota"
    );
    assert_eq!(
        t.groups.len(),
        planted(groups - 1, GROUP_SHARE, 1),
        "groups with a quota"
    );
    assert!((0.25..=0.35).contains(&(t.users.len() as f64 / users as f64)));
    assert!((0.15..=0.25).contains(&(t.groups.len() as f64 / (groups - 1) as f64)));
    assert_eq!(
        base.root().storage_quota_bytes,
        None,
        "the top-level group is the provider"
    );
    // The truth is the data, both ways.
    let mut expected = BTreeMap::new();
    for (id, quota) in t.groups.iter().chain(&t.users) {
        expected.insert(id.clone(), Some(*quota));
    }
    for (id, quota) in served_quotas(base) {
        assert_eq!(expected.get(&id).copied().flatten(), quota, "{id}");
    }
    for quota in t.groups.values().chain(t.users.values()) {
        assert!(QUOTA_SIZES.contains(quota), "a round size: {quota}");
    }

    let data = user_data(base);
    let over: Vec<String> = base
        .users
        .iter()
        .filter(|u| {
            u.storage_quota_bytes
                .is_some_and(|q| data.get(u.id.as_str()).copied().unwrap_or(0) > q)
        })
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(over, t.users_over_quota, "users over their quota");
    assert!(
        over.len() >= planted(t.users.len(), USERS_OVER_SHARE, 1),
        "{} of {} users over",
        over.len(),
        t.users.len()
    );
    let share = over.len() as f64 / t.users.len() as f64;
    assert!(share <= 0.08, "a few percent of the users over: {share}");
    let data = group_data(base);
    let over_groups: Vec<String> = base
        .groups
        .iter()
        .filter(|g| {
            g.storage_quota_bytes
                .is_some_and(|q| data.get(g.id.as_str()).copied().unwrap_or(0) > q)
        })
        .map(|g| g.id.clone())
        .collect();
    assert_eq!(over_groups, t.groups_over_quota, "groups over their quota");
    assert!(over_groups.len() >= planted(t.groups.len(), GROUPS_OVER_SHARE, 1));
    assert!(
        over_groups.len() * 4 <= t.groups.len(),
        "some groups, not most"
    );
    (t.users.len(), over.len(), t.groups.len(), over_groups.len())
}

#[test]
fn the_generator_plants_quotas_deterministically_in_the_shares_asked() {
    for seed in [1, 2, 3, 11, 1234] {
        let base = generate(&GenSpec::sized(Size::Small, seed));
        let (users, over, groups, groups_over) = assert_quotas_planted(&base);
        println!(
            "small seed {seed}: users with a quota {users}/300, over {over}; groups with a quota {groups}/59, over {groups_over}"
        );
        let again = generate(&GenSpec::sized(Size::Small, seed));
        assert_eq!(
            served_quotas(&base),
            served_quotas(&again),
            "same seed, same quotas"
        );
        assert_eq!(base.truth.quotas, again.truth.quotas);
    }
    assert_ne!(
        served_quotas(&generate(&GenSpec::sized(Size::Small, 1))),
        served_quotas(&generate(&GenSpec::sized(Size::Small, 2))),
        "another seed, other quotas"
    );
    let medium = generate(&GenSpec::sized(Size::Medium, 1));
    let (users, over, groups, groups_over) = assert_quotas_planted(&medium);
    println!(
        "medium seed 1: users with a quota {users}/10000, over {over}; groups with a quota {groups}/999, over {groups_over}"
    );
    // Tiny install bases: as far as they go, never a panic.
    for (groups, users, machines) in [(1, 0, 0), (1, 5, 7), (2, 1, 1), (3, 2, 0), (10, 40, 30)] {
        let base = generate(&GenSpec::custom(groups, users, machines, 5));
        assert_eq!(base.truth.quotas.users.len(), planted(users, USER_SHARE, 1));
        assert_eq!(
            base.truth.quotas.groups.len(),
            planted(groups - 1, GROUP_SHARE, 1)
        );
    }
}

#[test]
fn the_source_client_reads_a_missing_or_null_quota_as_none() {
    let user = json!({"id": "u-1", "group_id": "g-1", "login": "ann", "email": null, "first_name": null,
        "last_name": null, "auto_update": true, "updated_at": null});
    let group =
        json!({"id": "g-1", "parent_id": null, "name": "Top", "admin": null, "updated_at": null});
    let with = |mut v: Value, quota: Value| {
        v["storage_quota_bytes"] = quota;
        v
    };
    let cases: [(Value, Option<u64>); 4] = [
        (json!(()), None),
        (json!(null), None),
        (json!(0), Some(0)),
        (json!(9_007_199_254_740_993u64), Some(9_007_199_254_740_993)),
    ];
    for (quota, expected) in cases {
        let (u, g) = if quota == json!(()) {
            (user.clone(), group.clone())
        } else {
            (
                with(user.clone(), quota.clone()),
                with(group.clone(), quota.clone()),
            )
        };
        let u: SourceUser = serde_json::from_value(u).expect("user");
        let g: SourceGroup = serde_json::from_value(g).expect("group");
        assert_eq!(u.storage_quota_bytes, expected, "{quota}");
        assert_eq!(g.storage_quota_bytes, expected, "{quota}");
        // The stored copy holds the quota only when there is one: a snapshot
        // taken before quotas existed compares equal for users without one.
        let stored = serde_json::to_value(&u).expect("json");
        assert_eq!(
            stored.get("storage_quota_bytes").and_then(Value::as_u64),
            expected
        );
        assert_eq!(
            stored.get("storage_quota_bytes").is_some(),
            expected.is_some()
        );
    }
    let refused: Result<SourceUser, _> = serde_json::from_value(with(user, json!(-1)));
    assert!(refused.is_err(), "a negative quota is no quota");
}

#[tokio::test]
async fn sim_backupagent_serves_the_quotas_and_mutations_change_them() {
    let sim = migration_portal::sim::backupagent::SourceSim::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        generate(&GenSpec::sized(Size::Small, 4)),
    )
    .expect("simulator");
    let (login, password) = sim.credentials();
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("{}{path}", sim.base_url()))
            .basic_auth(&login, Some(&password))
            .send()
    };
    let served = async || {
        let mut all = BTreeMap::new();
        for listing in ["groups", "users"] {
            let page: Value = get(format!("/api/source/v1/{listing}?limit=5000"))
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            assert!(page["next_cursor"].is_null());
            for item in page["items"].as_array().expect("items") {
                assert!(
                    item.as_object()
                        .expect("object")
                        .contains_key("storage_quota_bytes"),
                    "always sent, null when none: {item}"
                );
                all.insert(
                    item["id"].as_str().expect("id").to_string(),
                    item["storage_quota_bytes"].as_u64(),
                );
            }
        }
        all
    };
    let truth: Value = get("/sim/backupagent/truth".into())
        .await
        .expect("truth")
        .json()
        .await
        .expect("json");
    let before = served().await;
    let mut expected: BTreeMap<String, Option<u64>> =
        before.keys().map(|id| (id.clone(), None)).collect();
    for kind in ["groups", "users"] {
        for (id, quota) in truth["quotas"][kind].as_object().expect("quotas") {
            expected.insert(id.clone(), quota.as_u64());
        }
    }
    assert_eq!(before, expected, "the truth endpoint carries every quota");
    assert_eq!(before, sim.with_base(served_quotas));

    // Added users get quotas by the generator's rule; changed quotas differ and bump updated_at.
    let report = sim.mutate(Mutations {
        seed: 7,
        add_users: 100,
        change_user_quotas: 12,
        change_group_quotas: 6,
        ..Mutations::default()
    });
    let after = served().await;
    assert_eq!(report.quota_changed_users.len(), 12);
    assert_eq!(report.quota_changed_groups.len(), 6);
    let with_quota = report
        .added_users
        .iter()
        .filter(|id| after[*id].is_some())
        .count();
    assert!(
        (15..=45).contains(&with_quota),
        "about 30 of 100 new users have a quota: {with_quota}"
    );
    for (id, quota) in &after {
        let changed =
            report.quota_changed_users.contains(id) || report.quota_changed_groups.contains(id);
        match before.get(id) {
            Some(old) if changed => assert_ne!(old, quota, "{id} changed"),
            Some(old) => assert_eq!(old, quota, "{id} unchanged"),
            None => assert!(report.added_users.contains(id)),
        }
        if changed || (quota.is_some() && report.added_users.contains(id)) {
            assert_eq!(report.quotas.get(id), Some(quota), "{id} in the report");
        } else {
            assert!(!report.quotas.contains_key(id), "{id} not in the report");
        }
        if let Some(q) = quota {
            assert!(QUOTA_SIZES.contains(q), "{id}: {q}");
        }
    }
    let at = report.at;
    sim.with_base(|b| {
        for id in &report.quota_changed_users {
            assert_eq!(b.user(id).expect("user").updated_at, at);
        }
        for id in &report.quota_changed_groups {
            let group = b.groups.iter().find(|g| &g.id == id).expect("group");
            assert_eq!(group.updated_at, at);
            assert!(group.parent_id.is_some(), "never the top-level group");
        }
    });
    sim.stop().await;
}

impl World {
    /// `source_id -> storage_quota_bytes` of every live row of a snapshot table, read as BIGINT.
    async fn stored_quotas(&self, table: &str) -> BTreeMap<String, Option<i64>> {
        let workspace = if self.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            // SQLite keeps UUIDs as 16-byte blobs.
            format!("X'{}'", self.workspace.simple())
        } else {
            format!("'{}'", self.workspace)
        };
        let sql = format!(
            "SELECT source_id, storage_quota_bytes FROM {table} WHERE workspace_id = {workspace} AND removed_at IS NULL"
        );
        self.db
            .query_all_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .expect("query")
            .iter()
            .map(|r| {
                (
                    r.try_get::<String>("", "source_id").expect("id"),
                    r.try_get::<Option<i64>>("", "storage_quota_bytes")
                        .expect("a BIGINT"),
                )
            })
            .collect()
    }

    /// Groups and users, as the snapshot stores their quotas.
    async fn all_stored_quotas(&self) -> BTreeMap<String, Option<u64>> {
        let mut all = BTreeMap::new();
        for table in ["source_groups", "source_users"] {
            for (id, quota) in self.stored_quotas(table).await {
                all.insert(id, quota.map(|q| u64::try_from(q).expect("not negative")));
            }
        }
        all
    }
}

#[tokio::test]
async fn a_sync_stores_every_quota_and_the_hierarchy_shows_them() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 11));
        let world = world(backend, base.clone()).await;
        world.sync().await;
        let t = &base.truth.quotas;
        let mut expected: BTreeMap<String, Option<u64>> = served_quotas(&base)
            .into_keys()
            .map(|id| (id, None))
            .collect();
        for (id, quota) in t.groups.iter().chain(&t.users) {
            expected.insert(id.clone(), Some(*quota));
        }
        assert_eq!(
            world.all_stored_quotas().await,
            expected,
            "{backend:?}: every quota as the truth has it, none where it has none"
        );

        // The planner reads them from the snapshot.
        let snapshot = migration_portal::db::prechecks::load_snapshot(&world.db, world.workspace)
            .await
            .expect("snapshot");
        let planned: BTreeMap<String, Option<u64>> = snapshot
            .groups
            .iter()
            .map(|g| (g.id.clone(), g.storage_quota_bytes))
            .chain(
                snapshot
                    .users
                    .iter()
                    .map(|u| (u.id.clone(), u.storage_quota_bytes)),
            )
            .collect();
        assert_eq!(planned, expected, "{backend:?}: the planner's input");

        // Every user's detail: the quota, and whether its data already exceeds it.
        let mut over_seen = 0;
        for user in &base.users {
            let detail = world.get(&world.path(&format!("/users/{}", user.id))).await;
            let quota = t.users.get(&user.id).copied();
            assert_eq!(detail["storage_quota_bytes"].as_u64(), quota, "{}", user.id);
            assert!(
                detail
                    .as_object()
                    .expect("object")
                    .contains_key("storage_quota_bytes")
            );
            let shown: u64 = detail["machines"]
                .as_array()
                .expect("machines")
                .iter()
                .map(|m| m["data_size_bytes"].as_u64().expect("size"))
                .sum();
            assert_eq!(detail["data_size_bytes"].as_u64(), Some(shown));
            let over = t.users_over_quota.contains(&user.id);
            assert_eq!(
                detail["data_exceeds_quota"],
                json!(over),
                "{backend:?}: {} ({shown} bytes, quota {quota:?})",
                user.id
            );
            over_seen += usize::from(over);
        }
        assert_eq!(over_seen, t.users_over_quota.len());
        assert!(over_seen > 0, "some user of small is over its quota");
        for group in &base.groups {
            let detail = world
                .get(&world.path(&format!("/groups/{}", group.id)))
                .await;
            assert_eq!(
                detail["storage_quota_bytes"].as_u64(),
                t.groups.get(&group.id).copied(),
                "{backend:?}: {}",
                group.id
            );
        }
        // The children listing shows them too.
        let root = &base.truth.root_group_id;
        let children = world
            .get(&world.path(&format!("/groups/{root}/children?limit=500")))
            .await;
        let items = children["items"].as_array().expect("items");
        assert!(!items.is_empty());
        for item in items {
            let id = item["id"].as_str().expect("id");
            assert_eq!(item["storage_quota_bytes"].as_u64(), expected[id], "{id}");
        }
    }
}

#[tokio::test]
async fn a_changed_quota_is_a_change_to_the_next_sync() {
    for backend in Backend::enabled() {
        let world = world(backend, generate(&GenSpec::sized(Size::Small, 12))).await;
        world.sync().await;

        // Only the quota changes, not `updated_at`: the sync still sees it.
        let (user_with, user_without, group_with) = world.source.edit(|b| {
            let with = b
                .users
                .iter()
                .position(|u| u.storage_quota_bytes.is_some())
                .expect("a user with a quota");
            let without = b
                .users
                .iter()
                .position(|u| u.storage_quota_bytes.is_none())
                .expect("a user without");
            let group = b
                .groups
                .iter()
                .position(|g| g.storage_quota_bytes.is_some())
                .expect("a group with a quota");
            b.users[with].storage_quota_bytes = None;
            b.users[without].storage_quota_bytes = Some(QUOTA_SIZES[3]);
            b.groups[group].storage_quota_bytes =
                b.groups[group].storage_quota_bytes.map(|q| q * 2);
            (
                b.users[with].id.clone(),
                b.users[without].id.clone(),
                b.groups[group].id.clone(),
            )
        });
        let second = world.sync().await;
        let r = &second["response"];
        assert_eq!(
            (
                r["users"]["changed"].as_u64(),
                r["groups"]["changed"].as_u64()
            ),
            (Some(2), Some(1)),
            "{backend:?}: {second}"
        );
        let stored = world.all_stored_quotas().await;
        assert_eq!(stored, world.source.with_base(served_quotas), "{backend:?}");
        assert_eq!(stored[&user_with], None);
        assert_eq!(stored[&user_without], Some(QUOTA_SIZES[3]));
        let detail = world
            .get(&world.path(&format!("/groups/{group_with}")))
            .await;
        assert_eq!(detail["storage_quota_bytes"].as_u64(), stored[&group_with]);

        // A mutation's quota changes, the way a BackupAgent server makes them.
        let report = world.source.mutate(Mutations {
            seed: 2,
            change_user_quotas: 7,
            change_group_quotas: 3,
            ..Mutations::default()
        });
        let third = world.sync().await;
        let r = &third["response"];
        assert_eq!(
            (
                r["users"]["changed"].as_u64(),
                r["groups"]["changed"].as_u64()
            ),
            (
                Some(report.quota_changed_users.len() as u64),
                Some(report.quota_changed_groups.len() as u64)
            ),
            "{backend:?}: {third}"
        );
        assert_eq!(r["machines"]["changed"].as_u64(), Some(0));
        let stored = world.all_stored_quotas().await;
        for (id, quota) in &report.quotas {
            assert_eq!(stored.get(id), Some(quota), "{backend:?}: {id}");
        }
        assert_eq!(stored, world.source.with_base(served_quotas));
    }
}

#[tokio::test]
async fn quotas_at_the_edges_of_bigint_round_trip_exactly() {
    // 2^53 + 1 is the first integer a double cannot hold; i64::MAX the largest BIGINT.
    let edges: [u64; 4] = [0, (1 << 53) + 1, (1 << 62) + 7, i64::MAX as u64];
    for backend in Backend::enabled() {
        let mut base = generate(&GenSpec::sized(Size::Small, 13));
        let with_machines: Vec<usize> = (0..base.users.len())
            .filter(|&i| base.machines.iter().any(|m| m.user_id == base.users[i].id))
            .take(edges.len())
            .collect();
        for (&i, &quota) in with_machines.iter().zip(&edges) {
            base.users[i].storage_quota_bytes = Some(quota);
        }
        for (group, &quota) in base.groups[1..].iter_mut().zip(&edges) {
            group.storage_quota_bytes = Some(quota);
        }
        let world = world(backend, base.clone()).await;
        world.sync().await;
        let users = world.stored_quotas("source_users").await;
        let groups = world.stored_quotas("source_groups").await;
        for (&i, &quota) in with_machines.iter().zip(&edges) {
            let id = &base.users[i].id;
            assert_eq!(users[id], Some(quota as i64), "{backend:?}: {id}");
            let detail = world.get(&world.path(&format!("/users/{id}"))).await;
            assert_eq!(
                detail["storage_quota_bytes"].as_u64(),
                Some(quota),
                "{backend:?}"
            );
            assert_eq!(
                detail["data_exceeds_quota"],
                json!(quota == 0),
                "{backend:?}: a user with machines exceeds a quota of 0, never i64::MAX"
            );
        }
        for (group, &quota) in base.groups[1..].iter().zip(&edges) {
            assert_eq!(
                groups[&group.id],
                Some(quota as i64),
                "{backend:?}: {}",
                group.id
            );
            let detail = world
                .get(&world.path(&format!("/groups/{}", group.id)))
                .await;
            assert_eq!(
                detail["storage_quota_bytes"].as_u64(),
                Some(quota),
                "{backend:?}"
            );
        }
    }
}
