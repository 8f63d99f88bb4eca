//! Migrations against the cloud simulator: the end state equals the plan, with
//! faults, pauses, cancels, retries, killed workers and two workers at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use migration_portal::app::job_handlers;
use migration_portal::crypto::SecretBox;
use migration_portal::queue::{Worker, WorkerConfig};
use migration_portal::sim::cloud::Faults;
use migration_portal::sim::install_base::{GenSpec, InstallBase, Size, generate};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{AUDIENCE, Backend, assert_problem};
use crate::world::{World, world};

pub(crate) fn small() -> InstallBase {
    generate(&GenSpec::sized(Size::Small, 7))
}

/// A world whose workspace may call the simulators at 1,000 requests per second.
pub(crate) async fn fast_world(backend: Backend, base: InstallBase) -> World {
    make_fast(world(backend, base).await).await
}

/// Lets the world's workspace call the simulators at 1,000 requests per second.
pub(crate) async fn make_fast(world: World) -> World {
    let fast = json!({"rate_per_sec": 1000, "concurrency": 16});
    let body = json!({"limits": {"source": fast, "target": fast}});
    let response = world
        .app
        .patch_json(&world.path(""), &world.token, &body)
        .send()
        .await
        .expect("patch");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    world
}

/// A worker running in the background until dropped.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub(crate) fn new(stop: watch::Sender<bool>, task: tokio::task::JoinHandle<()>) -> Self {
        Running {
            stop,
            task: Some(task),
        }
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl World {
    pub(crate) fn worker(&self, concurrency: usize) -> Worker {
        let secrets = SecretBox::from_base64(&self.app.secret_key).expect("key");
        let config = WorkerConfig {
            concurrency,
            poll_interval: Duration::from_millis(20),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            ..WorkerConfig::default()
        };
        let metrics = self.app.metrics.clone();
        Worker::new(
            self.db.clone(),
            config,
            job_handlers(secrets, true, Some(metrics.clone())),
        )
        .with_metrics(metrics)
    }

    pub(crate) fn run_worker(&self) -> Running {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.worker(8).run(stopped));
        Running {
            stop,
            task: Some(task),
        }
    }

    pub(crate) async fn whole_precheck(&self, base: &InstallBase) -> Value {
        self.precheck(json!([{"kind": "group", "id": base.truth.root_group_id}]))
            .await
    }

    pub(crate) async fn start_migration(&self, body: Value) -> String {
        let response = self
            .app
            .post_json(&self.path("/migrations"), &self.token, &body)
            .send()
            .await
            .expect("post");
        assert_eq!(
            response.status(),
            202,
            "{}",
            response.text().await.unwrap_or_default()
        );
        response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string()
    }

    /// Polls the migration until `until` holds of it (at most two minutes).
    pub(crate) async fn wait_for(&self, location: &str, until: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let migration = self.get(location).await;
            if until(&migration) {
                return migration;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the migration never got there: {migration}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a migration under `faults`, with a tight rate limit until the cloud has
    /// refused a request for it (a loaded machine may never reach the faults' own
    /// limit), then `faults` as they are. Answers the migration's location.
    pub(crate) async fn start_migration_rate_limited(&self, body: Value, faults: Faults) -> String {
        self.cloud.set_faults(Faults {
            rate_limit_per_sec: Some(2),
            ..faults.clone()
        });
        let location = self.start_migration(body).await;
        while self.cloud.inspect()["counters"]["rate_limited"] == 0
            && !matches!(
                self.get(&location).await["status"].as_str(),
                Some("completed" | "completed_with_failures" | "cancelled" | "failed")
            )
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.cloud.set_faults(faults);
        location
    }

    pub(crate) async fn wait_over(&self, location: &str) -> Value {
        self.wait_for(location, |m| {
            matches!(
                m["status"].as_str(),
                Some("completed" | "completed_with_failures" | "cancelled" | "failed")
            )
        })
        .await
    }

    /// Every page of a listing.
    pub(crate) async fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit=500");
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

/// The migration's counts are its items' states: every kind and state counted
/// from the listing equals the count the migration shows (kept by the database's
/// triggers as items change, on either database).
pub(crate) async fn assert_counts_are_the_items(world: &World, location: &str) {
    let migration = world.get(location).await;
    let mut listed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for item in world.all(&format!("{location}/items")).await {
        let kind = item["kind"].as_str().expect("kind").to_string();
        let state = item["state"].as_str().expect("state").to_string();
        *listed.entry(kind).or_default().entry(state).or_default() += 1;
    }
    let counts = migration["counts"].as_object().expect("counts");
    for (kind, states) in counts {
        for (state, n) in states.as_object().expect("states") {
            let seen = listed
                .get(kind)
                .and_then(|s| s.get(state))
                .copied()
                .unwrap_or(0);
            assert_eq!(n.as_u64(), Some(seen), "{kind} {state}: {counts:?}");
        }
    }
    let total: u64 = listed.values().flat_map(|s| s.values()).sum();
    assert_eq!(migration["items"].as_u64(), Some(total), "{migration}");
    assert!(total > 0, "a migration with items");
    // Folding PostgreSQL's rows of changes leaves one row per kind and state, and the same sums.
    let id: uuid::Uuid = migration["id"].as_str().expect("id").parse().expect("uuid");
    let store = migration_portal::db::migrations::counts;
    let before = store(&world.db, id).await.expect("counts");
    migration_portal::db::migrations::fold_counts(&world.db, id)
        .await
        .expect("fold");
    assert_eq!(store(&world.db, id).await.expect("counts"), before);
    let parts = migration_portal::db::query(
        &world.db,
        "SELECT COUNT(*) AS n FROM migration_item_counts WHERE migration_id = $1 AND part <> 0",
        vec![id.into()],
    )
    .await
    .expect("parts");
    assert_eq!(parts[0].try_get::<i64>("", "n").expect("n"), 0);
}

/// The cloud holds exactly what the pre-check planned: every planned tenant once,
/// under its planned parent, with its name and kind; every admin and backup user
/// once, with the planned login and role; activation emails for admins only;
/// passwords for backup users only; nothing twice.
async fn assert_cloud_is_the_plan(
    world: &World,
    precheck: &Value,
    location: &str,
    emails_exactly_once: bool,
) {
    assert_counts_are_the_items(world, location).await;
    let cloud = world.cloud.inspect();
    for (kind, twins) in cloud["duplicates"].as_object().expect("duplicates") {
        assert_eq!(twins, &json!([]), "duplicates by {kind}");
    }
    let items = world.all(&format!("{location}/items")).await;
    let by_key: BTreeMap<&str, &Value> = items
        .iter()
        .map(|i| (i["key"].as_str().expect("key"), i))
        .collect();
    assert!(
        items.iter().all(|i| i["state"] == "done"),
        "every item done: {:?}",
        items.iter().find(|i| i["state"] != "done")
    );
    let root = world.cloud.root_tenant_id().to_string();
    let tenants: BTreeMap<&str, &Value> = cloud["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["internal_tag"].as_str().map(|tag| (tag, t)))
        .collect();
    let tenant_items: Vec<&&Value> = by_key.values().filter(|i| i["kind"] == "tenant").collect();
    assert_eq!(
        tenants.len(),
        tenant_items.len(),
        "one tenant per planned tenant, and no other"
    );
    let id_of = |tag: &str| {
        tenants
            .get(tag)
            .map(|t| t["id"].as_str().expect("id").to_string())
    };
    for item in &tenant_items {
        let tag = item["planned"]["tenant_key"].as_str().expect("tenant key");
        let tenant = tenants
            .get(tag)
            .unwrap_or_else(|| panic!("tenant {tag} missing"));
        assert_eq!(tenant["name"], item["planned"]["name"], "{tag}");
        assert_eq!(tenant["kind"], item["planned"]["kind"], "{tag}");
        assert_eq!(
            tenant["id"], item["target_id"],
            "{tag}: the mapping names it"
        );
    }
    // The hierarchy review (the plan as the partner saw it) names every tenant, its kind, name and parent.
    let mut planned_tenants = BTreeMap::new();
    for entry in world.section(precheck, "hierarchy").await {
        for field in ["tenant", "users_tenant"] {
            if entry[field].is_object() {
                planned_tenants.insert(
                    entry[field]["key"].as_str().expect("key").to_string(),
                    entry[field].clone(),
                );
            }
        }
    }
    assert_eq!(
        tenants
            .keys()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>(),
        planned_tenants.keys().cloned().collect(),
        "the planned tenants, no other"
    );
    for (key, planned) in &planned_tenants {
        let tenant = tenants[key.as_str()];
        assert_eq!(tenant["name"], planned["name"], "{key}");
        assert_eq!(tenant["kind"], planned["kind"], "{key}");
        let parent = planned["parent_key"]
            .as_str()
            .map_or(root.clone(), |p| id_of(p).expect("parent tenant"));
        assert_eq!(
            tenant["parent_id"],
            parent.as_str(),
            "{key}: under its planned parent"
        );
    }
    let users: BTreeMap<&str, &Value> = cloud["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["external_id"].as_str().map(|e| (e, u)))
        .collect();
    let planned_users = world.section(precheck, "users").await;
    let admins: Vec<&Value> = world
        .section(precheck, "groups")
        .await
        .leak()
        .iter()
        .filter(|g| g["target_login"].is_string())
        .collect();
    assert_eq!(
        users.len(),
        planned_users.len() + admins.len(),
        "one cloud user per planned admin and backup user"
    );
    for planned in &planned_users {
        let id = planned["user_id"].as_str().expect("user id");
        let user = users.get(id).unwrap_or_else(|| panic!("user {id} missing"));
        assert_eq!(user["login"], planned["target_login"], "{id}");
        assert_eq!(user["roles"], json!(["backup_user"]), "{id}");
        assert_eq!(
            user["activation_email_sent"], 0,
            "{id}: backup users get no activation email"
        );
        assert_eq!(
            user["password_set"], true,
            "{id}: the source password is set"
        );
        assert_eq!(
            user["tenant_id"],
            by_key[format!("tenant:{}", planned["tenant_key"].as_str().expect("key")).as_str()]["target_id"],
            "{id}"
        );
    }
    for planned in admins {
        let id = planned["group_id"].as_str().expect("group id");
        let user = users
            .get(id)
            .unwrap_or_else(|| panic!("admin of {id} missing"));
        assert_eq!(user["login"], planned["target_login"], "{id}");
        let role = if by_key[format!("tenant:{id}").as_str()]["planned"]["kind"] == "customer" {
            "company_admin"
        } else {
            "partner_admin"
        };
        assert_eq!(user["roles"], json!([role]), "{id}");
        let emails = user["activation_email_sent"].as_u64().expect("count");
        if emails_exactly_once {
            assert_eq!(emails, 1, "{id}: one activation email");
        } else {
            assert!(emails >= 1, "{id}: an activation email");
        }
        assert_eq!(user["password_set"], false, "{id}");
    }
}

#[tokio::test]
async fn migrating_small_creates_exactly_the_plan_and_releases_the_machines() {
    for backend in Backend::enabled() {
        let base = small();
        let passwords: Vec<String> = base
            .users
            .iter()
            .filter_map(|u| base.password(&u.id).map(str::to_string))
            .collect();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "completed", "{backend:?}: {migration}");
        assert_eq!(migration["replan"]["changed"], false, "{migration}");
        assert_cloud_is_the_plan(&world, &precheck, &location, true).await;
        let items = world.all(&format!("{location}/items?kind=user")).await;
        let planned_machines: u64 = items
            .iter()
            .map(|i| i["planned"]["machines"].as_u64().expect("machines"))
            .sum();
        assert!(planned_machines > 0);
        let pending = migration_portal::db::query(&world.db, "SELECT COUNT(*) AS n FROM source_machines WHERE workspace_id = $1 AND migration_state = 'pending'", vec![world.workspace.into()])
            .await
            .expect("count")[0]
            .try_get::<i64>("", "n")
            .expect("n");
        assert_eq!(
            pending as u64, planned_machines,
            "{backend:?}: every migrated user's machines are released"
        );
        let events = world.all(&world.path("/events")).await;
        let done = events.iter().filter(|e| e["kind"] == "item.done").count();
        assert_eq!(
            done as u64,
            migration["items"].as_u64().expect("items"),
            "one item.done per item"
        );
        assert!(events.iter().any(|e| e["kind"] == "target.ensure_tenant"));
        assert!(events.iter().any(|e| e["kind"] == "machine.released"));
        let text = serde_json::to_string(&events).expect("text");
        for password in &passwords {
            assert!(
                !text.contains(&format!("\"{password}\""))
                    && !text.contains(&format!(" {password} ")),
                "a password reached the log"
            );
        }
        let operation = world
            .get(migration["operation"].as_str().expect("operation"))
            .await;
        assert_eq!(operation["done"], true, "{operation}");
        worker.stop().await;
    }
}

#[tokio::test]
async fn with_503s_429s_and_lost_answers_the_end_state_is_the_same_without_duplicates() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let faults = Faults {
            fail_rate: 0.2,
            rate_limit_per_sec: Some(150),
            fail_after_commit_rate: 0.1,
            latency_ms: 0,
        };
        let worker = world.run_worker();
        let location = world
            .start_migration_rate_limited(
                json!({"precheck_id": precheck["id"], "options": {"verbose": true, "provisioning": crate::provisioning::profile()}}),
                faults,
            )
            .await;
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "completed", "{backend:?}: {migration}");
        world.cloud.set_faults(Faults::default());
        let counters = world.cloud.inspect()["counters"].clone();
        for fault in ["rate_limited", "unavailable", "failed_after_commit"] {
            assert!(
                counters[fault].as_u64() > Some(0),
                "{fault} injected: {counters}"
            );
        }
        assert_cloud_is_the_plan(&world, &precheck, &location, false).await;
        // No tenant is left half-provisioned, and a tenant found after a lost create is the migration's own.
        let quotas = crate::provisioning::group_quotas(&base);
        let adopted = crate::provisioning::assert_tenants_provisioned(
            &world,
            &location,
            &crate::provisioning::profile(),
            |g| quotas.get(g).copied(),
        )
        .await;
        assert!(adopted.is_empty(), "{backend:?}: {adopted:?}");
        let calls = world.all(&world.path("/events?kind=target.")).await;
        assert!(
            calls.iter().any(|e| e["data"].is_object()),
            "verbose mode records what was sent"
        );
        // A kind prefix is text, not a LIKE pattern.
        for pattern in ["%25.", "targe_."] {
            assert!(
                world
                    .all(&world.path(&format!("/events?kind={pattern}")))
                    .await
                    .is_empty(),
                "kind={pattern}"
            );
        }
        let redacted = calls
            .iter()
            .filter(|e| e["kind"] == "target.set_password")
            .all(|e| e["data"]["password"] == "[redacted]");
        assert!(redacted, "passwords are redacted");
        worker.stop().await;
    }
}

/// Requests the cloud has answered so far.
/// Waits until no registration job is queued or running.
async fn wait_for_no_registration_jobs(world: &World) {
    for _ in 0..1_200 {
        let open = migration_portal::db::query(
            &world.db,
            "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'registration' AND status IN ('queued', 'running')",
            vec![],
        )
        .await
        .expect("count")[0]
            .try_get::<i64>("", "n")
            .expect("n");
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("registration jobs still open after 1,200 looks");
}

fn requests(world: &World) -> u64 {
    world.cloud.inspect()["counters"]["total"]
        .as_u64()
        .expect("total")
}

#[tokio::test]
async fn pause_and_cancel_stop_target_calls_within_a_second_resume_continues_and_retry_touches_only_failed_items()
 {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        // A login the plan hands out is taken after the pre-check: that user fails, the rest go on.
        let users = world.section(&precheck, "users").await;
        let victim = users
            .iter()
            .find(|u| u["target_login"].as_str().is_some_and(|l| l.len() > 3))
            .expect("a user")
            .clone();
        world
            .cloud
            .take_login(victim["target_login"].as_str().expect("login"));
        world.cloud.set_faults(Faults {
            latency_ms: 20,
            rate_limit_per_sec: Some(100),
            ..Faults::default()
        });
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        world
            .wait_for(&location, |m| {
                m["status"] == "running" && m["finished"].as_u64() > Some(5)
            })
            .await;
        let paused = world
            .app
            .post_json(&format!("{location}/pause"), &world.token, &json!({}))
            .send()
            .await
            .expect("pause");
        assert_eq!(paused.status(), 200);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        world.cloud.record_exchanges(true);
        let at_pause = requests(&world);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let calls: Vec<String> = world
            .cloud
            .exchanges()
            .iter()
            .map(|e| format!("{} {} {}", e["method"], e["path"], e["status"]))
            .collect();
        assert_eq!(
            requests(&world),
            at_pause,
            "{backend:?}: no target call a second after the pause: {calls:#?}"
        );
        world.cloud.record_exchanges(false);
        let again = world
            .app
            .post_json(&format!("{location}/pause"), &world.token, &json!({}))
            .send()
            .await
            .expect("pause");
        assert_problem(again, 409).await;
        let resumed = world
            .app
            .post_json(&format!("{location}/resume"), &world.token, &json!({}))
            .send()
            .await
            .expect("resume");
        assert_eq!(resumed.status(), 200);
        let migration = world.wait_over(&location).await;
        assert_eq!(
            migration["status"], "completed_with_failures",
            "{migration}"
        );
        let failed = world.all(&format!("{location}/items?state=failed")).await;
        assert_eq!(
            failed.len(),
            1,
            "only the user whose login was taken fails: {failed:?}"
        );
        assert_eq!(failed[0]["source_id"], victim["user_id"]);
        assert_eq!(
            failed[0]["error_code"], "1003",
            "the remote code (login taken): {:?}",
            failed[0]
        );
        // Retry: only the failed item is tried again; done items make no target call.
        let before = world.all(&world.path("/events?kind=target.")).await.len();
        let retried = world
            .app
            .post_json(&format!("{location}/retry"), &world.token, &json!({}))
            .send()
            .await
            .expect("retry");
        assert_eq!(retried.status(), 200);
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "completed_with_failures");
        let calls = world.all(&world.path("/events?kind=target.")).await;
        let subjects: BTreeSet<&str> = calls[before..]
            .iter()
            .map(|e| e["subject_id"].as_str().expect("subject"))
            .collect();
        assert_eq!(
            subjects,
            BTreeSet::from([victim["user_id"].as_str().expect("id")]),
            "retry touched only the failed item"
        );
        let item = &world.all(&format!("{location}/items?state=failed")).await[0];
        assert_eq!(item["attempts"], 2, "{item}");
        // The first wave's registration tokens are made ahead, in a lane of their own: they
        // are its calls, not the second wave's, and are all made before that starts.
        wait_for_no_registration_jobs(&world).await;
        // Cancel: a second migration of the same selection stops making calls at once.
        world.cloud.set_faults(Faults {
            latency_ms: 50,
            rate_limit_per_sec: Some(20),
            ..Faults::default()
        });
        let base2 = json!({"selection": [{"kind": "group", "id": base.truth.root_group_id}], "options": {"send_activation_emails": false}});
        let second = world.start_migration(base2).await;
        world.wait_for(&second, |m| m["status"] == "running").await;
        let cancelled = world
            .app
            .post_json(&format!("{second}/cancel"), &world.token, &json!({}))
            .send()
            .await
            .expect("cancel");
        assert_eq!(cancelled.status(), 200);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let at_cancel = requests(&world);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            requests(&world),
            at_cancel,
            "{backend:?}: no target call a second after the cancel"
        );
        let over = world.wait_over(&second).await;
        assert_eq!(over["status"], "cancelled");
        assert_counts_are_the_items(&world, &location).await;
        assert_counts_are_the_items(&world, &second).await;
        worker.stop().await;
    }
}

#[tokio::test]
async fn bad_migration_requests_are_problems() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        let root = json!([{"kind": "group", "id": base.truth.root_group_id}]);
        let post = |body: Value| {
            world
                .app
                .post_json(&world.path("/migrations"), &world.token, &body)
                .send()
        };
        assert_problem(post(json!({"selection": root})).await.expect("post"), 409).await;
        world.sync().await;
        assert_problem(post(json!({})).await.expect("post"), 422).await;
        assert_problem(post(json!({"selection": []})).await.expect("post"), 422).await;
        // Well-formed, but naming what the workspace does not have: a conflict with its state, at the value.
        let unknown = assert_problem(
            post(json!({"selection": [{"kind": "group", "id": "nope"}]}))
                .await
                .expect("post"),
            409,
        )
        .await;
        assert_eq!(
            (
                unknown["code"].as_str(),
                unknown["errors"][0]["pointer"].as_str()
            ),
            (Some("unknown_nodes"), Some("/selection/0")),
            "{unknown}"
        );
        let unknown = assert_problem(
            post(json!({"precheck_id": uuid::Uuid::now_v7()}))
                .await
                .expect("post"),
            409,
        )
        .await;
        assert_eq!(
            (
                unknown["code"].as_str(),
                unknown["errors"][0]["pointer"].as_str()
            ),
            (Some("unknown_precheck"), Some("/precheck_id")),
            "{unknown}"
        );
        assert_problem(post(json!({"selection": root, "options": {"target": {"rate_per_sec": 0, "concurrency": 1}}})).await.expect("post"), 422).await;
        // A pre-check older than the snapshot is refused unless re-planning is asked for.
        let precheck = world.whole_precheck(&base).await;
        world.sync().await;
        let stale = assert_problem(
            post(json!({"precheck_id": precheck["id"]}))
                .await
                .expect("post"),
            409,
        )
        .await;
        assert_eq!(stale["code"], "stale_precheck", "{stale}");
        let other = world.cloud.idp().partner_token(uuid::Uuid::new_v4());
        let foreign = world
            .app
            .get(&world.path("/migrations"), &other)
            .send()
            .await
            .expect("get");
        assert_eq!(foreign.status(), 404);
    }
}

/// Runs `serve --worker-only` on the world's database.
fn worker_process(world: &World) -> std::process::Child {
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration-portal"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MP_")) {
        command.env_remove(key);
    }
    command
        .args(["serve", "--worker-only"])
        .envs([
            ("MP_DATABASE__URL", world.app.database_url.as_str()),
            ("MP_SECRET_KEY", world.app.secret_key.expose_secret()),
            ("MP_AUTH__ISSUER", "http://127.0.0.1:9"),
            ("MP_AUTH__AUDIENCE", AUDIENCE),
            ("MP_CONNECTORS__ALLOW_PRIVATE_NETWORKS", "true"),
            ("MP_WORKER__LEASE_SECS", "3"),
            ("MP_WORKER__POLL_INTERVAL_MS", "20"),
            ("MP_WORKER__CONCURRENCY", "6"),
            ("MP_LOG_LEVEL", "warn"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker starts")
}

#[tokio::test]
async fn a_worker_killed_mid_migration_and_restarted_creates_nothing_twice_and_loses_nothing() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        world.cloud.set_faults(Faults {
            latency_ms: 5,
            ..Faults::default()
        });
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        // Kill at several points: after planning, early, midway, late.
        for threshold in [0u64, 20, 150, 400] {
            let mut child = worker_process(&world);
            world
                .wait_for(&location, |m| {
                    m["status"] != "planning" && m["finished"].as_u64() >= Some(threshold)
                        || m["status"] == "completed"
                })
                .await;
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
        let mut child = worker_process(&world);
        let migration = world.wait_over(&location).await;
        child.kill().expect("kill");
        child.wait().expect("reaped");
        assert_eq!(migration["status"], "completed", "{backend:?}: {migration}");
        assert_cloud_is_the_plan(&world, &precheck, &location, false).await;
    }
}

#[tokio::test]
async fn two_worker_processes_on_postgresql_share_one_wave() {
    let Some(backend) = Backend::enabled()
        .into_iter()
        .find(|b| *b == Backend::Postgres)
    else {
        return;
    };
    let base = small();
    let world = fast_world(backend, base.clone()).await;
    world.sync().await;
    let precheck = world.whole_precheck(&base).await;
    world.cloud.set_faults(Faults {
        latency_ms: 10,
        ..Faults::default()
    });
    let location = world
        .start_migration(json!({"precheck_id": precheck["id"]}))
        .await;
    let mut workers = [worker_process(&world), worker_process(&world)];
    let migration = world.wait_over(&location).await;
    for child in &mut workers {
        child.kill().expect("kill");
        child.wait().expect("reaped");
    }
    assert_eq!(migration["status"], "completed", "{migration}");
    assert_cloud_is_the_plan(&world, &precheck, &location, true).await;
    let events = world.all(&world.path("/events?kind=item.done")).await;
    let actors: BTreeSet<&str> = events
        .iter()
        .map(|e| e["actor"].as_str().expect("actor"))
        .collect();
    assert_eq!(actors.len(), 2, "both workers did work: {actors:?}");
}

#[tokio::test]
async fn a_migration_told_to_replan_after_the_source_changed_records_what_changed_and_migrates_the_new_plan()
 {
    use migration_portal::sim::install_base::Mutations;
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let changes = world.source.mutate(Mutations {
            seed: 11,
            add_users: 2,
            move_users: 0,
            remove_users: 2,
            upgrade_clients: 0,
            ..Mutations::default()
        });
        world.sync().await;
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"], "replan": true}))
            .await;
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "completed", "{backend:?}: {migration}");
        let users = &migration["replan"]["sections"]["users"];
        assert_eq!(migration["replan"]["changed"], true, "{migration}");
        let listed = |change: &str| -> BTreeSet<String> {
            users["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|i| i["change"] == change)
                .map(|i| i["key"].as_str().expect("key").to_string())
                .collect()
        };
        assert_eq!(
            listed("added"),
            changes.added_users.iter().cloned().collect(),
            "{users}"
        );
        assert_eq!(
            listed("removed"),
            changes.removed_users.iter().cloned().collect(),
            "{users}"
        );
        let cloud = world.cloud.inspect();
        let external: BTreeSet<&str> = cloud["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["external_id"].as_str())
            .collect();
        assert!(
            changes
                .added_users
                .iter()
                .all(|u| external.contains(u.as_str())),
            "users added at the source are migrated"
        );
        assert!(
            changes
                .removed_users
                .iter()
                .all(|u| !external.contains(u.as_str())),
            "users removed at the source are not"
        );
        let events = world
            .all(&world.path(&format!(
                "/events?subject={}",
                migration["id"].as_str().expect("id")
            )))
            .await;
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(
            kinds,
            vec![
                "migration.created",
                "migration.planned",
                "migration.completed"
            ],
            "the migration's own history"
        );
        worker.stop().await;
    }
}

#[tokio::test]
async fn a_second_wave_reuses_what_the_first_created_and_the_cloud_ends_as_one_plan() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let customer = base
            .truth
            .groups
            .customers
            .iter()
            .find(|g| base.users.iter().any(|u| &u.group_id == *g))
            .expect("a customer")
            .clone();
        let worker = world.run_worker();
        let first = world
            .start_migration(json!({"selection": [{"kind": "group", "id": customer}]}))
            .await;
        let wave = world.wait_over(&first).await;
        assert_eq!(wave["status"], "completed", "{backend:?}: {wave}");
        let precheck = world.whole_precheck(&base).await;
        let second = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        let whole = world.wait_over(&second).await;
        assert_eq!(whole["status"], "completed", "{whole}");
        assert_cloud_is_the_plan(&world, &precheck, &second, true).await;
        let reused: BTreeSet<String> = world
            .all(&format!("{second}/items?state=done"))
            .await
            .iter()
            .filter(|i| i["step"] == "mapped_earlier")
            .map(|i| i["key"].as_str().expect("key").to_string())
            .collect();
        let first_items: BTreeSet<String> = world
            .all(&format!("{first}/items"))
            .await
            .iter()
            .map(|i| i["key"].as_str().expect("key").to_string())
            .collect();
        assert_eq!(
            reused, first_items,
            "the second wave takes what the first created as done, and only that"
        );
        worker.stop().await;
    }
}

/// An item whose stored plan is not one of its kind (a row written by another
/// version, or by hand) fails alone with `unreadable_plan`, saying why; nothing is
/// created for it from defaults, and the rest of the migration goes on.
#[tokio::test]
async fn an_item_whose_plan_is_unreadable_fails_alone_saying_so() {
    use entity::migration_item::{Column, Entity as Items};
    use migration_portal::jobs::clients::ClientPool;
    use migration_portal::jobs::migration::MigrationHandler;
    use migration_portal::queue::Handler;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        // The supervisor alone: it plans, writes the items and queues their transfer
        // jobs, which no handler here runs.
        let secrets = SecretBox::from_base64(&world.app.secret_key).expect("key");
        let supervisor = MigrationHandler::new(secrets, std::sync::Arc::new(ClientPool::new(true)));
        Worker::new(
            world.db.clone(),
            WorkerConfig::default(),
            vec![Handler::new(supervisor)],
        )
        .run_until_idle()
        .await;
        let migration = world
            .wait_for(&location, |m| m["status"] == "running")
            .await;
        let migration_id = migration["id"].as_str().expect("id").to_string();
        let users = world.all(&format!("{location}/items?kind=user")).await;
        let spoiled = users[0]["key"].as_str().expect("key").to_string();
        let changed = Items::update_many()
            .col_expr(Column::Planned, Expr::value(r#"{"login": 7}"#))
            .filter(Column::MigrationId.eq(uuid::Uuid::parse_str(&migration_id).expect("uuid")))
            .filter(Column::Key.eq(spoiled.as_str()))
            .exec(&world.db)
            .await
            .expect("spoil the plan");
        assert_eq!(changed.rows_affected, 1, "{backend:?}");

        let worker = world.run_worker();
        let migration = world.wait_over(&location).await;
        worker.stop().await;
        assert_eq!(
            migration["status"], "completed_with_failures",
            "{backend:?}: {migration}"
        );
        let failed = world.all(&format!("{location}/items?state=failed")).await;
        assert_eq!(
            failed.len(),
            1,
            "{backend:?}: only the spoiled item: {failed:?}"
        );
        assert_eq!(failed[0]["key"], spoiled.as_str());
        assert_eq!(failed[0]["error_code"], "unreadable_plan", "{backend:?}");
        let reason = failed[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("invalid type: integer `7`, expected a string"),
            "{backend:?}: says what is wrong: {reason}"
        );
        let done = world.all(&format!("{location}/items?state=done")).await;
        assert_eq!(
            done.len() + 1,
            migration["items"].as_u64().unwrap_or_default() as usize,
            "{backend:?}: every other item was carried out: {migration}"
        );
        let login_of_spoiled = users[0]["planned"]["login"].as_str().expect("login");
        let state = world.cloud.inspect();
        assert!(
            !state
                .to_string()
                .contains(&format!("\"{login_of_spoiled}\"")),
            "{backend:?}: nothing was created for the spoiled item"
        );
    }
}
