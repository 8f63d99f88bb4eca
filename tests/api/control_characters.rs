//! No control character reaches a handler, on either database: for every
//! operation the generated document lists, NUL and ESC in each string path
//! parameter, query parameter and JSON body string (keys too) are refused with
//! problem+json and write nothing, on a real workspace where the rest of the
//! request is valid; the same requests without them are not refused so.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::migrations::{fast_world, small};
use crate::world::World;

/// NUL (PostgreSQL cannot store it) and ESC (it rewrites terminals).
const CONTROLS: [char; 2] = ['\u{0}', '\u{1b}'];

/// A synced `small` install base with a pre-check, a finished migration, a
/// webhook with a delivery, an enrolled agent with a log: every id a path names.
struct Fixture {
    world: World,
    /// Path parameter values by name (the operation id under `id` of `/operations`).
    ids: HashMap<&'static str, String>,
    operation: String,
    agent_token: String,
    /// Valid bodies by operation; together they hold every string the body may.
    bodies: HashMap<String, Vec<Value>>,
}

async fn fixture(backend: Backend) -> Fixture {
    let base = small();
    let world = fast_world(backend, base.clone()).await;
    let synced = world.sync().await;
    let operation = synced["id"].as_str().expect("operation id").to_string();
    let precheck = world.whole_precheck(&base).await;
    let worker = world.run_worker();
    let location = world
        .start_migration(json!({"precheck_id": precheck["id"]}))
        .await;
    let migration = world.wait_over(&location).await;
    worker.stop().await;
    let user = &base.users[0];
    let machine = base
        .machines
        .iter()
        .find(|m| m.user_id == user.id)
        .expect("a machine of the first user");
    let other_machine = base
        .machines
        .iter()
        .find(|m| m.id != machine.id)
        .expect("another machine");
    let secret = world.enrollment_secret().await;
    let agent_token = world.agent_token(&secret, &machine.id).await;
    let log = world
        .app
        .http
        .post(world.app.url("/agent/v1/logs"))
        .bearer_auth(&agent_token)
        .body("step 1\n")
        .send()
        .await
        .expect("log");
    assert_eq!(log.status(), 201);
    let log: Value = log.json().await.expect("json");
    let webhook = world
        .subscribe("http://127.0.0.1:9/hook", &["sync.completed"])
        .await;
    let webhook_id = webhook["id"].as_str().expect("webhook id").to_string();
    let test = world
        .app
        .http
        .post(
            world
                .app
                .url(&world.path(&format!("/webhooks/{webhook_id}/test"))),
        )
        .bearer_auth(&world.token)
        .send()
        .await
        .expect("test");
    assert_eq!(test.status(), 200);
    let deliveries = world
        .get(&world.path(&format!("/webhooks/{webhook_id}/deliveries")))
        .await;
    let text = |v: &Value| v.as_str().expect("an id").to_string();
    let ids = HashMap::from([
        ("id", world.workspace.to_string()),
        ("group_id", base.truth.root_group_id.clone()),
        ("user_id", user.id.clone()),
        ("machine_id", machine.id.clone()),
        ("log_id", text(&log["log_id"])),
        ("migration_id", text(&migration["id"])),
        ("precheck_id", text(&precheck["id"])),
        ("subscription_id", webhook_id),
        ("delivery_id", text(&deliveries["items"][0]["id"])),
        ("section", "groups".to_string()),
    ]);
    let (login, password) = world.source.credentials();
    let client = world.cloud.root_client();
    let source = json!({"url": world.source.base_url(), "login": login, "password": password});
    let target = json!({"url": world.cloud.base_url(), "client_id": client.client_id, "client_secret": client.client_secret});
    let hook = "http://127.0.0.1:9/hook";
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 24])
    );
    let workspace = "/api/v1/workspaces/{id}";
    let rule = json!({"application": "backup", "edition": "standard", "name": "workstations", "quota": {"kind": "unlimited"}});
    let profile = json!({"customer": [rule], "partner": [rule], "pricing_mode": "trial", "existing_customers": "leave"});
    let bodies = HashMap::from([
        (
            "post /api/v1/workspaces".to_string(),
            vec![
                json!({"name": "Another", "source": {"url": crate::helpers::NOWHERE, "login": "l", "password": "p"}, "target": {"url": crate::helpers::NOWHERE, "client_id": "c", "client_secret": "s"}, "provisioning": profile}),
            ],
        ),
        (
            format!("patch {workspace}"),
            vec![
                json!({"name": "Synced", "source": source, "target": target, "provisioning": profile}),
            ],
        ),
        (
            format!("post {workspace}/prechecks"),
            vec![
                json!({"selection": [{"kind": "group", "id": base.truth.root_group_id}], "check_logins": false, "options": {"provisioning": profile}}),
            ],
        ),
        (
            format!("post {workspace}/migrations"),
            vec![
                json!({"selection": [{"kind": "user", "id": user.id}], "replan": true, "options": {"provisioning": profile}}),
                json!({"precheck_id": precheck["id"], "replan": true}),
            ],
        ),
        (
            format!("post {workspace}/webhooks"),
            vec![
                json!({"url": hook, "event_types": ["sync.completed"], "description": "PSA", "secret": whsec}),
            ],
        ),
        (
            format!("patch {workspace}/webhooks/{{subscription_id}}"),
            vec![
                json!({"url": hook, "event_types": ["sync.completed"], "description": "PSA", "enabled": true}),
            ],
        ),
        (
            format!("post {workspace}/webhooks/{{subscription_id}}/rotate-secret"),
            vec![json!({"grace_secs": 0})],
        ),
        (
            "post /agent/v1/enroll".to_string(),
            vec![
                json!({"workspace_id": world.workspace, "enrollment_secret": secret, "machine_id": other_machine.id}),
            ],
        ),
        (
            "post /agent/v1/events".to_string(),
            vec![
                json!({"seq": 1_000, "kind": "failed", "code": "install_error", "message": "msiexec exited with 1603"}),
            ],
        ),
    ]);
    Fixture {
        world,
        ids,
        operation,
        agent_token,
        bodies,
    }
}

/// `text` with `c` in its middle.
fn with_control(text: &str, c: char) -> String {
    let middle = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    format!("{}{c}{}", &text[..middle], &text[middle..])
}

/// A `$ref` resolved against the document's components.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => resolve(spec, &spec["components"]["schemas"][name]),
        None => schema,
    }
}

fn is_string(schema: &Value) -> bool {
    schema["type"] == "string"
        || schema["type"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("string")))
}

/// The JSON Pointer of every string a body of `schema` may hold (the first element of arrays).
fn string_pointers(spec: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if is_string(schema) && !out.contains(&at.to_string()) {
        out.push(at.to_string());
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        string_pointers(spec, property, &format!("{at}/{name}"), out);
    }
    if schema["items"].is_object() {
        string_pointers(spec, &schema["items"], &format!("{at}/0"), out);
    }
    for union in ["oneOf", "allOf", "anyOf"] {
        for part in schema[union].as_array().into_iter().flatten() {
            string_pointers(spec, part, at, out);
        }
    }
}

/// What each table holds, by row count: a refused request must change none.
async fn row_counts(db: &DatabaseConnection) -> BTreeMap<String, i64> {
    let backend = db.get_database_backend();
    let tables = match backend {
        DatabaseBackend::Postgres => {
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    };
    let mut counts = BTreeMap::new();
    for row in db
        .query_all_raw(Statement::from_string(backend, tables))
        .await
        .expect("tables")
    {
        let name: String = row.try_get("", "name").expect("name");
        let sql = format!("SELECT COUNT(*) AS n FROM \"{name}\"");
        let count = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .expect("count")
            .expect("a row");
        counts.insert(name, count.try_get::<i64>("", "n").expect("n"));
    }
    counts
}

struct Operation<'a> {
    method: String,
    path: String,
    spec: &'a Value,
}

impl Fixture {
    fn path_value(&self, op: &Operation, name: &str) -> String {
        if op.path.starts_with("/api/v1/operations/") {
            return self.operation.clone();
        }
        self.ids
            .get(name)
            .unwrap_or_else(|| {
                panic!(
                    "no value for path parameter {name} of {} {}",
                    op.method, op.path
                )
            })
            .clone()
    }

    fn query_value(&self, spec: &Value, name: &str, schema: &Value) -> String {
        if let Some(first) = resolve(spec, schema)["enum"][0].as_str() {
            return first.to_string();
        }
        match name {
            "q" => "a",
            "cursor" => "AQ",
            "subject" => &self.ids["machine_id"],
            "subject_kind" => "machine",
            "kind" => "agent.",
            "status" => "failed",
            "since" => &self.ids["precheck_id"],
            "migration_id" => &self.ids["migration_id"],
            other => panic!("no value for query parameter {other}"),
        }
        .to_string()
    }

    /// Sends `op` with its path parameters from `path`, query pairs and body.
    async fn send(
        &self,
        op: &Operation<'_>,
        path: &HashMap<String, String>,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut url = op.path.clone();
        for (name, value) in path {
            url = url.replace(&format!("{{{name}}}"), value);
        }
        let method =
            reqwest::Method::from_bytes(op.method.to_uppercase().as_bytes()).expect("method");
        let mut request = self
            .world
            .app
            .http
            .request(method, self.world.app.url(&url))
            .query(query);
        if op.path.starts_with("/api/v1/") {
            request = request.bearer_auth(&self.world.token);
        } else if op.path.starts_with("/agent/v1/") && op.path != "/agent/v1/enroll" {
            request = request.bearer_auth(&self.agent_token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }
}

/// Refused with 400 or 422 problem+json, by the control-character rule.
async fn assert_refused(response: reqwest::Response, case: &str, check: impl Fn(&Value) -> bool) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let problem: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        matches!(status, 400 | 422) && content_type == "application/problem+json",
        "{case}: {status} {content_type} {problem}"
    );
    assert!(check(&problem), "{case}: {problem}");
}

fn control_refusal(problem: &Value) -> bool {
    problem["code"] == "control_character"
        || problem["errors"].as_array().into_iter().flatten().any(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("control characters"))
        })
}

/// Not refused for control characters, and no server error.
async fn assert_not_refused(response: reqwest::Response, case: &str) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        status < 500 && !control_refusal(&body),
        "{case} without a control character: {status} {body}"
    );
}

#[tokio::test]
async fn control_characters_in_any_parameter_or_body_string_are_refused_and_change_nothing() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    for backend in Backend::enabled() {
        eprintln!("-- on {backend:?}");
        let fixture = fixture(backend).await;
        let mut operations: Vec<Operation> = spec["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .iter()
                    .map(|(method, op)| Operation {
                        method: method.clone(),
                        path: path.clone(),
                        spec: op,
                    })
            })
            .collect();
        // What deletes goes last, the workspace last of all: the others need what they remove.
        operations.sort_by_key(|op| (op.method == "delete", std::cmp::Reverse(op.path.len())));
        // A client log is a file, not text: control characters in it are kept (sent before the sweep deletes the workspace).
        let log = fixture
            .world
            .app
            .http
            .post(fixture.world.app.url("/agent/v1/logs"))
            .bearer_auth(&fixture.agent_token)
            .body("a\u{0}b\u{1b}[31m")
            .send()
            .await
            .expect("log");
        assert_eq!(log.status(), 201);
        let mut tried = 0;
        for op in &operations {
            let name = format!("{} {}", op.method, op.path);
            let parameters: Vec<&Value> = op.spec["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            let path: HashMap<String, String> = parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    let n = p["name"].as_str().expect("name");
                    (n.to_string(), fixture.path_value(op, n))
                })
                .collect();
            let required: Vec<(String, String)> = parameters
                .iter()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| {
                    (
                        p["name"].as_str().expect("name").to_string(),
                        fixture.query_value(&spec, p["name"].as_str().expect("name"), &p["schema"]),
                    )
                })
                .collect();
            let body_schema = &op.spec["requestBody"]["content"]["application/json"]["schema"];
            let bodies = if body_schema.is_object() {
                fixture
                    .bodies
                    .get(&name)
                    .unwrap_or_else(|| panic!("no valid body for {name}"))
                    .clone()
            } else {
                Vec::new()
            };
            let body = bodies.first().cloned();
            let before = row_counts(&fixture.world.db).await;
            // What a PATCH changes, read back after its refusals.
            let read = Operation {
                method: "get".into(),
                path: op.path.clone(),
                spec: op.spec,
            };
            let resource_before = if op.method == "patch" {
                Some(
                    fixture
                        .send(&read, &path, &[], None)
                        .await
                        .text()
                        .await
                        .expect("text"),
                )
            } else {
                None
            };
            for c in CONTROLS {
                for parameter in parameters
                    .iter()
                    .filter(|p| is_string(resolve(&spec, &p["schema"])))
                {
                    let n = parameter["name"].as_str().expect("name");
                    let case = format!(
                        "{name}: U+{:04X} in {} parameter {n}",
                        u32::from(c),
                        parameter["in"]
                    );
                    let named = |problem: &Value| {
                        control_refusal(problem)
                            && problem["detail"]
                                .as_str()
                                .is_some_and(|d| d.contains(&format!("`{n}`")))
                    };
                    match parameter["in"].as_str() {
                        Some("path") => {
                            let mut bad = path.clone();
                            bad.insert(
                                n.to_string(),
                                with_control(&path[n], c)
                                    .replace(c, &format!("%{:02X}", u32::from(c))),
                            );
                            assert_refused(
                                fixture.send(op, &bad, &required, body.as_ref()).await,
                                &case,
                                named,
                            )
                            .await;
                        }
                        Some("query") => {
                            let value = fixture.query_value(&spec, n, &parameter["schema"]);
                            let mut query: Vec<(String, String)> =
                                required.iter().filter(|(k, _)| k != n).cloned().collect();
                            query.push((n.to_string(), with_control(&value, c)));
                            assert_refused(
                                fixture.send(op, &path, &query, body.as_ref()).await,
                                &case,
                                named,
                            )
                            .await;
                            let mut clean: Vec<(String, String)> =
                                required.iter().filter(|(k, _)| k != n).cloned().collect();
                            clean.push((n.to_string(), value));
                            assert_not_refused(
                                fixture.send(op, &path, &clean, body.as_ref()).await,
                                &case,
                            )
                            .await;
                        }
                        _ => continue,
                    }
                    tried += 1;
                }
                // A query parameter the document does not list is read all the same.
                let mut unlisted = required.clone();
                unlisted.push((with_control("xy", c), "1".into()));
                assert_refused(
                    fixture.send(op, &path, &unlisted, body.as_ref()).await,
                    &format!("{name}: an unlisted parameter's name"),
                    control_refusal,
                )
                .await;
                let Some(body) = &body else { continue };
                let mut pointers = Vec::new();
                string_pointers(&spec, body_schema, "", &mut pointers);
                for pointer in pointers {
                    let holding = bodies
                        .iter()
                        .find_map(|b| b.pointer(&pointer).and_then(Value::as_str).map(|v| (b, v)));
                    let Some((body, value)) = holding else {
                        panic!("no valid body of {name} holds a string at {pointer}: add one")
                    };
                    let mut bad = body.clone();
                    *bad.pointer_mut(&pointer).expect("pointer") = json!(with_control(value, c));
                    let case = format!("{name}: U+{:04X} at {pointer}", u32::from(c));
                    assert_refused(
                        fixture.send(op, &path, &required, Some(&bad)).await,
                        &case,
                        |p| control_refusal(p) && p["errors"][0]["pointer"] == pointer,
                    )
                    .await;
                    tried += 1;
                }
                let mut bad = body.clone();
                let key = with_control("note", c);
                bad[&key] = json!(1);
                let pointer = format!("/{key}");
                let case = format!("{name}: U+{:04X} in a key", u32::from(c));
                assert_refused(
                    fixture.send(op, &path, &required, Some(&bad)).await,
                    &case,
                    |p| control_refusal(p) && p["errors"][0]["pointer"] == pointer,
                )
                .await;
            }
            assert_eq!(
                row_counts(&fixture.world.db).await,
                before,
                "{name}: a refused request wrote"
            );
            if let Some(before) = resource_before {
                let after = fixture
                    .send(&read, &path, &[], None)
                    .await
                    .text()
                    .await
                    .expect("text");
                assert_eq!(after, before, "{name}: a refused change was applied");
            }
            // The same requests as they should be: valid, so never refused for a control character.
            for body in bodies
                .iter()
                .map(Some)
                .chain(bodies.is_empty().then_some(None))
            {
                assert_not_refused(fixture.send(op, &path, &required, body).await, &name).await;
            }
        }
        assert!(
            tried > 100,
            "every string parameter and body string was tried ({tried})"
        );
    }
}

/// Source data is not the caller's input: a name or login holding NUL is kept
/// (PostgreSQL stores it escaped in the JSON, the search text without it) and
/// found by search; an id holding one cannot be stored and fails the sync with
/// that reason, leaving the snapshot as it was.
#[tokio::test]
async fn a_nul_in_source_data_is_stored_when_it_is_text_and_named_when_it_is_an_id() {
    for backend in Backend::enabled() {
        eprintln!("-- on {backend:?}");
        let mut base = small();
        let group = base
            .groups
            .iter()
            .position(|g| g.parent_id.is_some())
            .expect("a subgroup");
        base.groups[group].name = format!("Nul\u{0}Group{}", base.groups[group].name);
        base.users[0].login = format!("nul\u{0}login{}", base.users[0].login);
        let world = crate::world::world(backend, base.clone()).await;
        let operation = world.sync().await;
        assert!(operation["error"].is_null(), "{operation}");
        let group_id = &base.groups[group].id;
        let detail = world.get(&world.path(&format!("/groups/{group_id}"))).await;
        assert_eq!(detail["name"], base.groups[group].name.as_str(), "{detail}");
        let hits = world.get(&world.path("/hierarchy/search?q=nulgroup")).await;
        assert!(
            hits["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|h| h["id"] == group_id.as_str()),
            "{hits}"
        );
        let user = world
            .get(&world.path(&format!("/users/{}", base.users[0].id)))
            .await;
        assert_eq!(user["login"], base.users[0].login.as_str(), "{user}");
        // The plan leaves it out of the admin's login, and says so.
        let precheck = world.whole_precheck(&base).await;
        let groups = world.section(&precheck, "groups").await;
        let planned = groups
            .iter()
            .find(|g| g["group_id"] == group_id.as_str())
            .expect("the group is planned");
        assert_eq!(
            planned["target_login"],
            base.groups[group].name.replace('\0', "").as_str(),
            "{planned}"
        );
        assert!(
            planned["segments"]
                .as_array()
                .expect("segments")
                .contains(&json!({"kind": "removed", "text": "\u{0}"})),
            "{planned}"
        );

        let mut broken = base.clone();
        let machine = broken.machines.len() - 1;
        broken.machines[machine].id = format!("m\u{0}{}", broken.machines[machine].id);
        let world = crate::world::world(backend, broken).await;
        let operation = world.sync().await;
        let error = operation["error"]["message"].as_str().unwrap_or_default();
        assert!(
            error.contains("U+0000") && error.contains("machine") && !error.contains("database"),
            "{operation}"
        );
        let hierarchy = world
            .app
            .get(&world.path("/hierarchy"), &world.token)
            .send()
            .await
            .expect("get");
        assert_eq!(hierarchy.status(), 409, "no snapshot was taken");
    }
}

/// The pointers of every object in `value`, itself included.
fn object_pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            out.push(at.to_string());
            for (key, field) in fields {
                object_pointers(
                    field,
                    &format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, item)| object_pointers(item, &format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// Every object of every request body refuses a field it does not know (400 naming
/// it, nothing written), as the document declares with `additionalProperties: false`:
/// a client's typo is never silently ignored, and schema-valid data is never refused.
#[tokio::test]
async fn an_unknown_field_in_any_object_of_any_body_is_refused_and_changes_nothing() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    for backend in Backend::enabled() {
        let fixture = fixture(backend).await;
        let (mut with_body, mut tried) = (BTreeSet::new(), BTreeSet::new());
        for (path_template, item) in spec["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let op = Operation {
                    method: method.clone(),
                    path: path_template.clone(),
                    spec: operation,
                };
                let name = format!("{method} {path_template}");
                if !operation["requestBody"]["content"]["application/json"].is_object()
                    || method == "delete"
                {
                    continue;
                }
                with_body.insert(name.clone());
                let parameters: Vec<&Value> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect();
                let path: HashMap<String, String> = parameters
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().expect("name"))
                    .map(|n| (n.to_string(), fixture.path_value(&op, n)))
                    .collect();
                let required: Vec<(String, String)> = parameters
                    .iter()
                    .filter(|p| p["in"] == "query" && p["required"] == true)
                    .map(|p| {
                        (
                            p["name"].as_str().expect("name").to_string(),
                            fixture.query_value(
                                &spec,
                                p["name"].as_str().expect("name"),
                                &p["schema"],
                            ),
                        )
                    })
                    .collect();
                for body in fixture
                    .bodies
                    .get(&name)
                    .unwrap_or_else(|| panic!("no valid body for {name}"))
                {
                    let mut objects = Vec::new();
                    object_pointers(body, "", &mut objects);
                    for pointer in objects {
                        let mut bad = body.clone();
                        bad.pointer_mut(&pointer)
                            .and_then(Value::as_object_mut)
                            .expect("an object")
                            .insert("unexpected_field".into(), json!(1));
                        let before = row_counts(&fixture.world.db).await;
                        let response = fixture.send(&op, &path, &required, Some(&bad)).await;
                        let status = response.status().as_u16();
                        let problem: Value = response.json().await.unwrap_or(Value::Null);
                        let case = format!("{name}: an unknown field in the object at '{pointer}'");
                        assert_eq!(status, 400, "{case}: {problem}");
                        let named = problem["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("unknown field `unexpected_field`"))
                            || problem["errors"][0]["pointer"]
                                .as_str()
                                .is_some_and(|p| p.ends_with("/unexpected_field"));
                        assert!(
                            problem["code"] == "invalid_body" && named,
                            "{case}: {problem}"
                        );
                        assert_eq!(
                            row_counts(&fixture.world.db).await,
                            before,
                            "{case}: a refused request wrote"
                        );
                        tried.insert(name.clone());
                    }
                }
            }
        }
        assert!(
            !with_body.is_empty() && tried == with_body,
            "every operation with a body was tried: {tried:?} of {with_body:?}"
        );
    }
}
