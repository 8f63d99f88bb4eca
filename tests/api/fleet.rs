//! End to end with `sim fleet` on `small`: every machine ends in the state the
//! fleet's ground truth says; failed machines carry their log; retried after the
//! fault clears, they migrate (or wait for manual registration, as the fleet says).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use migration_portal::sim::fleet::{Behaviour, Fleet, FleetConfig, FleetMachine};
use migration_portal::sim::install_base::InstallBase;
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::migrations::{fast_world, small};
use crate::webhooks::Receiver;
use crate::world::World;

impl World {
    /// `sim fleet` over every machine of `base` (seed 3, the default mix of
    /// failures), enrolling with a new enrollment secret of the workspace.
    pub(crate) async fn start_fleet(&self, base: &InstallBase, interval: Duration) -> Fleet {
        let response = self
            .app
            .post_json(&self.path("/enrollment-secret"), &self.token, &json!({}))
            .send()
            .await
            .expect("secret");
        let secret: Value = response.json().await.expect("json");
        Fleet::start(FleetConfig {
            base_url: self.app.url(""),
            workspace_id: self.workspace,
            enrollment_secret: secret["enrollment_secret"]
                .as_str()
                .expect("secret")
                .to_string(),
            machines: FleetMachine::from_install_base(base),
            interval,
            seed: 3,
            mix: Default::default(),
        })
    }
}

async fn states(world: &World) -> BTreeMap<String, Value> {
    world
        .all(&world.path("/machines"))
        .await
        .into_iter()
        .map(|m| (m["machine_id"].as_str().expect("id").to_string(), m))
        .collect()
}

/// Waits until every machine the fleet can tell about shows the state it must, and
/// every released machine that comes online was told to migrate and got somewhere final.
pub(crate) async fn settle(
    world: &World,
    fleet: &Fleet,
    released: &[String],
) -> BTreeMap<String, Value> {
    let started = Instant::now();
    loop {
        let shown = states(world).await;
        let truth = fleet.truth();
        let mismatches: Vec<String> = released
            .iter()
            .filter(|m| truth[*m].behaviour != Behaviour::NeverOnline)
            .filter(|m| {
                let expected = truth[*m].expected_state();
                expected.is_none()
                    || expected == Some("migrating")
                    || Some(shown[*m]["state"].as_str().unwrap_or_default()) != expected
            })
            .cloned()
            .collect();
        if mismatches.is_empty() {
            return shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not settled: {:?}",
            mismatches
                .iter()
                .take(5)
                .map(|m| (m, &truth[m], &shown[m]))
                .collect::<Vec<_>>()
        );
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
        // A partner's tool listens to what happens to the machines.
        let receiver = Receiver::start();
        world
            .subscribe(
                &receiver.url("/ok"),
                &[
                    "migration.completed",
                    "machine.migrated",
                    "machine.failed",
                    "machine.manual_action_required",
                ],
            )
            .await;
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        assert_eq!(world.wait_over(&location).await["status"], "completed");
        let before = states(&world).await;
        let released: Vec<String> = before
            .iter()
            .filter(|(_, m)| m["state"] == "pending")
            .map(|(id, _)| id.clone())
            .collect();
        let idle: Vec<String> = before
            .iter()
            .filter(|(_, m)| m["state"] == "idle")
            .map(|(id, _)| id.clone())
            .collect();
        assert!(!released.is_empty());
        let fleet = world.start_fleet(&base, Duration::from_millis(700)).await;
        let shown = settle(&world, &fleet, &released).await;
        let truth = fleet.truth();
        let count = |state: &str| {
            released
                .iter()
                .filter(|m| shown[*m]["state"] == state)
                .count()
        };
        assert!(
            count("migrated") > 0
                && count("failed") > 0
                && count("manual_action_required") + count("pending") > 0,
            "a mix of outcomes: {}",
            json!({
                "migrated": count("migrated"), "failed": count("failed"), "manual": count("manual_action_required"), "pending": count("pending")
            })
        );
        for machine in &released {
            if truth[machine].behaviour == Behaviour::NeverOnline {
                assert_eq!(
                    shown[machine]["state"], "pending",
                    "{machine}: never online stays pending"
                );
                assert!(shown[machine]["waiting_reason"].is_string());
            }
            if shown[machine]["state"] == "failed" {
                assert!(
                    shown[machine]["error_code"]
                        .as_str()
                        .is_some_and(|c| c.ends_with("_error")),
                    "{:?}",
                    shown[machine]
                );
                let logs = world
                    .get(&world.path(&format!("/machines/{machine}/logs")))
                    .await;
                assert!(
                    logs.as_array().is_some_and(|l| !l.is_empty()),
                    "{machine}: a failed machine carries its log"
                );
            }
        }
        // Outdated clients are told to wait for their update: those that update
        // themselves then migrate at the check-in that states the new version; those
        // with automatic updates off wait for their user.
        let told_to_update: Vec<&String> = released
            .iter()
            .filter(|m| truth[*m].observed.told_to_update)
            .collect();
        let (updated, not_updated): (Vec<&String>, Vec<&String>) = told_to_update
            .iter()
            .partition(|m| truth[**m].observed.updated);
        assert!(
            !updated.is_empty() && !not_updated.is_empty(),
            "both kinds of outdated client: {} updated, {} not",
            updated.len(),
            not_updated.len()
        );
        for machine in updated {
            assert!(
                truth[machine].auto_update && truth[machine].observed.told_to_migrate,
                "{machine}: {:?}",
                truth[machine]
            );
            assert_ne!(
                shown[machine]["state"], "pending",
                "{machine}: migrates once its client updated itself"
            );
            let events = world
                .get(&world.path(&format!(
                    "/events?subject={machine}&kind=machine.client_updated"
                )))
                .await;
            assert_eq!(
                events["items"].as_array().map(Vec::len),
                Some(1),
                "{machine}: {events}"
            );
        }
        for machine in not_updated {
            assert!(
                !truth[machine].auto_update,
                "{machine}: only a client with automatic updates off stays outdated"
            );
            assert_eq!(
                shown[machine]["state"], "pending",
                "{machine}: waits for its user to update the client"
            );
            assert!(
                shown[machine]["waiting_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("contact the user")),
                "{:?}",
                shown[machine]
            );
        }
        for machine in &idle {
            assert_eq!(
                shown[machine]["state"], "idle",
                "{machine}: a machine not released stays idle"
            );
        }
        // The faults were on the first attempt only: retried, the failed machines migrate.
        let failed: Vec<String> = released
            .iter()
            .filter(|m| shown[*m]["state"] == "failed")
            .cloned()
            .collect();
        for machine in &failed {
            let retried = world
                .app
                .post_json(
                    &world.path(&format!("/machines/{machine}/retry")),
                    &world.token,
                    &json!({}),
                )
                .send()
                .await
                .expect("retry");
            assert_eq!(retried.status(), 200);
        }
        let shown = settle(&world, &fleet, &released).await;
        let truth = fleet.truth();
        for machine in &failed {
            // Migrated, or (SQL Server / Exchange plans) installed and waiting for manual registration.
            let expected = if truth[machine].observed.manual {
                "manual_action_required"
            } else {
                "migrated"
            };
            assert_eq!(
                shown[machine]["state"], expected,
                "{machine}: after the retry"
            );
        }
        assert!(failed.iter().any(|m| shown[m]["state"] == "migrated"));
        let migration = world.get(&location).await;
        assert_eq!(
            migration["machines"]["migrated"],
            released
                .iter()
                .filter(|m| shown[*m]["state"] == "migrated")
                .count(),
            "{}",
            migration["machines"]
        );
        // Webhooks: told once (one webhook-id) of each machine that migrated, failed
        // or waits for manual steps, and of the migration's completion.
        let told = |kind: &str, machine: &str| {
            let got = receiver.at("/ok");
            let ids: BTreeSet<String> = got
                .iter()
                .filter(|r| {
                    r.json()["type"] == kind && r.json()["data"]["subject"]["id"] == machine
                })
                .map(|r| r.id().to_string())
                .collect();
            ids.len()
        };
        let expected_migrated: usize = released
            .iter()
            .filter(|m| shown[*m]["state"] == "migrated")
            .count();
        receiver
            .wait("/ok", |r| {
                r.iter()
                    .filter(|x| x.json()["type"] == "machine.migrated")
                    .count()
                    >= expected_migrated
            })
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for machine in &released {
            let state = shown[machine]["state"].as_str().unwrap_or_default();
            assert_eq!(
                told("machine.migrated", machine),
                usize::from(state == "migrated"),
                "{machine} is {state}"
            );
            assert_eq!(
                told("machine.failed", machine),
                usize::from(failed.contains(machine)),
                "{machine}: failed once before its retry"
            );
            assert_eq!(
                told("machine.manual_action_required", machine),
                usize::from(state == "manual_action_required"),
                "{machine} is {state}"
            );
        }
        assert_eq!(
            told("migration.completed", migration["id"].as_str().expect("id")),
            1
        );
        receiver.stop().await;
        fleet.stop().await;
        worker.stop().await;
    }
}

/// Turns on, through the cloud's API as a partner would by hand, the standard Backup
/// items for machines and storage on `tenant`.
async fn provision_by_hand(world: &World, tenant: &str) {
    let backup = "6e6d758d-8e74-3ae3-ac84-50eb0dff12eb";
    let items: Vec<Value> = ["workstations", "servers", "vms", "storage"]
        .iter()
        .map(|name| json!({"application_id": backup, "name": name, "status": 1}))
        .collect();
    let token = world
        .cloud
        .idp()
        .partner_token(world.cloud.root_tenant_id());
    let response = world
        .app
        .http
        .put(format!(
            "{}/api/2/tenants/{tenant}/offering_items",
            world.cloud.base_url()
        ))
        .bearer_auth(token)
        .json(&json!({ "offering_items": items }))
        .send()
        .await
        .expect("provision");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn a_machine_registers_only_into_a_tenant_with_the_backup_service_and_is_failed_with_the_clouds_reason_otherwise()
 {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        // A profile that gives customers cloud storage but no backup of machines.
        let mut profile =
            serde_json::to_value(migration_portal::domain::provisioning::Profile::standard())
                .expect("profile");
        profile["customer"]
            .as_array_mut()
            .expect("customer")
            .retain(|r| r["name"] == "storage");
        let response = world
            .app
            .patch_json(
                &world.path(""),
                &world.token,
                &json!({"provisioning": profile}),
            )
            .send()
            .await
            .expect("patch");
        assert_eq!(response.status(), 200);
        let precheck = world.whole_precheck(&base).await;
        let planning = world
            .get(&format!(
                "{}/planning",
                world.path(&format!(
                    "/prechecks/{}",
                    precheck["id"].as_str().expect("id")
                ))
            ))
            .await;
        let unavailable = planning["provisioning"]["unavailable"].to_string();
        assert!(
            unavailable.contains("no backup of machines"),
            "{backend:?}: the pre-check flags it: {planning}"
        );
        let refused = world
            .app
            .post_json(
                &world.path("/migrations"),
                &world.token,
                &json!({"precheck_id": precheck["id"]}),
            )
            .send()
            .await
            .expect("post");
        let problem = crate::helpers::assert_problem(refused, 409).await;
        assert_eq!(problem["code"], "provisioning_unavailable", "{problem}");
        let worker = world.run_worker();
        let location = world
            .start_migration(
                json!({"precheck_id": precheck["id"], "options": {"skip_unavailable_items": true}}),
            )
            .await;
        assert_eq!(world.wait_over(&location).await["status"], "completed");
        // The migration made customers without backup of machines. By hand: every partner
        // below the root (so that its customers may have them) and every other customer.
        let state = world.cloud.inspect();
        let (mut provisioned, mut bare) = (BTreeSet::new(), BTreeSet::new());
        for tenant in state["tenants"].as_array().expect("tenants") {
            let (id, parent) = (tenant["id"].as_str().expect("id"), &tenant["parent_id"]);
            if parent.is_null() {
                continue;
            }
            let wanted = match tenant["kind"].as_str() {
                Some("customer") => bare.len() >= provisioned.len(),
                Some("unit") => provisioned.contains(parent.as_str().unwrap_or_default()),
                _ => true,
            };
            if wanted {
                provision_by_hand(&world, id).await;
                provisioned.insert(id.to_string());
            } else {
                bare.insert(id.to_string());
            }
        }
        assert!(
            !bare.is_empty(),
            "{backend:?}: customers left without services"
        );
        let released: Vec<String> = world
            .all(&world.path("/machines?state=pending"))
            .await
            .iter()
            .map(|m| m["machine_id"].as_str().expect("id").to_string())
            .collect();
        let fleet = world.start_fleet(&base, Duration::from_millis(500)).await;
        let shown = settle(&world, &fleet, &released).await;
        let truth = fleet.stop().await;
        worker.stop().await;

        let agents = world.cloud.inspect()["agents"]
            .as_array()
            .expect("agents")
            .clone();
        let registered: BTreeMap<&str, &str> = agents
            .iter()
            .map(|a| {
                (
                    a["machine_id"].as_str().expect("machine"),
                    a["tenant_id"].as_str().expect("tenant"),
                )
            })
            .collect();
        let (mut migrated, mut refused) = (0, 0);
        for machine in &released {
            let observed = &truth[machine].observed;
            let state = shown[machine]["state"].as_str().unwrap_or_default();
            if let Some(reason) = &observed.registration_refused {
                refused += 1;
                assert_eq!(
                    (state, shown[machine]["error_code"].as_str()),
                    ("failed", Some("registration_refused")),
                    "{backend:?} {machine}: {:?}",
                    shown[machine]
                );
                assert_eq!(
                    shown[machine]["error_message"].as_str(),
                    Some(reason.as_str()),
                    "{backend:?} {machine}: the cloud's reason"
                );
                assert!(
                    bare.iter().any(|t| reason.contains(t.as_str()))
                        && reason.contains("workstations"),
                    "{backend:?} {machine}: names its tenant and what is missing: {reason}"
                );
                assert!(
                    !observed.migrated && observed.logs_uploaded > 0,
                    "{backend:?} {machine}: {observed:?}"
                );
                assert!(!registered.contains_key(machine.as_str()));
                let logs = world
                    .get(&world.path(&format!("/machines/{machine}/logs")))
                    .await;
                assert!(logs.as_array().is_some_and(|l| !l.is_empty()));
            }
            if state == "migrated" {
                migrated += 1;
                let tenant = registered.get(machine.as_str()).copied();
                assert!(
                    observed.registered && tenant.is_some_and(|t| provisioned.contains(t)),
                    "{backend:?} {machine}: migrated only once registered into a provisioned tenant ({tenant:?})"
                );
            }
        }
        assert!(
            migrated > 0 && refused > 0,
            "{backend:?}: {migrated} migrated, {refused} refused"
        );
        for tenant in registered.values() {
            assert!(
                provisioned.contains(*tenant),
                "{backend:?}: an agent registered into {tenant}, which has no service"
            );
        }
    }
}
