//! A partner's tool driving the portal's API over HTTP, as the demo and the
//! end-to-end benchmark do: a token from the cloud's identity provider, every
//! machine of a workspace page by page, the machines compared with the fleet's
//! ground truth, a migration's machines as a progress bar.

use std::collections::BTreeMap;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use reqwest::Client;
use serde_json::Value;

use crate::sim::fleet::Truth;

/// A partner token: the client-credentials grant of the cloud API client `id`.
pub async fn client_credentials_token(
    http: &Client,
    issuer: &str,
    id: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let answer: Value = http
        .post(format!("{issuer}/api/2/idp/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_string)
        .context("the token endpoint answered no access_token")
}

/// Every machine of the workspace, page by page, from the service at `base`.
pub async fn all_machines(
    http: &Client,
    base: &str,
    workspace: &str,
    token: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut machines = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/workspaces/{workspace}/machines?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        // A page read again when the connection broke or the service was busy: the
        // listing runs beside a whole fleet, whose load may close a connection under it.
        // Each page on a connection of its own (`Connection: close`): at `large` a page
        // read on a pooled connection beside 150,000 agents failed again and again with
        // hyper's "received unexpected message from connection".
        let read = || async {
            let answer = http
                .get(&url)
                .bearer_auth(token)
                .header(reqwest::header::CONNECTION, "close")
                .send()
                .await?;
            answer.error_for_status()?.json::<Value>().await
        };
        let page = read
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_millis(200))
                    .with_max_delay(std::time::Duration::from_secs(5))
                    .with_max_times(20),
            )
            .sleep(tokio::time::sleep)
            // Anything but a refusal of the request itself (a 4xx other than 429).
            .when(|e: &reqwest::Error| {
                !e.status()
                    .is_some_and(|s| s.is_client_error() && s.as_u16() != 429)
            })
            .notify(|e, wait| eprintln!("reading a page of machines again in {wait:?}: {e:?}"))
            .await?;
        machines.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(machines),
        }
    }
}

/// The machines whose state differs from what the fleet's ground truth says
/// (only those the fleet can tell about: it never hears of a machine whose
/// agent never came online, or that was never released), and how many were checked.
pub fn compare_with_truth(
    shown: &[Value],
    truth: &BTreeMap<String, Truth>,
) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut mismatched = Vec::new();
    for machine in shown {
        let id = machine["machine_id"].as_str().unwrap_or_default();
        let Some(expected) = truth.get(id).and_then(|t| t.expected_state()) else {
            continue;
        };
        checked += 1;
        let state = machine["state"].as_str().unwrap_or_default();
        if state != expected {
            mismatched.push(format!("{id} is {state}, expected {expected}"));
        }
    }
    (checked, mismatched)
}

/// `[#####+++!!......] 120 migrated, 30 migrating, 4 failed, 2 manual, 240 waiting` over a
/// migration's machines (its `machines` counts): `#` migrated, `+` migrating, `!` failed
/// or manual, `.` waiting.
pub fn progress_bar(machines: &Value) -> String {
    let n = |state: &str| machines[state].as_u64().unwrap_or(0);
    let (done, moving, stuck, waiting) = (
        n("migrated"),
        n("migrating"),
        n("failed") + n("manual_action_required"),
        n("pending"),
    );
    let total = (done + moving + stuck + waiting).max(1);
    let width = 40;
    let cells = |count: u64| (count * width / total) as usize;
    let (d, m, s) = (cells(done), cells(moving), cells(stuck));
    let bar = format!("{}{}{}", "#".repeat(d), "+".repeat(m), "!".repeat(s));
    format!(
        "[{bar:.<40}] {done} migrated, {moving} migrating, {} failed, {} manual, {waiting} waiting",
        n("failed"),
        n("manual_action_required"),
    )
}
