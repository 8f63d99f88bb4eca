//! `/api/v1/operations/{id}`: a job seen as an AIP-151 operation, by its tenant only.

use std::time::Duration;

use migration_portal::jobs::SyncWorkspace;
use migration_portal::queue::NewJob;
use migration_portal::queue::store as queue;
use sea_orm::Database;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, on_each_backend};

async fn operation(app: &TestApp, id: Uuid, token: &str) -> reqwest::Response {
    app.get(&format!("/api/v1/operations/{id}"), token)
        .send()
        .await
        .expect("get")
}

#[tokio::test]
async fn an_operation_shows_progress_then_its_result_or_error_to_its_tenant_only() {
    on_each_backend(async |app: &TestApp| {
        let db = Database::connect(&app.database_url).await.expect("connect");
        let new = NewJob {
            tenant_id: Some(app.tenant),
            max_attempts: 1,
            ..NewJob::new(SyncWorkspace {
                workspace_id: Uuid::new_v4(),
            })
        };
        let id = queue::enqueue(&db, new.clone()).await.expect("enqueue").id;

        let queued: Value = operation(app, id, &app.token)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            (queued["name"].as_str(), queued["done"].as_bool()),
            (Some(format!("operations/{id}").as_str()), Some(false))
        );
        assert_eq!(queued["metadata"]["status"], "queued");
        assert!(queued.get("error").is_none() && queued.get("response").is_none());

        let job = queue::claim(&db, "w", &["sync"], 1, Duration::from_secs(30))
            .await
            .expect("claim")
            .remove(0);
        queue::set_progress(&db, &job, &json!({"users": 40, "of": 100}))
            .await
            .expect("progress");
        let running: Value = operation(app, id, &app.token)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            (
                running["metadata"]["status"].as_str(),
                running["metadata"]["progress"]["users"].as_i64()
            ),
            (Some("running"), Some(40))
        );

        queue::complete(&db, &job, &json!({"users": 100}))
            .await
            .expect("complete");
        let done: Value = operation(app, id, &app.token)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            (done["done"].as_bool(), done["response"]["users"].as_i64()),
            (Some(true), Some(100))
        );
        assert!(done.get("error").is_none());

        let failing = queue::enqueue(&db, new.clone()).await.expect("enqueue").id;
        let job = queue::claim(&db, "w", &["sync"], 1, Duration::from_secs(30))
            .await
            .expect("claim")
            .remove(0);
        queue::fail(&db, &job, "the BackupAgent server refused the login", None)
            .await
            .expect("fail");
        let failed: Value = operation(app, failing, &app.token)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            (failed["done"].as_bool(), failed["error"]["code"].as_str()),
            (Some(true), Some("failed"))
        );
        assert_eq!(
            failed["error"]["message"],
            "the BackupAgent server refused the login"
        );
        assert!(failed.get("response").is_none());

        let cancelled = queue::enqueue(&db, new).await.expect("enqueue").id;
        queue::cancel(&db, cancelled).await.expect("cancel");
        let cancelled: Value = operation(app, cancelled, &app.token)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            (
                cancelled["done"].as_bool(),
                cancelled["error"]["code"].as_str()
            ),
            (Some(true), Some("cancelled"))
        );

        // Another tenant, a job of no tenant, an unknown id: the same 404.
        let other = app.token_for(Uuid::new_v4());
        let foreign = assert_problem(operation(app, id, &other).await, 404).await;
        let untenanted = queue::enqueue(
            &db,
            NewJob::new(SyncWorkspace {
                workspace_id: Uuid::new_v4(),
            }),
        )
        .await
        .expect("enqueue")
        .id;
        assert_eq!(
            assert_problem(operation(app, untenanted, &app.token).await, 404).await,
            foreign
        );
        assert_eq!(
            assert_problem(operation(app, Uuid::now_v7(), &app.token).await, 404).await,
            foreign
        );
        assert_problem(
            app.get("/api/v1/operations/not-a-uuid", &app.token)
                .send()
                .await
                .expect("get"),
            400,
        )
        .await;
    })
    .await;
}
