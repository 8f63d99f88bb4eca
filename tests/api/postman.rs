//! The Postman collection in `postman/` keeps up with the API: a request for every
//! operation of the OpenAPI document (method and path template), each asserting
//! its status, and every variable it uses defined by the collection or by the
//! environment the demo writes.

use std::collections::{BTreeMap, BTreeSet};

use migration_portal::demo::{PostmanValues, postman_environment};
use serde_json::Value;

const COLLECTION: &str = include_str!("../../postman/migration-portal.postman_collection.json");
const ENVIRONMENT: &str = include_str!("../../postman/migration-portal.postman_environment.json");
const COMMITTED_SPEC: &str = include_str!("../../openapi/openapi.json");

/// Served outside the OpenAPI document, and fine to call from the collection.
const UNDOCUMENTED: [&str; 2] = ["GET /api-docs/openapi.json", "GET /swagger-ui/"];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn is_parameter(segment: &str) -> bool {
    // `{id}` in OpenAPI; `:id` or `{{workspaceId}}` in Postman.
    segment.starts_with(':') || (segment.starts_with('{') && segment.ends_with('}'))
}

/// `GET /api/v1/workspaces/{}/machines/{}`: the method and the path with its parameters unnamed.
fn operation(method: &str, path: &str) -> String {
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if is_parameter(s) { "{}" } else { s })
        .collect();
    let trailing = if path.ends_with('/') && !segments.is_empty() {
        "/"
    } else {
        ""
    };
    format!(
        "{} /{}{trailing}",
        method.to_ascii_uppercase(),
        segments.join("/")
    )
}

/// The document's operations, unnamed parameters -> as documented (`GET /api/v1/workspaces/{id}`).
fn spec_operations(spec: &Value) -> BTreeMap<String, String> {
    let mut operations = BTreeMap::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert(
                    operation(method, path),
                    format!("{} {path}", method.to_ascii_uppercase()),
                );
            }
        }
    }
    operations
}

struct Request {
    name: String,
    /// `None` for a request to another host than the service (the simulators).
    operation: Option<String>,
    tests: String,
}

/// Every request of the collection, folders flattened, in order.
fn requests(items: &Value, into: &mut Vec<Request>) {
    for item in items.as_array().into_iter().flatten() {
        if item.get("item").is_some() {
            requests(&item["item"], into);
            continue;
        }
        let request = &item["request"];
        let method = request["method"].as_str().unwrap_or("GET");
        let raw = match &request["url"] {
            Value::String(raw) => raw.clone(),
            url => url["raw"].as_str().unwrap_or_default().to_string(),
        };
        let raw = raw.split(['?', '#']).next().unwrap_or_default();
        let operation = raw
            .strip_prefix("{{baseUrl}}")
            .map(|path| operation(method, path));
        let tests = item["event"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["listen"] == "test")
            .flat_map(|e| e["script"]["exec"].as_array().cloned().unwrap_or_default())
            .filter_map(|line| line.as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .join("\n");
        into.push(Request {
            name: item["name"].as_str().unwrap_or_default().to_string(),
            operation,
            tests,
        });
    }
}

fn collection() -> (Value, Vec<Request>) {
    let collection: Value = serde_json::from_str(COLLECTION).expect("the collection is JSON");
    assert_eq!(
        collection["info"]["schema"],
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    );
    let mut all = Vec::new();
    requests(&collection["item"], &mut all);
    (collection, all)
}

#[test]
fn every_operation_of_the_api_has_a_request_in_the_collection() {
    let committed: Value =
        serde_json::from_str(COMMITTED_SPEC).expect("openapi/openapi.json is JSON");
    let generated = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    // The served document is the generated one (see openapi.rs); the committed one may lag behind it.
    let mut operations = spec_operations(&committed);
    operations.extend(spec_operations(&generated));
    assert!(
        operations.len() >= 50,
        "the document's operations were all read ({})",
        operations.len()
    );
    let (_, requests) = collection();
    let covered: BTreeSet<String> = requests
        .iter()
        .filter_map(|r| r.operation.clone())
        .collect();
    let missing: Vec<&String> = operations
        .iter()
        .filter(|(key, _)| !covered.contains(*key))
        .map(|(_, documented)| documented)
        .collect();
    assert!(
        missing.is_empty(),
        "operations without a request in postman/migration-portal.postman_collection.json: {missing:#?}"
    );
    let unknown: Vec<&String> = covered
        .iter()
        .filter(|o| !operations.contains_key(*o) && !UNDOCUMENTED.contains(&o.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "requests in the collection for operations the API does not have: {unknown:#?}"
    );
}

#[test]
fn every_request_asserts_its_status() {
    let (_, requests) = collection();
    let mut names = BTreeSet::new();
    for request in &requests {
        // Polling repeats a request by its name.
        assert!(
            names.insert(request.name.as_str()),
            "two requests are named {:?}",
            request.name
        );
        assert!(
            request.tests.contains("pm.response.to.have.status("),
            "{:?} asserts no status",
            request.name
        );
    }
}

#[test]
fn every_variable_the_collection_uses_is_defined_and_the_demo_writes_the_environment() {
    let (collection, _) = collection();
    let environment: Value = serde_json::from_str(ENVIRONMENT).expect("the environment is JSON");
    let keys = |values: &Value| -> BTreeSet<String> {
        values
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["key"].as_str().map(str::to_string))
            .collect()
    };
    let template = keys(&environment["values"]);
    let values = PostmanValues {
        base_url: "",
        partner_token: "",
        other_tenant_token: "",
        read_only_token: "",
        workspace_id: "",
        precheck_id: "",
        migration_id: "",
        cloud_url: "",
        cloud_client_id: "",
        cloud_client_secret: "",
        source_url: "",
        source_login: "",
        source_password: "",
        spare_agent_token: "",
        spare_agent_machine_id: "",
    };
    assert_eq!(
        keys(&postman_environment(&values)["values"]),
        template,
        "the demo writes the environment that postman/ holds"
    );
    let defined: BTreeSet<String> = template
        .union(&keys(&collection["variable"]))
        .cloned()
        .collect();
    let mut rest = COLLECTION;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let end = rest.find("}}").expect("a {{variable}} is closed");
        let name = &rest[..end];
        // `{{$guid}}` and friends are Postman's own.
        assert!(
            name.starts_with('$') || defined.contains(name),
            "{{{{{name}}}}} is neither a collection nor an environment variable"
        );
        rest = &rest[end + 2..];
    }
    // An environment value wins over the collection's own: one of the same name would shadow what a script sets.
    let (mut rest, mut set) = (COLLECTION, 0);
    while let Some(start) = rest.find("pm.collectionVariables.set(\\\"") {
        rest = &rest[start + "pm.collectionVariables.set(\\\"".len()..];
        let name = &rest[..rest.find('\\').expect("a quoted name")];
        assert!(
            !template.contains(name),
            "the environment's {name} would shadow the one the collection sets"
        );
        set += 1;
    }
    assert!(
        set > 10,
        "the collection's scripts set their variables ({set} found)"
    );
}
