//! `GET /metrics`, read with an independent parser of the text format: requests
//! are counted by route pattern, never by raw path; after a migration with `sim
//! fleet` agents the gauges equal the API's counts and the counters equal what the
//! cloud simulator and the agents saw; the bearer token guards it when set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use migration_portal::domain::machines::MachineState;
use migration_portal::sim::cloud::Faults;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricFamily, PrometheusType, PrometheusValue};
use secrecy::SecretString;
use serde_json::json;

use crate::fleet::settle;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_with, workspace_body};
use crate::migrations::{fast_world, small};

/// One scrape, as the parser read it.
struct Scrape {
    families: HashMap<String, MetricFamily<PrometheusType, PrometheusValue>>,
}

type Labels = BTreeMap<String, String>;

impl Scrape {
    fn parse(text: &str) -> Self {
        let exposition = parse_prometheus(text)
            .unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"));
        Scrape {
            families: exposition.families,
        }
    }

    /// Every sample of a family: its labels and its value (a histogram's count).
    fn samples(&self, family: &str) -> Vec<(Labels, f64)> {
        let Some(family) = self.families.get(family) else {
            return Vec::new();
        };
        family
            .iter_samples()
            .map(|sample| {
                let labels = sample
                    .get_labelset()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let value = match &sample.value {
                    PrometheusValue::Counter(c) => c.value.as_f64(),
                    PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                    PrometheusValue::Histogram(h) => h.count.unwrap_or_default() as f64,
                    PrometheusValue::Summary(s) => s.count.unwrap_or_default() as f64,
                };
                (labels, value)
            })
            .collect()
    }

    fn kind(&self, family: &str) -> Option<PrometheusType> {
        self.families.get(family).map(|f| f.family_type.clone())
    }

    /// The sum over the samples whose labels include `labels`.
    fn sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(family)
            .into_iter()
            .filter(|(have, _)| {
                labels
                    .iter()
                    .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn label_values(&self, family: &str, label: &str) -> BTreeSet<String> {
        self.samples(family)
            .into_iter()
            .filter_map(|(labels, _)| labels.get(label).cloned())
            .collect()
    }
}

async fn scrape_with(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let request = app.http.get(app.url("/metrics"));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("scrape")
}

async fn scrape(app: &TestApp) -> Scrape {
    let response = scrape_with(app, None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(content_type, "text/plain; version=0.0.4");
    Scrape::parse(&response.text().await.expect("text"))
}

#[test]
fn the_parser_refuses_what_is_not_the_text_format() {
    for bad in [
        "mp_x{route=\"a} 1\n",
        "mp_x 1 2 3\n",
        "# TYPE mp_x counter\nmp_x one\n",
        "mp_x{a=\"1\"} 1\nmp_x{a=\"1\"} 2\n",
        "# TYPE mp_h histogram\nmp_h_bucket{le=\"1\"} 1\nmp_h_sum 1\nmp_h_count 1\n",
        "mp-x 1\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted: {bad}");
    }
    assert!(
        parse_prometheus("# HELP mp_x A help.\n# TYPE mp_x counter\nmp_x{route=\"/a/{id}\"} 1\n")
            .is_ok()
    );
}

/// Every route label is a documented path pattern (or `unmatched`), never a raw path.
fn assert_route_patterns(scrape: &Scrape, raw_ids: &[String]) {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    let documented: BTreeSet<&str> = spec["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let routes = scrape.label_values("mp_http_requests_total", "route");
    assert!(!routes.is_empty());
    for route in &routes {
        assert!(
            documented.contains(route.as_str()) || route == "unmatched",
            "{route} is not a documented pattern"
        );
        for id in raw_ids {
            assert!(!route.contains(id.as_str()), "{route} carries a raw id");
        }
    }
    assert_eq!(
        scrape.label_values("mp_http_request_duration_seconds", "route"),
        routes,
        "each counted route has its latency histogram"
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_pattern_method_and_status() {
    for backend in Backend::enabled() {
        let app = spawn_app(backend).await;
        let workspace = app
            .create_workspace(&app.token, &workspace_body("Counted").0)
            .await;
        let id = workspace["id"].as_str().expect("id").to_string();
        for _ in 0..3 {
            assert_eq!(
                app.get(&format!("/api/v1/workspaces/{id}"), &app.token)
                    .send()
                    .await
                    .expect("get")
                    .status(),
                200
            );
        }
        let other = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            app.get(&format!("/api/v1/workspaces/{other}"), &app.token)
                .send()
                .await
                .expect("get")
                .status(),
            404
        );
        assert_eq!(
            app.http
                .get(app.url(&format!("/no/such/{other}")))
                .send()
                .await
                .expect("get")
                .status(),
            404
        );
        let odd = reqwest::Method::from_bytes(b"BREW").expect("method");
        assert_eq!(
            app.http
                .request(odd, app.url(&format!("/brew/{other}")))
                .send()
                .await
                .expect("brew")
                .status(),
            404
        );

        let scrape = scrape(&app).await;
        let route = "/api/v1/workspaces/{id}";
        assert_eq!(
            scrape.kind("mp_http_requests_total"),
            Some(PrometheusType::Counter)
        );
        assert_eq!(
            scrape.kind("mp_http_request_duration_seconds"),
            Some(PrometheusType::Histogram)
        );
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[("route", route), ("method", "GET"), ("status", "200")]
            ),
            3.0
        );
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[("route", route), ("method", "GET"), ("status", "404")]
            ),
            1.0
        );
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[
                    ("route", "/api/v1/workspaces"),
                    ("method", "POST"),
                    ("status", "201")
                ]
            ),
            1.0
        );
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
            ),
            1.0
        );
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[
                    ("route", "unmatched"),
                    ("method", "other"),
                    ("status", "404")
                ]
            ),
            1.0
        );
        assert_eq!(
            scrape.sum(
                "mp_http_request_duration_seconds",
                &[("route", route), ("method", "GET")]
            ),
            4.0
        );
        assert_route_patterns(&scrape, &[id.clone(), other]);
        // The database's gauges: up, every job kind and state present, no machines yet.
        assert_eq!(scrape.sum("mp_database_up", &[]), 1.0);
        for kind in migration_portal::jobs::KINDS {
            for state in ["queued", "running"] {
                assert_eq!(
                    scrape
                        .samples("mp_jobs_queued")
                        .iter()
                        .filter(|(l, _)| l["kind"] == kind && l["state"] == state)
                        .count(),
                    1,
                    "{kind} {state}"
                );
            }
        }
        assert!(scrape.samples("mp_machines").is_empty());
        // A scrape counts the one before it.
        let again = self::scrape(&app).await;
        assert_eq!(
            again.sum(
                "mp_http_requests_total",
                &[("route", "/metrics"), ("status", "200")]
            ),
            1.0,
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn with_a_token_configured_metrics_require_it() {
    for backend in Backend::enabled() {
        let app = spawn_app_with(backend, |c| {
            c.metrics.bearer_token = Some(SecretString::from("scrape-secret-1"))
        })
        .await;
        assert_problem(scrape_with(&app, None).await, 401).await;
        assert_problem(scrape_with(&app, Some("scrape-secret-2")).await, 401).await;
        assert_problem(scrape_with(&app, Some(&app.token)).await, 401).await;
        let allowed = scrape_with(&app, Some("scrape-secret-1")).await;
        assert_eq!(allowed.status(), 200);
        let scrape = Scrape::parse(&allowed.text().await.expect("text"));
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[("route", "/metrics"), ("status", "401")]
            ),
            3.0,
            "{backend:?}"
        );
    }
}

/// The workspace's machines by state as `GET .../machines` lists them, every state present.
async fn listed_states(world: &crate::world::World) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = MachineState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0.0))
        .collect();
    for machine in world.all(&world.path("/machines")).await {
        *counts
            .entry(machine["state"].as_str().expect("state").to_string())
            .or_default() += 1.0;
    }
    counts
}

#[tokio::test]
async fn after_a_migration_with_agents_the_metrics_equal_the_api_and_the_simulators() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        // Refusals and failures to count while the migration creates the users.
        let worker = world.run_worker();
        let faults = Faults {
            fail_rate: 0.1,
            rate_limit_per_sec: Some(150),
            fail_after_commit_rate: 0.05,
            latency_ms: 0,
        };
        let location = world
            .start_migration_rate_limited(json!({"precheck_id": precheck["id"]}), faults)
            .await;
        assert_eq!(world.wait_over(&location).await["status"], "completed");
        world.cloud.set_faults(Faults::default());
        let released: Vec<String> = world
            .all(&world.path("/machines?state=pending"))
            .await
            .iter()
            .map(|m| m["machine_id"].as_str().expect("id").to_string())
            .collect();
        let fleet = world.start_fleet(&base, Duration::from_millis(500)).await;
        settle(&world, &fleet, &released).await;
        let truth = fleet.stop().await;
        worker.stop().await;

        let scrape = scrape(&world.app).await;
        let workspace = world.workspace.to_string();
        // Machines: the gauges are the listing's counts and the migration's.
        let gauges: BTreeMap<String, f64> = scrape
            .samples("mp_machines")
            .into_iter()
            .filter(|(l, _)| l["workspace_id"] == workspace)
            .map(|(l, v)| (l["state"].clone(), v))
            .collect();
        assert_eq!(
            gauges,
            listed_states(&world).await,
            "{backend:?}: machines by state"
        );
        assert!(
            gauges["migrated"] > 0.0 && gauges["failed"] > 0.0,
            "{gauges:?}"
        );
        let migration = world.get(&location).await;
        for state in MachineState::ALL
            .iter()
            .map(|s| s.as_str())
            .filter(|s| *s != "idle")
        {
            assert_eq!(
                Some(gauges[state]),
                migration["machines"][state].as_f64(),
                "{state}: {}",
                migration["machines"]
            );
        }
        // Requests: by pattern, never by raw id.
        let ids: Vec<String> = [
            world.workspace.to_string(),
            precheck["id"].as_str().expect("id").to_string(),
        ]
        .into_iter()
        .chain(released.iter().cloned())
        .collect();
        assert_route_patterns(&scrape, &ids);
        for (route, method, status) in [
            ("/api/v1/workspaces/{id}/syncs", "POST", "202"),
            ("/api/v1/workspaces/{id}/prechecks", "POST", "202"),
            ("/api/v1/workspaces/{id}/migrations", "POST", "202"),
            (
                "/api/v1/workspaces/{id}/migrations/{migration_id}",
                "GET",
                "200",
            ),
            ("/api/v1/workspaces/{id}/machines", "GET", "200"),
            ("/agent/v1/enroll", "POST", "201"),
            ("/agent/v1/instructions", "GET", "200"),
            ("/agent/v1/instructions", "GET", "304"),
            ("/agent/v1/events", "POST", "200"),
        ] {
            assert!(
                scrape.sum(
                    "mp_http_requests_total",
                    &[("route", route), ("method", method), ("status", status)]
                ) > 0.0,
                "{method} {route} {status}"
            );
        }
        // Check-ins: as many as the agents made, 200s and 304s as the HTTP counters say.
        let made: u32 = truth.values().map(|t| t.observed.check_ins).sum();
        assert_eq!(
            scrape.sum(
                "mp_http_requests_total",
                &[("route", "/agent/v1/instructions")]
            ),
            f64::from(made),
            "every check-in counted"
        );
        for status in ["200", "304"] {
            let check_ins = scrape.sum("mp_agent_check_ins_total", &[("status", status)]);
            assert!(check_ins > 0.0, "{status}");
            assert_eq!(
                check_ins,
                scrape.sum(
                    "mp_http_requests_total",
                    &[("route", "/agent/v1/instructions"), ("status", status)]
                ),
                "{status}"
            );
        }
        // Requests to the cloud: exactly those the simulator answered, refusals included.
        let counters = world.cloud.inspect()["counters"].clone();
        let cloud = |name: &str| counters[name].as_f64().unwrap_or_default();
        assert_eq!(
            scrape.kind("mp_target_requests_total"),
            Some(PrometheusType::Counter)
        );
        assert_eq!(
            scrape.sum("mp_target_requests_total", &[]),
            cloud("total"),
            "{counters}"
        );
        assert_eq!(
            scrape.sum("mp_target_requests_total", &[("outcome", "rate_limited")]),
            cloud("rate_limited"),
            "{counters}"
        );
        assert_eq!(
            scrape.sum("mp_target_requests_total", &[("outcome", "server_error")]),
            cloud("unavailable") + cloud("failed_after_commit"),
            "{counters}"
        );
        assert!(
            cloud("rate_limited") > 0.0 && cloud("unavailable") > 0.0,
            "faults were injected: {counters}"
        );
        let state = world.cloud.inspect();
        let ours = state["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .filter(|t| t["internal_tag"].is_string())
            .count();
        assert!(
            scrape.sum(
                "mp_target_requests_total",
                &[("operation", "create_tenant"), ("outcome", "ok")]
            ) > 0.0
        );
        assert!(
            scrape.sum(
                "mp_target_requests_total",
                &[("operation", "create_tenant")]
            ) >= ours as f64,
            "every tenant made was asked for"
        );
        let tokens = state["registration_tokens"]
            .as_array()
            .expect("tokens")
            .len();
        // Made by the worker while the cloud lost some answers (a token whose answer was
        // lost is found again in the listing, not made twice): every one was asked for,
        // and every answered one is there.
        let answered = scrape.sum(
            "mp_target_requests_total",
            &[
                ("operation", "create_registration_token"),
                ("outcome", "ok"),
            ],
        );
        assert!(
            answered > 0.0 && answered <= tokens as f64,
            "{answered} answered creates, {tokens} tokens"
        );
        assert!(
            scrape.sum(
                "mp_target_requests_total",
                &[("operation", "create_registration_token")]
            ) >= tokens as f64,
            "every token made was asked for"
        );
        assert!(
            scrape.sum(
                "mp_target_request_duration_seconds",
                &[("operation", "create_user")]
            ) > 0.0
        );
        // Jobs: one sync, one pre-check, one migration succeeded; the rest ran as transfers.
        for (kind, outcome, at_least) in [
            ("sync", "succeeded", 1.0),
            ("precheck", "succeeded", 1.0),
            ("migration", "succeeded", 1.0),
            ("transfer", "succeeded", 1.0),
        ] {
            assert!(
                scrape.sum(
                    "mp_job_outcomes_total",
                    &[("kind", kind), ("outcome", outcome)]
                ) >= at_least,
                "{kind} {outcome}"
            );
        }
        assert_eq!(
            scrape.sum(
                "mp_job_outcomes_total",
                &[("kind", "sync"), ("outcome", "succeeded")]
            ),
            1.0,
            "this app's sync only"
        );
        // The queue: what the database holds, nothing left running.
        assert_eq!(scrape.sum("mp_jobs_queued", &[("state", "running")]), 0.0);
        let queued = migration_portal::queue::store::count_by_status(&world.db, "queued")
            .await
            .expect("count");
        assert_eq!(
            scrape.sum("mp_jobs_queued", &[("state", "queued")]),
            queued as f64
        );
        assert_eq!(scrape.sum("mp_database_up", &[]), 1.0);
    }
}
