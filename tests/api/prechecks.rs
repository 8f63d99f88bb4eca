//! The pre-check report against what the generator planted on `small`: every
//! oddity appears exactly where it should and nothing else does; bad selections
//! are refused; reports are kept and compared.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use migration_portal::api::paging::encode_cursor;
use migration_portal::sim::install_base::{GenSpec, Mutations, Size, generate};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, assert_problem};
use crate::world::{World, world};

impl World {
    /// Starts a pre-check, runs it, and answers the completed pre-check.
    pub(crate) async fn precheck(&self, selection: Value) -> Value {
        self.precheck_with(json!({"selection": selection})).await
    }

    /// [`World::precheck`] with a whole request body.
    pub(crate) async fn precheck_with(&self, body: Value) -> Value {
        let response = self
            .app
            .post_json(&self.path("/prechecks"), &self.token, &body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        // A worker running in the background may have taken the job: wait for it too.
        let started = std::time::Instant::now();
        loop {
            self.work().await;
            let precheck = self.get(&location).await;
            if precheck["status"] != "running"
                || started.elapsed() > std::time::Duration::from_secs(60)
            {
                assert_eq!(precheck["status"], "completed", "{precheck}");
                return precheck;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Every entry of a section, walking the pages.
    pub(crate) async fn section(&self, precheck: &Value, section: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "{}/sections/{section}?limit=97",
                self.path(&format!(
                    "/prechecks/{}",
                    precheck["id"].as_str().expect("id")
                ))
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path).await;
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }
}

fn set<'a>(items: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    items.into_iter().cloned().collect()
}

fn ids_where(entries: &[Value], id: &str, keep: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| keep(e))
        .map(|e| e[id].as_str().expect("id").to_string())
        .collect()
}

fn has(list: &Value, item: &str) -> bool {
    list.as_array().is_some_and(|l| l.iter().any(|v| v == item))
}

#[tokio::test]
async fn each_report_section_shows_exactly_what_the_generator_planted() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 11));
        let world = world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world
            .precheck(json!([{"kind": "group", "id": base.truth.root_group_id}]))
            .await;
        let t = &base.truth;
        // Small plants every oddity, so no comparison below is between two empty sets.
        for (what, planted) in [
            ("offline", t.users.offline.len()),
            ("auto-update off", t.users.auto_update_off.len()),
            ("bad characters", t.users.bad_character_logins.len()),
            ("short logins", t.users.short_logins.len()),
            (
                "taken in the cloud",
                t.users.cloud_existing_logins.len()
                    + t.users.cloud_existing_logins_other_case.len(),
            ),
            ("colliding logins", t.users.case_colliding_logins.len()),
            (
                "odd names",
                t.groups.whitespace_names.len()
                    + t.groups.refused_character_names.len()
                    + t.groups.long_names.len(),
            ),
            ("duplicate names", t.groups.duplicate_sibling_names.len()),
            ("mixed groups", t.groups.mixed.len()),
            ("empty groups", t.groups.empty.len()),
            ("without admin", t.groups.without_admin.len()),
            ("never reported", t.machines.client_never_reported.len()),
        ] {
            assert!(planted > 0, "small plants {what}");
        }
        let owner: HashMap<&str, &str> = base
            .machines
            .iter()
            .map(|m| (m.id.as_str(), m.user_id.as_str()))
            .collect();
        let owners = |machines: &[&Vec<String>]| -> BTreeSet<String> {
            machines
                .iter()
                .flat_map(|list| list.iter())
                .map(|m| owner[m.as_str()].to_string())
                .collect()
        };

        // Migration planning.
        let planning = world
            .get(&world.path(&format!(
                "/prechecks/{}/planning",
                precheck["id"].as_str().expect("id")
            )))
            .await;
        let counts = &planning["counts"];
        let root_has_users = base.users.iter().any(|u| u.group_id == t.root_group_id);
        assert_eq!(counts["users"], base.users.len(), "{backend:?}");
        assert_eq!(counts["machines"], base.machines.len());
        assert_eq!(counts["backup_plans"], base.plans.len());
        assert_eq!(
            counts["data_size_bytes"],
            base.machines.iter().map(|m| m.data_size_bytes).sum::<u64>()
        );
        assert_eq!(counts["groups"], base.groups.len() - 1);
        assert_eq!(
            counts["companies"],
            t.groups.customers.len() + t.groups.mixed.len() + usize::from(root_has_users)
        );
        assert_eq!(
            counts["partners"],
            t.groups.resellers.len() + t.groups.mixed.len()
        );
        assert_eq!(counts["empty_groups"], t.groups.empty.len());
        assert_eq!(
            planning["machines_by_readiness"]["unsupported"],
            t.machines.unsupported_os.len()
        );
        let needs_upgrade: BTreeSet<&String> = t
            .machines
            .client_old
            .iter()
            .chain(&t.machines.client_below_threshold)
            .collect();
        let auto_update_off: HashSet<&String> = t.users.auto_update_off.iter().collect();
        let will_update = needs_upgrade
            .iter()
            .filter(|m| !auto_update_off.contains(&owner[m.as_str()].to_string()))
            .count();
        assert_eq!(planning["clients_that_will_auto_update"], will_update);
        let versions: u64 = planning["client_versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["machines"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            versions,
            base.machines.len() as u64,
            "every machine's client version is counted once"
        );

        // Users to contact, with why.
        let contacts = world.section(&precheck, "contacts").await;
        assert_eq!(
            ids_where(&contacts, "user_id", |c| has(&c["reasons"], "offline")),
            set(&t.users.offline),
            "offline users"
        );
        assert_eq!(
            ids_where(&contacts, "user_id", |c| has(
                &c["reasons"],
                "never_reported"
            )),
            owners(&[&t.machines.client_never_reported])
        );
        let old_client_owners =
            owners(&[&t.machines.client_old, &t.machines.client_below_threshold]);
        let expected: BTreeSet<String> = t
            .users
            .auto_update_off
            .iter()
            .filter(|u| old_client_owners.contains(*u))
            .cloned()
            .collect();
        assert_eq!(
            ids_where(&contacts, "user_id", |c| has(
                &c["reasons"],
                "auto_update_off"
            )),
            expected,
            "auto-update off with an old client"
        );
        assert!(
            contacts.iter().all(|c| c["email"].is_string()),
            "contacts carry an email"
        );
        assert_eq!(planning["users_to_contact"]["total"], contacts.len());

        // Machines for which additional actions should be taken.
        let actions = world.section(&precheck, "actions").await;
        let plan_machines = |kind: &str| -> BTreeSet<String> {
            let plans: HashSet<&String> = t
                .plans
                .by_type
                .get(kind)
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            base.plans
                .iter()
                .filter(|p| plans.contains(&p.id))
                .map(|p| p.machine_id.clone())
                .collect()
        };
        let by_cause = |cause: &str| ids_where(&actions, "machine_id", |a| a["cause"] == cause);
        assert_eq!(by_cause("unsupported_os"), set(&t.machines.unsupported_os));
        assert_eq!(
            by_cause("sql_server_registration"),
            plan_machines("sql_server")
        );
        assert_eq!(by_cause("exchange_registration"), plan_machines("exchange"));
        assert_eq!(by_cause("unsupported_plan_type"), plan_machines("other"));
        assert!(
            !by_cause("sql_server_registration").is_empty()
                && !by_cause("unsupported_os").is_empty(),
            "small plants every cause"
        );
        for step in planning["actions"].as_array().expect("actions") {
            assert!(
                step["instructions"]
                    .as_array()
                    .is_some_and(|i| !i.is_empty()),
                "{step}"
            );
        }

        // Hierarchy review: kinds and every name change.
        let hierarchy = world.section(&precheck, "hierarchy").await;
        let by_plan = |plan: &str| ids_where(&hierarchy, "group_id", |g| g["plan"] == plan);
        assert_eq!(by_plan("partner"), set(&t.groups.resellers));
        assert_eq!(by_plan("customer"), set(&t.groups.customers));
        assert_eq!(by_plan("partner_with_customer"), set(&t.groups.mixed));
        assert_eq!(by_plan("empty"), set(&t.groups.empty));
        let renamed = ids_where(&hierarchy, "group_id", |g| {
            g["tenant"]["segments"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["kind"] != "kept"))
        });
        let mut expected: BTreeSet<String> = t
            .groups
            .whitespace_names
            .iter()
            .chain(&t.groups.refused_character_names)
            .chain(&t.groups.control_character_names)
            .chain(&t.groups.long_names)
            .cloned()
            .collect();
        for duplicates in &t.groups.duplicate_sibling_names {
            let mut sorted = duplicates.clone();
            sorted.sort();
            expected.extend(sorted.into_iter().skip(1));
        }
        expected.retain(|g| !t.groups.empty.contains(g));
        assert_eq!(renamed, expected, "groups whose names change");
        for mixed in &t.groups.mixed {
            let row = hierarchy
                .iter()
                .find(|g| g["group_id"] == mixed.as_str())
                .expect("row");
            let added = row["users_tenant"]["segments"]
                .as_array()
                .and_then(|s| s.last())
                .map(|s| s["kind"].clone());
            assert_eq!(
                added,
                Some(json!("added")),
                "a mixed group's users get a customer with added text"
            );
        }

        // Groups mapping: every admin needs activation; groups without one say so.
        let groups = world.section(&precheck, "groups").await;
        let without: BTreeSet<String> = t
            .groups
            .without_admin
            .iter()
            .filter(|g| !t.groups.empty.contains(*g) && **g != t.root_group_id)
            .cloned()
            .collect();
        assert_eq!(
            ids_where(&groups, "group_id", |g| g["note"] == "no_admin"),
            without
        );
        assert!(
            groups
                .iter()
                .filter(|g| g["note"].is_null())
                .all(|g| g["activation_required"] == true && g["target_login"].is_string())
        );

        // Users mapping: each login changes exactly for its planted reason.
        let users = world.section(&precheck, "users").await;
        assert_eq!(users.len(), base.users.len());
        // A cursor is a position: one past the end is an empty page; one no report reaches was not issued here.
        let users_path = world.path(&format!(
            "/prechecks/{}/sections/users",
            precheck["id"].as_str().expect("id")
        ));
        let past_end = encode_cursor(Uuid::from_u128(users.len() as u128));
        assert_eq!(
            world.get(&format!("{users_path}?cursor={past_end}")).await["items"],
            json!([])
        );
        let beyond = encode_cursor(Uuid::from_u128(u128::from(u64::MAX)));
        let refused = assert_problem(
            world
                .app
                .get(&format!("{users_path}?cursor={beyond}"), &world.token)
                .send()
                .await
                .expect("get"),
            400,
        )
        .await;
        assert_eq!(refused["code"], "invalid_cursor");
        let changed = |reason: &str| ids_where(&users, "user_id", |u| has(&u["changes"], reason));
        assert_eq!(changed("characters"), set(&t.users.bad_character_logins));
        assert_eq!(changed("too_short"), set(&t.users.short_logins));
        assert_eq!(
            changed("taken_in_target"),
            set(t
                .users
                .cloud_existing_logins
                .iter()
                .chain(&t.users.cloud_existing_logins_other_case))
        );
        let mut in_plan = BTreeSet::new();
        for colliding in &t.users.case_colliding_logins {
            let mut sorted = colliding.clone();
            sorted.sort();
            in_plan.extend(sorted.into_iter().skip(1));
        }
        assert_eq!(changed("taken_in_plan"), in_plan);
        assert!(
            users.iter().all(|u| u["unverified"] == false),
            "every login was checked with the target"
        );
        let kept = ids_where(&users, "user_id", |u| {
            u["source_login"] == u["target_login"]
        });
        assert_eq!(
            kept.len()
                + ids_where(&users, "user_id", |u| u["changes"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()))
                .len(),
            users.len()
        );

        // CSV exports parse, one row per entry, with no cell a spreadsheet would run.
        for (section, entries) in [
            ("users", users.len()),
            ("contacts", contacts.len()),
            ("groups", groups.len()),
            ("actions", actions.len()),
        ] {
            let path = world.path(&format!(
                "/prechecks/{}/exports/{section}",
                precheck["id"].as_str().expect("id")
            ));
            let response = world
                .app
                .get(&path, &world.token)
                .send()
                .await
                .expect("csv");
            assert_eq!(response.status(), 200);
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap_or_default()
                    .starts_with("text/csv")
            );
            let body = response.text().await.expect("body");
            let mut reader = csv::Reader::from_reader(body.as_bytes());
            let rows: Vec<csv::StringRecord> = reader
                .records()
                .collect::<Result<_, _>>()
                .expect("csv parses");
            assert_eq!(rows.len(), entries, "{section}");
            assert!(
                rows.iter()
                    .flat_map(|r| r.iter())
                    .all(|cell| !cell.starts_with(['=', '+', '-', '@'])),
                "{section}"
            );
        }
    }
}

#[tokio::test]
async fn bad_selections_are_refused_with_problem_details() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 5));
        let root = base.truth.root_group_id.clone();
        let world = world(backend, base).await;
        let post = |body: Value| {
            world
                .app
                .post_json(&world.path("/prechecks"), &world.token, &body)
                .send()
        };

        let before_sync = assert_problem(
            post(json!({"selection": [{"kind": "group", "id": root}]}))
                .await
                .expect("post"),
            409,
        )
        .await;
        assert_eq!(before_sync["code"], "not_synced");
        world.sync().await;

        // A bigger install base elsewhere has ids this one lacks.
        let other = generate(&GenSpec::custom(80, 400, 500, 6));
        let foreign = other.users.last().expect("user").id.clone();
        let cases = [
            (json!({"selection": []}), 422, vec!["/selection"]),
            // Nodes the snapshot does not have: a conflict with its state, each pointed at.
            (
                json!({"selection": [{"kind": "group", "id": "g-9999999"}]}),
                409,
                vec!["/selection/0"],
            ),
            (
                json!({"selection": [{"kind": "group", "id": root}, {"kind": "user", "id": foreign}, {"kind": "user", "id": root}]}),
                409,
                vec!["/selection/1", "/selection/2"],
            ),
            (
                json!({"selection": [{"kind": "tenant", "id": root}]}),
                400,
                vec![],
            ),
            (json!({"selection": "everything"}), 400, vec![]),
            (json!({}), 400, vec![]),
        ];
        for (body, status, pointers) in cases {
            let problem = assert_problem(post(body.clone()).await.expect("post"), status).await;
            let listed: Vec<&str> = problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["pointer"].as_str())
                .collect();
            if status != 400 {
                assert_eq!(listed, pointers, "{body}");
            }
        }
        let stranger = world.cloud.idp().partner_token(Uuid::now_v7());
        let response = world
            .app
            .post_json(
                &world.path("/prechecks"),
                &stranger,
                &json!({"selection": [{"kind": "group", "id": root}]}),
            )
            .send()
            .await
            .expect("post");
        assert_problem(response, 404).await;
        let listed = world.get(&world.path("/prechecks")).await;
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(0),
            "refused pre-checks leave nothing behind"
        );
    }
}

#[tokio::test]
async fn a_later_pre_check_says_what_changed_and_asks_the_target_only_about_new_logins() {
    for backend in Backend::enabled() {
        let base = generate(&GenSpec::sized(Size::Small, 21));
        let root = base.truth.root_group_id.clone();
        let world = world(backend, base).await;
        world.sync().await;
        let first = world.precheck(json!([{"kind": "group", "id": root}])).await;
        let operation = |p: &Value| p["operation"].as_str().expect("operation").to_string();
        let asked = world.get(&operation(&first)).await["response"]["asked_target"]
            .as_u64()
            .expect("asked");
        assert!(
            asked >= world.source.counts().users as u64,
            "every planned login was asked about: {asked}"
        );

        let same = world.precheck(json!([{"kind": "group", "id": root}])).await;
        assert_eq!(
            world.get(&operation(&same)).await["response"]["asked_target"],
            0,
            "answers are kept per workspace"
        );
        let unchanged = world
            .get(&world.path(&format!(
                "/prechecks/{}/changes",
                same["id"].as_str().expect("id")
            )))
            .await;
        assert_eq!(unchanged["since"], first["id"]);
        assert!(
            unchanged["sections"]
                .as_object()
                .expect("sections")
                .values()
                .all(|s| s["added"] == 0 && s["removed"] == 0 && s["changed"] == 0),
            "{unchanged}"
        );

        let report = world.source.mutate(Mutations {
            seed: 3,
            add_users: 4,
            move_users: 0,
            remove_users: 3,
            upgrade_clients: 0,
            ..Mutations::default()
        });
        world.sync().await;
        assert_eq!(
            world
                .get(&world.path(&format!("/prechecks/{}", same["id"].as_str().expect("id"))))
                .await["stale"],
            true,
            "a re-sync makes older reports stale"
        );
        let later = world.precheck(json!([{"kind": "group", "id": root}])).await;
        let changes = world
            .get(&world.path(&format!(
                "/prechecks/{}/changes",
                later["id"].as_str().expect("id")
            )))
            .await;
        assert_eq!(changes["since"], same["id"]);
        let users = &changes["sections"]["users"];
        assert_eq!(users["added"], report.added_users.len(), "{changes}");
        assert_eq!(users["removed"], report.removed_users.len(), "{changes}");
        let listed: BTreeMap<String, String> = users["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap_or_default().to_string(),
                    i["change"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        for added in &report.added_users {
            assert_eq!(
                listed.get(added).map(String::as_str),
                Some("added"),
                "{added}"
            );
        }
        assert_eq!(
            changes["planning"]["/counts/users"]["after"],
            world.source.counts().users,
            "{}",
            changes["planning"]
        );
        let asked_later = world.get(&operation(&later)).await["response"]["asked_target"]
            .as_u64()
            .expect("asked");
        assert!(
            asked_later <= report.added_users.len() as u64 * 2,
            "only new logins were asked about: {asked_later}"
        );
        let listed = world.get(&world.path("/prechecks")).await;
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(3),
            "reports are kept"
        );
    }
}

#[tokio::test]
async fn login_answers_are_kept_once_per_login_whatever_its_case() {
    for backend in Backend::enabled() {
        let (db, _dir) = crate::helpers::fresh_db(backend).await;
        let workspace = Uuid::now_v7();
        let at = chrono::Utc::now();
        let answers = [
            ("Anna".to_string(), false),
            ("anna".to_string(), true),
            ("bob".to_string(), false),
        ];
        migration_portal::db::prechecks::record_login_answers(&db, workspace, &answers, at)
            .await
            .expect("recorded");
        let kept = migration_portal::db::prechecks::login_answers(
            &db,
            workspace,
            at - chrono::Duration::hours(1),
        )
        .await
        .expect("read");
        assert_eq!(kept.len(), 2, "{backend:?}: {kept:?}");
        assert!(kept["anna"].0, "{backend:?}: the last answer wins");
    }
}
