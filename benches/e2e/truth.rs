//! Whether the service agrees with what really happened: the machines with the
//! fleet's ground truth, each migration's counts with its items, the cloud
//! without duplicates.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use migration_portal::sim::fleet::{Behaviour, Fleet, Truth};
use migration_portal::sim::partner::{all_machines, progress_bar};
use serde_json::Value;

use super::api::{Api, Deadline};
use super::propagation::{self, Receiver};

/// The ground truth of every machine of the fleets (each runs some of the machines).
pub fn truth_of(fleets: &[Fleet]) -> BTreeMap<String, Truth> {
    fleets.iter().flat_map(|f| f.truth()).collect()
}

/// The machines that have not settled, each with why: in flight, showing another
/// state than its truth, or released but its agent has not yet been told anything.
/// Settled are a machine whose truth the service shows (but `migrating`), one whose
/// agent never comes online, and one never released (`idle`).
pub fn unsettled(shown: &[Value], truth: &BTreeMap<String, Truth>) -> Vec<String> {
    let mut open = Vec::new();
    for machine in shown {
        let id = machine["machine_id"].as_str().unwrap_or_default();
        let state = machine["state"].as_str().unwrap_or_default();
        let Some(t) = truth.get(id) else {
            open.push(format!("{id} ({state}) is not in the fleet"));
            continue;
        };
        match t.expected_state() {
            Some("migrating") => open.push(format!("{id} is {state}, migrating")),
            Some(expected) if expected != state => {
                open.push(format!("{id} is {state}, expected {expected}"));
            }
            Some(_) => {}
            None if t.behaviour == Behaviour::NeverOnline || state == "idle" => {}
            None => open.push(format!("{id} is {state}, its agent not yet told")),
        }
    }
    open
}

/// How many machines are in each state.
pub fn by_state(shown: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for machine in shown {
        let state = machine["state"].as_str().unwrap_or("?").to_string();
        *counts.entry(state).or_default() += 1;
    }
    counts
}

/// Whether the migration's machine counts (`GET` of the migration, one cheap read)
/// can already be those of a settled fleet: none migrating, as many migrated,
/// failed and waiting for a manual action as the fleet's ground truth says, no
/// agent in the middle of its steps, and no more pending than the truth's plus the
/// machines whose agents never come online. Only then is every machine listed (at
/// `large` 300 pages, which beside the whole fleet take about a minute).
pub fn may_have_settled(machines: &Value, truth: &BTreeMap<String, Truth>) -> bool {
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    let mut never_online = 0;
    for t in truth.values() {
        if let Some(state) = t.expected_state() {
            *expected.entry(state).or_default() += 1;
        }
        if t.behaviour == Behaviour::NeverOnline {
            never_online += 1;
        }
    }
    let shown = |state: &str| machines[state].as_u64().unwrap_or(0);
    expected.get("migrating").is_none()
        && shown("migrating") == 0
        && shown("pending") <= expected.get("pending").copied().unwrap_or(0) + never_online
        && ["migrated", "failed", "manual_action_required"]
            .iter()
            .all(|s| shown(s) == expected.get(s).copied().unwrap_or(0))
}

/// Polls until every machine has settled; answers them as shown. The migration's
/// counts are read every `poll` and the machines listed only when those counts allow
/// (see [`may_have_settled`]). At the deadline, prints where it stands and fails.
pub async fn settle(
    api: &Api,
    workspace: &str,
    migration: &str,
    fleets: &[Fleet],
    webhooks: &Receiver,
    deadline: &Deadline,
    poll: Duration,
    label: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut printed = Instant::now();
    let mut served = api.served().await?;
    let mut delivered = webhooks.delivered();
    let mut listed = None;
    loop {
        let truth = truth_of(fleets);
        let counts = api.get(migration).await?["machines"].clone();
        if may_have_settled(&counts, &truth) {
            let scan = Instant::now();
            let shown = all_machines(&api.http, api.base(), workspace, &api.token).await?;
            let open = unsettled(&shown, &truth_of(fleets));
            if open.is_empty() {
                return Ok(shown);
            }
            listed = Some(format!(
                "the last listing ({:.1} s) found {} of {} not settled, e.g. {}",
                scan.elapsed().as_secs_f64(),
                open.len(),
                shown.len(),
                open.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        if deadline.passed() || printed.elapsed() > Duration::from_secs(15) {
            println!(
                "{label}: {}; {}",
                progress_bar(&counts),
                listed.as_deref().unwrap_or("not listed yet")
            );
            let now = api.served().await?;
            let throttled: u32 = truth.values().map(|t| t.observed.throttled).sum();
            println!(
                "{label}: agents in the last {:.0} s: {}; the fleet was told to back off {throttled} times so far",
                printed.elapsed().as_secs_f64(),
                now.agent_rates_since(&served, printed.elapsed().as_secs_f64())
            );
            let delays = webhooks.delays_since(delivered);
            delivered += delays.len();
            println!(
                "{label}: webhook deliveries in the last {:.0} s: {}; {}",
                printed.elapsed().as_secs_f64(),
                propagation::percentiles(delays),
                api.queue_of("webhook").await
            );
            served = now;
            printed = Instant::now();
        }
        if deadline.passed() {
            println!("{label}: the service so far: {:?}", api.served().await?);
            println!("{}", api.queue().await);
            anyhow::bail!(
                "{}: not settled after {:?}",
                deadline.phase,
                deadline.within
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// Each migration's counts (by kind and state) against the sum of its items, listed
/// page by page; answers the differences.
pub async fn migration_counts(api: &Api, workspace: &str) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    let listed = api
        .get(&format!(
            "/api/v1/workspaces/{workspace}/migrations?limit=100"
        ))
        .await?;
    for migration in listed["items"].as_array().into_iter().flatten() {
        let id = migration["id"].as_str().unwrap_or_default();
        let path = format!("/api/v1/workspaces/{workspace}/migrations/{id}");
        let detail = api.get(&path).await?;
        let mut summed: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page = format!("{path}/items?limit=500");
            if let Some(cursor) = &cursor {
                page.push_str(&format!("&cursor={cursor}"));
            }
            let page = api.get(&page).await?;
            for item in page["items"].as_array().into_iter().flatten() {
                let key = (item["kind"].to_string(), item["state"].to_string());
                *summed.entry(key).or_default() += 1;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        let mut counted: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (kind, states) in detail["counts"].as_object().into_iter().flatten() {
            for (state, n) in states.as_object().into_iter().flatten() {
                let n = n.as_u64().unwrap_or(0);
                if n > 0 {
                    counted.insert((format!("\"{kind}\""), format!("\"{state}\"")), n);
                }
            }
        }
        if counted != summed {
            differences.push(format!(
                "migration {id}: counts {counted:?}, items {summed:?}"
            ));
        }
        let total: u64 = summed.values().sum();
        if detail["items"].as_u64() != Some(total) {
            differences.push(format!(
                "migration {id}: {} items said, {total} listed",
                detail["items"]
            ));
        }
    }
    Ok(differences)
}

/// How many duplicates the cloud holds (`GET /sim/cloud/state`'s `duplicates`).
pub fn duplicates(cloud_state: &Value) -> usize {
    cloud_state["duplicates"].as_object().map_or(0, |d| {
        d.values().map(|v| v.as_array().map_or(0, Vec::len)).sum()
    })
}
