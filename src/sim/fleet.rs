//! `sim fleet`: simulated BackupAgent clients, one per machine, that enroll
//! with a workspace, check in at an interval that can be sped up, follow their
//! instructions and report each step over HTTP, like the real clients. Each
//! machine has a behaviour drawn from a seed (healthy, a download or install
//! error on the first attempt, offline for a while, never online), and the fleet
//! records what happened to it, so a test can tell what state the portal must
//! show for every machine. Each client states its version at check-in; an
//! outdated one whose user has automatic updates on updates itself a few
//! check-ins after it is told to wait for its update, one with them off never does.
//! Like a real client it checks in again when the service says (`Poll-After`) and,
//! told to back off (429 or 503), waits `Retry-After` before its next request and
//! then sends the same request again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

/// How a simulated machine behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Healthy,
    /// The first download fails; after a retry it works.
    DownloadErrorOnce,
    /// The first install fails; after a retry it works.
    InstallErrorOnce,
    /// Misses this many check-ins before it comes online.
    OfflineFor(u32),
    /// Never checks in.
    NeverOnline,
}

/// How many machines in a hundred fail in each way (the rest are healthy).
/// Outdated clients, and whether they update themselves, come from the install
/// base (each machine's client version and its user's auto-update setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub download_error: u32,
    pub install_error: u32,
    pub offline_for_a_while: u32,
    pub never_online: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            download_error: 8,
            install_error: 7,
            offline_for_a_while: 10,
            never_online: 5,
        }
    }
}

impl Mix {
    /// The shares are percentages: together at most 100.
    pub fn is_valid(&self) -> bool {
        self.download_error + self.install_error + self.offline_for_a_while + self.never_online
            <= 100
    }
}

/// The behaviour of the `index`-th machine for `seed` and `mix`.
pub fn behaviour(seed: u64, index: usize, mix: Mix) -> Behaviour {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let roll = rng.random_range(0..100);
    let download = mix.download_error;
    let install = download + mix.install_error;
    let offline = install + mix.offline_for_a_while;
    let never = offline + mix.never_online;
    match roll {
        r if r < download => Behaviour::DownloadErrorOnce,
        r if r < install => Behaviour::InstallErrorOnce,
        r if r < offline => Behaviour::OfflineFor(rng.random_range(1..=3)),
        r if r < never => Behaviour::NeverOnline,
        _ => Behaviour::Healthy,
    }
}

/// A machine's client as the fleet runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetMachine {
    pub id: String,
    /// The BackupAgent client's version (`None`: a client that does not state it).
    pub client_version: Option<String>,
    /// Whether the client updates itself when it is outdated (its user's setting).
    pub auto_update: bool,
}

impl FleetMachine {
    /// Every machine of an install base, with its client's version and its user's auto-update setting.
    pub fn from_install_base(base: &crate::sim::install_base::InstallBase) -> Vec<FleetMachine> {
        let auto_update: std::collections::HashMap<&str, bool> = base
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.auto_update))
            .collect();
        base.machines
            .iter()
            .map(|m| FleetMachine {
                id: m.id.clone(),
                client_version: m.client_version.clone(),
                auto_update: auto_update
                    .get(m.user_id.as_str())
                    .copied()
                    .unwrap_or(false),
            })
            .collect()
    }

    /// `id[,client_version[,auto_update]]` (a line of `sim fleet --machines`).
    pub fn parse(line: &str) -> Option<FleetMachine> {
        let mut fields = line.split(',').map(str::trim);
        let id = fields.next().filter(|id| !id.is_empty())?.to_string();
        let client_version = fields.next().filter(|v| !v.is_empty()).map(str::to_string);
        let auto_update = fields
            .next()
            .is_none_or(|a| matches!(a, "true" | "1" | "yes"));
        Some(FleetMachine {
            id,
            client_version,
            auto_update,
        })
    }
}

/// The version an outdated client updates itself to.
pub const UPDATED_CLIENT_VERSION: &str = "5.6.0.100";

/// Check-ins between being told to wait for its update and updating itself.
const UPDATE_AFTER_CHECK_INS: u32 = 2;

/// How often a real client checks in (the service's `domain::agent::CHECK_IN_INTERVAL_MINUTES`),
/// which [`FleetConfig::interval`] stands for.
pub const REAL_CHECK_IN_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// How long a client waits when told to back off without a readable `Retry-After`.
const DEFAULT_RETRY_AFTER_SECS: u64 = 60;

#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The service, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    pub workspace_id: Uuid,
    pub enrollment_secret: String,
    pub machines: Vec<FleetMachine>,
    /// The fleet's check-in interval: it stands for the real one ([`REAL_CHECK_IN_INTERVAL`],
    /// 30 minutes), sped up in tests and the demo. Every wait the service asks for in
    /// seconds (`Poll-After` between check-ins, `Retry-After` after a 429 or 503) is
    /// scaled by `interval / 30 minutes` ([`FleetConfig::scaled`]): at 300 ms, the
    /// 30 minutes of `Poll-After` take about 300 ms, a `Retry-After` of 60 s takes 10 ms.
    pub interval: Duration,
    pub seed: u64,
    pub mix: Mix,
}

impl FleetConfig {
    /// `secs` of the service's time in the fleet's sped-up time.
    pub fn scaled(&self, secs: u64) -> Duration {
        self.interval
            .mul_f64(secs as f64 / REAL_CHECK_IN_INTERVAL.as_secs_f64())
    }
}

/// What happened to one machine, as the fleet saw it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Observed {
    pub enrolled: bool,
    pub check_ins: u32,
    /// Told to migrate at least once.
    pub told_to_migrate: bool,
    /// Told to wait for a client update instead (an outdated client).
    pub told_to_update: bool,
    /// The client updated itself (automatic updates on) after it was told to wait.
    pub updated: bool,
    /// Its plans need a manual registration (SQL Server, Exchange).
    pub manual: bool,
    pub failures: u32,
    /// The cloud registered its agent.
    pub registered: bool,
    /// The cloud's reason, the last time it refused to register the agent.
    pub registration_refused: Option<String>,
    pub migrated: bool,
    pub logs_uploaded: u32,
    /// Times the service told it to back off (429 or 503 with `Retry-After`).
    pub throttled: u32,
}

/// The machine's ground truth: its behaviour and what happened.
#[derive(Clone, Debug, Serialize)]
pub struct Truth {
    pub behaviour: Behaviour,
    pub auto_update: bool,
    pub observed: Observed,
}

impl Truth {
    /// The state the portal must show now, or `None` when the fleet cannot tell
    /// (a machine it never heard of being released).
    pub fn expected_state(&self) -> Option<&'static str> {
        let o = &self.observed;
        match self.behaviour {
            Behaviour::NeverOnline => None,
            // An outdated client that updates itself has not settled until it did.
            _ if o.told_to_update && !o.told_to_migrate && self.auto_update => None,
            _ if o.told_to_update && !o.told_to_migrate => Some("pending"),
            _ if !o.told_to_migrate => None,
            _ if o.migrated => Some("migrated"),
            _ if o.manual => Some("manual_action_required"),
            _ if o.failures > 0 => Some("failed"),
            _ => Some("migrating"),
        }
    }
}

/// Requests the whole fleet has in flight at once, each on a connection of its
/// own (a call to `sim cloud` in the same process holds two descriptors): beyond
/// it an agent waits for one to end. At `large`, 150,000 agents on one client
/// held 20,000 descriptors when the service slowed, the process's limit, and
/// every request of the process failed ("Too many open files", then hyper's
/// "received unexpected message from connection"). Real agents each have their
/// own machine; this bounds the simulator, not what the service is offered.
const MAX_IN_FLIGHT: usize = 3_000;

pub struct Fleet {
    truth: Arc<Mutex<BTreeMap<String, Truth>>>,
    reports: Arc<Mutex<Vec<u32>>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Starts one agent per machine on the current runtime.
    pub fn start(config: FleetConfig) -> Fleet {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // The service closes connections idle for 5 s: one reused just then fails.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        let truth: BTreeMap<String, Truth> = config
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    m.id.clone(),
                    Truth {
                        behaviour: behaviour(config.seed, i, config.mix),
                        auto_update: m.auto_update,
                        observed: Observed::default(),
                    },
                )
            })
            .collect();
        let truth = Arc::new(Mutex::new(truth));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let (stop, stopped) = watch::channel(false);
        let config = Arc::new(config);
        let tasks = config
            .machines
            .iter()
            .enumerate()
            .map(|(i, machine)| {
                let agent = Agent {
                    http: http.clone(),
                    in_flight: in_flight.clone(),
                    config: config.clone(),
                    machine: machine.id.clone(),
                    client_version: machine.client_version.clone(),
                    auto_update: machine.auto_update,
                    behaviour: behaviour(config.seed, i, config.mix),
                    truth: truth.clone(),
                    reports: reports.clone(),
                    rng: ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(i as u64)),
                };
                tokio::spawn(agent.run(stopped.clone()))
            })
            .collect();
        Fleet {
            truth,
            reports,
            stop,
            tasks,
        }
    }

    /// How long each step report the service accepted took, in milliseconds, from
    /// the request sent to its answer: the machine's new state is visible in the
    /// API from the answer on (it is committed before). Reports refused for now
    /// (429, 503) are not counted: they are sent again.
    pub fn report_times_ms(&self) -> Vec<u32> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every machine's ground truth now.
    pub fn truth(&self) -> BTreeMap<String, Truth> {
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops every agent once its current check-in is over; answers the final truth.
    pub async fn stop(self) -> BTreeMap<String, Truth> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Agent {
    http: reqwest::Client,
    /// The fleet's requests in flight ([`MAX_IN_FLIGHT`]).
    in_flight: Arc<tokio::sync::Semaphore>,
    config: Arc<FleetConfig>,
    machine: String,
    client_version: Option<String>,
    auto_update: bool,
    behaviour: Behaviour,
    truth: Arc<Mutex<BTreeMap<String, Truth>>>,
    /// [`Fleet::report_times_ms`].
    reports: Arc<Mutex<Vec<u32>>>,
    rng: ChaCha8Rng,
}

impl Agent {
    fn observe(&self, change: impl FnOnce(&mut Observed)) {
        if let Some(truth) = self
            .truth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.machine)
        {
            change(&mut truth.observed);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        if self.behaviour == Behaviour::NeverOnline {
            return;
        }
        let mut token = None;
        let mut etag = String::new();
        let mut seq = 0i64;
        let mut check_ins = 0u32;
        let mut failed_once = false;
        // Check-ins since it was first told to wait for its update.
        let mut waiting_for_update: Option<u32> = None;
        // The first check-in about an interval from now, with jitter so the fleet spreads out.
        let mut wait = self.about_an_interval();
        loop {
            if !pause(&mut stopped, wait).await {
                return;
            }
            // Unless the service says when (offline, or no answer): about an interval.
            wait = self.about_an_interval();
            check_ins += 1;
            if let Behaviour::OfflineFor(missed) = self.behaviour
                && check_ins <= missed
            {
                continue;
            }
            let Some(current) = token.clone() else {
                let (enrolled, told) = self.enroll().await;
                token = enrolled;
                wait = told.unwrap_or(wait);
                continue;
            };
            self.observe(|o| o.check_ins += 1);
            if let Some(waited) = waiting_for_update.as_mut() {
                *waited += 1;
                if self.auto_update && *waited > UPDATE_AFTER_CHECK_INS {
                    self.client_version = Some(UPDATED_CLIENT_VERSION.to_string());
                    waiting_for_update = None;
                    self.observe(|o| o.updated = true);
                }
            }
            let mut request = self
                .http
                .get(self.url("/agent/v1/instructions"))
                .bearer_auth(&current)
                .header("If-None-Match", &etag);
            if let Some(version) = &self.client_version {
                request = request.header("X-Client-Version", version);
            }
            let response = match self.send(request).await {
                Answer::Given(response) => response,
                Answer::BackOff(told) => {
                    wait = told;
                    continue;
                }
                Answer::Lost => continue,
            };
            // 200 and 304 say when to check in again.
            if let Some(poll) = seconds(&response, "poll-after") {
                wait = self.config.scaled(poll);
            }
            if response.status() != reqwest::StatusCode::OK {
                continue;
            }
            etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let Ok(instructions) = response.json::<Value>().await else {
                continue;
            };
            if instructions["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("update_"))
            {
                self.observe(|o| o.told_to_update = true);
                if waiting_for_update.is_none()
                    && self.client_version.as_deref() != Some(UPDATED_CLIENT_VERSION)
                {
                    waiting_for_update = Some(0);
                }
            }
            if instructions["action"] != "migrate" {
                continue;
            }
            self.observe(|o| o.told_to_migrate = true);
            seq = seq.max(instructions["last_seq"].as_i64().unwrap_or(0));
            let manual = instructions["plans"].as_array().is_some_and(|plans| {
                plans
                    .iter()
                    .any(|p| matches!(p["type"].as_str(), Some("sql_server" | "exchange")))
            });
            let mut steps = VecDeque::from([json!({"kind": "downloading"})]);
            match self.behaviour {
                Behaviour::DownloadErrorOnce if !failed_once => {
                    steps.push_back(json!({"kind": "failed", "code": "download_error", "message": "the download was cut off"}));
                }
                Behaviour::InstallErrorOnce if !failed_once => {
                    steps.push_back(json!({"kind": "installing"}));
                    steps.push_back(json!({"kind": "failed", "code": "install_error", "message": "msiexec exited with 1603"}));
                }
                _ if manual => {
                    steps.push_back(json!({"kind": "installing"}));
                    steps.push_back(json!({"kind": "registration_manual", "message": "SQL Server or Exchange: register the agent by hand"}));
                }
                _ => {
                    for kind in [
                        "installing",
                        "registering",
                        "plans_transferred",
                        "restore_only",
                    ] {
                        steps.push_back(json!({"kind": kind}));
                    }
                }
            }
            while let Some(mut step) = steps.pop_front() {
                seq += 1;
                step["seq"] = json!(seq);
                let kind = step["kind"].as_str().unwrap_or_default().to_string();
                // Refused for now, the same report (same `seq`) goes again after the wait:
                // the service applies a number once and acknowledges a repeat.
                let sent = self
                    .send_until_answered(&mut stopped, |agent| {
                        agent
                            .http
                            .post(agent.url("/agent/v1/events"))
                            .bearer_auth(&current)
                            .json(&step)
                    })
                    .await;
                let sent = match sent {
                    Some((response, took)) if response.status().is_success() => {
                        let took = took.as_millis().min(u128::from(u32::MAX)) as u32;
                        self.reports
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(took);
                        Some(response)
                    }
                    other => other.map(|(response, _)| response),
                };
                if !sent.is_some_and(|r| r.status().is_success()) {
                    // Unreported, the step is done again: the next check-in must read
                    // the instructions anew, not be told they have not changed (304).
                    etag.clear();
                    break;
                }
                match kind.as_str() {
                    "failed" => {
                        failed_once = true;
                        self.observe(|o| o.failures += 1);
                        let log = format!(
                            "{} failed at step {seq}: {}\n",
                            self.machine,
                            step["message"].as_str().unwrap_or_default()
                        );
                        let uploaded = self
                            .send_until_answered(&mut stopped, |agent| {
                                agent
                                    .http
                                    .post(agent.url("/agent/v1/logs"))
                                    .bearer_auth(&current)
                                    .header("content-type", "text/plain")
                                    .body(log.clone())
                            })
                            .await;
                        if uploaded.is_some_and(|(r, _)| r.status().is_success()) {
                            self.observe(|o| o.logs_uploaded += 1);
                        }
                    }
                    "registering" => {
                        // Registered, the rest follows; refused, the machine failed.
                        if let Err((code, message)) = self.register(&instructions).await {
                            steps.clear();
                            steps.push_back(
                                json!({"kind": "failed", "code": code, "message": message}),
                            );
                        }
                    }
                    "registration_manual" => self.observe(|o| o.manual = true),
                    "restore_only" => self.observe(|o| o.migrated = true),
                    _ => {}
                }
            }
        }
    }

    /// The fleet's interval with jitter, for waits the service did not set.
    fn about_an_interval(&mut self) -> Duration {
        self.config
            .interval
            .mul_f64(self.rng.random_range(0.5..1.5))
    }

    /// Sends `request`; a 429 or 503 is counted and becomes the wait it asks for.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let Ok(response) = self.sent(request).await else {
            return Answer::Lost;
        };
        if !matches!(
            response.status(),
            reqwest::StatusCode::TOO_MANY_REQUESTS | reqwest::StatusCode::SERVICE_UNAVAILABLE
        ) {
            return Answer::Given(response);
        }
        self.observe(|o| o.throttled += 1);
        let told = seconds(&response, "retry-after").unwrap_or(DEFAULT_RETRY_AFTER_SECS);
        // At least what it was told, up to a quarter more so that a refused herd spreads out.
        let jitter = self.rng.random_range(1.0..1.25);
        Answer::BackOff(self.config.scaled(told).mul_f64(jitter))
    }

    /// Sends `request` once one of the fleet's [`MAX_IN_FLIGHT`] is free, until
    /// its answer's head is in (the small bodies that follow are read at once).
    async fn sent(&self, request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let _permit = self.in_flight.acquire().await;
        request.send().await
    }

    /// Sends the request `build` makes until the service answers it otherwise than
    /// with 429 or 503, waiting as told before each new attempt; `None` when the
    /// connection failed or the fleet is stopping. With the answer, how long its
    /// request took.
    async fn send_until_answered(
        &mut self,
        stopped: &mut watch::Receiver<bool>,
        build: impl Fn(&Self) -> reqwest::RequestBuilder,
    ) -> Option<(reqwest::Response, Duration)> {
        loop {
            let request = build(self);
            let sent = std::time::Instant::now();
            match self.send(request).await {
                Answer::Given(response) => return Some((response, sent.elapsed())),
                Answer::Lost => return None,
                Answer::BackOff(wait) => {
                    if !pause(stopped, wait).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Registers the machine's agent with the cloud its instructions name; a refusal
    /// is `registration_refused` with the cloud's message.
    async fn register(&self, instructions: &Value) -> Result<(), (&'static str, String)> {
        let registration = &instructions["registration"];
        let (Some(address), Some(token)) = (
            registration["address"].as_str(),
            registration["token"].as_str(),
        ) else {
            return Err((
                "registration_error",
                "the instructions carry no registration address and token".into(),
            ));
        };
        let url = format!(
            "{}/sim/cloud/agents/register",
            address.trim_end_matches('/')
        );
        let body = json!({"token": token, "machine_id": self.machine});
        let response = self
            .sent(self.http.post(url).json(&body))
            .await
            .map_err(|e| {
                (
                    "registration_error",
                    format!("the cloud is unreachable: {e}"),
                )
            })?;
        let status = response.status();
        if status.is_success() {
            self.observe(|o| o.registered = true);
            return Ok(());
        }
        let answer: Value = response.json().await.unwrap_or_default();
        let message = answer["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the cloud answered {status}"), str::to_string);
        if !status.is_client_error() {
            return Err(("registration_error", message));
        }
        self.observe(|o| o.registration_refused = Some(message.clone()));
        Err(("registration_refused", message))
    }

    /// Enrolls: the agent's token, if it got one, and the wait before its next request
    /// that the service asked for (`poll_after_secs`, or `Retry-After` when refused).
    async fn enroll(&mut self) -> (Option<String>, Option<Duration>) {
        let body = json!({"workspace_id": self.config.workspace_id, "enrollment_secret": self.config.enrollment_secret, "machine_id": self.machine});
        let request = self.http.post(self.url("/agent/v1/enroll")).json(&body);
        let response = match self.send(request).await {
            Answer::Given(response) if response.status().is_success() => response,
            Answer::BackOff(wait) => return (None, Some(wait)),
            Answer::Given(_) | Answer::Lost => return (None, None),
        };
        let Ok(enrolled) = response.json::<Value>().await else {
            return (None, None);
        };
        self.observe(|o| o.enrolled = true);
        let poll = enrolled["poll_after_secs"]
            .as_u64()
            .map(|secs| self.config.scaled(secs));
        (enrolled["token"].as_str().map(str::to_string), poll)
    }
}

/// What became of a request, as a client acts on it.
enum Answer {
    /// The service's answer, anything but 429 and 503.
    Given(reqwest::Response),
    /// Told to back off (429 or 503): the wait before the next request, scaled.
    BackOff(Duration),
    /// No answer: the connection failed or timed out.
    Lost,
}

/// A header of whole seconds (`Retry-After`, `Poll-After`); an HTTP date is not read.
fn seconds(response: &reqwest::Response, header: &str) -> Option<u64> {
    response
        .headers()
        .get(header)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Waits `wait`; false when the fleet is stopping (before or during the wait).
async fn pause(stopped: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    if *stopped.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => !*stopped.borrow(),
        _ = stopped.changed() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_sets_the_share_of_each_failure() {
        let count = |mix: Mix, wanted: fn(&Behaviour) -> bool| {
            (0..10_000)
                .filter(|i| wanted(&behaviour(7, *i, mix)))
                .count()
        };
        let mix = Mix {
            download_error: 20,
            install_error: 0,
            offline_for_a_while: 30,
            never_online: 10,
        };
        assert!((1_800..2_200).contains(&count(mix, |b| *b == Behaviour::DownloadErrorOnce)));
        assert_eq!(count(mix, |b| *b == Behaviour::InstallErrorOnce), 0);
        assert!(
            (2_700..3_300).contains(&count(mix, |b| matches!(b, Behaviour::OfflineFor(1..=3))))
        );
        assert!((850..1_150).contains(&count(mix, |b| *b == Behaviour::NeverOnline)));
        let none = Mix {
            download_error: 0,
            install_error: 0,
            offline_for_a_while: 0,
            never_online: 0,
        };
        assert_eq!(count(none, |b| *b == Behaviour::Healthy), 10_000);
        assert!(
            !Mix {
                never_online: 90,
                ..Mix::default()
            }
            .is_valid()
        );
    }
}
