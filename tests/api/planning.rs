//! Initial-backup and decommission planning on `small`, against figures worked
//! out here from the generator's data: which customer each user lands in (the
//! design's tenant-kind rule, restated), the machines' data sizes and the plans'
//! retention.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use migration_portal::sim::install_base::InstallBase;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, assert_problem};
use crate::migrations::{fast_world, small};
use crate::world::{World, world};

/// What the generator's data says of one customer.
#[derive(Debug, Default)]
struct Expected {
    group_id: String,
    machines: Vec<String>,
    data_size_bytes: u64,
    plans: usize,
    machines_without_plans: usize,
    longest_retention_days: Option<u32>,
}

/// Customers by tenant key: a group with users and no subgroups is a customer
/// (its own key); the root's and a mixed group's direct users get `{group}#users`.
fn customers(base: &InstallBase) -> BTreeMap<String, Expected> {
    let root = base.truth.root_group_id.as_str();
    let parents: HashSet<&str> = base
        .groups
        .iter()
        .filter_map(|g| g.parent_id.as_deref())
        .collect();
    let key = |group: &str| {
        if group == root || parents.contains(group) {
            format!("{group}#users")
        } else {
            group.to_string()
        }
    };
    let group_of: HashMap<&str, &str> = base
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.group_id.as_str()))
        .collect();
    let mut out: BTreeMap<String, Expected> = BTreeMap::new();
    for user in &base.users {
        out.entry(key(&user.group_id)).or_insert_with(|| Expected {
            group_id: user.group_id.clone(),
            ..Expected::default()
        });
    }
    for machine in &base.machines {
        let customer = out
            .get_mut(&key(group_of[machine.user_id.as_str()]))
            .expect("the machine's customer");
        let retention: Vec<u32> = base
            .plans
            .iter()
            .filter(|p| p.machine_id == machine.id)
            .map(|p| p.retention_days)
            .collect();
        customer.machines.push(machine.id.clone());
        customer.data_size_bytes += machine.data_size_bytes;
        customer.plans += retention.len();
        customer.machines_without_plans += usize::from(retention.is_empty());
        customer.longest_retention_days = customer
            .longest_retention_days
            .max(retention.into_iter().max());
    }
    // The same customers as the generator's ground truth names.
    let mut planted: BTreeSet<String> = base.truth.groups.customers.iter().cloned().collect();
    planted.extend(base.truth.groups.mixed.iter().map(|g| format!("{g}#users")));
    if base.users.iter().any(|u| u.group_id == root) {
        planted.insert(format!("{root}#users"));
    }
    assert_eq!(
        out.keys().cloned().collect::<BTreeSet<_>>(),
        planted,
        "customers as the generator planted them"
    );
    out
}

async fn csv_rows(world: &World, path: &str) -> Vec<BTreeMap<String, String>> {
    let response = world.app.get(path, &world.token).send().await.expect("csv");
    assert_eq!(response.status(), 200, "{path}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    let body = response.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("csv parses");
    assert!(
        rows.iter()
            .flat_map(|r| r.iter())
            .all(|cell| !cell.starts_with(['=', '+', '-', '@'])),
        "{path}: no cell a spreadsheet would run"
    );
    rows.iter()
        .map(|r| {
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_planning_section_estimates_each_customers_initial_backup_at_the_requested_bandwidth() {
    for backend in Backend::enabled() {
        let base = small();
        let expected = customers(&base);
        let world = world(backend, base.clone()).await;
        world.sync().await;
        let selection = json!([{"kind": "group", "id": base.truth.root_group_id}]);

        // Defaults: 100 Mbit/s, Physical Data Shipping over 7 days; echoed in the pre-check and the report.
        let defaults = world.precheck(selection.clone()).await;
        assert_eq!(
            defaults["options"],
            json!({"initial_backup": {"bandwidth_mbps": 100.0, "physical_shipping_after_days": 7.0}}),
            "{backend:?}"
        );
        let planning = world
            .get(&world.path(&format!(
                "/prechecks/{}/planning",
                defaults["id"].as_str().expect("id")
            )))
            .await;
        assert_eq!(
            (
                planning["initial_backup"]["bandwidth_mbps"].as_f64(),
                planning["initial_backup"]["physical_shipping_after_days"].as_f64()
            ),
            (Some(100.0), Some(7.0))
        );
        assert_eq!(
            planning["counts"]["machines"],
            base.machines.len(),
            "the existing figures stay"
        );

        // 10 Mbit/s, shipping over half a day (43,200 s = 54 GB at 10 Mbit/s).
        let options =
            json!({"initial_backup": {"bandwidth_mbps": 10, "physical_shipping_after_days": 0.5}});
        let precheck = world
            .precheck_with(json!({"selection": selection, "options": options}))
            .await;
        assert_eq!(
            precheck["options"],
            json!({"initial_backup": {"bandwidth_mbps": 10.0, "physical_shipping_after_days": 0.5}})
        );
        let id = precheck["id"].as_str().expect("id");
        let entries = world.section(&precheck, "initial_backup").await;
        let listed: BTreeMap<String, &Value> = entries
            .iter()
            .map(|e| (e["tenant_key"].as_str().expect("key").to_string(), e))
            .collect();
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "one entry per customer"
        );
        let seconds = |bytes: u64| bytes as f64 * 8.0 / 10e6;
        for (key, customer) in &expected {
            let entry = listed[key];
            assert_eq!(entry["group_id"], customer.group_id.as_str(), "{key}");
            assert_eq!(entry["machines"], customer.machines.len(), "{key}");
            assert_eq!(entry["data_size_bytes"], customer.data_size_bytes, "{key}");
            assert_eq!(
                entry["duration_seconds"],
                seconds(customer.data_size_bytes).ceil() as u64,
                "{key}"
            );
            let days = entry["duration_days"].as_f64().expect("days");
            assert!(
                (days - seconds(customer.data_size_bytes) / 86_400.0).abs() <= 0.005 + 1e-9,
                "{key}: {days}"
            );
            assert_eq!(
                entry["physical_data_shipping"],
                seconds(customer.data_size_bytes) > 43_200.0,
                "{key}"
            );
        }
        let shipped: Vec<&Expected> = expected
            .values()
            .filter(|c| seconds(c.data_size_bytes) > 43_200.0)
            .collect();
        assert!(
            !shipped.is_empty() && shipped.len() < expected.len(),
            "small has customers on both sides of the threshold"
        );
        let sizes: Vec<u64> = entries
            .iter()
            .map(|e| e["data_size_bytes"].as_u64().expect("size"))
            .collect();
        assert!(
            sizes.windows(2).all(|w| w[0] >= w[1]),
            "the largest volume first"
        );

        let planning = world
            .get(&world.path(&format!("/prechecks/{id}/planning")))
            .await;
        let summary = &planning["initial_backup"];
        assert_eq!(summary["customers"], expected.len());
        assert_eq!(
            summary["data_size_bytes"],
            base.machines.iter().map(|m| m.data_size_bytes).sum::<u64>()
        );
        assert_eq!(
            summary["physical_data_shipping"]["customers"],
            shipped.len()
        );
        assert_eq!(
            summary["physical_data_shipping"]["data_size_bytes"],
            shipped.iter().map(|c| c.data_size_bytes).sum::<u64>()
        );
        let longest = expected
            .values()
            .map(|c| seconds(c.data_size_bytes) / 86_400.0)
            .fold(0.0, f64::max);
        assert!(
            (summary["longest_duration_days"].as_f64().expect("longest") - longest).abs()
                <= 0.005 + 1e-9,
            "{summary}"
        );
        assert_eq!(
            precheck["sections"]["initial_backup"],
            expected.len(),
            "entries per section"
        );

        let rows = csv_rows(
            &world,
            &world.path(&format!("/prechecks/{id}/exports/initial_backup")),
        )
        .await;
        assert_eq!(rows.len(), expected.len());
        for row in &rows {
            let customer = &expected[&row["tenant_key"]];
            assert_eq!(row["data_size_bytes"], customer.data_size_bytes.to_string());
            assert_eq!(
                row["physical_data_shipping"],
                (seconds(customer.data_size_bytes) > 43_200.0).to_string()
            );
        }
    }
}

#[tokio::test]
async fn bad_initial_backup_options_are_refused_with_problem_details() {
    for backend in Backend::enabled() {
        let base = small();
        let world = world(backend, base.clone()).await;
        world.sync().await;
        let selection = json!([{"kind": "group", "id": base.truth.root_group_id}]);
        let post = |options: Value| {
            world
                .app
                .post_json(
                    &world.path("/prechecks"),
                    &world.token,
                    &json!({"selection": selection, "options": options}),
                )
                .send()
        };
        let bandwidth = "/options/initial_backup/bandwidth_mbps";
        let after = "/options/initial_backup/physical_shipping_after_days";
        let cases = [
            (
                json!({"initial_backup": {"bandwidth_mbps": 0}}),
                422,
                vec![bandwidth],
            ),
            (
                json!({"initial_backup": {"bandwidth_mbps": -5}}),
                422,
                vec![bandwidth],
            ),
            (
                json!({"initial_backup": {"bandwidth_mbps": 2_000_000}}),
                422,
                vec![bandwidth],
            ),
            (
                json!({"initial_backup": {"physical_shipping_after_days": 0}}),
                422,
                vec![after],
            ),
            (
                json!({"initial_backup": {"bandwidth_mbps": 0, "physical_shipping_after_days": 4000}}),
                422,
                vec![bandwidth, after],
            ),
            (
                json!({"initial_backup": {"bandwidth_mbps": "fast"}}),
                400,
                vec![],
            ),
            (json!({"initial_backup": {"bandwidth": 10}}), 400, vec![]),
            (json!({"initial_backup": 10}), 400, vec![]),
        ];
        for (options, status, pointers) in cases {
            let problem = assert_problem(post(options.clone()).await.expect("post"), status).await;
            let listed: Vec<&str> = problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["pointer"].as_str())
                .collect();
            if status == 422 {
                assert_eq!(listed, pointers, "{backend:?}: {options}");
            }
        }
        let listed = world.get(&world.path("/prechecks")).await;
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(0),
            "refused pre-checks leave nothing behind"
        );
    }
}

/// Every item of a listing, `limit` per page.
async fn pages(world: &World, path: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}?limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = world.get(&url).await;
        let got = page["items"].as_array().expect("items");
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return items,
        }
    }
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Reports a released machine's steps as its agent would, up to `migrated`.
async fn migrate_machine(world: &World, secret: &str, machine: &str) {
    let token = world.agent_token(secret, machine).await;
    for (seq, kind) in [
        "downloading",
        "installing",
        "registering",
        "plans_transferred",
        "restore_only",
    ]
    .into_iter()
    .enumerate()
    {
        let response = world
            .report(&token, seq as i64 + 1, json!({"kind": kind}))
            .await;
        assert_eq!(response.status(), 200, "{machine}: {kind}");
    }
}

#[tokio::test]
async fn each_customer_can_be_decommissioned_once_its_machines_migrated_and_its_longest_retention_ran_out()
 {
    for backend in Backend::enabled() {
        let base = small();
        let expected = customers(&base);
        let world = fast_world(backend, base.clone()).await;
        let path = world.path("/decommission");
        assert_eq!(
            assert_problem(
                world
                    .app
                    .get(&path, &world.token)
                    .send()
                    .await
                    .expect("get"),
                409
            )
            .await["code"],
            "not_synced"
        );
        world.sync().await;

        // Before any migration every customer with machines waits for all of them.
        let before = pages(&world, &path, 7).await;
        assert_eq!(
            before.len(),
            expected.len(),
            "{backend:?}: one row per customer across pages"
        );
        for row in &before {
            let key = row["customer_key"].as_str().expect("key");
            let customer = &expected[key];
            let status = if customer.machines.is_empty() {
                "no_machines"
            } else {
                "waiting_for_machines"
            };
            assert_eq!(row["status"], status, "{key}");
            assert_eq!(row["machines_remaining"], customer.machines.len(), "{key}");
            assert_eq!(
                (row["machines"].as_u64(), row["backup_plans"].as_u64()),
                (
                    Some(customer.machines.len() as u64),
                    Some(customer.plans as u64)
                ),
                "{key}"
            );
            assert_eq!(
                row["machines_without_plans"], customer.machines_without_plans,
                "{key}"
            );
            assert_eq!(
                row["longest_retention_days"],
                json!(customer.longest_retention_days),
                "{key}"
            );
            assert_eq!(
                row["long_retention"],
                customer.longest_retention_days.is_some_and(|d| d > 365),
                "{key}: default threshold 365 days"
            );
            assert!(
                row["decommission_after"].is_null() && row["last_migrated_at"].is_null(),
                "{key}"
            );
            assert_eq!(row["group_id"], customer.group_id.as_str());
        }
        assert!(
            expected.values().any(|c| c.machines_without_plans > 0),
            "small has machines without plans"
        );
        let flagged = |threshold: u32| {
            expected
                .values()
                .filter(|c| c.longest_retention_days.is_some_and(|d| d > threshold))
                .count()
        };
        assert!(
            flagged(365) > 0 && flagged(365) < expected.len(),
            "small has long and short retention"
        );
        for threshold in [1u32, 365, 730, 2555] {
            let page = world
                .get(&format!("{path}?long_retention_days={threshold}&limit=1"))
                .await;
            assert_eq!(page["long_retention_days"], threshold);
            assert_eq!(
                page["summary"]["long_retention"],
                flagged(threshold),
                "threshold {threshold}"
            );
        }

        // Migrate the whole install base; agents then migrate one customer's machines, and one machine of another.
        let precheck = world.whole_precheck(&base).await;
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        assert_eq!(world.wait_over(&location).await["status"], "completed");
        worker.stop().await;
        let pending: HashSet<String> = world
            .all(&world.path("/machines?state=pending"))
            .await
            .iter()
            .map(|m| m["machine_id"].as_str().expect("id").to_string())
            .collect();
        let all_pending = |c: &Expected| c.machines.iter().all(|m| pending.contains(m));
        let (done_key, done) = expected
            .iter()
            .filter(|(_, c)| !c.machines.is_empty() && all_pending(c))
            .max_by_key(|(_, c)| c.machines.len())
            .expect("a customer whose machines were released");
        let (partial_key, partial) = expected
            .iter()
            .find(|(k, c)| *k != done_key && c.machines.len() >= 2 && all_pending(c))
            .expect("another customer with two machines");
        let secret = world.enrollment_secret().await;
        for machine in done.machines.iter().chain(partial.machines.first()) {
            migrate_machine(&world, &secret, machine).await;
        }
        let machines: HashMap<String, Value> = world
            .all(&world.path("/machines"))
            .await
            .into_iter()
            .map(|m| (m["machine_id"].as_str().expect("id").to_string(), m))
            .collect();
        let migrated_at = |m: &String| -> DateTime<Utc> {
            assert_eq!(machines[m]["state"], "migrated", "{m}");
            time(&machines[m]["state_changed_at"]).expect("migration time")
        };

        let after = world.all(&format!("{path}?long_retention_days=730")).await;
        let rows: HashMap<&str, &Value> = after
            .iter()
            .map(|r| (r["customer_key"].as_str().expect("key"), r))
            .collect();
        let last = done
            .machines
            .iter()
            .map(migrated_at)
            .max()
            .expect("machines");
        let done_row = rows[done_key.as_str()];
        assert_eq!(done_row["status"], "scheduled", "{done_row}");
        assert_eq!(time(&done_row["last_migrated_at"]), Some(last));
        let longest = done.longest_retention_days.unwrap_or(0);
        assert_eq!(
            time(&done_row["decommission_after"]),
            Some(last + Duration::days(i64::from(longest))),
            "{done_row}"
        );
        assert_eq!(done_row["long_retention"], longest > 730);
        let partial_row = rows[partial_key.as_str()];
        assert_eq!(
            partial_row["status"], "waiting_for_machines",
            "{partial_row}"
        );
        assert_eq!(
            partial_row["machines_remaining"],
            partial.machines.len() - 1,
            "how many remain"
        );
        assert_eq!(
            time(&partial_row["last_migrated_at"]),
            partial.machines.first().map(migrated_at)
        );
        assert!(partial_row["decommission_after"].is_null());
        for (key, customer) in expected
            .iter()
            .filter(|(k, _)| *k != done_key && *k != partial_key)
        {
            assert_eq!(
                rows[key.as_str()]["machines_remaining"],
                customer.machines.len(),
                "{key}: untouched"
            );
        }
        let page = world.get(&format!("{path}?limit=500")).await;
        let summary = &page["summary"];
        let with_machines = expected.values().filter(|c| !c.machines.is_empty()).count();
        assert_eq!(summary["customers"], expected.len());
        assert_eq!(summary["scheduled"], 1);
        assert_eq!(summary["waiting_for_machines"], with_machines - 1);
        assert_eq!(summary["no_machines"], expected.len() - with_machines);
        assert_eq!(
            summary["machines_remaining"],
            base.machines.len() - done.machines.len() - 1
        );
        assert!(
            summary["server_decommission_after"].is_null(),
            "the server waits for every customer"
        );

        let csv = csv_rows(
            &world,
            &world.path("/exports/decommission?long_retention_days=730"),
        )
        .await;
        assert_eq!(csv.len(), expected.len());
        let done_csv = csv
            .iter()
            .find(|r| r["customer_key"] == *done_key)
            .expect("row");
        assert_eq!(
            (
                done_csv["status"].as_str(),
                done_csv["longest_retention_days"].as_str()
            ),
            ("scheduled", longest.to_string().as_str())
        );
        assert_eq!(
            done_csv["decommission_after"],
            done_row["decommission_after"].as_str().expect("date")
        );

        // Bad thresholds, another tenant.
        for bad in ["0", "36501", "soon"] {
            assert_problem(
                world
                    .app
                    .get(&format!("{path}?long_retention_days={bad}"), &world.token)
                    .send()
                    .await
                    .expect("get"),
                400,
            )
            .await;
        }
        let stranger = world.cloud.idp().partner_token(Uuid::now_v7());
        assert_problem(
            world.app.get(&path, &stranger).send().await.expect("get"),
            404,
        )
        .await;
        assert_problem(
            world
                .app
                .get(&world.path("/exports/decommission"), &stranger)
                .send()
                .await
                .expect("get"),
            404,
        )
        .await;
    }
}
