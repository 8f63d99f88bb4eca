//! The workspaces resource: lifecycle, paging, tenant isolation.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{NOWHERE, TestApp, assert_problem, on_each_backend, workspace_body};

#[tokio::test]
async fn a_workspace_is_created_read_renamed_re_credentialed_and_deleted() {
    on_each_backend(async |app: &TestApp| {
        let (body, _, _) = workspace_body("  Contoso Backup  ");
        let response = app.post_json("/api/v1/workspaces", &app.token, &body).send().await.expect("create");
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().expect("location").to_string();
        let created: serde_json::Value = response.json().await.expect("json");
        let id = created["id"].as_str().expect("id").to_string();
        assert_eq!(location, format!("/api/v1/workspaces/{id}"));
        assert_eq!(created["name"], "Contoso Backup", "names are trimmed");
        assert_eq!(created["source"], json!({"url": NOWHERE, "login": "root-group"}));
        assert_eq!(created["target"], json!({"url": format!("{NOWHERE}/cloud"), "client_id": "api-client-1"}));
        assert_eq!(created["version"], 1);
        assert_eq!(
            created["limits"],
            json!({"source": {"rate_per_sec": 50, "concurrency": 8}, "target": {"rate_per_sec": 100, "concurrency": 16}}),
            "default pace"
        );
        let check = &created["connection_check"];
        assert_eq!(check["passed"], false, "nothing answers on the discard port");
        assert_eq!(check["checks"][0]["name"], "source_login");

        let response = app.get(&location, &app.token).send().await.expect("get");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["etag"], "\"v1\"");
        assert_eq!(response.json::<serde_json::Value>().await.expect("json"), created);

        let response = app.patch_json(&location, &app.token, &json!({"name": "Contoso EU"})).send().await.expect("patch");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["etag"], "\"v2\"");
        let renamed: serde_json::Value = response.json().await.expect("json");
        assert_eq!((renamed["name"].as_str(), renamed["version"].as_i64()), (Some("Contoso EU"), Some(2)));
        assert_eq!(renamed["source"], created["source"], "untouched credentials stay");

        let new_source = json!({"source": {"url": "http://127.0.0.1:9", "login": "new-root", "password": "p2"}});
        let response = app.patch_json(&location, &app.token, &new_source).send().await.expect("patch");
        let updated: serde_json::Value = response.json().await.expect("json");
        assert_eq!(updated["source"], json!({"url": "http://127.0.0.1:9", "login": "new-root"}));
        assert_eq!(updated["connection_check"], serde_json::Value::Null, "a check of the old credentials is not kept");
        assert_eq!(updated["name"], "Contoso EU");

        let limits = json!({"source": {"rate_per_sec": 5, "concurrency": 1}, "target": {"rate_per_sec": 200, "concurrency": 32}});
        let response = app.patch_json(&location, &app.token, &json!({"limits": limits})).send().await.expect("patch");
        let paced: serde_json::Value = response.json().await.expect("json");
        assert_eq!(paced["limits"], limits);
        assert_eq!(paced["version"], 4);

        // If-Match: the current version applies, a stale one is refused and changes nothing.
        let stale = app.patch_json(&location, &app.token, &json!({"name": "stale"})).header("if-match", "\"v1\"").send().await.expect("patch");
        assert_problem(stale, 412).await;
        let fresh = app.patch_json(&location, &app.token, &json!({"name": "Fresh"})).header("if-match", "\"v4\"").send().await.expect("patch");
        assert_eq!(fresh.status(), 200);
        let current: serde_json::Value = app.get(&location, &app.token).send().await.expect("get").json().await.expect("json");
        assert_eq!((current["name"].as_str(), current["version"].as_i64()), (Some("Fresh"), Some(5)));

        assert_eq!(app.delete(&location, &app.token).send().await.expect("delete").status(), 204);
        assert_problem(app.get(&location, &app.token).send().await.expect("get"), 404).await;
        assert_problem(app.delete(&location, &app.token).send().await.expect("delete"), 404).await;
        assert!(app.all_workspaces(&app.token).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn listing_pages_through_every_workspace_once_in_creation_order() {
    on_each_backend(async |app: &TestApp| {
        let mut ids = Vec::new();
        for i in 0..7 {
            let created = app
                .create_workspace(&app.token, &workspace_body(&format!("ws {i}")).0)
                .await;
            ids.push(created["id"].as_str().expect("id").to_string());
        }
        let mut seen = Vec::new();
        let mut path = "/api/v1/workspaces?limit=3".to_string();
        let mut pages = 0;
        loop {
            let page: serde_json::Value = app
                .get(&path, &app.token)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            pages += 1;
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 3);
            seen.extend(
                items
                    .iter()
                    .map(|w| w["id"].as_str().expect("id").to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/workspaces?limit=3&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ids);
    })
    .await;
}

#[tokio::test]
async fn another_tenants_workspace_answers_404_to_every_operation_and_stays_unchanged() {
    on_each_backend(async |app: &TestApp| {
        let (body, _, _) = workspace_body("Tenant A");
        let created = app.create_workspace(&app.token, &body).await;
        let path = format!("/api/v1/workspaces/{}", created["id"].as_str().expect("id"));
        let tenant_b = app.token_for(Uuid::new_v4());

        assert_problem(app.get(&path, &tenant_b).send().await.expect("get"), 404).await;
        let patch = json!({"name": "hijacked", "source": {"url": "https://evil.example.com", "login": "x", "password": "y"}});
        assert_problem(app.patch_json(&path, &tenant_b, &patch).send().await.expect("patch"), 404).await;
        let patch_if = app.patch_json(&path, &tenant_b, &json!({"name": "x"})).header("if-match", "\"v1\"");
        assert_problem(patch_if.send().await.expect("patch"), 404).await;
        assert_problem(app.delete(&path, &tenant_b).send().await.expect("delete"), 404).await;
        assert!(app.all_workspaces(&tenant_b).await.is_empty(), "B lists nothing of A's");
        // A missing id and a foreign id look the same.
        let missing = format!("/api/v1/workspaces/{}", Uuid::now_v7());
        let foreign = assert_problem(app.get(&path, &tenant_b).send().await.expect("get"), 404).await;
        let absent = assert_problem(app.get(&missing, &tenant_b).send().await.expect("get"), 404).await;
        assert_eq!(foreign, absent);

        let after: serde_json::Value = app.get(&path, &app.token).send().await.expect("get").json().await.expect("json");
        assert_eq!(after, created, "A's workspace is unchanged");
        assert_eq!(app.all_workspaces(&app.token).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn workspace_urls_cannot_reach_the_services_own_network() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |c| {
        c.connectors.allow_private_networks = false
    })
    .await;
    // Something does listen here: a connection attempt would be accepted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("addr").port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ] {
        let (mut body, _, _) = workspace_body("Internal");
        body["source"]["url"] = json!(format!("http://{host}"));
        body["target"]["url"] = json!(format!("http://{host}"));
        let created = app.create_workspace(&app.token, &body).await;
        let checks = created["connection_check"]["checks"]
            .as_array()
            .expect("checks")
            .clone();
        for index in [0, 1] {
            assert_eq!(checks[index]["status"], "failed", "{host}: {checks:?}");
            let detail = checks[index]["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains("does not contact its own network"),
                "{host}: {detail}"
            );
        }
        assert!(
            listener.accept().is_err(),
            "{host}: the service connected to its own network"
        );
    }
}

#[tokio::test]
async fn concurrent_updates_without_if_match_all_apply() {
    on_each_backend(async |app: &TestApp| {
        let created = app
            .create_workspace(&app.token, &workspace_body("Busy").0)
            .await;
        let path = format!("/api/v1/workspaces/{}", created["id"].as_str().expect("id"));
        let renames = (0..8).map(|i| {
            app.patch_json(&path, &app.token, &json!({"name": format!("Busy {i}")}))
                .send()
        });
        for response in futures_util::future::join_all(renames).await {
            assert_eq!(
                response.expect("patch").status(),
                200,
                "no 412 without If-Match"
            );
        }
        let current: serde_json::Value = app
            .get(&path, &app.token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(current["version"], 9, "each rename applied once");
    })
    .await;
}
