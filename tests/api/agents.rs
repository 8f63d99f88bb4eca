//! The agent API: enrollment, instructions, step reports; agent security.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, assert_problem};
use crate::migrations::{fast_world, small};
use crate::world::World;

impl World {
    pub(crate) async fn enrollment_secret(&self) -> String {
        let response = self
            .app
            .post_json(&self.path("/enrollment-secret"), &self.token, &json!({}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        body["enrollment_secret"]
            .as_str()
            .expect("secret")
            .to_string()
    }

    fn enroll(&self, secret: &str, machine: &str) -> reqwest::RequestBuilder {
        let body = json!({"workspace_id": self.workspace, "enrollment_secret": secret, "machine_id": machine});
        self.app
            .http
            .post(self.app.url("/agent/v1/enroll"))
            .json(&body)
    }

    pub(crate) async fn agent_token(&self, secret: &str, machine: &str) -> String {
        let body = self.enrolled(secret, machine).await;
        body["token"].as_str().expect("token").to_string()
    }

    /// The enrollment's answer (201).
    async fn enrolled(&self, secret: &str, machine: &str) -> Value {
        let response = self.enroll(secret, machine).send().await.expect("enroll");
        assert_eq!(response.status(), 201);
        response.json().await.expect("json")
    }

    /// Enrolls, asserting that the first check-in is asked for within `poll` seconds;
    /// answers the token.
    async fn token_polling(
        &self,
        secret: &str,
        machine: &str,
        poll: std::ops::RangeInclusive<u64>,
    ) -> String {
        let enrolled = self.enrolled(secret, machine).await;
        assert!(
            enrolled["poll_after_secs"]
                .as_u64()
                .is_some_and(|s| poll.contains(&s)),
            "{machine}: {enrolled}"
        );
        enrolled["token"].as_str().expect("token").to_string()
    }

    fn instructions(&self, token: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .get(self.app.url("/agent/v1/instructions"))
            .bearer_auth(token)
    }

    pub(crate) async fn report(&self, token: &str, seq: i64, report: Value) -> reqwest::Response {
        let mut body = report;
        body["seq"] = json!(seq);
        self.app
            .http
            .post(self.app.url("/agent/v1/events"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("report")
    }
}

async fn machine_state(world: &World, machine: &str) -> (String, Option<String>) {
    let row = migration_portal::db::agents::machine(&world.db, world.workspace, machine)
        .await
        .expect("read")
        .expect("machine");
    (
        row.status.state.as_str().to_string(),
        row.status.phase.map(|p| p.as_str().to_string()),
    )
}

/// `base` synced and migrated whole: its machines are released to their agents.
/// Answers the world and the migration's location.
pub(crate) async fn migrated(
    backend: Backend,
    base: &migration_portal::sim::install_base::InstallBase,
) -> (World, String) {
    let world = fast_world(backend, base.clone()).await;
    world.sync().await;
    let precheck = world.whole_precheck(base).await;
    let worker = world.run_worker();
    let location = world
        .start_migration(json!({"precheck_id": precheck["id"]}))
        .await;
    assert_eq!(world.wait_over(&location).await["status"], "completed");
    worker.stop().await;
    // The machines' registration tokens are made in a lane of their own, ahead of the
    // agents' check-ins; the migration may be over before the last of them.
    world.work().await;
    (world, location)
}

#[tokio::test]
async fn agents_enroll_with_the_workspace_secret_and_reach_only_their_own_machine() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let (x, y) = (base.machines[0].id.clone(), base.machines[1].id.clone());
        // No secret set yet, a wrong one, another workspace's id: all refused alike.
        assert_problem(
            world.enroll("anything", &x).send().await.expect("enroll"),
            401,
        )
        .await;
        let secret = world.enrollment_secret().await;
        assert_problem(world.enroll("wrong", &x).send().await.expect("enroll"), 401).await;
        let elsewhere =
            json!({"workspace_id": Uuid::now_v7(), "enrollment_secret": secret, "machine_id": x});
        assert_problem(
            world
                .app
                .http
                .post(world.app.url("/agent/v1/enroll"))
                .json(&elsewhere)
                .send()
                .await
                .expect("enroll"),
            401,
        )
        .await;
        assert_problem(
            world
                .enroll(&secret, "no-such-machine")
                .send()
                .await
                .expect("enroll"),
            404,
        )
        .await;
        // Not released: the first check-in comes at the regular interval.
        let token_x = world.token_polling(&secret, &x, 25 * 60..=35 * 60).await;
        let token_y = world.agent_token(&secret, &y).await;
        for (token, machine) in [(&token_x, &x), (&token_y, &y)] {
            let body: Value = world
                .instructions(token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            assert_eq!(
                body["machine_id"],
                machine.as_str(),
                "a token reaches its own machine"
            );
        }
        // An idle machine is told to do nothing and cannot report steps.
        let body: Value = world
            .instructions(&token_x)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(body["action"], "none");
        assert_problem(
            world
                .report(&token_x, 1, json!({"kind": "downloading"}))
                .await,
            409,
        )
        .await;
        assert_eq!(
            machine_state(&world, &x).await,
            ("idle".to_string(), None),
            "a refused report changes nothing"
        );
        // Re-enrolling replaces the token; unknown and missing tokens are refused.
        let renewed = world.agent_token(&secret, &x).await;
        assert_problem(world.instructions(&token_x).send().await.expect("get"), 401).await;
        assert_eq!(
            world
                .instructions(&renewed)
                .send()
                .await
                .expect("get")
                .status(),
            200
        );
        assert_problem(
            world.instructions("mpa_forged").send().await.expect("get"),
            401,
        )
        .await;
        assert_problem(
            world
                .app
                .http
                .get(world.app.url("/agent/v1/instructions"))
                .send()
                .await
                .expect("get"),
            401,
        )
        .await;
        // A partner token is not an agent token, and an agent token is not a partner token.
        assert_problem(
            world.instructions(&world.token).send().await.expect("get"),
            401,
        )
        .await;
        assert_problem(
            world
                .app
                .get(&world.path(""), &renewed)
                .send()
                .await
                .expect("get"),
            401,
        )
        .await;
        // Rotating the secret stops new enrollments with the old one; enrolled agents keep working.
        world.enrollment_secret().await;
        assert_problem(world.enroll(&secret, &y).send().await.expect("enroll"), 401).await;
        assert_eq!(
            world
                .instructions(&token_y)
                .send()
                .await
                .expect("get")
                .status(),
            200
        );
        let events = world
            .all(&world.path(&format!("/events?subject={x}")))
            .await;
        assert!(
            events.iter().any(|e| e["kind"] == "machine.report_refused"),
            "the refused report is logged"
        );
        let text = serde_json::to_string(&events).expect("text");
        assert!(
            !text.contains(&renewed) && !text.contains(&secret),
            "no token or secret in the log"
        );
    }
}

#[tokio::test]
async fn agents_checking_in_together_each_reach_their_own_machine() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let secret = world.enrollment_secret().await;
        let mut agents = Vec::new();
        for machine in base.machines.iter().take(8) {
            let token = world.agent_token(&secret, &machine.id).await;
            agents.push((Some(machine.id.clone()), token));
        }
        // A replaced token among them: refused even while its machine's new one is looked up with it.
        let replaced = agents[0].1.clone();
        agents[0].1 = world.agent_token(&secret, &base.machines[0].id).await;
        agents.push((None, replaced));
        agents.push((None, "mpa_forged".to_string()));
        // Every token four times, all at once: their look-ups share queries.
        let checks = agents
            .iter()
            .cycle()
            .take(agents.len() * 4)
            .map(|(machine, token)| {
                let world = &world;
                async move {
                    let response = world.instructions(token).send().await.expect("get");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.expect("json");
                    (machine, status, body)
                }
            });
        for (machine, status, body) in futures_util::future::join_all(checks).await {
            match machine {
                Some(machine) => assert_eq!(
                    (status, body["machine_id"].as_str()),
                    (200, Some(machine.as_str())),
                    "{backend:?}: a token reaches its own machine"
                ),
                None => assert_eq!(status, 401, "{backend:?}: {body}"),
            }
        }
    }
}

#[tokio::test]
async fn a_released_machine_migrates_step_by_step_and_replayed_or_late_reports_do_not_corrupt_it() {
    for backend in Backend::enabled() {
        let base = small();
        let (world, _) = migrated(backend, &base).await;
        let pending = migration_portal::db::query(
            &world.db,
            "SELECT source_id FROM source_machines WHERE workspace_id = $1 AND migration_state = 'pending' AND readiness NOT IN ('ready_after_client_upgrade', 'contact_user') ORDER BY source_id",
            vec![world.workspace.into()],
        )
        .await
        .expect("query");
        let machine: String = pending[0].try_get("", "source_id").expect("id");
        let secret = world.enrollment_secret().await;
        // A released client too old to migrate unattended waits for its update.
        let outdated = migration_portal::db::query(
            &world.db,
            "SELECT source_id, readiness FROM source_machines WHERE workspace_id = $1 AND migration_state = 'pending' AND readiness IN ('ready_after_client_upgrade', 'contact_user') ORDER BY source_id",
            vec![world.workspace.into()],
        )
        .await
        .expect("query");
        assert!(!outdated.is_empty(), "small has outdated clients");
        for row in outdated.iter().take(3) {
            let (id, readiness): (String, String) = (
                row.try_get("", "source_id").expect("id"),
                row.try_get("", "readiness").expect("readiness"),
            );
            // Released, but waiting for its update: the regular interval.
            let token = world.token_polling(&secret, &id, 25 * 60..=35 * 60).await;
            let body: Value = world
                .instructions(&token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            let expected = if readiness == "contact_user" {
                "update_required"
            } else {
                "update_pending"
            };
            assert_eq!(body["action"], "none", "{id}: {body}");
            assert!(
                body["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(expected)),
                "{id}: {body}"
            );
        }
        // The registration tokens are made by the worker once the machines are released.
        world.work().await;
        let issued = world.cloud.inspect()["registration_tokens"]
            .as_array()
            .expect("tokens")
            .clone();
        // Released to migrate: told to check in again within a minute or so, not to
        // wait half an hour to start.
        let token = world.token_polling(&secret, &machine, 30..=90).await;
        let response = world.instructions(&token).send().await.expect("get");
        assert_eq!(response.status(), 200);
        let etag = response.headers()["etag"]
            .to_str()
            .expect("etag")
            .to_string();
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["action"], "migrate", "{body}");
        assert!(
            body["package"]["command"]
                .as_str()
                .is_some_and(|c| !c.contains("password")),
            "{body}"
        );
        assert!(body["plans"].is_array(), "its converted plans: {body}");
        assert!(
            body["poll_after_secs"]
                .as_u64()
                .is_some_and(|s| (25 * 60..=35 * 60).contains(&s)),
            "{body}"
        );
        // A one-time registration token from the cloud, bound to the machine's user, made
        // ahead and kept for later check-ins: the check-in itself makes none.
        let registration = &body["registration"];
        assert_eq!(registration["address"], world.cloud.base_url(), "{body}");
        let handed: Vec<&Value> = issued
            .iter()
            .filter(|t| t["token"] == registration["token"])
            .collect();
        assert_eq!(handed.len(), 1, "{body}");
        let user = migration_portal::db::agents::machine(&world.db, world.workspace, &machine)
            .await
            .expect("read")
            .expect("machine")
            .target
            .expect("target")
            .0;
        let personal = world.cloud.inspect()["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["id"] == user.to_string())
            .expect("user")["personal_tenant_id"]
            .clone();
        assert!(
            handed[0]["scopes"].to_string().contains(&format!(
                "tenant-id:{}:backup_agent_admin",
                personal.as_str().expect("personal tenant")
            )),
            "{handed:?}"
        );
        assert!(
            !body["package"]["command"]
                .as_str()
                .unwrap_or_default()
                .contains(registration["token"].as_str().expect("token")),
            "not on a command line"
        );
        let unchanged = world
            .instructions(&token)
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(
            unchanged.status(),
            304,
            "polling without a change costs no body"
        );
        assert_eq!(
            world.cloud.inspect()["registration_tokens"]
                .as_array()
                .map(Vec::len),
            Some(issued.len()),
            "the token is made once"
        );
        let stored = migration_portal::db::query(
            &world.db,
            "SELECT registration_token FROM machine_assignments WHERE machine_id = $1",
            vec![machine.clone().into()],
        )
        .await
        .expect("row");
        let sealed: Vec<u8> = stored[0].try_get("", "registration_token").expect("sealed");
        assert!(
            !String::from_utf8_lossy(&sealed)
                .contains(registration["token"].as_str().expect("token")),
            "kept sealed"
        );
        // Steps, with a replay and a late earlier step on the way.
        let steps: Vec<(i64, Value, bool, (&str, Option<&str>))> = vec![
            (
                1,
                json!({"kind": "downloading"}),
                true,
                ("migrating", Some("downloading")),
            ),
            (
                1,
                json!({"kind": "downloading"}),
                false,
                ("migrating", Some("downloading")),
            ),
            (
                3,
                json!({"kind": "registering"}),
                true,
                ("migrating", Some("registering")),
            ),
            (
                2,
                json!({"kind": "installing"}),
                false,
                ("migrating", Some("registering")),
            ),
            (
                4,
                json!({"kind": "plans_transferred"}),
                true,
                ("migrating", Some("transferring_plans")),
            ),
            (5, json!({"kind": "restore_only"}), true, ("migrated", None)),
            (
                5,
                json!({"kind": "restore_only"}),
                false,
                ("migrated", None),
            ),
        ];
        for (seq, report, applied, (state, phase)) in steps {
            let response = world.report(&token, seq, report.clone()).await;
            assert_eq!(response.status(), 200, "{seq} {report}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["applied"], applied, "{seq} {report}: {body}");
            assert_eq!(
                machine_state(&world, &machine).await,
                (state.to_string(), phase.map(str::to_string)),
                "{seq} {report}"
            );
        }
        let changed = world
            .instructions(&token)
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(changed.status(), 200, "the instructions changed");
        let body: Value = changed.json().await.expect("json");
        assert_eq!(body["action"], "stop");
        assert_problem(
            world
                .report(
                    &token,
                    6,
                    json!({"kind": "failed", "code": "x", "message": "late"}),
                )
                .await,
            409,
        )
        .await;
        assert_problem(
            world.report(&token, 7, json!({"kind": "teleported"})).await,
            400,
        )
        .await;
        let history = world
            .all(&world.path(&format!("/events?subject={machine}")))
            .await;
        let kinds: Vec<&str> = history
            .iter()
            .map(|e| e["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(
            kinds,
            vec![
                "machine.released",
                "agent.enrolled",
                "machine.downloading",
                "machine.registering",
                "machine.plans_transferred",
                "machine.restore_only",
                "machine.report_refused"
            ],
            "the machine's history, each transition once"
        );
        // A failure keeps its code and message.
        let other: String = pending[1].try_get("", "source_id").expect("id");
        let token = world.agent_token(&secret, &other).await;
        world
            .report(&token, 1, json!({"kind": "downloading"}))
            .await;
        let failed = world
            .report(
                &token,
                2,
                json!({"kind": "failed", "code": "download_error", "message": "connection reset"}),
            )
            .await;
        assert_eq!(failed.status(), 200);
        let row = migration_portal::db::agents::machine(&world.db, world.workspace, &other)
            .await
            .expect("read")
            .expect("machine");
        assert_eq!(
            (row.status.state.as_str(), row.error_code.as_deref()),
            ("failed", Some("download_error"))
        );
    }
}

#[tokio::test]
async fn the_partner_sees_each_machine_and_why_it_waits_retries_failed_ones_and_marks_manual_steps_done()
 {
    for backend in Backend::enabled() {
        let base = small();
        let (world, location) = migrated(backend, &base).await;
        let pending = world.all(&world.path("/machines?state=pending")).await;
        // Outdated clients wait for their update; these tests need clients that migrate.
        let pending: Vec<Value> = pending
            .into_iter()
            .filter(|m| {
                !m["waiting_reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("update")
            })
            .collect();
        assert!(pending.len() >= 3, "{pending:?}");
        assert!(
            pending.iter().all(|m| m["state"] == "pending"
                && m["waiting_reason"].is_string()
                && m["not_seen"] == false),
            "{:?}",
            pending[0]
        );
        let idle = world.all(&world.path("/machines?state=idle")).await;
        let all = world.all(&world.path("/machines")).await;
        assert_eq!(
            all.len(),
            base.machines.len(),
            "every machine listed once across pages"
        );
        assert!(idle.iter().all(|m| m["waiting_reason"].is_null()));
        let (failing, manual) = (
            pending[0]["machine_id"].as_str().expect("id").to_string(),
            pending[1]["machine_id"].as_str().expect("id").to_string(),
        );
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &failing).await;
        world
            .report(&token, 1, json!({"kind": "downloading"}))
            .await;
        world
            .report(
                &token,
                2,
                json!({"kind": "failed", "code": "download_error", "message": "connection reset"}),
            )
            .await;
        let failed = world.all(&world.path("/machines?state=failed")).await;
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (
                failed[0]["machine_id"].as_str(),
                failed[0]["error_code"].as_str()
            ),
            (Some(failing.as_str()), Some("download_error"))
        );
        let retry = |m: &str| {
            world
                .app
                .post_json(
                    &world.path(&format!("/machines/{m}/retry")),
                    &world.token,
                    &json!({}),
                )
                .send()
        };
        let retried: Value = retry(&failing)
            .await
            .expect("retry")
            .json()
            .await
            .expect("json");
        assert_eq!(retried["state"], "pending", "{retried}");
        assert_problem(retry(&failing).await.expect("retry"), 409).await;
        let body: Value = world
            .instructions(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            body["action"], "migrate",
            "a retried machine migrates again at its next check-in"
        );
        let applied: Value = world
            .report(&token, 3, json!({"kind": "downloading"}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(applied["state"], "migrating");
        // SQL Server / Exchange: installed, registration by hand, then marked done.
        let token = world.agent_token(&secret, &manual).await;
        world.report(&token, 1, json!({"kind": "registration_manual", "message": "register the SQL Server agent by hand"})).await;
        let done = |m: &str| {
            world
                .app
                .post_json(
                    &world.path(&format!("/machines/{m}/manual-done")),
                    &world.token,
                    &json!({}),
                )
                .send()
        };
        assert_problem(done(&failing).await.expect("done"), 409).await;
        let marked: Value = done(&manual)
            .await
            .expect("done")
            .json()
            .await
            .expect("json");
        assert_eq!(marked["state"], "migrated", "{marked}");
        let other = world.cloud.idp().partner_token(Uuid::new_v4());
        let foreign = world
            .app
            .post_json(
                &world.path(&format!("/machines/{failing}/retry")),
                &other,
                &json!({}),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(foreign.status(), 404);
        assert_eq!(
            world
                .app
                .get(&world.path("/machines"), &other)
                .send()
                .await
                .expect("get")
                .status(),
            404
        );
        let history = world
            .all(&world.path(&format!("/events?subject={failing}")))
            .await;
        assert!(history.iter().any(|e| {
            e["kind"] == "machine.retry"
                && e["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("partner:"))
        }));
        // The migration's machine counts are the machines' states now, and add up.
        let migration = world.get(&location).await;
        let machines = &migration["machines"];
        let listed = world.all(&world.path("/machines")).await;
        for state in [
            "pending",
            "migrating",
            "migrated",
            "failed",
            "manual_action_required",
        ] {
            let n = listed.iter().filter(|m| m["state"] == state).count();
            assert_eq!(machines[state], n, "{state}: {machines}");
        }
        assert_eq!(
            (
                machines["migrating"].as_u64(),
                machines["migrated"].as_u64()
            ),
            (Some(1), Some(1)),
            "{machines}"
        );
        // Check-ins are written within about a second.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let seen = world.all(&world.path("/machines?state=migrating")).await;
        assert!(seen[0]["last_check_in_at"].is_string(), "{:?}", seen[0]);
    }
}

#[tokio::test]
async fn client_logs_are_stored_compressed_and_listed_on_the_machine_and_an_overloaded_service_answers_429()
 {
    for backend in Backend::enabled() {
        let base = small();
        let world = crate::world::world_with(backend, base.clone(), |c| {
            c.http.agent_max_in_flight = 1;
            c.http.agent_max_log_bytes = 64 * 1024;
        })
        .await;
        world.sync().await;
        let machine = base.machines[0].id.clone();
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &machine).await;
        let log: String = (0..500)
            .map(|i| format!("2026-11-29T10:00:{:02}Z msiexec: step {i} ok\n", i % 60))
            .collect();
        let upload = |body: reqwest::Body| {
            world
                .app
                .http
                .post(world.app.url("/agent/v1/logs"))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body(body)
                .send()
        };
        let stored: Value = upload(log.clone().into())
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        assert_eq!(stored["size_bytes"], log.len());
        assert!(
            stored["stored_bytes"].as_u64() < Some(log.len() as u64 / 4),
            "stored compressed: {stored}"
        );
        let logs = world
            .get(&world.path(&format!("/machines/{machine}/logs")))
            .await;
        assert_eq!(logs.as_array().map(Vec::len), Some(1), "{logs}");
        let text = world
            .app
            .get(
                &world.path(&format!(
                    "/machines/{machine}/logs/{}",
                    logs[0]["id"].as_str().expect("id")
                )),
                &world.token,
            )
            .send()
            .await
            .expect("get");
        assert_eq!(text.text().await.expect("text"), log);
        let other = world.cloud.idp().partner_token(Uuid::new_v4());
        assert_eq!(
            world
                .app
                .get(&world.path(&format!("/machines/{machine}/logs")), &other)
                .send()
                .await
                .expect("get")
                .status(),
            404
        );
        // One upload in flight holds the only slot: a check-in meanwhile is told to come back later.
        // (A raw connection that sends half its body and waits.)
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = world
            .app
            .url("")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let mut slow = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let head = format!(
            "POST /agent/v1/logs HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nfirst line\n"
        );
        slow.write_all(head.as_bytes()).await.expect("write");
        // Nothing else is in flight while the upload takes the slot.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut refused = None;
        for _ in 0..100 {
            let response = world.instructions(&token).send().await.expect("get");
            if response.status() == 429 {
                refused = Some(response);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let refused = refused.expect("a check-in during the upload is refused");
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .expect("header")
            .parse()
            .expect("seconds");
        assert!((30..=90).contains(&retry_after), "{retry_after}");
        slow.write_all(b"second line\n").await.expect("write");
        let mut answer = vec![0u8; 1024];
        let n = slow.read(&mut answer).await.expect("read");
        assert!(
            String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 201"),
            "{}",
            String::from_utf8_lossy(&answer[..n])
        );
        assert_eq!(
            world
                .instructions(&token)
                .send()
                .await
                .expect("get")
                .status(),
            200,
            "served again once the slot is free"
        );
        assert_problem(
            upload(vec![b'x'; 64 * 1024 + 1].into())
                .await
                .expect("upload"),
            413,
        )
        .await;
        assert_eq!(
            world
                .instructions(&token)
                .send()
                .await
                .expect("get")
                .status(),
            200,
            "a refused upload frees its slot"
        );
    }
}

#[tokio::test]
async fn cancelling_a_migration_takes_back_the_machines_whose_agents_have_not_started() {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        world
            .cloud
            .set_faults(migration_portal::sim::cloud::Faults {
                latency_ms: 30,
                rate_limit_per_sec: Some(60),
                ..Default::default()
            });
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        let running = world
            .wait_for(&location, |m| {
                m["status"] == "running" && m["machines"]["pending"].as_u64() >= Some(3)
            })
            .await;
        let cancelled = world
            .app
            .post_json(&format!("{location}/cancel"), &world.token, &json!({}))
            .send()
            .await
            .expect("cancel");
        assert_eq!(cancelled.status(), 200);
        let over = world.wait_over(&location).await;
        assert_eq!(over["status"], "cancelled");
        worker.stop().await;
        let machines = &over["machines"];
        assert_eq!(machines["pending"], 0, "{machines}");
        assert!(
            machines["cancelled"].as_u64() >= running["machines"]["pending"].as_u64(),
            "{machines} after {}",
            running["machines"]
        );
        let taken_back = world.all(&world.path("/machines?state=cancelled")).await;
        let machine = taken_back[0]["machine_id"]
            .as_str()
            .expect("id")
            .to_string();
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &machine).await;
        let body: Value = world
            .instructions(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            body["action"], "none",
            "a cancelled machine's agent does nothing"
        );
    }
}

#[tokio::test]
async fn an_outdated_client_migrates_at_the_check_in_that_states_its_update_and_a_silent_agent_is_told_once()
 {
    for backend in Backend::enabled() {
        let base = small();
        let (world, location) = migrated(backend, &base).await;
        let migration_id = world.get(&location).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let outdated = migration_portal::db::query(
            &world.db,
            "SELECT source_id FROM source_machines WHERE workspace_id = $1 AND migration_state = 'pending' AND readiness = 'ready_after_client_upgrade' ORDER BY source_id",
            vec![world.workspace.into()],
        )
        .await
        .expect("query");
        let machine: String = outdated
            .first()
            .expect("small has auto-updating outdated clients")
            .try_get("", "source_id")
            .expect("id");
        let old_version = base
            .machines
            .iter()
            .find(|m| m.id == machine)
            .and_then(|m| m.client_version.clone())
            .expect("a version");
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &machine).await;
        let check_in = |version: &str| {
            world
                .instructions(&token)
                .header("X-Client-Version", version)
                .send()
        };
        let updated_path = world.path(&format!(
            "/events?subject={machine}&kind=machine.client_updated"
        ));
        let updated_events = || world.all(&updated_path);
        for version in [old_version.as_str(), "not a version", ""] {
            let body: Value = check_in(version)
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            assert_eq!(body["action"], "none", "{version:?}: {body}");
            assert!(
                body["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("update_pending")),
                "{body}"
            );
        }
        assert!(updated_events().await.is_empty());
        // The client updated itself: the check-in that says so gets the migration.
        let last_check_in = chrono::Utc::now();
        for _ in 0..2 {
            let body: Value = check_in("5.6.0.100")
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            assert_eq!(body["action"], "migrate", "{body}");
        }
        let told = updated_events().await;
        assert_eq!(told.len(), 1, "told once: {told:?}");
        assert_eq!(told[0]["data"]["client_version"], "5.6.0.100");
        let listed = world.all(&world.path("/machines?state=pending")).await;
        let shown = listed
            .iter()
            .find(|m| m["machine_id"] == machine.as_str())
            .expect("still pending until it reports");
        assert!(
            !shown["waiting_reason"]
                .as_str()
                .unwrap_or_default()
                .contains("update"),
            "{shown}"
        );

        // Check-in times are written in batches: wait until the last one above has landed
        // (written after it, it would clear a flag set meanwhile).
        let checked_in = |after: chrono::DateTime<chrono::Utc>| {
            let world = &world;
            let machine = machine.clone();
            async move {
                let sql = "SELECT a.last_check_in_at FROM agents a WHERE a.workspace_id = $1 AND a.machine_id = $2";
                for _ in 0..600 {
                    let rows = migration_portal::db::query(
                        &world.db,
                        sql,
                        vec![world.workspace.into(), machine.as_str().into()],
                    )
                    .await
                    .expect("query");
                    let at: Option<chrono::DateTime<chrono::Utc>> = rows
                        .first()
                        .and_then(|row| row.try_get("", "last_check_in_at").ok());
                    if at.is_some_and(|at| at >= after) {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("the check-in of {machine} was never written");
            }
        };
        checked_in(last_check_in).await;
        // Two check-in intervals without a word: each pending machine is flagged once.
        let later = chrono::Utc::now() + chrono::Duration::hours(2);
        let flagged = migration_portal::jobs::watch::not_seen(&world.db, later)
            .await
            .expect("watch");
        let waiting = listed.len();
        assert_eq!(flagged, waiting, "every pending machine");
        assert_eq!(
            migration_portal::jobs::watch::not_seen(&world.db, later)
                .await
                .expect("watch"),
            0,
            "once per absence"
        );
        let told = world
            .all(&world.path("/events?kind=machine.not_seen"))
            .await;
        assert_eq!(told.len(), waiting);
        let about = told
            .iter()
            .find(|e| e["subject_id"] == machine.as_str())
            .expect("the machine");
        assert_eq!(about["migration_id"], migration_id.as_str(), "{about}");
        // Its agent checks in again: the flag clears, which is told too, and a next absence is told again.
        check_in("5.6.0.100").await.expect("get");
        let seen_again = world.path("/events?kind=machine.seen_again");
        let mut back = world.all(&seen_again).await;
        for _ in 0..600 {
            if !back.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            back = world.all(&seen_again).await;
        }
        assert_eq!(
            back.iter()
                .map(|e| e["subject_id"].as_str().unwrap_or_default())
                .collect::<Vec<_>>(),
            vec![machine.as_str()]
        );
        let much_later = later + chrono::Duration::hours(2);
        assert_eq!(
            migration_portal::jobs::watch::not_seen(&world.db, much_later)
                .await
                .expect("watch"),
            1,
            "only the machine that came back"
        );
    }
}
