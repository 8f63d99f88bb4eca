//! The partner's calls to the service's API instances, what they served (from
//! `/metrics`), and the time each phase has.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Client;
use serde_json::Value;

/// A partner driving the service through its API instances.
pub struct Api {
    pub http: Client,
    /// Every API instance, `http://127.0.0.1:PORT`; calls go to the first.
    pub bases: Vec<String>,
    pub token: String,
}

/// What the API instances served so far, summed over them.
#[derive(Clone, Debug, Default)]
pub struct Served {
    /// Every request but the scrapes of `/metrics`.
    pub requests: u64,
    /// Answered 429 or 503: turned away.
    pub turned_away: u64,
    /// Answered another 5xx.
    pub server_errors: u64,
    pub check_ins: u64,
    /// Per agent route (`/agent/v1/…`): answered otherwise, turned away.
    pub agent_routes: BTreeMap<String, [u64; 2]>,
}

impl Served {
    /// The agent requests per second of each route since `before`, `secs` ago:
    /// `route answered/s (+turned away/s)`.
    pub fn agent_rates_since(&self, before: &Served, secs: f64) -> String {
        let secs = secs.max(0.001);
        self.agent_routes
            .iter()
            .map(|(route, [answered, refused])| {
                let [was_answered, was_refused] =
                    before.agent_routes.get(route).copied().unwrap_or_default();
                format!(
                    "{} {:.0}/s (+{:.0}/s turned away)",
                    route.trim_start_matches("/agent/v1/"),
                    // An instance started again counts from 0.
                    answered.saturating_sub(was_answered) as f64 / secs,
                    refused.saturating_sub(was_refused) as f64 / secs
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Api {
    pub fn base(&self) -> &str {
        &self.bases[0]
    }

    /// A GET; one whose connection failed under it is sent again, up to three
    /// times a second apart, each failure printed (seen at `large` beside the
    /// whole fleet, twice in a row: "received unexpected message from connection").
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let send = || {
            self.http
                .get(format!("{}{path}", self.base()))
                .bearer_auth(&self.token)
                .send()
        };
        let mut failed = 0;
        let response = loop {
            match send().await {
                Err(e) if (e.is_request() || e.is_connect()) && failed < 3 => {
                    failed += 1;
                    println!("GET {path}: {:#}; sent again", anyhow::Error::from(e));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                sent => break sent,
            }
        }
        .with_context(|| format!("GET {path}"))?;
        answer(response, "GET", path).await
    }

    /// A POST with an optional JSON body and `Idempotency-Key`.
    pub async fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base()))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        answer(response, "POST", path).await
    }

    /// Polls an operation until it is done; answers it, or fails at the deadline
    /// saying where it stood and what the job queue holds.
    pub async fn wait_for(&self, operation: &str, deadline: &Deadline) -> anyhow::Result<Value> {
        loop {
            let value = self.get(operation).await?;
            if value["done"] == true {
                if value["error"].is_object() {
                    anyhow::bail!("{operation} failed: {}", value["error"]);
                }
                return Ok(value);
            }
            if deadline.passed() {
                println!("{operation}: {}", value["metadata"]);
                println!("{}", self.queue().await);
                anyhow::bail!("{}: not done after {:?}", deadline.phase, deadline.within);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The text of `/metrics` of every instance.
    async fn metrics(&self) -> anyhow::Result<Vec<String>> {
        let mut texts = Vec::new();
        for base in &self.bases {
            let text = self
                .http
                .get(format!("{base}/metrics"))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            texts.push(text);
        }
        Ok(texts)
    }

    pub async fn served(&self) -> anyhow::Result<Served> {
        let mut served = Served::default();
        for text in self.metrics().await? {
            for line in text.lines() {
                let value = || {
                    line.rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0) as u64
                };
                if line.starts_with("mp_http_requests_total{")
                    && !line.contains("route=\"/metrics\"")
                {
                    served.requests += value();
                    let refused =
                        line.contains("status=\"429\"") || line.contains("status=\"503\"");
                    if refused {
                        served.turned_away += value();
                    } else if line.contains("status=\"5") {
                        served.server_errors += value();
                    }
                    if let Some(route) = line
                        .split("route=\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .filter(|route| route.starts_with("/agent/"))
                    {
                        served.agent_routes.entry(route.to_string()).or_default()
                            [usize::from(refused)] += value();
                    }
                } else if line.starts_with("mp_agent_check_ins_total{") {
                    served.check_ins += value();
                }
            }
        }
        Ok(served)
    }

    /// The job queue's gauges, as the first instance reads them from the database.
    pub async fn queue(&self) -> String {
        self.queue_gauges(|_| true).await.join("\n")
    }

    /// The job queue's gauges of one kind of job, on a line: `state=n …, oldest due n s`.
    pub async fn queue_of(&self, kind: &str) -> String {
        let label = format!("kind=\"{kind}\"");
        let gauges = self.queue_gauges(|l| l.contains(&label)).await;
        let shown: Vec<String> = gauges
            .iter()
            .map(|line| {
                let value = line.rsplit(' ').next().unwrap_or_default();
                match line.split("state=\"").nth(1) {
                    Some(state) => {
                        format!("{} {value}", state.split('"').next().unwrap_or_default())
                    }
                    None => format!("oldest due {value} s"),
                }
            })
            .collect();
        format!("{kind} jobs: {}", shown.join(", "))
    }

    async fn queue_gauges(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        match self.metrics().await {
            Ok(texts) => texts[0]
                .lines()
                .filter(|l| l.starts_with("mp_jobs_") && keep(l))
                .map(str::to_string)
                .collect(),
            Err(e) => vec![format!("/metrics did not answer: {e}")],
        }
    }
}

async fn answer(response: reqwest::Response, method: &str, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "{method} {path} answered {status}: {text}"
    );
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// How long a phase may take.
pub struct Deadline {
    pub phase: &'static str,
    pub within: Duration,
    started: Instant,
}

impl Deadline {
    pub fn new(phase: &'static str, within: Duration) -> Self {
        Self {
            phase,
            within,
            started: Instant::now(),
        }
    }

    pub fn passed(&self) -> bool {
        self.started.elapsed() > self.within
    }
}
