//! Overload is refused, never failed: a request that finds no database connection in
//! time, or that SQLite keeps busy, is told to come back (503 `overloaded` with
//! `Retry-After`), agent requests beyond the admitted ones get 429 with `Retry-After`,
//! and a herd that comes back as told is served to the last machine.

use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::sqlx::{self, Connection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, assert_problem, logs, spawn_app_with};
use crate::migrations::small;
use crate::world::{World, world_with};

/// One answer of the herd.
#[derive(Debug)]
struct Seen {
    status: u16,
    problem: bool,
    retry_after: Option<u64>,
}

impl Seen {
    fn of(response: &reqwest::Response) -> Seen {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Seen {
            status: response.status().as_u16(),
            problem: header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            retry_after: header("retry-after").and_then(|s| s.parse().ok()),
        }
    }
}

/// Sends the request `build` makes until it is not refused; after each 429 or 503 it
/// waits as told, sped up a thousandfold (seconds become milliseconds), as the
/// simulated fleet speeds up time. Every answer is kept.
async fn until_served(
    build: impl Fn() -> reqwest::RequestBuilder,
    seen: &mut Vec<Seen>,
) -> reqwest::Response {
    loop {
        let response = build().send().await.expect("an answer");
        let answer = Seen::of(&response);
        let refused = matches!(answer.status, 429 | 503);
        let wait = answer.retry_after.unwrap_or(1);
        seen.push(answer);
        if !refused {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Every machine of the world enrolls and checks in at once, each coming back as told
/// when refused; every answer, and each machine's check-in status.
async fn herd(world: &World, machines: &[String]) -> (Vec<Seen>, Vec<u16>) {
    let secret = world.enrollment_secret().await;
    // Idle connections are dropped well before the service closes them (keep-alive 5 s),
    // so that no request goes out on a connection the service is closing.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let agents = machines.iter().map(|machine| {
        let (secret, http) = (secret.clone(), http.clone());
        async move {
            let mut seen = Vec::new();
            let body = json!({"workspace_id": world.workspace, "enrollment_secret": secret, "machine_id": machine});
            let enrolled = until_served(
                || {
                    http.post(world.app.url("/agent/v1/enroll")).json(&body)
                },
                &mut seen,
            )
            .await;
            assert_eq!(enrolled.status(), 201, "{machine} enrolls");
            let enrolled: Value = enrolled.json().await.expect("json");
            let token = enrolled["token"].as_str().expect("token").to_string();
            let checked_in = until_served(
                || {
                    http.get(world.app.url("/agent/v1/instructions"))
                        .bearer_auth(&token)
                },
                &mut seen,
            )
            .await;
            (seen, checked_in.status().as_u16())
        }
    });
    let (seen, statuses): (Vec<Vec<Seen>>, Vec<u16>) = join_all(agents).await.into_iter().unzip();
    (seen.into_iter().flatten().collect(), statuses)
}

#[tokio::test]
async fn a_herd_on_a_tiny_pool_is_told_to_come_back_never_failed_and_every_machine_enrolls() {
    // Admission: a few agent requests at once, the rest refused with 429. Pool: admission
    // left wide open and a short acquire timeout, so requests queue for the two
    // connections and those that wait too long are refused with 503.
    type Configure = fn(&mut migration_portal::config::Config);
    let cases: [(&str, Configure); 2] = [
        ("admission", |c| {
            c.database.max_connections = 2;
            c.http.agent_max_in_flight = 4;
        }),
        ("pool", |c| {
            c.database.max_connections = 2;
            c.database.acquire_timeout_ms = 250;
            c.http.agent_max_in_flight = 10_000;
        }),
    ];
    for backend in Backend::enabled() {
        for (case, configure) in cases {
            let base = small();
            let world = world_with(backend, base.clone(), configure).await;
            world.sync().await;
            let machines: Vec<String> = base.machines.iter().map(|m| m.id.clone()).collect();
            let (seen, checked_in) = herd(&world, &machines).await;
            let count = |status: u16| seen.iter().filter(|s| s.status == status).count();
            eprintln!(
                "{backend:?} {case}: {} machines, {} answers: {} 201, {} 200, {} 429, {} 503",
                machines.len(),
                seen.len(),
                count(201),
                count(200),
                count(429),
                count(503)
            );
            for answer in &seen {
                assert!(
                    matches!(answer.status, 200 | 201 | 429 | 503),
                    "{backend:?} {case}: only answers and refusals: {answer:?}"
                );
                if matches!(answer.status, 429 | 503) {
                    // A minute or so, longer while most requests are refused (up to the
                    // check-in interval), see `api::admission`.
                    assert!(
                        answer.problem
                            && answer
                                .retry_after
                                .is_some_and(|s| (30..=1_800).contains(&s)),
                        "{backend:?} {case}: a refusal is problem+json with Retry-After: {answer:?}"
                    );
                }
            }
            assert!(
                checked_in.iter().all(|s| *s == 200),
                "{backend:?} {case}: every machine checks in"
            );
            // Every machine holds an agent now: each one's own token reaches it.
            let enrolled = migration_portal::db::query(
                &world.db,
                "SELECT COUNT(*) AS n FROM agents WHERE workspace_id = $1",
                vec![world.workspace.into()],
            )
            .await
            .expect("count");
            let enrolled: i64 = enrolled[0].try_get("", "n").expect("n");
            assert_eq!(enrolled as usize, machines.len(), "{backend:?} {case}");
        }
    }
}

/// A connection of the test's own that holds a write lock on the service's
/// database, so the service's writers wait (SQLite) or its readers of `agents` too
/// (PostgreSQL), until it is released.
enum Lock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Lock {
    async fn take(app: &TestApp) -> Lock {
        match app.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                    .await
                    .expect("connect");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("write lock");
                Lock::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.database_url)
                    .await
                    .expect("connect");
                for sql in ["BEGIN", "LOCK TABLE agents IN ACCESS EXCLUSIVE MODE"] {
                    sqlx::query(sql).execute(&mut conn).await.expect(sql);
                }
                Lock::Postgres(conn)
            }
        }
    }

    /// PostgreSQL: waits until a session of the service waits for this lock.
    async fn until_waited_for(&self, app: &TestApp) {
        if app.backend != Backend::Postgres {
            return;
        }
        let mut watcher = sqlx::PgConnection::connect(&app.database_url)
            .await
            .expect("connect");
        for _ in 0..500 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no session waits for the lock");
    }

    async fn release(self) {
        match self {
            Lock::Sqlite(mut conn) => sqlx::query("ROLLBACK").execute(&mut conn).await.map(drop),
            Lock::Postgres(mut conn) => sqlx::query("ROLLBACK").execute(&mut conn).await.map(drop),
        }
        .expect("rollback");
    }
}

fn assert_overloaded(problem: &Value, retry_after: Option<u64>) {
    assert_eq!(problem["code"], "overloaded", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Send the request again")),
        "{problem}"
    );
    assert!(
        retry_after.is_some_and(|s| (30..=90).contains(&s)),
        "{retry_after:?}"
    );
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_request_that_finds_no_database_connection_in_time_is_503_overloaded_on_every_route() {
    for backend in Backend::enabled() {
        let base = small();
        // One connection: a request stuck behind the lock holds it, the next finds none.
        let world = world_with(backend, base.clone(), |c| {
            c.database.max_connections = 1;
            c.database.acquire_timeout_ms = 300;
            c.database.busy_timeout_ms = 60_000;
        })
        .await;
        world.sync().await;
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &base.machines[0].id).await;
        let lock = Lock::take(&world.app).await;
        let enroll = world
            .app
            .http
            .post(world.app.url("/agent/v1/enroll"))
            .json(&json!({"workspace_id": world.workspace, "enrollment_secret": secret, "machine_id": base.machines[1].id}))
            .send();
        let stuck = tokio::spawn(enroll);
        lock.until_waited_for(&world.app).await;
        // A partner's read while the enrollment holds the only connection (on SQLite, once
        // it does: reads pass the write lock, and this one writes nothing).
        let mut refused = None;
        for _ in 0..100 {
            let response = world.app.get(&world.path(""), &world.token).send().await;
            let response = response.expect("get");
            if response.status() == 503 {
                refused = Some(response);
                break;
            }
            assert_eq!(response.status(), 200, "{backend:?}");
        }
        let refused = refused.expect("a request finds no connection");
        let told = retry_after(&refused);
        assert_overloaded(&assert_problem(refused, 503).await, told);
        // The agent API alike.
        let request_id = format!("overload-{}", Uuid::new_v4().simple());
        let check_in = world
            .app
            .http
            .get(world.app.url("/agent/v1/instructions"))
            .bearer_auth(&token)
            .header("x-request-id", &request_id)
            .send()
            .await
            .expect("check-in");
        let told = retry_after(&check_in);
        assert_overloaded(&assert_problem(check_in, 503).await, told);
        lock.release().await;
        let enrolled = stuck.await.expect("task").expect("enroll");
        assert_eq!(
            enrolled.status(),
            201,
            "{backend:?}: served once the lock is gone"
        );
        let served = world
            .app
            .http
            .get(world.app.url("/agent/v1/instructions"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("check-in");
        assert_eq!(served.status(), 200);
        // Logged as a warning with the request's id, not as an internal error.
        let log = logs().text();
        let lines: Vec<Value> = log
            .lines()
            .filter(|l| l.contains(&request_id))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l["level"] == "WARN" && l["message"] == "overloaded: answered 503"),
            "{backend:?}: a warning: {lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l["level"] == "ERROR"),
            "{backend:?}: no error: {lines:?}"
        );
    }
}

#[tokio::test]
async fn sqlite_busy_past_its_timeout_is_503_overloaded() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.database.busy_timeout_ms = 100).await;
    let lock = Lock::take(&app).await;
    let body = json!({
        "name": "Blocked",
        "source": {"url": "http://127.0.0.1:9", "login": "l", "password": "p"},
        "target": {"url": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"},
    });
    let response = app
        .post_json("/api/v1/workspaces", &app.token, &body)
        .send()
        .await
        .expect("post");
    let told = retry_after(&response);
    assert_overloaded(&assert_problem(response, 503).await, told);
    lock.release().await;
    let response = app
        .post_json("/api/v1/workspaces", &app.token, &body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 201);
}
