//! The committed OpenAPI document equals the one the code generates and serves.

use serde_json::Value;

use crate::helpers::{Backend, python_with, spawn_app};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");
const REGENERATE: &str = "run `cargo run -- openapi > openapi/openapi.json` and commit it";

#[tokio::test]
async fn the_served_document_equals_the_committed_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let served: Value = app
        .http
        .get(app.url("/api-docs/openapi.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let committed: Value = serde_json::from_str(COMMITTED).expect("openapi/openapi.json is JSON");
    let generated: Value = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    assert_eq!(
        generated, committed,
        "openapi/openapi.json is out of date: {REGENERATE}"
    );
    assert_eq!(
        served, committed,
        "the served spec differs from openapi/openapi.json: {REGENERATE}"
    );
    let swagger = app
        .http
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .expect("get");
    assert_eq!(swagger.status(), 200);
    assert!(
        swagger.text().await.expect("text").contains("swagger"),
        "Swagger UI is served"
    );
}

/// openapi-spec-validator (pinned with openapi-core in tests/contract/requirements.txt)
/// holds the committed document against the OpenAPI 3.1 schema; any error fails.
#[test]
fn an_independent_validator_finds_no_error_in_the_committed_document() {
    let document = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let requirements = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/contract/requirements.txt"
    );
    let validate = [
        "-m",
        "openapi_spec_validator",
        "--schema",
        "3.1",
        "--validation-errors",
        "all",
        document,
    ];
    let out = python_with(
        "pydeps-openapi-core",
        "openapi_core",
        &["--no-deps", "-r", requirements],
        &validate,
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && printed.trim_end().ends_with(": OK"),
        "openapi-spec-validator:\n{printed}"
    );
}

#[test]
fn every_api_operation_documents_its_security_and_error_answers() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    assert!(spec["components"]["securitySchemes"]["bearer_auth"]["scheme"] == "bearer");
    let mut operations = 0;
    let mut public = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            assert!(
                responses.keys().any(|status| status.starts_with('4')),
                "{method} {path} documents no client error"
            );
            if operation["security"] == serde_json::json!([]) {
                public.push(format!("{method} {path}"));
            }
            if path.starts_with("/agent/v1/") && path != "/agent/v1/enroll" {
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{"agent_token": []}]),
                    "{method} {path} security"
                );
                for status in ["401", "429", "500"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
            }
            if !path.starts_with("/api/v1/") {
                continue;
            }
            operations += 1;
            // The roles each accepts (`auth::Access::roles_for`): reads either administrator role.
            let roles = if method == "get" {
                serde_json::json!([{"bearer_auth": ["partner_admin"]}, {"bearer_auth": ["readonly_admin"]}])
            } else {
                serde_json::json!([{"bearer_auth": ["partner_admin"]}])
            };
            assert_eq!(operation["security"], roles, "{method} {path} security");
            assert!(
                operation["description"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(&format!(
                        "Roles: `{}`.",
                        if method == "get" {
                            "partner_admin` or `readonly_admin"
                        } else {
                            "partner_admin"
                        }
                    ))),
                "{method} {path}: the description names the roles"
            );
            for status in ["400", "401", "403", "500"] {
                let response = &responses[status];
                assert!(
                    response["$ref"].as_str().is_some(),
                    "{method} {path} does not document {status}"
                );
            }
            let ids_in_path = path.contains('{');
            if ids_in_path {
                assert!(
                    responses.contains_key("404"),
                    "{method} {path} does not document 404"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
    }
    assert!(
        operations >= 6,
        "the workspace operations were all seen ({operations})"
    );
    // Public means `security: []`, said on purpose; an operation that names no scheme is not public by accident.
    assert_eq!(
        public,
        ["post /agent/v1/enroll", "get /healthz", "get /readyz"],
        "the public operations"
    );
    for (name, response) in spec["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        assert!(
            response["content"]["application/problem+json"].is_object(),
            "{name} is not problem+json"
        );
    }
}

/// What the derive cannot say is added to the whole document: every cursor's
/// alphabet, and the rules across fields (at least one of them, not null).
#[test]
fn paging_and_cross_field_rules_are_declared() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    let mut cursors = 0;
    for operation in spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("item").values())
    {
        for parameter in operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == "cursor")
        {
            assert_eq!(
                parameter["schema"]["pattern"], "^[A-Za-z0-9_-]+$",
                "{parameter}"
            );
            cursors += 1;
        }
    }
    assert!(cursors >= 12, "every listing pages ({cursors} cursors)");
    for (schema, fields) in [
        (
            "UpdateWorkspace",
            ["name", "source", "target", "limits", "provisioning"].as_slice(),
        ),
        ("CreateMigration", &["precheck_id", "selection"]),
    ] {
        let any = spec["components"]["schemas"][schema]["allOf"][1]["anyOf"]
            .as_array()
            .expect("an anyOf");
        let required: Vec<&str> = any
            .iter()
            .filter_map(|a| a["required"][0].as_str())
            .collect();
        assert_eq!(required, fields, "{schema}");
    }
}

/// Every reusable part of the document is used: a schema or response that nothing
/// refers to is dead weight for clients (and redocly's `no-unused-components`).
#[test]
fn every_component_is_referred_to() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    let text = spec.to_string();
    for kind in ["schemas", "responses"] {
        for name in spec["components"][kind]
            .as_object()
            .expect("components")
            .keys()
        {
            let reference = format!("\"#/components/{kind}/{name}\"");
            assert!(
                text.contains(&reference),
                "components/{kind}/{name} is never used"
            );
        }
    }
}

/// The service refuses a field it does not know in any body, so every object a
/// request body reaches says `additionalProperties: false` (the alternatives of an
/// `anyOf` only add a rule to an object that says it already).
#[test]
fn every_object_a_request_body_reaches_is_closed() {
    fn walk(
        spec: &Value,
        schema: &Value,
        at: &str,
        seen: &mut Vec<String>,
        open: &mut Vec<String>,
    ) {
        if let Some(name) = schema["$ref"].as_str() {
            if !seen.iter().any(|s| s == name) {
                seen.push(name.to_string());
                let component = &spec["components"]["schemas"]
                    [name.trim_start_matches("#/components/schemas/")];
                walk(spec, component, name, seen, open);
            }
            return;
        }
        if schema["properties"].is_object() && schema["additionalProperties"] != false {
            open.push(at.to_string());
        }
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            walk(spec, property, &format!("{at}/{name}"), seen, open);
        }
        if schema["items"].is_object() {
            walk(spec, &schema["items"], &format!("{at}/items"), seen, open);
        }
        for union in ["oneOf", "allOf"] {
            for part in schema[union].as_array().into_iter().flatten() {
                walk(spec, part, at, seen, open);
            }
        }
    }
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    let (mut seen, mut open, mut bodies) = (Vec::new(), Vec::new(), 0);
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if let Some(schema) =
                operation["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                bodies += 1;
                walk(
                    &spec,
                    &Value::Object(schema.clone()),
                    &format!("{method} {path}"),
                    &mut seen,
                    &mut open,
                );
            }
        }
    }
    assert!(bodies >= 9, "the request bodies were found ({bodies})");
    assert!(
        open.is_empty(),
        "objects that do not say additionalProperties: false: {open:?}"
    );
}

/// A pattern the document declares is what schemathesis draws values from, so it
/// must accept exactly what the service does: the webhook secret (`whsec_` and the
/// canonical base64 of 24 to 64 bytes) against the service's own parser.
#[test]
fn the_webhook_secret_pattern_accepts_exactly_what_the_service_does() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use migration_portal::domain::webhooks::Secret;

    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    let pattern = spec["components"]["schemas"]["CreateWebhook"]["properties"]["secret"]["pattern"]
        .as_str()
        .expect("a pattern");
    let pattern = regex::Regex::new(pattern).expect("the pattern is a regex");
    let mut cases = std::collections::BTreeSet::new();
    for len in 0..=80usize {
        let encoded = STANDARD.encode((0..len).map(|i| (i * 37 + 11) as u8).collect::<Vec<u8>>());
        cases.insert(format!("whsec_{encoded}"));
        cases.insert(format!("whsec_{}", encoded.trim_end_matches('=')));
        cases.insert(format!("whsec_{encoded}="));
        cases.insert(format!("whsec_{encoded}").replace('A', "-"));
        cases.insert(encoded.clone());
        // The last character before the padding with bits the encoding leaves zero set.
        if let Some(at) = encoded.find('=') {
            let mut bytes = encoded.clone().into_bytes();
            bytes[at - 1] = if bytes[at - 1] == b'/' { b'+' } else { b'/' };
            cases.insert(format!(
                "whsec_{}",
                String::from_utf8(bytes).expect("ascii")
            ));
        }
    }
    let mut accepted = 0;
    for case in &cases {
        let parsed = Secret::parse(case).is_some();
        accepted += usize::from(parsed);
        assert_eq!(pattern.is_match(case), parsed, "{case}");
    }
    assert_eq!(accepted, 41, "24 to 64 bytes, each once");
}
