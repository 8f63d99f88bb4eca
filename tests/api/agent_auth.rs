//! Agent requests are authenticated before their body is read, and the bearer
//! scheme is accepted in any case by the agent API, the partner API and /metrics.

use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{Backend, assert_problem};
use crate::migrations::small;
use crate::world::{World, world_with};

const METRICS_TOKEN: &str = "scrape-secret-agent-auth";

/// What agents' requests can leave behind: stored logs and their reports in the operations log.
async fn agent_traces(world: &World) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        let rows = migration_portal::db::query(&world.db, sql, vec![world.workspace.into()])
            .await
            .expect("count");
        rows[0].try_get::<i64>("", "n").expect("n")
    };
    let logs = count("SELECT COUNT(*) AS n FROM machine_logs WHERE workspace_id = $1").await;
    let reports = count("SELECT COUNT(*) AS n FROM events WHERE workspace_id = $1 AND actor LIKE 'agent:%' AND kind <> 'agent.enrolled'").await;
    (logs, reports)
}

#[tokio::test]
async fn events_and_logs_without_a_valid_agent_token_are_401_whatever_the_body_and_record_nothing()
{
    for backend in Backend::enabled() {
        let base = small();
        let world = world_with(backend, base.clone(), |_| {}).await;
        world.sync().await;
        let machine = base.machines[0].id.clone();
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &machine).await;
        let url = |path: &str| world.app.url(&format!("/agent/v1/{path}"));
        let json_bodies = [
            // Valid: on an idle machine it would be refused 409 and logged as machine.report_refused.
            ("valid", r#"{"seq": 1, "kind": "downloading"}"#),
            ("breaks a rule", r#"{"seq": 0, "kind": "downloading"}"#),
            ("unknown kind", r#"{"seq": 1, "kind": "teleported"}"#),
            ("not JSON", "{"),
            ("empty", ""),
        ];
        let credentials = [
            None,
            Some("Bearer mpa_forged".to_string()),
            Some(format!("Basic {token}")),
            Some(format!("Bearer {}", world.token)),
        ];
        for authorization in &credentials {
            for (case, body) in json_bodies {
                let mut request = world
                    .app
                    .http
                    .post(url("events"))
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let response = request.send().await.expect("report");
                assert!(
                    response.headers().contains_key("www-authenticate"),
                    "{case}"
                );
                assert_problem(response, 401).await;
            }
            let plain = world
                .app
                .http
                .post(url("events"))
                .header("content-type", "text/plain")
                .body("downloading");
            let plain = match authorization {
                Some(value) => plain.header("authorization", value),
                None => plain,
            };
            assert_problem(plain.send().await.expect("report"), 401).await;
            for log in ["2026-11-29T10:00:00Z msiexec: step 1 ok\n", ""] {
                let upload = world
                    .app
                    .http
                    .post(url("logs"))
                    .header("content-type", "text/plain")
                    .body(log);
                let upload = match authorization {
                    Some(value) => upload.header("authorization", value),
                    None => upload,
                };
                assert_problem(upload.send().await.expect("upload"), 401).await;
            }
        }
        assert_eq!(
            agent_traces(&world).await,
            (0, 0),
            "{backend:?}: a refused request records nothing"
        );

        // With the token, the body is read and judged.
        let report = |body: &'static str| {
            world
                .app
                .http
                .post(url("events"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        assert_problem(report("{").await.expect("report"), 400).await;
        assert_problem(
            report(r#"{"seq": 0, "kind": "downloading"}"#)
                .await
                .expect("report"),
            422,
        )
        .await;
        // An empty log is refused and nothing is stored.
        let empty = world
            .app
            .http
            .post(url("logs"))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("")
            .send()
            .await
            .expect("upload");
        let problem = assert_problem(empty, 422).await;
        assert_eq!(problem["errors"][0]["pointer"], "", "{problem}");
        assert_eq!(agent_traces(&world).await, (0, 0), "{backend:?}");
        let listed = world
            .get(&world.path(&format!("/machines/{machine}/logs")))
            .await;
        assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

        // A deleted workspace's agents reach nothing (on main their logs were still stored).
        assert_eq!(
            world
                .app
                .delete(&world.path(""), &world.token)
                .send()
                .await
                .expect("delete")
                .status(),
            204
        );
        let upload = world
            .app
            .http
            .post(url("logs"))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("after the workspace\n")
            .send()
            .await
            .expect("upload");
        assert_problem(upload, 401).await;
        assert_problem(
            world
                .app
                .http
                .get(url("instructions"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get"),
            401,
        )
        .await;
        assert_eq!(agent_traces(&world).await, (0, 0), "{backend:?}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case_by_the_agent_api_the_partner_api_and_metrics() {
    for backend in Backend::enabled() {
        let base = small();
        let world = world_with(backend, base.clone(), |c| {
            c.metrics.bearer_token = Some(SecretString::from(METRICS_TOKEN))
        })
        .await;
        world.sync().await;
        let machine = base.machines[0].id.clone();
        let secret = world.enrollment_secret().await;
        let token = world.agent_token(&secret, &machine).await;
        let http = &world.app.http;
        for scheme in ["bearer", "BEARER", "bEaReR", "Bearer"] {
            let with = |credential: &str| format!("{scheme} {credential}");
            let instructions = http
                .get(world.app.url("/agent/v1/instructions"))
                .header("authorization", with(&token))
                .send()
                .await
                .expect("get");
            assert_eq!(instructions.status(), 200, "{scheme}: instructions");
            let log = http
                .post(world.app.url("/agent/v1/logs"))
                .header("authorization", with(&token))
                .body(format!("{scheme}: step 1 ok\n"))
                .send()
                .await
                .expect("upload");
            assert_eq!(log.status(), 201, "{scheme}: log upload");
            let report = http
                .post(world.app.url("/agent/v1/events"))
                .header("authorization", with(&token))
                .json(&json!({"seq": 1, "kind": "downloading"}))
                .send()
                .await
                .expect("report");
            // Past authentication: an idle machine refuses the step itself.
            assert_problem(report, 409).await;
            let partner = http
                .get(world.app.url(&world.path("")))
                .header("authorization", with(&world.token))
                .send()
                .await
                .expect("get");
            assert_eq!(partner.status(), 200, "{scheme}: partner API");
            let metrics = http
                .get(world.app.url("/metrics"))
                .header("authorization", with(METRICS_TOKEN))
                .send()
                .await
                .expect("scrape");
            assert_eq!(metrics.status(), 200, "{scheme}: /metrics");
        }
        let listed = world
            .get(&world.path(&format!("/machines/{machine}/logs")))
            .await;
        assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
    }
}
