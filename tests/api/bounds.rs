//! Every bounded input at its bound, on either database: the largest value the
//! document declares is accepted and one past it is refused, naming the input
//! (a JSON Pointer for bodies, 400 for query parameters); and every upper bound
//! the document declares on what a client sends is among those tried.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{Backend, NOWHERE};
use crate::migrations::{fast_world, small};
use crate::world::World;

/// Where the document declares a bound: a component's property, or an operation's parameter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Declared {
    Property(&'static str, &'static str),
    Parameter(&'static str, &'static str),
}

/// What a case sends: method, path, query pairs, JSON body; who sends it.
struct Request {
    method: reqwest::Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    agent: bool,
}

struct Case {
    declared: Vec<Declared>,
    /// The value the document declares (`maxLength`, `maximum`, `maxItems` or `minimum`).
    keyword: &'static str,
    limit: Value,
    /// The input at the bound, and just past it.
    at: Value,
    past: Value,
    /// Where the refusal points: a body's JSON Pointer, or the query parameter's name.
    input: &'static str,
    request: Box<dyn Fn(Value) -> Request>,
    /// Bounds another part of the work declares: checked once declared.
    declared_elsewhere: bool,
}

fn text(n: usize) -> Value {
    json!("x".repeat(n))
}

fn url(n: usize) -> Value {
    let base = "http://127.0.0.1:9/";
    json!(format!("{base}{}", "x".repeat(n - base.len())))
}

fn whsec(bytes: usize) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes])
    )
}

/// `body` with `value` at `pointer` (made if missing).
fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    let mut at = &mut body;
    for key in pointer.split('/').skip(1) {
        at = match key.parse::<usize>() {
            Ok(i) if at.is_array() => &mut at[i],
            _ => &mut at[key],
        };
    }
    *at = value;
    body
}

fn post(path: String, body: Value) -> Request {
    Request {
        method: reqwest::Method::POST,
        path,
        query: Vec::new(),
        body: Some(body),
        agent: false,
    }
}

fn get(path: String, query: Vec<(&str, String)>) -> Request {
    Request {
        method: reqwest::Method::GET,
        path,
        query: query.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        body: None,
        agent: false,
    }
}

fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

fn cases(world: &World, secret: &str, webhook: &str) -> Vec<Case> {
    use Declared::{Parameter, Property};
    let workspace = world.path("");
    let new_workspace = json!({"name": "n", "source": {"url": NOWHERE, "login": "l", "password": "p"}, "target": {"url": NOWHERE, "client_id": "c", "client_secret": "s"}});
    let limits = json!({"source": {"rate_per_sec": 1, "concurrency": 1}, "target": {"rate_per_sec": 1, "concurrency": 1}});
    let hook = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["sync.completed"]});
    let types = [
        "sync.completed",
        "precheck.completed",
        "migration.completed",
        "migration.item_failed",
        "machine.migrated",
        "machine.failed",
        "machine.manual_action_required",
        "machine.not_seen",
    ];
    let enrollment =
        json!({"workspace_id": world.workspace, "enrollment_secret": secret, "machine_id": "m"});
    let report = json!({"seq": 1, "kind": "failed", "code": "c", "message": "m"});
    let precheck = json!({"selection": [{"kind": "group", "id": "g"}], "check_logins": false});
    let body_case = |declared: Vec<Declared>,
                     keyword,
                     limit: Value,
                     at,
                     past,
                     input: &'static str,
                     make: Box<dyn Fn(Value) -> Request>| Case {
        declared,
        keyword,
        limit,
        at,
        past,
        input,
        request: make,
        declared_elsewhere: false,
    };
    let create_workspace = |pointer: &'static str| {
        let body = new_workspace.clone();
        Box::new(move |v| post("/api/v1/workspaces".into(), with(body.clone(), pointer, v)))
            as Box<dyn Fn(Value) -> Request>
    };
    let to = |base: &Value,
              path: String,
              pointer: &'static str,
              method: reqwest::Method,
              agent: bool| {
        let body = base.clone();
        Box::new(move |v| Request {
            method: method.clone(),
            path: path.clone(),
            query: Vec::new(),
            body: Some(with(body.clone(), pointer, v)),
            agent,
        }) as Box<dyn Fn(Value) -> Request>
    };
    let query = |path: String, name: &'static str, fixed: Vec<(&'static str, String)>| {
        Box::new(move |v| {
            let mut pairs = fixed.clone();
            pairs.push((name, plain(&v)));
            get(path.clone(), pairs)
        }) as Box<dyn Fn(Value) -> Request>
    };
    let post_ = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let rule = json!({"application": "backup", "edition": "standard", "name": "workstations"});
    let profile = json!({"provisioning": {"customer": [rule], "partner": [rule]}});
    let items = |n: usize| {
        json!(
            (0..n)
                .map(|i| json!({"application": "backup", "name": format!("item_{i}")}))
                .collect::<Vec<_>>()
        )
    };
    let safe = 9_007_199_254_740_991_u64;
    let mut cases = vec![
        body_case(
            vec![Property("ItemRule", "application")],
            "maxLength",
            json!(64),
            text(64),
            text(65),
            "/provisioning/customer/0/application",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/customer/0/application",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("ItemRule", "edition")],
            "maxLength",
            json!(64),
            text(64),
            text(65),
            "/provisioning/partner/0/edition",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/partner/0/edition",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("ItemRule", "name")],
            "maxLength",
            json!(64),
            text(64),
            text(65),
            "/provisioning/customer/0/name",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/customer/0/name",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("Profile", "customer")],
            "maxItems",
            json!(64),
            items(64),
            items(65),
            "/provisioning/customer",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/customer",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("Profile", "partner")],
            "maxItems",
            json!(64),
            items(64),
            items(65),
            "/provisioning/partner",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/partner",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("QuotaRule", "value")],
            "maximum",
            json!(safe),
            json!({"kind": "fixed", "value": safe}),
            json!({"kind": "fixed", "value": safe + 1}),
            "/provisioning/customer/0/quota",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/customer/0/quota",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("QuotaRule", "overage")],
            "maximum",
            json!(safe),
            json!({"kind": "fixed", "value": 1, "overage": safe}),
            json!({"kind": "fixed", "value": 1, "overage": safe + 1}),
            "/provisioning/partner/0/quota",
            to(
                &profile,
                workspace.clone(),
                "/provisioning/partner/0/quota",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![
                Property("CreateWorkspace", "name"),
                Property("UpdateWorkspace", "name"),
            ],
            "maxLength",
            json!(200),
            text(200),
            text(201),
            "/name",
            create_workspace("/name"),
        ),
        body_case(
            vec![Property("SourceCredentials", "url")],
            "maxLength",
            json!(2048),
            url(2048),
            url(2049),
            "/source/url",
            create_workspace("/source/url"),
        ),
        body_case(
            vec![Property("SourceCredentials", "login")],
            "maxLength",
            json!(256),
            text(256),
            text(257),
            "/source/login",
            create_workspace("/source/login"),
        ),
        body_case(
            vec![Property("SourceCredentials", "password")],
            "maxLength",
            json!(1024),
            text(1024),
            text(1025),
            "/source/password",
            create_workspace("/source/password"),
        ),
        body_case(
            vec![Property("TargetCredentials", "url")],
            "maxLength",
            json!(2048),
            url(2048),
            url(2049),
            "/target/url",
            create_workspace("/target/url"),
        ),
        body_case(
            vec![Property("TargetCredentials", "client_id")],
            "maxLength",
            json!(256),
            text(256),
            text(257),
            "/target/client_id",
            create_workspace("/target/client_id"),
        ),
        body_case(
            vec![Property("TargetCredentials", "client_secret")],
            "maxLength",
            json!(1024),
            text(1024),
            text(1025),
            "/target/client_secret",
            create_workspace("/target/client_secret"),
        ),
        body_case(
            vec![Property("Limit", "rate_per_sec")],
            "maximum",
            json!(10000),
            json!(10000),
            json!(10001),
            "/limits/source/rate_per_sec",
            to(
                &with(new_workspace.clone(), "/limits", limits.clone()),
                "/api/v1/workspaces".into(),
                "/limits/source/rate_per_sec",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("Limit", "concurrency")],
            "maximum",
            json!(256),
            json!(256),
            json!(257),
            "/limits/target/concurrency",
            to(
                &with(new_workspace.clone(), "/limits", limits.clone()),
                "/api/v1/workspaces".into(),
                "/limits/target/concurrency",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("NodeId", "")],
            "maxLength",
            json!(200),
            text(200),
            text(201),
            "/selection/0/id",
            to(
                &precheck,
                format!("{workspace}/prechecks"),
                "/selection/0/id",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![
                Property("CreatePrecheck", "selection"),
                Property("CreateMigration", "selection"),
            ],
            "maxItems",
            json!(10000),
            json!(vec![json!({"kind": "user", "id": "u"}); 10000]),
            json!(vec![json!({"kind": "user", "id": "u"}); 10001]),
            "/selection",
            to(
                &precheck,
                format!("{workspace}/prechecks"),
                "/selection",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("InitialBackupOptions", "bandwidth_mbps")],
            "maximum",
            json!(1000000),
            json!(1_000_000.0),
            json!(1_000_000.5),
            "/options/initial_backup/bandwidth_mbps",
            to(
                &precheck,
                format!("{workspace}/prechecks"),
                "/options/initial_backup/bandwidth_mbps",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("InitialBackupOptions", "bandwidth_mbps")],
            "minimum",
            json!(0.001),
            json!(0.001),
            json!(0.000_999),
            "/options/initial_backup/bandwidth_mbps",
            to(
                &precheck,
                format!("{workspace}/prechecks"),
                "/options/initial_backup/bandwidth_mbps",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property(
                "InitialBackupOptions",
                "physical_shipping_after_days",
            )],
            "maximum",
            json!(3650),
            json!(3650.0),
            json!(3650.01),
            "/options/initial_backup/physical_shipping_after_days",
            to(
                &precheck,
                format!("{workspace}/prechecks"),
                "/options/initial_backup/physical_shipping_after_days",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![
                Property("CreateWebhook", "url"),
                Property("UpdateWebhook", "url"),
            ],
            "maxLength",
            json!(2048),
            url(2048),
            url(2049),
            "/url",
            to(
                &hook,
                format!("{workspace}/webhooks"),
                "/url",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("CreateWebhook", "description")],
            "maxLength",
            json!(500),
            text(500),
            text(501),
            "/description",
            to(
                &hook,
                format!("{workspace}/webhooks"),
                "/description",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("UpdateWebhook", "description")],
            "maxLength",
            json!(500),
            text(500),
            text(501),
            "/description",
            to(
                &json!({}),
                format!("{workspace}/webhooks/{webhook}"),
                "/description",
                patch.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("CreateWebhook", "secret")],
            "maxLength",
            json!(94),
            json!(whsec(64)),
            json!(format!("{}A", whsec(64))),
            "/secret",
            to(
                &hook,
                format!("{workspace}/webhooks"),
                "/secret",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("Enrollment", "machine_id")],
            "maxLength",
            json!(200),
            text(200),
            text(201),
            "/machine_id",
            to(
                &enrollment,
                "/agent/v1/enroll".into(),
                "/machine_id",
                post_.clone(),
                false,
            ),
        ),
        body_case(
            vec![Property("Seq", "")],
            "maximum",
            json!(9007199254740991_i64),
            json!(9007199254740991_i64),
            json!(9007199254740992_i64),
            "/seq",
            to(
                &report,
                "/agent/v1/events".into(),
                "/seq",
                post_.clone(),
                true,
            ),
        ),
        body_case(
            vec![Property("AgentEvent", "code")],
            "maxLength",
            json!(100),
            text(100),
            text(101),
            "/code",
            to(
                &report,
                "/agent/v1/events".into(),
                "/code",
                post_.clone(),
                true,
            ),
        ),
        body_case(
            vec![Property("AgentEvent", "message")],
            "maxLength",
            json!(2000),
            text(2000),
            text(2001),
            "/message",
            to(
                &report,
                "/agent/v1/events".into(),
                "/message",
                post_.clone(),
                true,
            ),
        ),
        // Declared by the part of the work that documents what was enforced before.
        Case {
            declared_elsewhere: true,
            ..body_case(
                vec![
                    Property("CreateWebhook", "event_types"),
                    Property("UpdateWebhook", "event_types"),
                ],
                "maxItems",
                json!(8),
                json!(types),
                json!([types.to_vec(), vec!["sync.completed"]].concat()),
                "/event_types",
                to(
                    &hook,
                    format!("{workspace}/webhooks"),
                    "/event_types",
                    post_.clone(),
                    false,
                ),
            )
        },
        Case {
            declared_elsewhere: true,
            ..body_case(
                vec![Property("RotateSecret", "grace_secs")],
                "maximum",
                json!(604800),
                json!(604800),
                json!(604801),
                "/grace_secs",
                to(
                    &json!({}),
                    format!("{workspace}/webhooks/{webhook}/rotate-secret"),
                    "/grace_secs",
                    post_.clone(),
                    false,
                ),
            )
        },
        Case {
            declared_elsewhere: true,
            ..body_case(
                vec![Property("Enrollment", "enrollment_secret")],
                "maxLength",
                json!(200),
                text(200),
                text(201),
                "/enrollment_secret",
                to(
                    &enrollment,
                    "/agent/v1/enroll".into(),
                    "/enrollment_secret",
                    post_.clone(),
                    false,
                ),
            )
        },
    ];
    let events = format!("{workspace}/events");
    for name in ["subject", "subject_kind", "kind"] {
        cases.push(body_case(
            vec![Parameter("/api/v1/workspaces/{id}/events", name)],
            "maxLength",
            json!(200),
            text(200),
            text(201),
            name,
            query(events.clone(), name, Vec::new()),
        ));
    }
    cases.push(body_case(
        vec![Parameter("/api/v1/workspaces/{id}/hierarchy/search", "q")],
        "maxLength",
        json!(200),
        text(200),
        text(201),
        "q",
        query(format!("{workspace}/hierarchy/search"), "q", Vec::new()),
    ));
    cases.push(body_case(
        vec![Parameter("/api/v1/workspaces", "limit")],
        "maximum",
        json!(500),
        json!(500),
        json!(501),
        "limit",
        query("/api/v1/workspaces".into(), "limit", Vec::new()),
    ));
    cases.push(body_case(
        vec![
            Parameter(
                "/api/v1/workspaces/{id}/decommission",
                "long_retention_days",
            ),
            Parameter(
                "/api/v1/workspaces/{id}/exports/decommission",
                "long_retention_days",
            ),
        ],
        "maximum",
        json!(36500),
        json!(36500),
        json!(36501),
        "long_retention_days",
        query(
            format!("{workspace}/decommission"),
            "long_retention_days",
            Vec::new(),
        ),
    ));
    cases
}

/// The declared value of `keyword` at `declared`, wherever in the component it is.
fn declared_value(spec: &Value, declared: &Declared, keyword: &str) -> Option<Value> {
    fn find(schema: &Value, property: &str, keyword: &str) -> Option<Value> {
        if property.is_empty() {
            return schema.get(keyword).cloned();
        }
        if let Some(v) = schema["properties"][property].get(keyword) {
            return Some(v.clone());
        }
        let parts = ["oneOf", "allOf", "anyOf"]
            .into_iter()
            .flat_map(|k| schema[k].as_array().cloned().unwrap_or_default());
        parts
            .chain(
                schema["properties"][property]["oneOf"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
            .find_map(|part| find(&part, property, keyword).or_else(|| part.get(keyword).cloned()))
    }
    match declared {
        Declared::Property(component, property) => find(
            &spec["components"]["schemas"][*component],
            property,
            keyword,
        ),
        Declared::Parameter(path, name) => spec["paths"][*path]
            .as_object()?
            .values()
            .flat_map(|op| op["parameters"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == *name)
            .and_then(|p| p["schema"].get(keyword).cloned()),
    }
}

fn same_number(a: &Value, b: &Value) -> bool {
    a.as_f64().zip(b.as_f64()).is_some_and(|(a, b)| a == b)
}

/// Every upper bound declared on a request body's components and on query and path parameters.
fn declared_upper_bounds(spec: &Value) -> BTreeSet<String> {
    fn walk(
        spec: &Value,
        component: &str,
        schema: &Value,
        seen: &mut BTreeSet<String>,
        out: &mut BTreeSet<String>,
    ) {
        if let Some(name) = schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            if seen.insert(name.to_string()) {
                let component = &spec["components"]["schemas"][name];
                for keyword in ["maxLength", "maximum", "maxItems"]
                    .into_iter()
                    .filter(|k| component.get(*k).is_some())
                {
                    out.insert(format!("{name}..{keyword}"));
                }
                walk(spec, name, component, seen, out);
            }
            return;
        }
        for (property, inner) in schema["properties"].as_object().into_iter().flatten() {
            for keyword in ["maxLength", "maximum", "maxItems"] {
                if inner.get(keyword).is_some()
                    || inner["oneOf"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p.get(keyword).is_some())
                {
                    out.insert(format!("{component}.{property}.{keyword}"));
                }
            }
            walk(spec, component, inner, seen, out);
        }
        for key in ["items", "additionalProperties"] {
            if schema[key].is_object() {
                walk(spec, component, &schema[key], seen, out);
            }
        }
        for union in ["oneOf", "allOf", "anyOf"] {
            for part in schema[union].as_array().into_iter().flatten() {
                walk(spec, component, part, seen, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for op in item.as_object().into_iter().flatten().map(|(_, op)| op) {
            for p in op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" || p["in"] == "path")
            {
                for keyword in ["maxLength", "maximum", "maxItems"] {
                    if p["schema"].get(keyword).is_some() {
                        out.insert(format!(
                            "{path}?{}.{keyword}",
                            p["name"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
            if let Some(schema) =
                op["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                walk(
                    spec,
                    "",
                    &Value::Object(schema.clone()),
                    &mut seen,
                    &mut out,
                );
            }
        }
    }
    out
}

fn key(declared: &Declared, keyword: &str) -> String {
    match declared {
        Declared::Property(component, property) => format!("{component}.{property}.{keyword}"),
        Declared::Parameter(path, name) => format!("{path}?{name}.{keyword}"),
    }
}

async fn send(world: &World, agent_token: &str, request: Request) -> (u16, Value) {
    let mut builder = world
        .app
        .http
        .request(request.method, world.app.url(&request.path))
        .query(&request.query);
    builder = if request.agent {
        builder.bearer_auth(agent_token)
    } else {
        builder.bearer_auth(&world.token)
    };
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let response = builder.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Whether the answer refuses `input`: a body's pointer among the errors, or a 400 about the parameter.
fn refuses(status: u16, problem: &Value, input: &str) -> bool {
    if input.starts_with('/') {
        return matches!(status, 400 | 422)
            && problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["pointer"] == input);
    }
    status == 400
        && problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains(input))
}

#[tokio::test]
async fn every_bounded_input_takes_its_bound_and_refuses_one_past_it() {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    for backend in Backend::enabled() {
        eprintln!("-- on {backend:?}");
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let secret = world.enrollment_secret().await;
        let agent_token = world.agent_token(&secret, &base.machines[0].id).await;
        let webhook = world
            .subscribe("http://127.0.0.1:9/hook", &["sync.completed"])
            .await;
        let cases = cases(&world, &secret, webhook["id"].as_str().expect("webhook id"));
        let mut tried = BTreeSet::new();
        for case in &cases {
            for declared in &case.declared {
                tried.insert(key(declared, case.keyword));
                match declared_value(&spec, declared, case.keyword) {
                    Some(value) => assert!(
                        same_number(&value, &case.limit),
                        "{declared:?}: the document declares {}={value}, the service enforces {}",
                        case.keyword,
                        case.limit
                    ),
                    None => assert!(
                        case.declared_elsewhere,
                        "{declared:?}: the document does not declare {}",
                        case.keyword
                    ),
                }
            }
            let (status, body) = send(&world, &agent_token, (case.request)(case.at.clone())).await;
            assert!(
                status < 500 && !refuses(status, &body, case.input),
                "{} at its bound ({}): {status} {body}",
                case.input,
                case.limit
            );
            let (status, body) =
                send(&world, &agent_token, (case.request)(case.past.clone())).await;
            assert!(
                refuses(status, &body, case.input),
                "{} past its bound ({}): {status} {body}",
                case.input,
                case.limit
            );
        }
        let missing: Vec<String> = declared_upper_bounds(&spec)
            .into_iter()
            .filter(|k| !tried.contains(k) && !k.ends_with("?limit.maximum"))
            .collect();
        assert!(
            missing.is_empty(),
            "bounds the document declares but no case tries: {missing:?}"
        );
    }
}
