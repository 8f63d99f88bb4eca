//! Registration tokens: made ahead when a migration releases a machine, at most
//! one live token per machine, with `sim cloud` losing answers after commit,
//! check-ins of one machine arriving at once, workers side by side, expiries and
//! renewals. Afterwards the cloud holds exactly one live token per released
//! machine, the one that machine holds (and was handed).

use std::collections::{BTreeMap, BTreeSet};

use migration_portal::sim::cloud::Faults;
use serde_json::Value;

use crate::agents::migrated;
use crate::helpers::Backend;
use crate::migrations::small;
use crate::world::World;

/// Check-ins of one machine sent at once.
const AT_ONCE: usize = 3;
/// Rounds of check-ins (and of the worker), 100 ms apart, before a machine must have
/// its token: enough for a job whose completion could not be written under load
/// (its lease lapses, another worker runs it again).
const ROUNDS: usize = 1_500;

/// Up to `n` released machines that migrate unattended (no client update awaited).
pub(crate) async fn released_machines(world: &World, n: usize) -> Vec<String> {
    let rows = migration_portal::db::query(
        &world.db,
        "SELECT source_id FROM source_machines WHERE workspace_id = $1 AND migration_state = 'pending' \
         AND (readiness IS NULL OR readiness NOT IN ('ready_after_client_upgrade', 'contact_user')) ORDER BY source_id",
        vec![world.workspace.into()],
    )
    .await
    .expect("query");
    rows.iter()
        .take(n)
        .map(|r| r.try_get::<String>("", "source_id").expect("id"))
        .collect()
}

/// Checks a machine's agent in `AT_ONCE` times at once, round after round (the
/// worker runs between rounds: it makes the tokens), until every answer of a
/// round hands a registration token; answers that token (every answer of the
/// machine hands the same one). A check-in never waits on the cloud: until its
/// token is made, the machine is told to come back soon.
pub(crate) async fn check_in_until_registered(world: &World, agent_token: &str) -> String {
    let url = world.app.url("/agent/v1/instructions");
    for _ in 0..ROUNDS {
        let calls = (0..AT_ONCE).map(|_| async {
            let response = world
                .app
                .http
                .get(&url)
                .bearer_auth(agent_token)
                .send()
                .await
                .expect("check in");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        });
        let answers = futures_util::future::join_all(calls).await;
        // More agent requests in flight than the service admits are turned away (429 with
        // `Retry-After`; `overload::` tests that): such an answer says nothing of the token.
        let answers: Vec<(u16, Value)> = answers
            .into_iter()
            .filter(|(status, _)| *status != 429)
            .collect();
        for (status, body) in &answers {
            assert_eq!(*status, 200, "a check-in answers its instructions: {body}");
            if body["registration"].is_null() {
                assert_eq!(body["action"], "none", "no token, no migration: {body}");
                assert!(
                    body["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("registration_pending:")),
                    "the machine is told why it waits: {body}"
                );
                assert!(
                    (30..=90).contains(&body["poll_after_secs"].as_u64().unwrap_or(0)),
                    "and to come back soon: {body}"
                );
            }
        }
        let handed: BTreeSet<String> = answers
            .iter()
            .filter_map(|(_, body)| body["registration"]["token"].as_str().map(str::to_string))
            .collect();
        assert!(
            handed.len() <= 1,
            "one machine is handed one token: {handed:?}"
        );
        if answers
            .iter()
            .all(|(_, body)| !body["registration"].is_null())
            && let Some(token) = handed.into_iter().next()
        {
            return token;
        }
        world.work().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let jobs = migration_portal::db::query(
        &world.db,
        "SELECT status, attempt, last_error FROM jobs WHERE kind = 'registration' AND status <> 'succeeded'",
        vec![],
    )
    .await
    .expect("jobs");
    let jobs: Vec<String> = jobs
        .iter()
        .map(|j| {
            format!(
                "{:?} attempt {:?}: {:?}",
                j.try_get::<String>("", "status"),
                j.try_get::<i32>("", "attempt"),
                j.try_get::<Option<String>>("", "last_error")
            )
        })
        .collect();
    panic!(
        "no registration token after {ROUNDS} rounds of check-ins; registration jobs not done: {jobs:?}"
    );
}

/// Every machine's agent checks in (machines side by side) until registered: machine -> token.
async fn register_all(
    world: &World,
    agents: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let registered =
        futures_util::future::join_all(agents.iter().map(|(machine, agent)| async move {
            (
                machine.clone(),
                check_in_until_registered(world, agent).await,
            )
        }))
        .await;
    registered.into_iter().collect()
}

/// The cloud's live registration tokens are exactly the ones handed, one per machine.
fn assert_one_live_token_per_machine(
    world: &World,
    handed: &BTreeMap<String, String>,
    backend: Backend,
) {
    let state = world.cloud.inspect();
    let live: Vec<String> = state["registration_tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["token"].as_str().expect("code").to_string())
        .collect();
    let distinct: BTreeSet<&String> = handed.values().collect();
    assert_eq!(
        distinct.len(),
        handed.len(),
        "{backend:?}: no two machines share a token"
    );
    assert_eq!(
        live.len(),
        handed.len(),
        "{backend:?}: one live token per machine that asked, no more: {} live for {} machines",
        live.len(),
        handed.len()
    );
    assert_eq!(
        live.iter().collect::<BTreeSet<_>>(),
        distinct,
        "{backend:?}: the live tokens are the ones handed"
    );
}

/// Every machine the migration released (assigned to a cloud user).
async fn assigned_machines(world: &World) -> Vec<String> {
    let rows = migration_portal::db::query(
        &world.db,
        "SELECT machine_id FROM machine_assignments WHERE workspace_id = $1 ORDER BY machine_id",
        vec![world.workspace.into()],
    )
    .await
    .expect("query");
    rows.iter()
        .map(|r| r.try_get::<String>("", "machine_id").expect("id"))
        .collect()
}

/// The tokens the machines hold now: machine -> token, opened from their seal.
async fn held_tokens(world: &World, machines: &[String]) -> BTreeMap<String, String> {
    let mut held = BTreeMap::new();
    for machine in machines {
        let row = migration_portal::db::agents::machine(&world.db, world.workspace, machine)
            .await
            .expect("machine")
            .expect("known");
        let (sealed, _) = row.registration.expect("a token is kept");
        let context =
            migration_portal::jobs::registration::sealing_context(world.workspace, machine);
        let token = world.secrets().open(&sealed, &context).expect("opens");
        held.insert(
            machine.clone(),
            secrecy::ExposeSecret::expose_secret(&token).to_string(),
        );
    }
    held
}

/// Sets the expiry of the machines' kept tokens to `left` from now.
async fn expire_in(world: &World, machines: &[&String], left: chrono::Duration) {
    for machine in machines {
        migration_portal::db::execute(
            &world.db,
            "UPDATE machine_assignments SET registration_expires_at = $1 WHERE workspace_id = $2 AND machine_id = $3",
            vec![(chrono::Utc::now() + left).into(), world.workspace.into(), machine.as_str().into()],
        )
        .await
        .expect("expiring");
    }
}

#[tokio::test]
async fn tokens_are_made_ahead_and_lost_answers_and_concurrent_workers_leave_one_live_token_per_machine()
 {
    for backend in Backend::enabled() {
        let base = small();
        let (world, _) = migrated(backend, &base).await;
        let secret = world.enrollment_secret().await;
        let machines = released_machines(&world, 24).await;
        assert!(
            machines.len() >= 12,
            "{backend:?}: enough released machines: {machines:?}"
        );
        // Made when the migration released the machines, before any agent asked (the
        // worker stopped with the migration: the last ones are made now).
        world.work().await;
        let released = assigned_machines(&world).await;
        let ahead = held_tokens(&world, &released).await;
        assert_one_live_token_per_machine(&world, &ahead, backend);
        let mut agents = BTreeMap::new();
        for machine in &machines {
            agents.insert(machine.clone(), world.agent_token(&secret, machine).await);
        }
        let handed = register_all(&world, &agents).await;
        for machine in &machines {
            assert_eq!(
                handed[machine], ahead[machine],
                "{backend:?}: {machine}'s first check-in hands the token made ahead"
            );
        }

        // Expired for a third of them (pending until remade), less than a day left for
        // another third (handed, and renewed meanwhile); half the cloud's creates and
        // revokes lose their answer, some requests fail outright, workers run side by side.
        let expired: Vec<&String> = machines.iter().step_by(3).collect();
        let renewing: Vec<&String> = machines.iter().skip(1).step_by(3).collect();
        expire_in(&world, &expired, chrono::Duration::minutes(-5)).await;
        expire_in(&world, &renewing, chrono::Duration::hours(3)).await;
        world.cloud.set_faults(Faults {
            fail_after_commit_rate: 0.5,
            fail_rate: 0.1,
            ..Faults::default()
        });
        let first = register_all(&world, &agents).await;
        for machine in &renewing {
            assert_eq!(
                first[*machine], handed[*machine],
                "{backend:?}: {machine}'s token, a day from its end, is handed while it is renewed"
            );
        }
        // Every renewal made: the check-ins now hand the new tokens.
        for _ in 0..ROUNDS {
            world.work().await;
            if held_tokens(&world, &machines)
                .await
                .iter()
                .all(|(machine, token)| !renewing.contains(&machine) || *token != handed[machine])
            {
                break;
            }
            // A renewal whose job ran out of attempts is scheduled again by a check-in.
            register_all(&world, &agents).await;
        }
        let renewed = register_all(&world, &agents).await;
        let counters = world.cloud.inspect()["counters"].clone();
        world.cloud.set_faults(Faults::default());
        assert!(
            counters["failed_after_commit"].as_u64() > Some(0),
            "{backend:?}: answers were lost: {counters}"
        );
        for machine in &machines {
            let changed = renewed[machine] != handed[machine];
            assert_eq!(
                changed,
                expired.contains(&machine) || renewing.contains(&machine),
                "{backend:?}: {machine} gets a new token only when its own expired or ends within a day"
            );
        }
        let mut holding = held_tokens(&world, &released).await;
        holding.extend(renewed);
        assert_one_live_token_per_machine(&world, &holding, backend);
    }
}

/// Whether the machine keeps a registration token.
async fn holds_token(world: &World, machine: &str) -> bool {
    migration_portal::db::agents::machine(&world.db, world.workspace, machine)
        .await
        .expect("machine")
        .expect("known")
        .registration
        .is_some()
}

/// Sets when the claim on the machine's cloud user was last renewed: `ago` before now.
async fn claim_renewed(world: &World, machine: &str, ago: chrono::Duration) {
    let sql = "INSERT INTO registration_claims (workspace_id, target_user_id, claim, claimed_at) \
               SELECT workspace_id, target_user_id, $1, $2 FROM machine_assignments WHERE workspace_id = $3 AND machine_id = $4 \
               ON CONFLICT (workspace_id, target_user_id) DO UPDATE SET claimed_at = excluded.claimed_at";
    migration_portal::db::execute(
        &world.db,
        sql,
        vec![
            uuid::Uuid::new_v4().into(),
            (chrono::Utc::now() - ago).into(),
            world.workspace.into(),
            machine.into(),
        ],
    )
    .await
    .expect("claim");
}

/// A worker killed while making a user's tokens leaves its claim behind; nobody
/// renews it, and another worker takes it over within the claim's lease (30 s),
/// not minutes later with the user's machines told to wait all along.
#[tokio::test]
async fn a_claim_its_dead_holder_no_longer_renews_is_taken_over_within_half_a_minute() {
    for backend in Backend::enabled() {
        let base = small();
        let (world, _) = migrated(backend, &base).await;
        world.work().await;
        let machine = released_machines(&world, 1).await.remove(0);
        let secret = world.enrollment_secret().await;
        let agent = world.agent_token(&secret, &machine).await;
        migration_portal::db::execute(
            &world.db,
            "UPDATE machine_assignments SET registration_token = NULL, registration_expires_at = NULL, registration_token_id = NULL \
             WHERE workspace_id = $1 AND machine_id = $2",
            vec![world.workspace.into(), machine.as_str().into()],
        )
        .await
        .expect("token dropped");
        // Renewed 20 s ago: its holder may be alive, between two renewals.
        claim_renewed(&world, &machine, chrono::Duration::seconds(20)).await;
        let check_in = world
            .app
            .http
            .get(world.app.url("/agent/v1/instructions"))
            .bearer_auth(&agent)
            .send()
            .await
            .expect("check in")
            .json::<Value>()
            .await
            .expect("instructions");
        assert!(
            check_in["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("registration_pending:")),
            "{backend:?}: without a token the machine waits: {check_in}"
        );
        world.work().await;
        assert!(
            !holds_token(&world, &machine).await,
            "{backend:?}: no token is made under a claim another job may still hold"
        );
        // Not renewed for 31 s: its holder is gone.
        claim_renewed(&world, &machine, chrono::Duration::seconds(31)).await;
        for _ in 0..50 {
            world.work().await;
            if holds_token(&world, &machine).await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            holds_token(&world, &machine).await,
            "{backend:?}: the lapsed claim is taken over and the token made"
        );
    }
}
