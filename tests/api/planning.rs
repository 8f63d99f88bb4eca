//! Initial-backup and decommission planning on `small`, against figures worked
//! out here from the generator's data: which customer each user lands in (the
//! design's tenant-kind rule, restated), the machines' data sizes and the plans'
//! retention.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use migration_portal::sim::install_base::InstallBase;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem};
use crate::migrations::small;
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
    let parents: HashSet<&str> = base.groups.iter().filter_map(|g| g.parent_id.as_deref()).collect();
    let key = |group: &str| if group == root || parents.contains(group) { format!("{group}#users") } else { group.to_string() };
    let group_of: HashMap<&str, &str> = base.users.iter().map(|u| (u.id.as_str(), u.group_id.as_str())).collect();
    let mut out: BTreeMap<String, Expected> = BTreeMap::new();
    for user in &base.users {
        out.entry(key(&user.group_id)).or_insert_with(|| Expected { group_id: user.group_id.clone(), ..Expected::default() });
    }
    for machine in &base.machines {
        let customer = out.get_mut(&key(group_of[machine.user_id.as_str()])).expect("the machine's customer");
        let retention: Vec<u32> = base.plans.iter().filter(|p| p.machine_id == machine.id).map(|p| p.retention_days).collect();
        customer.machines.push(machine.id.clone());
        customer.data_size_bytes += machine.data_size_bytes;
        customer.plans += retention.len();
        customer.machines_without_plans += usize::from(retention.is_empty());
        customer.longest_retention_days = customer.longest_retention_days.max(retention.into_iter().max());
    }
    // The same customers as the generator's ground truth names.
    let mut planted: BTreeSet<String> = base.truth.groups.customers.iter().cloned().collect();
    planted.extend(base.truth.groups.mixed.iter().map(|g| format!("{g}#users")));
    if base.users.iter().any(|u| u.group_id == root) {
        planted.insert(format!("{root}#users"));
    }
    assert_eq!(out.keys().cloned().collect::<BTreeSet<_>>(), planted, "customers as the generator planted them");
    out
}

async fn csv_rows(world: &World, path: &str) -> Vec<BTreeMap<String, String>> {
    let response = world.app.get(path, &world.token).send().await.expect("csv");
    assert_eq!(response.status(), 200, "{path}");
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let body = response.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("csv parses");
    assert!(rows.iter().flat_map(|r| r.iter()).all(|cell| !cell.starts_with(['=', '+', '-', '@'])), "{path}: no cell a spreadsheet would run");
    rows.iter().map(|r| headers.iter().zip(r.iter()).map(|(h, c)| (h.to_string(), c.to_string())).collect()).collect()
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
        assert_eq!(defaults["options"], json!({"initial_backup": {"bandwidth_mbps": 100.0, "physical_shipping_after_days": 7.0}}), "{backend:?}");
        let planning = world.get(&world.path(&format!("/prechecks/{}/planning", defaults["id"].as_str().expect("id")))).await;
        assert_eq!((planning["initial_backup"]["bandwidth_mbps"].as_f64(), planning["initial_backup"]["physical_shipping_after_days"].as_f64()), (Some(100.0), Some(7.0)));
        assert_eq!(planning["counts"]["machines"], base.machines.len(), "the existing figures stay");

        // 10 Mbit/s, shipping over half a day (43,200 s = 54 GB at 10 Mbit/s).
        let options = json!({"initial_backup": {"bandwidth_mbps": 10, "physical_shipping_after_days": 0.5}});
        let precheck = world.precheck_with(json!({"selection": selection, "options": options})).await;
        assert_eq!(precheck["options"], json!({"initial_backup": {"bandwidth_mbps": 10.0, "physical_shipping_after_days": 0.5}}));
        let id = precheck["id"].as_str().expect("id");
        let entries = world.section(&precheck, "initial_backup").await;
        let listed: BTreeMap<String, &Value> = entries.iter().map(|e| (e["tenant_key"].as_str().expect("key").to_string(), e)).collect();
        assert_eq!(listed.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "one entry per customer");
        let seconds = |bytes: u64| bytes as f64 * 8.0 / 10e6;
        for (key, customer) in &expected {
            let entry = listed[key];
            assert_eq!(entry["group_id"], customer.group_id.as_str(), "{key}");
            assert_eq!(entry["machines"], customer.machines.len(), "{key}");
            assert_eq!(entry["data_size_bytes"], customer.data_size_bytes, "{key}");
            assert_eq!(entry["duration_seconds"], seconds(customer.data_size_bytes).ceil() as u64, "{key}");
            let days = entry["duration_days"].as_f64().expect("days");
            assert!((days - seconds(customer.data_size_bytes) / 86_400.0).abs() <= 0.005 + 1e-9, "{key}: {days}");
            assert_eq!(entry["physical_data_shipping"], seconds(customer.data_size_bytes) > 43_200.0, "{key}");
        }
        let shipped: Vec<&Expected> = expected.values().filter(|c| seconds(c.data_size_bytes) > 43_200.0).collect();
        assert!(!shipped.is_empty() && shipped.len() < expected.len(), "small has customers on both sides of the threshold");
        let sizes: Vec<u64> = entries.iter().map(|e| e["data_size_bytes"].as_u64().expect("size")).collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "the largest volume first");

        let planning = world.get(&world.path(&format!("/prechecks/{id}/planning"))).await;
        let summary = &planning["initial_backup"];
        assert_eq!(summary["customers"], expected.len());
        assert_eq!(summary["data_size_bytes"], base.machines.iter().map(|m| m.data_size_bytes).sum::<u64>());
        assert_eq!(summary["physical_data_shipping"]["customers"], shipped.len());
        assert_eq!(summary["physical_data_shipping"]["data_size_bytes"], shipped.iter().map(|c| c.data_size_bytes).sum::<u64>());
        let longest = expected.values().map(|c| seconds(c.data_size_bytes) / 86_400.0).fold(0.0, f64::max);
        assert!((summary["longest_duration_days"].as_f64().expect("longest") - longest).abs() <= 0.005 + 1e-9, "{summary}");
        assert_eq!(precheck["sections"]["initial_backup"], expected.len(), "entries per section");

        let rows = csv_rows(&world, &world.path(&format!("/prechecks/{id}/exports/initial_backup"))).await;
        assert_eq!(rows.len(), expected.len());
        for row in &rows {
            let customer = &expected[&row["tenant_key"]];
            assert_eq!(row["data_size_bytes"], customer.data_size_bytes.to_string());
            assert_eq!(row["physical_data_shipping"], (seconds(customer.data_size_bytes) > 43_200.0).to_string());
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
        let post = |options: Value| world.app.post_json(&world.path("/prechecks"), &world.token, &json!({"selection": selection, "options": options})).send();
        let bandwidth = "/options/initial_backup/bandwidth_mbps";
        let after = "/options/initial_backup/physical_shipping_after_days";
        let cases = [
            (json!({"initial_backup": {"bandwidth_mbps": 0}}), 422, vec![bandwidth]),
            (json!({"initial_backup": {"bandwidth_mbps": -5}}), 422, vec![bandwidth]),
            (json!({"initial_backup": {"bandwidth_mbps": 2_000_000}}), 422, vec![bandwidth]),
            (json!({"initial_backup": {"physical_shipping_after_days": 0}}), 422, vec![after]),
            (json!({"initial_backup": {"bandwidth_mbps": 0, "physical_shipping_after_days": 4000}}), 422, vec![bandwidth, after]),
            (json!({"initial_backup": {"bandwidth_mbps": "fast"}}), 400, vec![]),
            (json!({"initial_backup": {"bandwidth": 10}}), 400, vec![]),
            (json!({"initial_backup": 10}), 400, vec![]),
        ];
        for (options, status, pointers) in cases {
            let problem = assert_problem(post(options.clone()).await.expect("post"), status).await;
            let listed: Vec<&str> = problem["errors"].as_array().into_iter().flatten().filter_map(|e| e["pointer"].as_str()).collect();
            if status == 422 {
                assert_eq!(listed, pointers, "{backend:?}: {options}");
            }
        }
        let listed = world.get(&world.path("/prechecks")).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(0), "refused pre-checks leave nothing behind");
    }
}
