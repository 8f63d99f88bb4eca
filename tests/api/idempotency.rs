//! `Idempotency-Key` on creating POSTs.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, on_each_backend, workspace_body};

async fn create_with_key(app: &TestApp, token: &str, body: &Value, key: &str) -> reqwest::Response {
    app.post_json("/api/v1/workspaces", token, body)
        .header("Idempotency-Key", key)
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer() {
    on_each_backend(async |app: &TestApp| {
        let (body, _, _) = workspace_body("Once");
        let first = create_with_key(app, &app.token, &body, "key-1").await;
        assert_eq!(first.status(), 201);
        assert!(first.headers().get("idempotent-replayed").is_none());
        let location = first.headers()["location"].clone();
        let first: Value = first.json().await.expect("json");

        // Same body with keys in another order and other spacing is the same request.
        let reordered: Value = serde_json::from_str(&format!(
            "{{ \"target\": {}, \"source\": {},   \"name\": \"Once\" }}",
            body["target"], body["source"]
        ))
        .expect("json");
        for again in [&body, &reordered] {
            let replay = create_with_key(app, &app.token, again, "key-1").await;
            assert_eq!(replay.status(), 201);
            assert_eq!(replay.headers()["idempotent-replayed"], "true");
            assert_eq!(replay.headers()["location"], location);
            assert_eq!(replay.json::<Value>().await.expect("json"), first);
        }
        assert_eq!(app.all_workspaces(&app.token).await.len(), 1);

        // Without a key, each POST creates.
        app.create_workspace(&app.token, &body).await;
        app.create_workspace(&app.token, &body).await;
        assert_eq!(app.all_workspaces(&app.token).await.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict_that_creates_nothing() {
    on_each_backend(async |app: &TestApp| {
        let (body, _, _) = workspace_body("First");
        assert_eq!(
            create_with_key(app, &app.token, &body, "key-2")
                .await
                .status(),
            201
        );
        let mut other = body.clone();
        other["name"] = "Second".into();
        let problem =
            assert_problem(create_with_key(app, &app.token, &other, "key-2").await, 409).await;
        assert_eq!(problem["code"], "idempotency_key_reused");
        // Another password is another body, though it is never shown.
        let mut other_secret = body.clone();
        other_secret["source"]["password"] = "different".into();
        assert_problem(
            create_with_key(app, &app.token, &other_secret, "key-2").await,
            409,
        )
        .await;
        assert_eq!(app.all_workspaces(&app.token).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn keys_belong_to_their_tenant() {
    on_each_backend(async |app: &TestApp| {
        let (body, _, _) = workspace_body("Shared key");
        let tenant_b = app.token_for(Uuid::new_v4());
        let a: Value = create_with_key(app, &app.token, &body, "shared")
            .await
            .json()
            .await
            .expect("json");
        let b = create_with_key(app, &tenant_b, &body, "shared").await;
        assert_eq!(b.status(), 201);
        assert!(
            b.headers().get("idempotent-replayed").is_none(),
            "B's request is not A's replay"
        );
        let b: Value = b.json().await.expect("json");
        assert_ne!(a["id"], b["id"]);
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_workspace() {
    on_each_backend(async |app: &TestApp| {
        let (body, _, _) = workspace_body("Raced");
        let requests = (0..8).map(|_| create_with_key(app, &app.token, &body, "raced"));
        let mut ids = Vec::new();
        for response in futures_util::future::join_all(requests).await {
            assert_eq!(response.status(), 201);
            let value: Value = response.json().await.expect("json");
            ids.push(value["id"].clone());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every answer names the same workspace");
        assert_eq!(app.all_workspaces(&app.token).await.len(), 1);
    })
    .await;
}
