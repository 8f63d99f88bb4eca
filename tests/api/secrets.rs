//! Credentials never appear in a response, a log line, or the database in clear.

use migration_portal::crypto::SecretBox;
use migration_portal::db::workspaces as store;
use sea_orm::{ConnectionTrait, Database, EntityTrait, Statement};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{Backend, TestApp, logs, on_each_backend, workspace_body};

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Everything the database holds, as text a human or a tool could read.
async fn database_contents(app: &TestApp) -> Vec<u8> {
    match app.backend {
        Backend::Sqlite => {
            let file = app.sqlite_file.as_ref().expect("sqlite file");
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = format!("{}{suffix}", file.display());
                bytes.extend(std::fs::read(&path).unwrap_or_default());
            }
            assert!(bytes.len() > 4096, "the database file was read");
            bytes
        }
        Backend::Postgres => {
            let db = Database::connect(&app.database_url).await.expect("connect");
            let rows = db
                .query_all_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT row_to_json(w)::text AS row FROM workspaces w UNION ALL SELECT row_to_json(i)::text FROM idempotency_records i",
                ))
                .await
                .expect("dump");
            let text: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String>("", "row").expect("row"))
                .collect();
            assert!(!text.is_empty());
            text.join("\n").into_bytes()
        }
    }
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_never_returned_or_logged() {
    on_each_backend(async |app: &TestApp| {
        let (body, password, client_secret) = workspace_body("Secretive");
        let response = app
            .post_json("/api/v1/workspaces", &app.token, &body)
            .header("Idempotency-Key", "secret-test")
            .send()
            .await
            .expect("create");
        let mut answers = vec![response.text().await.expect("text")];
        let created: serde_json::Value = serde_json::from_str(&answers[0]).expect("json");
        let path = format!("/api/v1/workspaces/{}", created["id"].as_str().expect("id"));
        // A replay, a read, a list, an update and a refused update.
        let replay = app
            .post_json("/api/v1/workspaces", &app.token, &body)
            .header("Idempotency-Key", "secret-test")
            .send()
            .await
            .expect("replay");
        answers.push(replay.text().await.expect("text"));
        answers.push(
            app.get(&path, &app.token)
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("text"),
        );
        answers.push(
            app.get("/api/v1/workspaces", &app.token)
                .send()
                .await
                .expect("list")
                .text()
                .await
                .expect("text"),
        );
        let (update, new_password, new_secret) = workspace_body("Secretive 2");
        answers.push(
            app.patch_json(&path, &app.token, &update)
                .send()
                .await
                .expect("patch")
                .text()
                .await
                .expect("text"),
        );
        // Secrets sent where another type is expected: serde would quote them in its message.
        for wrong_type in [
            json!({"source": password.clone()}),
            json!({"limits": client_secret.clone()}),
            json!({"name": 1, "target": new_secret.clone()}),
        ] {
            answers.push(
                app.patch_json(&path, &app.token, &wrong_type)
                    .send()
                    .await
                    .expect("patch")
                    .text()
                    .await
                    .expect("text"),
            );
        }
        let check = app
            .http
            .post(app.url(&format!("{path}/check")))
            .bearer_auth(&app.token)
            .send()
            .await
            .expect("check");
        answers.push(check.text().await.expect("text"));

        let secrets = [&password, &client_secret, &new_password, &new_secret];
        for answer in &answers {
            for secret in secrets {
                assert!(
                    !answer.contains(secret.as_str()),
                    "a response carries a secret: {answer}"
                );
            }
        }
        let log = logs().text();
        assert!(log.contains("workspace connected"), "the create was logged");
        let stored = database_contents(app).await;
        let stored_text = String::from_utf8_lossy(&stored);
        for secret in secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a log line carries a secret"
            );
            assert!(
                !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in the database in clear"
            );
            assert!(
                !stored_text.contains(&hex(secret)),
                "a secret is in the database as hex"
            );
        }

        // The sealed values open, with the configured key, to the current secrets.
        let db = Database::connect(&app.database_url).await.expect("connect");
        let id = uuid::Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid");
        let row = entity::workspace::Entity::find_by_id(id)
            .one(&db)
            .await
            .expect("query")
            .expect("row");
        let secrets_box = SecretBox::from_base64(&app.secret_key).expect("key");
        assert_eq!(
            store::source_password(&secrets_box, &row)
                .expect("open")
                .expose_secret(),
            new_password
        );
        assert_eq!(
            store::target_client_secret(&secrets_box, &row)
                .expect("open")
                .expose_secret(),
            new_secret
        );
        assert!(
            store::source_password(&SecretBox::insecure_dev(), &row).is_err(),
            "another key cannot open them"
        );
    })
    .await;
}
