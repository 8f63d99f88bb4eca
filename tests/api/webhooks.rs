//! Webhooks: subscriptions, Standard Webhooks signatures checked by the
//! `standardwebhooks` package from PyPI (an independent implementation),
//! at-least-once delivery with retries under one id, redirects not followed,
//! disabling a subscription that keeps failing, a slow receiver that does not
//! hold up the worker, test deliveries and secret rotation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use migration_portal::app::job_handlers_with;
use migration_portal::config::WebhookSettings;
use migration_portal::crypto::SecretBox;
use migration_portal::queue::{Worker, WorkerConfig};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use crate::helpers::{Backend, assert_problem};
use crate::migrations::{Running, fast_world, small};
use crate::world::World;

/// One request a receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn id(&self) -> &str {
        self.headers
            .get("webhook-id")
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A webhook receiver on loopback. By path: `/ok` answers 200; `/flaky` 500 to
/// the first three requests of each `webhook-id`, then 200; `/slow` never answers
/// in time; `/gone` 410; `/redirect` 307 to `/ok`.
pub(crate) struct Receiver {
    pub base: String,
    requests: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    requests: web::Data<Mutex<Vec<Received>>>,
) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect::<BTreeMap<_, _>>();
    let received = Received {
        path: req.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let earlier = {
        let mut requests = requests.lock().unwrap_or_else(|e| e.into_inner());
        let earlier = requests
            .iter()
            .filter(|r| r.path == received.path && r.id() == received.id())
            .count();
        requests.push(received.clone());
        earlier
    };
    match received.path.as_str() {
        "/ok" => HttpResponse::Ok().finish(),
        "/flaky" if earlier < 3 => HttpResponse::InternalServerError().finish(),
        "/flaky" => HttpResponse::NoContent().finish(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().finish()
        }
        "/redirect" => HttpResponse::TemporaryRedirect()
            .insert_header(("location", "/ok"))
            .finish(),
        _ => HttpResponse::Gone().finish(),
    }
}

impl Receiver {
    pub fn start() -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::from(requests.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            base,
            requests,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `until` holds of the requests at `path` (at most a minute).
    pub async fn wait(&self, path: &str, until: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.at(path);
            if until(&got) {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{path}: {} requests: {:?}",
                got.len(),
                got.iter()
                    .map(|r| r.json()["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn fast_settings() -> WebhookSettings {
    WebhookSettings {
        timeout_ms: 1_000,
        concurrency: 4,
        per_subscription: 2,
        retry_schedule_secs: vec![0.2; 4],
        disable_after_failures: 1_000,
        disable_after_secs: 0,
    }
}

impl World {
    pub(crate) fn run_worker_with(&self, webhooks: &WebhookSettings) -> Running {
        let secrets = SecretBox::from_base64(&self.app.secret_key).expect("key");
        let config = WorkerConfig {
            concurrency: 8,
            poll_interval: Duration::from_millis(20),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            ..WorkerConfig::default()
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(
            Worker::new(
                self.db.clone(),
                config,
                job_handlers_with(secrets, true, None, webhooks),
            )
            .run(stopped),
        );
        Running::new(stop, task)
    }

    pub(crate) async fn subscribe(&self, url: &str, types: &[&str]) -> Value {
        let response = self
            .app
            .post_json(
                &self.path("/webhooks"),
                &self.token,
                &json!({"url": url, "event_types": types}),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(
            response.status(),
            201,
            "{}",
            response.text().await.unwrap_or_default()
        );
        response.json().await.expect("json")
    }

    /// Starts a sync over HTTP and waits for a background worker to finish it.
    async fn sync_in_background(&self) {
        let response = self
            .app
            .http
            .post(self.app.url(&self.path("/syncs")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("start");
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        self.until(&location, |op| op["done"] == true).await;
    }

    async fn until(&self, location: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let got = self.get(location).await;
            if done(&got) {
                return got;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{got}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn deliveries(&self, subscription: &Value) -> Vec<Value> {
        self.all(&self.path(&format!(
            "/webhooks/{}/deliveries",
            subscription["id"].as_str().expect("id")
        )))
        .await
    }
}

/// A case for the independent verifier.
fn case(secret: &str, request: &Received, valid: bool) -> Value {
    let headers: BTreeMap<&str, &str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .map(|h| {
            (
                h,
                request
                    .headers
                    .get(h)
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
        })
        .collect();
    json!({"secret": secret, "headers": headers, "body": request.body, "valid": valid})
}

/// Runs `tests/webhooks/verify.py` with `standardwebhooks` from PyPI (installed
/// into the target directory on first use).
fn verify_independently(cases: &[Value]) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), serde_json::to_vec(cases).expect("json")).expect("write");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/verify.py");
    let out = crate::helpers::python_with(
        "pydeps",
        "standardwebhooks",
        &["standardwebhooks==1.1.0"],
        &[script, file.path().to_str().expect("path")],
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the standardwebhooks package disagrees:\n{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains(&format!("{} cases, 0 mismatches", cases.len())),
        "{printed}"
    );
}

#[tokio::test]
async fn deliveries_are_signed_retried_under_one_id_until_answered_and_verify_with_the_standard_library()
 {
    for backend in Backend::enabled() {
        let world = fast_world(backend, small()).await;
        let receiver = Receiver::start();
        let flaky = world
            .subscribe(&receiver.url("/flaky"), &["sync.completed"])
            .await;
        let ok = world
            .subscribe(
                &receiver.url("/ok"),
                &["sync.completed", "precheck.completed"],
            )
            .await;
        let redirect = world
            .subscribe(&receiver.url("/redirect"), &["sync.completed"])
            .await;
        assert!(
            flaky["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_")),
            "{flaky}"
        );
        let listed = world.all(&world.path("/webhooks")).await;
        assert_eq!(listed.len(), 3);
        assert!(
            listed
                .iter()
                .all(|w| w.get("secret").is_none() && w["enabled"] == true),
            "the secret is shown once: {listed:?}"
        );

        let worker = world.run_worker_with(&fast_settings());
        world.sync_in_background().await;
        // 500, 500, 500, then 2xx: the event once more after each failure, then never again.
        let got = receiver.wait("/flaky", |r| r.len() >= 4).await;
        receiver.wait("/ok", |r| !r.is_empty()).await;
        let redirected = receiver.wait("/redirect", |r| r.len() >= 5).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let got_after = receiver.at("/flaky");
        assert_eq!(
            got_after.len(),
            4,
            "no delivery after the answer that took it"
        );
        assert!(
            got.iter()
                .all(|r| r.id() == got[0].id() && r.body == got[0].body),
            "one webhook-id and one body for every attempt"
        );
        assert!(got[0].id().starts_with("msg_"));
        let event = got[0].json();
        assert_eq!(event["type"], "sync.completed");
        assert_eq!(event["data"]["workspace_id"], world.workspace.to_string());
        assert!(
            event["data"]["details"]["machines"]["total"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{event}"
        );
        let oks = receiver.at("/ok");
        assert_eq!(
            oks.len(),
            1,
            "a redirect is not followed: /ok got only its own delivery"
        );
        assert_eq!(redirected.len(), 5, "first attempt and four retries");

        let log = world.deliveries(&flaky).await;
        assert_eq!(log.len(), 1);
        assert_eq!(
            (
                log[0]["status"].as_str(),
                log[0]["attempts"].as_i64(),
                log[0]["last_status_code"].as_i64()
            ),
            (Some("delivered"), Some(4), Some(204)),
            "{}",
            log[0]
        );
        assert_eq!(log[0]["webhook_id"], got[0].id());
        assert!(log[0]["delivered_at"].is_string(), "{}", log[0]);
        // Delivered at last: the subscription's run of failures is over.
        let flaky_now = world
            .get(&world.path(&format!("/webhooks/{}", flaky["id"].as_str().expect("id"))))
            .await;
        assert_eq!(
            (
                flaky_now["consecutive_failures"].as_i64(),
                flaky_now["failing_since"].is_null()
            ),
            (Some(0), true),
            "{flaky_now}"
        );
        let log = world.deliveries(&redirect).await;
        assert_eq!(
            (
                log[0]["status"].as_str(),
                log[0]["attempts"].as_i64(),
                log[0]["last_status_code"].as_i64()
            ),
            (Some("failed"), Some(5), Some(307)),
            "{}",
            log[0]
        );
        assert!(
            log[0]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("redirects are not followed")),
            "{}",
            log[0]
        );
        // A failed delivery can be sent again, under its id.
        let again = world
            .app
            .post_json(
                &world.path(&format!(
                    "/webhooks/{}/deliveries/{}/redeliver",
                    redirect["id"].as_str().expect("id"),
                    log[0]["id"].as_str().expect("id")
                )),
                &world.token,
                &json!({}),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(again.status(), 202);
        let redirected = receiver.wait("/redirect", |r| r.len() >= 6).await;
        assert_eq!(redirected[5].id(), redirected[0].id());

        // Rotation: during the grace both secrets sign; after it only the new one.
        let secret_before = ok["secret"].as_str().expect("secret").to_string();
        let rotate = |grace: u64| {
            world
                .app
                .post_json(
                    &world.path(&format!(
                        "/webhooks/{}/rotate-secret",
                        ok["id"].as_str().expect("id")
                    )),
                    &world.token,
                    &json!({"grace_secs": grace}),
                )
                .send()
        };
        let rotated: Value = rotate(3_600)
            .await
            .expect("rotate")
            .json()
            .await
            .expect("json");
        let secret_after = rotated["secret"].as_str().expect("new secret").to_string();
        assert_ne!(secret_after, secret_before);
        assert!(
            rotated["previous_secret_expires_at"].is_string(),
            "{rotated}"
        );
        let test = |id: &Value| {
            world
                .app
                .post_json(
                    &world.path(&format!("/webhooks/{}/test", id.as_str().expect("id"))),
                    &world.token,
                    &json!({}),
                )
                .send()
        };
        let tested: Value = test(&ok["id"])
            .await
            .expect("test")
            .json()
            .await
            .expect("json");
        assert_eq!(
            (
                tested["delivered"].as_bool(),
                tested["status_code"].as_u64()
            ),
            (Some(true), Some(200)),
            "{tested}"
        );
        let during_grace = receiver.wait("/ok", |r| r.len() >= 2).await[1].clone();
        assert_eq!(
            during_grace.id(),
            tested["webhook_id"].as_str().expect("id")
        );
        assert_eq!(during_grace.json()["type"], "webhook.test");
        assert_eq!(
            during_grace.headers["webhook-signature"].split(' ').count(),
            2,
            "{:?}",
            during_grace.headers
        );
        let third_secret: Value = rotate(0).await.expect("rotate").json().await.expect("json");
        let third_secret = third_secret["secret"].as_str().expect("secret").to_string();
        test(&ok["id"]).await.expect("test");
        let after_grace = receiver.wait("/ok", |r| r.len() >= 3).await[2].clone();
        assert_eq!(
            after_grace.headers["webhook-signature"].split(' ').count(),
            1
        );

        let mut tampered = got[3].clone();
        tampered.body = tampered.body.replace("sync.completed", "sync.completed ");
        let flaky_secret = flaky["secret"].as_str().expect("secret");
        let mut cases: Vec<Value> = got.iter().map(|r| case(flaky_secret, r, true)).collect();
        cases.extend([
            case(&secret_before, &oks[0], true),
            case(&secret_after, &during_grace, true),
            case(&secret_before, &during_grace, true),
            case(&third_secret, &after_grace, true),
            case(&secret_after, &after_grace, false),
            case(flaky_secret, &tampered, false),
            case(&secret_before, &got[0], false),
        ]);
        verify_independently(&cases);

        // Bad subscriptions are refused with problem+json; another tenant's answer 404.
        let post = |body: Value| {
            world
                .app
                .post_json(&world.path("/webhooks"), &world.token, &body)
                .send()
        };
        for (body, status) in [
            (
                json!({"url": "ftp://example.com/x", "event_types": ["sync.completed"]}),
                422,
            ),
            (
                json!({"url": "not a url", "event_types": ["sync.completed"]}),
                422,
            ),
            (
                json!({"url": "https://user:pw@example.com/x", "event_types": ["sync.completed"]}),
                422,
            ),
            (
                json!({"url": "https://example.com/x", "event_types": []}),
                422,
            ),
            (
                json!({"url": "https://example.com/x", "event_types": ["sync.done"]}),
                400,
            ),
            (
                json!({"url": "https://example.com/x", "event_types": ["sync.completed"], "secret": "whsec_c2hvcnQ="}),
                422,
            ),
            (json!({"url": "https://example.com/x"}), 400),
        ] {
            assert_problem(post(body.clone()).await.expect("post"), status).await;
        }
        let other = world.cloud.idp().partner_token(Uuid::new_v4());
        let foreign = world
            .app
            .get(
                &world.path(&format!("/webhooks/{}", ok["id"].as_str().expect("id"))),
                &other,
            )
            .send()
            .await
            .expect("get");
        assert_eq!(foreign.status(), 404);
        assert_eq!(
            world.all(&world.path("/webhooks")).await.len(),
            3,
            "nothing was added by the refused requests"
        );
        worker.stop().await;
        receiver.stop().await;
    }
}

#[tokio::test]
async fn a_failing_receiver_is_disabled_and_a_slow_one_holds_up_neither_the_others_nor_the_worker()
{
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        let receiver = Receiver::start();
        let slow = world
            .subscribe(
                &receiver.url("/slow"),
                &["sync.completed", "precheck.completed"],
            )
            .await;
        let gone = world
            .subscribe(&receiver.url("/gone"), &["sync.completed"])
            .await;
        world
            .subscribe(
                &receiver.url("/ok"),
                &["sync.completed", "precheck.completed"],
            )
            .await;
        let settings = WebhookSettings {
            per_subscription: 1,
            retry_schedule_secs: vec![0.1; 20],
            disable_after_failures: 3,
            ..fast_settings()
        };
        let worker = world.run_worker_with(&settings);
        world.sync_in_background().await;
        let ok = receiver.wait("/ok", |r| !r.is_empty()).await;
        let slow_started = receiver.wait("/slow", |r| !r.is_empty()).await;
        // The slow receiver's attempt was still open (it times out after a second) when /ok got its event.
        assert!(
            ok[0].at < slow_started[0].at + Duration::from_millis(900),
            "the fast receiver waited for the slow one"
        );
        // Other jobs run meanwhile: a pre-check completes while the slow deliveries are still being tried.
        let root = base.truth.root_group_id.clone();
        let response = world
            .app
            .post_json(
                &world.path("/prechecks"),
                &world.token,
                &json!({"selection": [{"kind": "group", "id": root}]}),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        world.until(&location, |p| p["status"] == "completed").await;
        receiver
            .wait("/ok", |r| {
                r.iter().any(|x| x.json()["type"] == "precheck.completed")
            })
            .await;
        let slow_log = world.deliveries(&slow).await;
        assert!(
            slow_log.iter().any(|d| d["status"] == "pending"),
            "the slow receiver's deliveries are still being tried: {slow_log:?}"
        );

        // /gone answers 410 every time: after three failures in a row the subscription is disabled, saying why.
        let location = world.path(&format!("/webhooks/{}", gone["id"].as_str().expect("id")));
        let disabled = world.until(&location, |w| w["enabled"] == false).await;
        assert!(
            disabled["disabled_reason"]
                .as_str()
                .is_some_and(|r| r.contains("3 failed deliveries") && r.contains("410")),
            "{disabled}"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        let tried = receiver.at("/gone").len();
        assert_eq!(tried, 3, "no attempt after it was disabled");
        let log = world.deliveries(&gone).await;
        assert_eq!(
            (log[0]["status"].as_str(), log[0]["attempts"].as_i64()),
            (Some("pending"), Some(3)),
            "{}",
            log[0]
        );
        // A test delivery tells how the receiver answers; enabling again sends what waited.
        let tested: Value = world
            .app
            .post_json(
                &world.path(&format!(
                    "/webhooks/{}/test",
                    gone["id"].as_str().expect("id")
                )),
                &world.token,
                &json!({}),
            )
            .send()
            .await
            .expect("test")
            .json()
            .await
            .expect("json");
        assert_eq!(
            (
                tested["delivered"].as_bool(),
                tested["status_code"].as_u64()
            ),
            (Some(false), Some(410)),
            "{tested}"
        );
        let enabled = world
            .app
            .patch_json(&location, &world.token, &json!({"enabled": true}))
            .send()
            .await
            .expect("patch");
        assert_eq!(enabled.status(), 200);
        receiver.wait("/gone", |r| r.len() > tried + 1).await;
        let timed_out = world
            .until(
                &world.path(&format!("/webhooks/{}", slow["id"].as_str().expect("id"))),
                |w| w["consecutive_failures"].as_i64() >= Some(1),
            )
            .await;
        assert!(timed_out["failing_since"].is_string(), "{timed_out}");
        let slow_log = world.deliveries(&slow).await;
        assert!(
            slow_log.iter().any(|d| d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("no answer within 1000 ms"))),
            "{slow_log:?}"
        );
        worker.stop().await;
        receiver.stop().await;
    }
}
