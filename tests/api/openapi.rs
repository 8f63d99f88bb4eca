//! The committed OpenAPI document equals the one the code generates and serves.

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");
const REGENERATE: &str = "run `cargo run -- openapi > openapi/openapi.json` and commit it";

#[tokio::test]
async fn the_served_document_equals_the_committed_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let served: Value = app.http.get(app.url("/api-docs/openapi.json")).send().await.expect("get").json().await.expect("json");
    let committed: Value = serde_json::from_str(COMMITTED).expect("openapi/openapi.json is JSON");
    let generated: Value = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    assert_eq!(generated, committed, "openapi/openapi.json is out of date: {REGENERATE}");
    assert_eq!(served, committed, "the served spec differs from openapi/openapi.json: {REGENERATE}");
    let swagger = app.http.get(app.url("/swagger-ui/")).send().await.expect("get");
    assert_eq!(swagger.status(), 200);
    assert!(swagger.text().await.expect("text").contains("swagger"), "Swagger UI is served");
}

#[test]
fn every_api_operation_documents_its_security_and_error_answers() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    assert!(spec["components"]["securitySchemes"]["bearer_auth"]["scheme"] == "bearer");
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} has no summary");
            if !path.starts_with("/api/v1/") {
                continue;
            }
            operations += 1;
            assert_eq!(operation["security"], serde_json::json!([{"bearer_auth": []}]), "{method} {path} security");
            for status in ["400", "401", "403", "500"] {
                let response = &responses[status];
                assert!(response["$ref"].as_str().is_some(), "{method} {path} does not document {status}");
            }
            let ids_in_path = path.contains('{');
            if ids_in_path {
                assert!(responses.contains_key("404"), "{method} {path} does not document 404");
            }
            if operation.get("requestBody").is_some() {
                for status in ["413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} does not document {status}");
                }
            }
        }
    }
    assert!(operations >= 6, "the workspace operations were all seen ({operations})");
    for (name, response) in spec["components"]["responses"].as_object().expect("responses") {
        assert!(response["content"]["application/problem+json"].is_object(), "{name} is not problem+json");
    }
}
