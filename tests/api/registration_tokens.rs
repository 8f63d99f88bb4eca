//! Registration tokens: at most one live token per machine, with `sim cloud`
//! losing answers after commit, first check-ins of one machine arriving at once,
//! and renewals. Afterwards the cloud holds exactly one live token per machine
//! that asked, the one that machine was handed.

use std::collections::{BTreeMap, BTreeSet};

use migration_portal::sim::cloud::Faults;
use serde_json::Value;

use crate::agents::migrated;
use crate::helpers::Backend;
use crate::migrations::small;
use crate::world::World;

/// Check-ins of one machine sent at once.
const AT_ONCE: usize = 3;
/// Rounds of check-ins before a machine must have its token (a 503 asks it to come back).
const ROUNDS: usize = 40;

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

/// Checks a machine's agent in `AT_ONCE` times at once, round after round, until
/// every answer of a round hands a registration token; answers that token (every
/// answer of the machine hands the same one).
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
        for (status, body) in &answers {
            assert!(
                *status == 200 || *status == 503,
                "a check-in answers its instructions or asks to come back: {status} {body}"
            );
        }
        let handed: BTreeSet<String> = answers
            .iter()
            .filter_map(|(_, body)| body["registration"]["token"].as_str().map(str::to_string))
            .collect();
        assert!(
            handed.len() <= 1,
            "one machine is handed one token: {handed:?}"
        );
        if answers.iter().all(|(status, _)| *status == 200)
            && let Some(token) = handed.into_iter().next()
        {
            return token;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no registration token after {ROUNDS} rounds of check-ins");
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

#[tokio::test]
async fn lost_answers_and_concurrent_check_ins_leave_one_live_token_per_machine_and_a_renewal_revokes_the_old_one()
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
        let mut agents = BTreeMap::new();
        for machine in &machines {
            agents.insert(machine.clone(), world.agent_token(&secret, machine).await);
        }

        // Half the creates (and revokes) lose their answer; some requests fail outright.
        world.cloud.set_faults(Faults {
            fail_after_commit_rate: 0.5,
            fail_rate: 0.1,
            ..Faults::default()
        });
        let handed = register_all(&world, &agents).await;
        let counters = world.cloud.inspect()["counters"].clone();
        world.cloud.set_faults(Faults::default());
        assert!(
            counters["failed_after_commit"].as_u64() > Some(0),
            "{backend:?}: answers were lost: {counters}"
        );
        assert_one_live_token_per_machine(&world, &handed, backend);
        // Checked in again: the same token, nothing made.
        let again = register_all(&world, &agents).await;
        assert_eq!(again, handed, "{backend:?}: a kept token is handed again");

        // Less than a day left for half of them: renewed, and the old one revoked once the new one is kept.
        let renewing: Vec<&String> = machines.iter().step_by(2).collect();
        for machine in &renewing {
            migration_portal::db::execute(
                &world.db,
                "UPDATE machine_assignments SET registration_expires_at = $1 WHERE workspace_id = $2 AND machine_id = $3",
                vec![(chrono::Utc::now() + chrono::Duration::hours(3)).into(), world.workspace.into(), machine.as_str().into()],
            )
            .await
            .expect("expiring");
        }
        world.cloud.set_faults(Faults {
            fail_after_commit_rate: 0.5,
            fail_rate: 0.1,
            ..Faults::default()
        });
        let renewed = register_all(&world, &agents).await;
        world.cloud.set_faults(Faults::default());
        for machine in &machines {
            let changed = renewed[machine] != handed[machine];
            assert_eq!(
                changed,
                renewing.contains(&machine),
                "{backend:?}: {machine} is renewed only when its token expires within a day"
            );
        }
        assert_one_live_token_per_machine(&world, &renewed, backend);
    }
}
