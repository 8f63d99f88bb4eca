//! `sim fleet` behaves as a real agent must: told to back off (429 or 503), it waits
//! `Retry-After` before its next request and sends a refused report again; it checks in
//! again when `Poll-After` says. Against a stub service on loopback that records when
//! each request came; every wait is at least the one asked for, scaled to the fleet's
//! interval (which stands for the real 30 minutes).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use migration_portal::sim::fleet::{Fleet, FleetConfig, FleetMachine, Mix, REAL_CHECK_IN_INTERVAL};
use serde_json::{Value, json};
use uuid::Uuid;

/// A request as the stub saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    body: Value,
    at: Instant,
}

/// What the stub answers the `n`-th request (from 0) to a method and path.
type Script = fn(&Seen, usize, &str) -> HttpResponse;

struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    fn start(script: Script) -> Stub {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (log, base) = (seen.clone(), url.clone());
        let server = HttpServer::new(move || {
            let (log, base) = (log.clone(), base.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (log, base) = (log.clone(), base.clone());
                async move {
                    let request = Seen {
                        method: req.method().to_string(),
                        path: req.path().to_string(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        at: Instant::now(),
                    };
                    let mut log = log.lock().expect("log");
                    let n = log
                        .iter()
                        .filter(|s| s.method == request.method && s.path == request.path)
                        .count();
                    log.push(request.clone());
                    script(&request, n, &base)
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Stub { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }

    /// Waits until `done` holds of what the stub saw.
    async fn until(&self, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        for _ in 0..1_000 {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the fleet did not get there: {:?}", self.seen());
    }
}

/// Told to wait an hour: twice the real check-in interval.
const AN_HOUR: &str = "3600";

fn refused(status: u16) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .content_type("application/problem+json")
        .insert_header(("Retry-After", AN_HOUR))
        .json(json!({"status": status, "code": "overloaded"}))
}

fn instructions(action: &str, base: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Poll-After", AN_HOUR))
        .insert_header(("ETag", "\"v1\""))
        .json(json!({
            "action": action, "reason": null, "machine_id": "m-1", "state": "pending",
            "package": null, "plans": [], "last_seq": 0, "poll_after_secs": 3600,
            "registration": {"address": base, "token": "registration-token"},
        }))
}

fn one_machine_fleet(stub: &Stub, interval: Duration) -> Fleet {
    Fleet::start(FleetConfig {
        base_url: stub.url.clone(),
        workspace_id: Uuid::new_v4(),
        enrollment_secret: "secret".into(),
        machines: vec![FleetMachine {
            id: "m-1".into(),
            client_version: None,
            auto_update: false,
        }],
        interval,
        seed: 1,
        // Healthy: it migrates when told.
        mix: Mix {
            download_error: 0,
            install_error: 0,
            offline_for_a_while: 0,
            never_online: 0,
        },
    })
}

fn gap(seen: &[Seen], from: usize, to: usize) -> Duration {
    seen[to].at.duration_since(seen[from].at)
}

#[test]
fn the_fleet_interval_stands_for_the_real_check_in_interval() {
    assert_eq!(
        REAL_CHECK_IN_INTERVAL.as_secs(),
        migration_portal::domain::agent::CHECK_IN_INTERVAL_MINUTES as u64 * 60
    );
}

#[tokio::test]
async fn the_fleet_waits_retry_after_when_refused_and_poll_after_between_check_ins() {
    let stub = Stub::start(|request, n, base| match (request.path.as_str(), n) {
        ("/agent/v1/enroll", 0) => refused(429),
        ("/agent/v1/enroll", 1) => refused(503),
        ("/agent/v1/enroll", _) => HttpResponse::Created()
            .json(json!({"machine_id": "m-1", "token": "agent-token", "poll_after_secs": 3600})),
        ("/agent/v1/instructions", 0) => refused(429),
        ("/agent/v1/instructions", 1) => refused(503),
        ("/agent/v1/instructions", 3) => HttpResponse::NotModified()
            .insert_header(("Poll-After", AN_HOUR))
            .finish(),
        ("/agent/v1/instructions", _) => instructions("none", base),
        _ => HttpResponse::NotFound().finish(),
    });
    let interval = Duration::from_millis(150);
    let fleet = one_machine_fleet(&stub, interval);
    let seen = stub.until(|seen| seen.len() >= 8).await;
    let truth = fleet.stop().await;
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths[..8],
        [
            "/agent/v1/enroll",
            "/agent/v1/enroll",
            "/agent/v1/enroll",
            "/agent/v1/instructions",
            "/agent/v1/instructions",
            "/agent/v1/instructions",
            "/agent/v1/instructions",
            "/agent/v1/instructions",
        ]
    );
    // An hour is two of the fleet's intervals; left to itself, it waits at most 1.5.
    let told = interval * 2;
    for (from, why) in [
        (0, "429 to an enrollment"),
        (1, "503 to an enrollment"),
        (2, "poll_after_secs of the enrollment"),
        (3, "429 to a check-in"),
        (4, "503 to a check-in"),
        (5, "Poll-After of instructions"),
        (6, "Poll-After of a 304"),
    ] {
        assert!(
            gap(&seen, from, from + 1) >= told,
            "after the {why}, it waited {:?}, not the {told:?} it was told",
            gap(&seen, from, from + 1)
        );
    }
    let observed = &truth["m-1"].observed;
    assert_eq!(observed.throttled, 4, "{observed:?}");
    assert!(observed.enrolled);
}

#[tokio::test]
async fn a_report_refused_for_now_is_sent_again_after_the_wait_and_the_steps_go_on() {
    let stub = Stub::start(|request, n, base| match request.path.as_str() {
        "/agent/v1/enroll" => HttpResponse::Created()
            .json(json!({"machine_id": "m-1", "token": "agent-token", "poll_after_secs": 0})),
        "/agent/v1/instructions" => instructions("migrate", base),
        "/sim/cloud/agents/register" => HttpResponse::Ok().json(json!({})),
        // The second step is refused twice, once each way.
        "/agent/v1/events" if request.body["seq"] == 2 && n < 3 => {
            refused(if n == 1 { 429 } else { 503 })
        }
        "/agent/v1/events" => HttpResponse::Ok().json(json!({"applied": true})),
        "/agent/v1/logs" => HttpResponse::Created().json(json!({})),
        _ => HttpResponse::NotFound().finish(),
    });
    let interval = Duration::from_millis(150);
    let fleet = one_machine_fleet(&stub, interval);
    let seen = stub
        .until(|seen| seen.iter().any(|s| s.body["kind"] == "restore_only"))
        .await;
    let truth = fleet.stop().await;
    let events: Vec<(usize, &Seen)> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.path == "/agent/v1/events")
        .collect();
    let reports: Vec<(i64, &str)> = events
        .iter()
        .map(|(_, s)| {
            (
                s.body["seq"].as_i64().unwrap_or_default(),
                s.body["kind"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reports,
        [
            (1, "downloading"),
            (2, "installing"),
            (2, "installing"),
            (2, "installing"),
            (3, "registering"),
            (4, "plans_transferred"),
            (5, "restore_only"),
        ],
        "the same report, with its number, until it is taken; then the rest"
    );
    let told = interval * 2;
    for pair in events[1..4].windows(2) {
        assert!(
            gap(&seen, pair[0].0, pair[1].0) >= told,
            "sent again after {:?}, not the {told:?} it was told",
            gap(&seen, pair[0].0, pair[1].0)
        );
    }
    let observed = &truth["m-1"].observed;
    assert_eq!(observed.throttled, 2, "{observed:?}");
    assert!(observed.migrated && observed.registered, "{observed:?}");
}
