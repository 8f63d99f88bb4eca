//! Browsing the synced install base: rollups equal what the generator made,
//! children and search pages hold every match once, details carry paths,
//! plans and readiness; other tenants see nothing.

use std::collections::BTreeSet;

use migration_portal::sim::install_base::{GenSpec, InstallBase, Mutations, Size, generate};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, assert_problem};
use crate::world::{World, world};

impl World {
    /// Every item of a paged listing, walking the cursors with a small page.
    async fn all_pages(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let join = if path.contains('?') { '&' } else { '?' };
        loop {
            let mut url = format!("{path}{join}limit=7");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&url).await;
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }
}

/// What a subtree holds, counted from the generator's lists.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    groups: u64,
    users: u64,
    machines: u64,
    data_size_bytes: u64,
}

fn expected_rollup(base: &InstallBase, group: &str) -> Expected {
    let mut inside: BTreeSet<&str> = BTreeSet::from([group]);
    loop {
        let before = inside.len();
        for g in &base.groups {
            if g.parent_id.as_deref().is_some_and(|p| inside.contains(p)) {
                inside.insert(&g.id);
            }
        }
        if inside.len() == before {
            break;
        }
    }
    let users: BTreeSet<&str> = base
        .users
        .iter()
        .filter(|u| inside.contains(u.group_id.as_str()))
        .map(|u| u.id.as_str())
        .collect();
    let machines: Vec<_> = base
        .machines
        .iter()
        .filter(|m| users.contains(m.user_id.as_str()))
        .collect();
    Expected {
        groups: inside.len() as u64 - 1,
        users: users.len() as u64,
        machines: machines.len() as u64,
        data_size_bytes: machines.iter().map(|m| m.data_size_bytes).sum(),
    }
}

fn actual(rollup: &Value) -> Expected {
    let n = |k: &str| {
        rollup[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {rollup}"))
    };
    Expected {
        groups: n("groups"),
        users: n("users"),
        machines: n("machines"),
        data_size_bytes: n("data_size_bytes"),
    }
}

fn sum(map: &Value) -> u64 {
    map.as_object()
        .expect("map")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum()
}

#[tokio::test]
async fn rollups_children_and_details_match_the_generated_install_base() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 11));
        let world = world(backend, base.clone()).await;
        let not_yet = world
            .app
            .get(&world.path("/hierarchy"), &world.token)
            .send()
            .await
            .expect("get");
        assert_eq!(assert_problem(not_yet, 409).await["code"], "not_synced");
        world.sync().await;
        let root_id = base.truth.root_group_id.clone();

        // The root's rollup is the whole install base, every machine idle.
        let hierarchy = world.get(&world.path("/hierarchy")).await;
        let root = &hierarchy["root"];
        assert_eq!(root["id"], root_id.as_str());
        let rollup = &root["rollup"];
        assert_eq!(
            actual(rollup),
            expected_rollup(&base, &root_id),
            "{backend:?}"
        );
        assert_eq!(
            rollup["machines_by_state"]
                .as_object()
                .expect("states")
                .len(),
            7,
            "every state listed"
        );
        assert_eq!(
            rollup["machines_by_state"]["idle"].as_u64(),
            Some(base.machines.len() as u64)
        );
        assert_eq!(
            rollup["machines_by_readiness"]
                .as_object()
                .expect("readiness")
                .len(),
            5,
            "every readiness listed"
        );
        assert_eq!(
            sum(&rollup["machines_by_readiness"]),
            base.machines.len() as u64
        );
        // Two paths to the same figures: the SQL rollup and the planner's pre-check.
        let response = world
            .app
            .post_json(
                &world.path("/prechecks"),
                &world.token,
                &json!({"selection": [{"kind": "group", "id": root_id}], "check_logins": false}),
            )
            .send()
            .await
            .expect("post");
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        world.work().await;
        let planning = world.get(&format!("{location}/planning")).await;
        assert_eq!(
            rollup["machines_by_readiness"], planning["machines_by_readiness"],
            "{backend:?}"
        );
        // Unsupported OSes are exactly the generator's.
        assert_eq!(
            rollup["machines_by_readiness"]["unsupported"].as_u64(),
            Some(base.truth.machines.unsupported_os.len() as u64)
        );

        // Every group's children, walked in pages of 7: each child once, groups first, by name; rollups per subgroup.
        let mut seen_groups = BTreeSet::new();
        let mut queue = vec![root_id.clone()];
        while let Some(group) = queue.pop() {
            let children = world
                .all_pages(&world.path(&format!("/groups/{group}/children?rollup=true")))
                .await;
            let kinds: Vec<&str> = children
                .iter()
                .map(|c| c["kind"].as_str().expect("kind"))
                .collect();
            assert!(
                kinds.windows(2).all(|w| w[0] <= w[1]),
                "groups before users: {kinds:?}"
            );
            let want_groups: BTreeSet<String> = base
                .groups
                .iter()
                .filter(|g| g.parent_id.as_deref() == Some(group.as_str()))
                .map(|g| g.id.clone())
                .collect();
            let want_users: BTreeSet<String> = base
                .users
                .iter()
                .filter(|u| u.group_id == group)
                .map(|u| u.id.clone())
                .collect();
            let got = |kind: &str| -> Vec<String> {
                children
                    .iter()
                    .filter(|c| c["kind"] == kind)
                    .map(|c| c["id"].as_str().expect("id").to_string())
                    .collect()
            };
            let (groups, users) = (got("group"), got("user"));
            assert_eq!(
                groups.iter().cloned().collect::<BTreeSet<_>>(),
                want_groups,
                "{backend:?} subgroups of {group}"
            );
            assert_eq!(groups.len(), want_groups.len(), "no subgroup twice");
            assert_eq!(
                users.iter().cloned().collect::<BTreeSet<_>>(),
                want_users,
                "{backend:?} users of {group}"
            );
            assert_eq!(users.len(), want_users.len(), "no user twice");
            for child in &children {
                let id = child["id"].as_str().expect("id");
                if child["kind"] == "group" {
                    assert_eq!(
                        actual(&child["rollup"]),
                        expected_rollup(&base, id),
                        "{backend:?} rollup of {id}"
                    );
                    let name = &base.groups.iter().find(|g| g.id == id).expect("group").name;
                    assert_eq!(child["name"], name.as_str());
                    queue.push(id.to_string());
                    seen_groups.insert(id.to_string());
                } else {
                    let machines = base.machines.iter().filter(|m| m.user_id == id).count() as u64;
                    assert_eq!(child["machines"].as_u64(), Some(machines));
                    assert_eq!(child["has_children"], machines > 0);
                    assert!(child.get("rollup").is_none());
                }
            }
        }
        assert_eq!(
            seen_groups.len(),
            base.groups.len() - 1,
            "the walk reached every group"
        );
        // Only users, when asked.
        let only_users = world
            .all_pages(&world.path(&format!("/groups/{root_id}/children?kind=user")))
            .await;
        assert!(only_users.iter().all(|c| c["kind"] == "user"));
        assert_eq!(
            only_users.len(),
            base.users.iter().filter(|u| u.group_id == root_id).count()
        );

        // Group detail: target kind by the generator's classification, path from the root.
        let t = &base.truth.groups;
        for (ids, kind) in [
            (&t.resellers, "partner"),
            (&t.customers, "customer"),
            (&t.mixed, "partner_with_customer"),
            (&t.empty, "empty"),
        ] {
            for id in ids.iter().take(3) {
                let detail = world.get(&world.path(&format!("/groups/{id}"))).await;
                assert_eq!(detail["target_kind"], kind, "{id}");
                let path: Vec<&str> = detail["path"]
                    .as_array()
                    .expect("path")
                    .iter()
                    .map(|p| p["id"].as_str().expect("id"))
                    .collect();
                assert_eq!(path.first(), Some(&root_id.as_str()));
                assert_eq!(path.last(), Some(&id.as_str()));
                assert_eq!(actual(&detail["rollup"]), expected_rollup(&base, id));
            }
        }
        let deepest = t.deep_chain.last().expect("deep chain");
        let detail = world.get(&world.path(&format!("/groups/{deepest}"))).await;
        assert_eq!(
            detail["path"].as_array().expect("path").len(),
            t.deep_chain.len() + 1,
            "root + the chain"
        );

        // User detail: their machines, exactly.
        let user = base
            .users
            .iter()
            .find(|u| base.machines.iter().filter(|m| m.user_id == u.id).count() > 1)
            .expect("a user with machines");
        let detail = world.get(&world.path(&format!("/users/{}", user.id))).await;
        assert_eq!(detail["login"], user.login.as_str());
        let machines: BTreeSet<&str> = detail["machines"]
            .as_array()
            .expect("machines")
            .iter()
            .map(|m| m["id"].as_str().expect("id"))
            .collect();
        let want: BTreeSet<&str> = base
            .machines
            .iter()
            .filter(|m| m.user_id == user.id)
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(machines, want);

        // Machine detail: an unsupported OS says so with steps; plans come converted, uneven times warned.
        let unsupported = &base.truth.machines.unsupported_os[0];
        let detail = world
            .get(&world.path(&format!("/machines/{unsupported}")))
            .await;
        assert_eq!(detail["readiness"], "unsupported");
        assert_eq!(detail["actions"][0]["cause"], "unsupported_os");
        assert!(
            detail["actions"][0]["instructions"]
                .as_array()
                .expect("steps")
                .len()
                >= 3
        );
        let uneven = &base.truth.plans.daily_uneven[0];
        let machine = &base
            .plans
            .iter()
            .find(|p| &p.id == uneven)
            .expect("plan")
            .machine_id;
        let detail = world
            .get(&world.path(&format!("/machines/{machine}")))
            .await;
        let plans = detail["backup_plans"].as_array().expect("plans");
        assert_eq!(
            plans.len(),
            base.plans
                .iter()
                .filter(|p| &p.machine_id == machine)
                .count()
        );
        let plan = plans
            .iter()
            .find(|p| p["source"]["id"] == uneven.as_str())
            .expect("the uneven plan");
        assert_eq!(plan["target"]["schedule"]["kind"], "hourly", "{plan}");
        assert!(
            plan["target"]["warnings"]
                .to_string()
                .contains("runs_more_often"),
            "{plan}"
        );
        let stored = base
            .machines
            .iter()
            .find(|m| &m.id == machine)
            .expect("machine");
        assert_eq!(detail["hostname"], stored.hostname.as_str());
        assert_eq!(detail["user_id"], stored.user_id.as_str());

        // Unknown ids are 404; another tenant sees none of it.
        for path in [
            "/groups/nope",
            "/groups/nope/children",
            "/users/nope",
            "/machines/nope",
        ] {
            assert_problem(
                world
                    .app
                    .get(&world.path(path), &world.token)
                    .send()
                    .await
                    .expect("get"),
                404,
            )
            .await;
        }
        let stranger = world.cloud.idp().partner_token(Uuid::now_v7());
        let user_path = format!("/users/{}", user.id);
        let group_path = format!("/groups/{root_id}/children");
        for path in [
            "/hierarchy",
            "/hierarchy/search?q=a",
            group_path.as_str(),
            user_path.as_str(),
        ] {
            assert_problem(
                world
                    .app
                    .get(&world.path(path), &stranger)
                    .send()
                    .await
                    .expect("get"),
                404,
            )
            .await;
        }
        // Bad queries are 400, not 500.
        for path in [
            format!("/groups/{root_id}/children?kind=machine"),
            format!("/groups/{root_id}/children?cursor=garbage"),
            format!("/groups/{root_id}/children?limit=0"),
            "/hierarchy/search".to_string(),
            "/hierarchy/search?q=%20%20".to_string(),
            format!("/hierarchy/search?q={}", "x".repeat(201)),
            "/hierarchy/search?q=a&kind=plan".to_string(),
        ] {
            assert_problem(
                world
                    .app
                    .get(&world.path(&path), &world.token)
                    .send()
                    .await
                    .expect("get"),
                400,
            )
            .await;
        }
    }
}

/// What a search for `q` must find, from the generator's lists.
fn expected_hits(base: &InstallBase, q: &str) -> BTreeSet<(String, String)> {
    let q = q.to_lowercase();
    let has = |values: &[Option<&str>]| {
        values
            .iter()
            .flatten()
            .any(|v| v.to_lowercase().contains(&q))
    };
    let groups = base.groups.iter().filter(|g| {
        let admin = g.admin.as_ref();
        has(&[
            Some(&g.name),
            admin.map(|a| a.login.as_str()),
            admin.map(|a| a.email.as_str()),
        ])
    });
    let users = base
        .users
        .iter()
        .filter(|u| has(&[Some(&u.login), Some(&u.email)]));
    let machines = base.machines.iter().filter(|m| has(&[Some(&m.hostname)]));
    groups
        .map(|g| ("group".to_string(), g.id.clone()))
        .chain(users.map(|u| ("user".to_string(), u.id.clone())))
        .chain(machines.map(|m| ("machine".to_string(), m.id.clone())))
        .collect()
}

#[tokio::test]
async fn search_finds_every_match_once_and_takes_wildcards_literally() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 11));
        let world = world(backend, base.clone()).await;
        world.sync().await;
        let user = &base.users[base.users.len() / 2];
        let machine = &base.machines[base.machines.len() / 3];
        let group = &base.groups[base.groups.len() / 2];
        let email_part = user
            .email
            .split('@')
            .next()
            .expect("local part")
            .to_uppercase();
        let hostname_part: String = machine.hostname.chars().skip(1).take(5).collect();
        for q in [
            group.name.trim().to_string(),
            email_part,
            hostname_part,
            "_".to_string(),
            "%".to_string(),
            "a".to_string(),
        ] {
            let encoded: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let hits = world
                .all_pages(&world.path(&format!("/hierarchy/search?q={encoded}")))
                .await;
            let got: Vec<(String, String)> = hits
                .iter()
                .map(|h| {
                    (
                        h["kind"].as_str().expect("kind").to_string(),
                        h["id"].as_str().expect("id").to_string(),
                    )
                })
                .collect();
            let unique: BTreeSet<(String, String)> = got.iter().cloned().collect();
            assert_eq!(unique.len(), got.len(), "{backend:?} {q:?}: no hit twice");
            assert_eq!(unique, expected_hits(&base, q.trim()), "{backend:?} {q:?}");
            let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
            assert!(
                kinds.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
                "groups, then users, then machines"
            );
        }
        let only = world
            .all_pages(&world.path(&format!(
                "/hierarchy/search?q={}&kind=user",
                user.login.to_uppercase()
            )))
            .await;
        assert!(only.iter().any(|h| h["id"] == user.id.as_str()));
        assert!(only.iter().all(|h| h["kind"] == "user"));
    }
}

fn rank(kind: &str) -> u8 {
    match kind {
        "group" => 0,
        "user" => 1,
        _ => 2,
    }
}

#[tokio::test]
async fn a_machine_mid_migration_stays_in_the_rollup_flagged_after_its_user_leaves_the_source() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 5));
        let world = world(backend, base.clone()).await;
        world.sync().await;
        // Mark every machine migrating, then let the source lose some users.
        world
            .db
            .execute_unprepared("UPDATE source_machines SET migration_state = 'migrating'")
            .await
            .expect("mark");
        let report = world.source.mutate(Mutations {
            seed: 3,
            add_users: 0,
            move_users: 0,
            remove_users: 4,
            upgrade_clients: 0,
            ..Mutations::default()
        });
        assert!(
            !report.removed_machines.is_empty(),
            "the removed users had machines"
        );
        world.sync().await;
        let rollup = world.get(&world.path("/hierarchy")).await["root"]["rollup"].clone();
        assert_eq!(
            rollup["machines"].as_u64(),
            Some(base.machines.len() as u64),
            "{backend:?}: nothing mid-migration is lost"
        );
        assert_eq!(
            rollup["machines_by_state"]["migrating"].as_u64(),
            Some(base.machines.len() as u64)
        );
        // The users are forgotten (they are not in a migration themselves); their machines stay, flagged.
        let flagged = rollup["removed_from_source"].as_u64().expect("removed");
        assert!(flagged >= report.removed_machines.len() as u64, "{rollup}");
        let detail = world
            .get(&world.path(&format!("/machines/{}", report.removed_machines[0])))
            .await;
        assert_eq!(detail["removed_from_source"], true);
        assert_eq!(detail["migration_state"], "migrating");
    }
}

/// The groups under `top`, itself included.
fn subtree(base: &InstallBase, top: &str) -> BTreeSet<String> {
    let mut inside = BTreeSet::from([top.to_string()]);
    loop {
        let before = inside.len();
        for g in &base.groups {
            if g.parent_id.as_ref().is_some_and(|p| inside.contains(p)) {
                inside.insert(g.id.clone());
            }
        }
        if inside.len() == before {
            return inside;
        }
    }
}

/// Removes the users `users` from the source with their machines and plans:
/// the machines removed, each with its data size and group.
fn remove_users(b: &mut InstallBase, users: &BTreeSet<String>) -> Vec<(u64, String)> {
    let groups: std::collections::BTreeMap<String, String> = b
        .users
        .iter()
        .map(|u| (u.id.clone(), u.group_id.clone()))
        .collect();
    let machines: Vec<(String, u64, String)> = b
        .machines
        .iter()
        .filter(|m| users.contains(&m.user_id))
        .map(|m| (m.id.clone(), m.data_size_bytes, groups[&m.user_id].clone()))
        .collect();
    let ids: BTreeSet<&String> = machines.iter().map(|(id, _, _)| id).collect();
    b.users.retain(|u| !users.contains(&u.id));
    b.machines.retain(|m| !ids.contains(&m.id));
    b.plans.retain(|p| !ids.contains(&p.machine_id));
    machines
        .into_iter()
        .map(|(_, size, group)| (size, group))
        .collect()
}

#[tokio::test]
async fn rollups_follow_the_group_tree_as_a_re_sync_changes_it() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 7));
        let world = world(backend, base.clone()).await;
        world.sync().await;
        // Every machine mid-migration: those that leave the source stay, flagged, in their group.
        world
            .db
            .execute_unprepared("UPDATE source_machines SET migration_state = 'migrating'")
            .await
            .expect("mark");
        let root = base.truth.root_group_id.clone();
        let (kept, gone) = world.source.edit(|b| {
            // A branch with groups below it moves under a group outside it.
            let (moved, to, inside) =
                b.groups
                    .iter()
                    .filter(|g| g.parent_id.is_some())
                    .find_map(|g| {
                        let inside = subtree(b, &g.id);
                        let to = b.groups.iter().rev().find(|t| {
                            !inside.contains(&t.id) && Some(&t.id) != g.parent_id.as_ref()
                        })?;
                        (inside.len() > 1).then(|| (g.id.clone(), to.id.clone(), inside))
                    })
                    .expect("a branch that can move");
            for g in b.groups.iter_mut().filter(|g| g.id == moved) {
                g.parent_id = Some(to.clone());
            }
            // A user with machines in the branch leaves the source: its machines stay in the branch.
            let leaver = b
                .machines
                .iter()
                .filter_map(|m| b.users.iter().find(|u| u.id == m.user_id))
                .find(|u| inside.contains(&u.group_id))
                .expect("a user with machines in the branch")
                .id
                .clone();
            let mut kept = remove_users(b, &BTreeSet::from([leaver]));
            // A leaf group goes with its users: their machines stay, in no group of the tree.
            let gone = b
                .groups
                .iter()
                .find(|g| {
                    !inside.contains(&g.id)
                        && g.parent_id.is_some()
                        && !b.groups.iter().any(|c| c.parent_id.as_ref() == Some(&g.id))
                })
                .expect("a leaf group")
                .id
                .clone();
            let users: BTreeSet<String> = b
                .users
                .iter()
                .filter(|u| u.group_id == gone)
                .map(|u| u.id.clone())
                .collect();
            kept.extend(remove_users(b, &users));
            b.groups.retain(|g| g.id != gone);
            // A new group arrives inside the branch, and a user from elsewhere moves into it.
            let mut added = b
                .groups
                .iter()
                .find(|g| g.id == to)
                .expect("target")
                .clone();
            added.id = "g-added".into();
            added.name = "added group".into();
            added.parent_id = Some(moved.clone());
            let user = b
                .users
                .iter_mut()
                .find(|u| !inside.contains(&u.group_id))
                .expect("a user outside the branch");
            user.group_id = added.id.clone();
            b.groups.push(added);
            (kept, gone)
        });
        world.source.mutate(Mutations {
            seed: 9,
            add_users: 5,
            move_users: 10,
            ..Mutations::default()
        });
        world.sync().await;
        let changed = world.source.with_base(InstallBase::clone);
        for group in &changed.groups {
            let detail = world
                .get(&world.path(&format!("/groups/{}", group.id)))
                .await;
            let inside = subtree(&changed, &group.id);
            let mut expected = expected_rollup(&changed, &group.id);
            for (size, _) in kept.iter().filter(|(_, g)| inside.contains(g)) {
                expected.machines += 1;
                expected.data_size_bytes += size;
            }
            assert_eq!(
                actual(&detail["rollup"]),
                expected,
                "{backend:?}: rollup of {}",
                group.id
            );
        }
        let hierarchy = world.get(&world.path("/hierarchy")).await;
        assert_eq!(
            hierarchy["root"]["rollup"]["machines"].as_u64(),
            Some((changed.machines.len() + kept.iter().filter(|(_, g)| *g != gone).count()) as u64),
            "{backend:?}: the root's machines, those kept in a group still there included"
        );
        assert_eq!(
            root,
            hierarchy["root"]["id"].as_str().expect("root").to_string()
        );
        let response = world
            .app
            .get(&world.path(&format!("/groups/{gone}")), &world.token)
            .send()
            .await
            .expect("get");
        assert_eq!(
            response.status(),
            404,
            "{backend:?}: a group gone from the source"
        );
    }
}
