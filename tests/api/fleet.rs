//! End to end with `sim fleet` on `small`: every machine ends in the state the
//! fleet's ground truth says; failed machines carry their log; retried after the
//! fault clears, they migrate (or wait for manual registration, as the fleet says).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use migration_portal::sim::fleet::{Behaviour, Fleet, FleetConfig};
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::migrations::{fast_world, small};
use crate::world::World;

async fn states(world: &World) -> BTreeMap<String, Value> {
    world.all(&world.path("/machines")).await.into_iter().map(|m| (m["machine_id"].as_str().expect("id").to_string(), m)).collect()
}

/// Waits until every machine the fleet can tell about shows the state it must, and
/// every released machine that comes online was told to migrate and got somewhere final.
pub(crate) async fn settle(world: &World, fleet: &Fleet, released: &[String]) -> BTreeMap<String, Value> {
    let started = Instant::now();
    loop {
        let shown = states(world).await;
        let truth = fleet.truth();
        let mismatches: Vec<String> = released
            .iter()
            .filter(|m| truth[*m].behaviour != Behaviour::NeverOnline)
            .filter(|m| {
                let expected = truth[*m].expected_state();
                expected.is_none() || expected == Some("migrating") || Some(shown[*m]["state"].as_str().unwrap_or_default()) != expected
            })
            .cloned()
            .collect();
        if mismatches.is_empty() {
            return shown;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not settled: {:?}", mismatches.iter().take(5).map(|m| (m, &truth[m], &shown[m])).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn with_sim_fleet_every_machine_ends_as_the_fleet_says_and_retried_failures_migrate() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let worker = world.run_worker();
        let location = world.start_migration(json!({"precheck_id": precheck["id"]})).await;
        assert_eq!(world.wait_over(&location).await["status"], "completed");
        let before = states(&world).await;
        let released: Vec<String> = before.iter().filter(|(_, m)| m["state"] == "pending").map(|(id, _)| id.clone()).collect();
        let idle: Vec<String> = before.iter().filter(|(_, m)| m["state"] == "idle").map(|(id, _)| id.clone()).collect();
        assert!(!released.is_empty());
        let response = world.app.post_json(&world.path("/enrollment-secret"), &world.token, &json!({})).send().await.expect("secret");
        let secret: Value = response.json().await.expect("json");
        let fleet = Fleet::start(FleetConfig {
            base_url: world.app.url(""),
            workspace_id: world.workspace,
            enrollment_secret: secret["enrollment_secret"].as_str().expect("secret").to_string(),
            machines: base.machines.iter().map(|m| m.id.clone()).collect(),
            interval: Duration::from_millis(700),
            seed: 3,
        });
        let shown = settle(&world, &fleet, &released).await;
        let truth = fleet.truth();
        let count = |state: &str| released.iter().filter(|m| shown[*m]["state"] == state).count();
        assert!(count("migrated") > 0 && count("failed") > 0 && count("manual_action_required") + count("pending") > 0, "a mix of outcomes: {}", json!({
            "migrated": count("migrated"), "failed": count("failed"), "manual": count("manual_action_required"), "pending": count("pending")
        }));
        for machine in &released {
            if truth[machine].behaviour == Behaviour::NeverOnline {
                assert_eq!(shown[machine]["state"], "pending", "{machine}: never online stays pending");
                assert!(shown[machine]["waiting_reason"].is_string());
            }
            if shown[machine]["state"] == "failed" {
                assert!(shown[machine]["error_code"].as_str().is_some_and(|c| c.ends_with("_error")), "{:?}", shown[machine]);
                let logs = world.get(&world.path(&format!("/machines/{machine}/logs"))).await;
                assert!(logs.as_array().is_some_and(|l| !l.is_empty()), "{machine}: a failed machine carries its log");
            }
        }
        let told_to_update: Vec<&String> = released.iter().filter(|m| truth[*m].observed.told_to_update).collect();
        assert!(!told_to_update.is_empty(), "outdated clients are told to wait for their update");
        for machine in told_to_update {
            assert_eq!(shown[machine]["state"], "pending", "{machine}: waits for its client update");
            assert!(shown[machine]["waiting_reason"].as_str().is_some_and(|r| r.contains("update")), "{:?}", shown[machine]);
        }
        for machine in &idle {
            assert_eq!(shown[machine]["state"], "idle", "{machine}: a machine not released stays idle");
        }
        // The faults were on the first attempt only: retried, the failed machines migrate.
        let failed: Vec<String> = released.iter().filter(|m| shown[*m]["state"] == "failed").cloned().collect();
        for machine in &failed {
            let retried = world.app.post_json(&world.path(&format!("/machines/{machine}/retry")), &world.token, &json!({})).send().await.expect("retry");
            assert_eq!(retried.status(), 200);
        }
        let shown = settle(&world, &fleet, &released).await;
        let truth = fleet.truth();
        for machine in &failed {
            // Migrated, or (SQL Server / Exchange plans) installed and waiting for manual registration.
            let expected = if truth[machine].observed.manual { "manual_action_required" } else { "migrated" };
            assert_eq!(shown[machine]["state"], expected, "{machine}: after the retry");
        }
        assert!(failed.iter().any(|m| shown[m]["state"] == "migrated"));
        let migration = world.get(&location).await;
        assert_eq!(migration["machines"]["migrated"], released.iter().filter(|m| shown[*m]["state"] == "migrated").count(), "{}", migration["machines"]);
        fleet.stop().await;
        worker.stop().await;
    }
}
