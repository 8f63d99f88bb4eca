//! Health, readiness, request ids, unknown routes and methods.

use crate::helpers::{Backend, assert_problem, logs, on_each_backend, spawn_app};

#[tokio::test]
async fn health_and_readiness_answer_without_authentication() {
    on_each_backend(async |app: &crate::helpers::TestApp| {
        for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
            let response = app.http.get(app.url(path)).send().await.expect("get");
            assert_eq!(response.status(), 200, "{path}");
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["status"], status);
        }
    })
    .await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_that_reaches_the_logs() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .expect("get");
    assert_eq!(
        response.headers()["x-request-id"],
        "trace-abc.123",
        "a sane incoming id is kept"
    );
    let generated = app.http.get(app.url("/nope")).send().await.expect("get");
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "a new id is a UUID: {id}"
    );
    let hostile = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "a\"b} injected")
        .send()
        .await
        .expect("get");
    assert_ne!(
        hostile.headers()["x-request-id"],
        "a\"b} injected",
        "an unsafe id is replaced"
    );
    let unauthorized = app
        .http
        .get(app.url("/api/v1/workspaces"))
        .send()
        .await
        .expect("get");
    assert!(
        unauthorized.headers().contains_key("x-request-id"),
        "error answers carry it too"
    );

    let log = logs().text();
    let line = log
        .lines()
        .find(|l| l.contains("trace-abc.123") && l.contains("request completed"))
        .expect("the completion line carries the request id");
    let entry: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(entry["span"]["request_id"], "trace-abc.123");
    assert_eq!(entry["status"], 200);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_problem(
        app.http
            .get(app.url("/no/such/route"))
            .send()
            .await
            .expect("get"),
        404,
    )
    .await;
    assert_problem(
        app.get("/api/v1/nothing-here", &app.token)
            .send()
            .await
            .expect("get"),
        404,
    )
    .await;

    let cases = [
        (reqwest::Method::PUT, "/api/v1/workspaces", "GET, POST"),
        (reqwest::Method::DELETE, "/api/v1/workspaces", "GET, POST"),
        (
            reqwest::Method::POST,
            "/api/v1/workspaces/0193e0a4-0000-7000-8000-000000000000",
            "DELETE, GET, PATCH",
        ),
        (reqwest::Method::POST, "/healthz", "GET"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.token)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        assert_problem(response, 405).await;
    }
}

#[tokio::test]
async fn an_internal_error_is_a_plain_500_logged_with_the_request_id() {
    on_each_backend(async |app: &crate::helpers::TestApp| {
        use sea_orm::{ConnectionTrait, Database};
        let db = Database::connect(&app.database_url).await.expect("connect");
        db.execute_unprepared("DROP TABLE workspaces")
            .await
            .expect("drop");
        let response = app
            .get("/api/v1/workspaces", &app.token)
            .header("x-request-id", format!("boom-{:?}", app.backend))
            .send()
            .await
            .expect("get");
        let problem = assert_problem(response, 500).await;
        assert_eq!(
            problem["detail"],
            "An internal error occurred; it has been logged."
        );
        let text = problem.to_string().to_lowercase();
        assert!(
            !text.contains("workspaces") && !text.contains("table") && !text.contains("relation"),
            "{text}"
        );
        let log = logs().text();
        let line = log
            .lines()
            .find(|l| {
                l.contains(&format!("boom-{:?}", app.backend)) && l.contains("internal error")
            })
            .expect("the cause is logged with the request id");
        assert!(
            line.to_lowercase().contains("workspaces"),
            "the log names the cause: {line}"
        );
    })
    .await;
}
