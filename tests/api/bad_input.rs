//! Bad input of every kind gets a 4xx problem+json, never a 500, and writes nothing.

use serde_json::json;

use crate::helpers::{TestApp, assert_problem, on_each_backend, workspace_body};

/// Raw bodies that must all be refused, with the status each deserves.
fn bad_bodies(max_body: usize) -> Vec<(&'static str, String, &'static str, u16)> {
    let json = "application/json";
    vec![
        ("malformed JSON", "{\"name\": ".into(), json, 400),
        ("not JSON at all", "name=x".into(), json, 400),
        ("empty body", String::new(), json, 400),
        ("JSON array", "[]".into(), json, 400),
        ("trailing garbage", "{\"name\":\"x\"} x".into(), json, 400),
        (
            "wrong type for name",
            json!({"name": 42}).to_string(),
            json,
            400,
        ),
        (
            "wrong type for source",
            json!({"name": "x", "source": "https://a"}).to_string(),
            json,
            400,
        ),
        (
            "unknown field",
            json!({"name": "x", "colour": "red"}).to_string(),
            json,
            400,
        ),
        ("null name", json!({"name": null}).to_string(), json, 400),
        (
            "oversized",
            format!("{{\"name\": \"{}\"}}", "x".repeat(max_body + 1)),
            json,
            413,
        ),
        (
            "wrong content type",
            workspace_body("x").0.to_string(),
            "text/plain",
            415,
        ),
        (
            "no content type",
            workspace_body("x").0.to_string(),
            "",
            415,
        ),
    ]
}

async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &str,
    content_type: &str,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.token)
        .body(body.to_string());
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn creating_with_bad_bodies_is_refused_and_creates_nothing() {
    on_each_backend(async |app: &TestApp| {
        let max_body = 256 * 1024;
        for (case, body, content_type, status) in bad_bodies(max_body) {
            eprintln!("case: {case}");
            let response = send_raw(app, reqwest::Method::POST, "/api/v1/workspaces", &body, content_type).await;
            assert_problem(response, status).await;
        }
        let (valid, _, _) = workspace_body("x");
        let rule_breakers = [
            ("missing source", json!({"name": "x", "target": valid["target"]}), 400),
            ("missing password", json!({"name": "x", "source": {"url": "https://a.example", "login": "l"}, "target": valid["target"]}), 400),
            ("blank name", json!({"name": "   ", "source": valid["source"], "target": valid["target"]}), 422),
            ("ftp URL", json!({"name": "x", "source": {"url": "ftp://a.example", "login": "l", "password": "p"}, "target": valid["target"]}), 422),
            ("URL with credentials", json!({"name": "x", "source": valid["source"], "target": {"url": "https://u:p@c.example", "client_id": "c", "client_secret": "s"}}), 422),
            ("empty secret", json!({"name": "x", "source": {"url": "https://a.example", "login": "l", "password": ""}, "target": valid["target"]}), 422),
            ("name too long", json!({"name": "n".repeat(201), "source": valid["source"], "target": valid["target"]}), 422),
            ("zero rate", json!({"name": "x", "source": valid["source"], "target": valid["target"], "limits": {"source": {"rate_per_sec": 0, "concurrency": 1}, "target": {"rate_per_sec": 1, "concurrency": 1}}}), 422),
            ("negative concurrency", json!({"name": "x", "source": valid["source"], "target": valid["target"], "limits": {"source": {"rate_per_sec": 1, "concurrency": -1}, "target": {"rate_per_sec": 1, "concurrency": 1}}}), 400),
            ("half limits", json!({"name": "x", "source": valid["source"], "target": valid["target"], "limits": {"source": {"rate_per_sec": 1, "concurrency": 1}}}), 400),
        ];
        for (case, body, status) in rule_breakers {
            eprintln!("case: {case}");
            let problem = assert_problem(app.post_json("/api/v1/workspaces", &app.token, &body).send().await.expect("post"), status).await;
            if status == 422 {
                let pointers: Vec<&str> = problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["pointer"].as_str()).collect();
                assert!(!pointers.is_empty(), "{case}: {problem}");
            }
        }
        // Several broken fields are all reported, each with its pointer.
        let body = json!({"name": "", "source": {"url": "nope", "login": "", "password": ""}, "target": valid["target"]});
        let problem = assert_problem(app.post_json("/api/v1/workspaces", &app.token, &body).send().await.expect("post"), 422).await;
        let pointers: Vec<&str> = problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["pointer"].as_str()).collect();
        assert_eq!(pointers, ["/name", "/source/login", "/source/password", "/source/url"]);
        assert!(app.all_workspaces(&app.token).await.is_empty(), "nothing was written");
    })
    .await;
}

#[tokio::test]
async fn updating_with_bad_bodies_is_refused_and_changes_nothing() {
    on_each_backend(async |app: &TestApp| {
        let created = app.create_workspace(&app.token, &workspace_body("Original").0).await;
        let path = format!("/api/v1/workspaces/{}", created["id"].as_str().expect("id"));
        for (case, body, content_type, status) in bad_bodies(256 * 1024) {
            eprintln!("case: {case}");
            // In a PATCH a null name means "keep it", which leaves nothing to change.
            let status = if case == "null name" { 422 } else { status };
            assert_problem(send_raw(app, reqwest::Method::PATCH, &path, &body, content_type).await, status).await;
        }
        let rule_breakers = [
            ("nothing to change", json!({}), 422),
            ("all null", json!({"name": null, "source": null, "target": null}), 422),
            ("blank name", json!({"name": " "}), 422),
            ("partial credentials", json!({"source": {"url": "https://a.example"}}), 400),
            ("bad URL", json!({"target": {"url": "mailto:x@y", "client_id": "c", "client_secret": "s"}}), 422),
            ("too many in flight", json!({"limits": {"source": {"rate_per_sec": 1, "concurrency": 1}, "target": {"rate_per_sec": 1, "concurrency": 257}}}), 422),
            ("valid name, bad source", json!({"name": "Changed", "source": {"url": "https://a.example", "login": "l", "password": ""}}), 422),
        ];
        for (case, body, status) in rule_breakers {
            eprintln!("case: {case}");
            assert_problem(app.patch_json(&path, &app.token, &body).send().await.expect("patch"), status).await;
        }
        assert_problem(app.patch_json(&path, &app.token, &json!({"name": "x"})).header("if-match", "garbage").send().await.expect("patch"), 412).await;
        let after: serde_json::Value = app.get(&path, &app.token).send().await.expect("get").json().await.expect("json");
        assert_eq!(after, created, "no partial write");
    })
    .await;
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_400_problems() {
    on_each_backend(async |app: &TestApp| {
        for id in [
            "not-a-uuid",
            "123",
            "00000000-0000-0000-0000-00000000000g",
            "%00",
        ] {
            let path = format!("/api/v1/workspaces/{id}");
            assert_problem(app.get(&path, &app.token).send().await.expect("get"), 400).await;
            assert_problem(
                app.delete(&path, &app.token).send().await.expect("delete"),
                400,
            )
            .await;
            assert_problem(
                app.patch_json(&path, &app.token, &json!({"name": "x"}))
                    .send()
                    .await
                    .expect("patch"),
                400,
            )
            .await;
        }
        for query in [
            "limit=abc",
            "limit=0",
            "limit=501",
            "limit=-1",
            "cursor=garbage",
            "cursor=",
            "unknown=1",
        ] {
            let response = app
                .get(&format!("/api/v1/workspaces?{query}"), &app.token)
                .send()
                .await
                .expect("list");
            assert_problem(response, 400).await;
        }
        let bad_key = app
            .post_json("/api/v1/workspaces", &app.token, &workspace_body("x").0)
            .header("Idempotency-Key", "x".repeat(300));
        assert_problem(bad_key.send().await.expect("post"), 400).await;
        assert!(app.all_workspaces(&app.token).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn authentication_is_checked_before_the_body_is_read() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    // Were the body read first, these would answer 400, 413 and 415.
    let bodies = [
        ("{".to_string(), "application/json"),
        ("x".repeat(300 * 1024), "application/json"),
        ("{}".to_string(), "text/plain"),
    ];
    for (body, content_type) in bodies {
        let response = app
            .http
            .post(app.url("/api/v1/workspaces"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("post");
        assert_problem(response, 401).await;
    }
}
