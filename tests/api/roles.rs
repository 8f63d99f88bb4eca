//! Read-only access: a token of the cloud's read-only administrator role
//! (`readonly_admin`) is served every read of the partner API and refused every
//! write, before anything is read or changed. Every operation of the OpenAPI
//! document is walked with it and with a partner administrator's token.

use migration_portal::sim::install_base::{GenSpec, Size, generate};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::Backend;
use crate::world::{World, world};

/// The document's partner operations: method, path template, and the roles its
/// security names.
fn partner_operations() -> Vec<(Method, String, Value)> {
    let spec = serde_json::to_value(migration_portal::api::openapi()).expect("spec");
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().expect("path item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            out.push((method, path.clone(), operation["security"].clone()));
        }
    }
    out
}

/// What the walk fills a path's parameters with: the world's own resources, so
/// that reads answer 200 where there is something to show.
struct Ids {
    operation: String,
    precheck: String,
    migration: String,
    subscription: String,
    group: String,
    user: String,
    machine: String,
    login: String,
}

impl Ids {
    fn path(&self, world: &World, template: &str) -> String {
        let workspace = world.workspace.to_string();
        let missing = Uuid::new_v4().to_string();
        // `{id}` is the operation's id on the operations path, the workspace's elsewhere.
        let id = if template.starts_with("/api/v1/operations/") {
            &self.operation
        } else {
            &workspace
        };
        let mut path = template
            .replace("{id}", id)
            .replace("{precheck_id}", &self.precheck)
            .replace("{migration_id}", &self.migration)
            .replace("{subscription_id}", &self.subscription)
            .replace("{group_id}", &self.group)
            .replace("{user_id}", &self.user)
            .replace("{machine_id}", &self.machine)
            .replace("{section}", "users")
            // Nothing of these exists in the world: both tokens get the same 404.
            .replace("{log_id}", &missing)
            .replace("{delivery_id}", &missing);
        assert!(!path.contains('{'), "a parameter left unfilled: {path}");
        if template.ends_with("/hierarchy/search") {
            path.push_str(&format!("?q={}", &self.login[..3]));
        }
        path
    }
}

async fn send(world: &World, method: &Method, path: &str, token: &str) -> reqwest::Response {
    let mut request = world
        .app
        .http
        .request(method.clone(), world.app.url(path))
        .bearer_auth(token);
    if *method != Method::GET {
        // A body that would fail validation: a write must be refused before it is read.
        request = request.json(&json!({"not_a_field": true}));
    }
    request.send().await.expect("send")
}

/// What a partner can see of the world, to show that refused writes changed nothing.
async fn seen(world: &World, token: &str) -> Value {
    let mut out = json!({});
    for list in ["", "/prechecks", "/migrations", "/webhooks", "/machines"] {
        out[list] = world.get_with(&world.path(list), token).await;
    }
    out
}

#[tokio::test]
async fn a_read_only_token_is_served_every_read_and_refused_every_write() {
    for backend in Backend::enabled() {
        eprintln!("-- on {backend:?}");
        let base = generate(&GenSpec::sized(Size::Small, 5));
        let world = world(backend, base.clone()).await;
        let operation = world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let migration = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        world.work().await;
        let subscription = world
            .subscribe("http://127.0.0.1:9/hook", &["machine.migrated"])
            .await;
        let ids = Ids {
            operation: operation["name"]
                .as_str()
                .and_then(|n| n.strip_prefix("operations/"))
                .expect("an operation's name")
                .to_string(),
            precheck: precheck["id"].as_str().expect("id").to_string(),
            migration: migration.rsplit('/').next().expect("id").to_string(),
            subscription: subscription["id"].as_str().expect("id").to_string(),
            group: base.truth.root_group_id.clone(),
            user: base.users[0].id.clone(),
            machine: base.machines[0].id.clone(),
            login: base.users[0].login.clone(),
        };
        let tenant = world.cloud.root_client().tenant_id;
        let read_only = world.cloud.idp().read_only_token(tenant);
        let before = seen(&world, &world.token).await;
        assert_eq!(
            seen(&world, &read_only).await,
            before,
            "a read-only token sees what the partner administrator sees"
        );

        let (mut reads, mut answered, mut writes) = (0, 0, 0);
        for (method, template, security) in partner_operations() {
            let path = ids.path(&world, &template);
            let read = method == Method::GET;
            let roles = if read {
                json!([{"bearer_auth": ["partner_admin"]}, {"bearer_auth": ["readonly_admin"]}])
            } else {
                json!([{"bearer_auth": ["partner_admin"]}])
            };
            assert_eq!(
                security, roles,
                "{method} {template}: the roles the document names"
            );
            let refused = send(&world, &method, &path, &read_only).await;
            let status = refused.status().as_u16();
            if read {
                reads += 1;
                let admin = send(&world, &method, &path, &world.token).await;
                assert_eq!(
                    status,
                    admin.status().as_u16(),
                    "{method} {path}: a read answers a read-only token as it answers the partner administrator"
                );
                assert!(status != 401 && status != 403, "{method} {path}: {status}");
                answered += usize::from(status == 200);
                continue;
            }
            writes += 1;
            assert_eq!(status, 403, "{method} {path}");
            let challenge = refused.headers()["www-authenticate"]
                .to_str()
                .expect("ASCII")
                .to_string();
            assert!(
                challenge.contains(r#"error="insufficient_scope""#),
                "{method} {path}: {challenge}"
            );
            let problem: Value = refused.json().await.expect("problem+json");
            assert_eq!(problem["status"], 403, "{method} {path}");
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("partner_admin")),
                "{method} {path}: {problem}"
            );
            // The partner administrator is not refused the same request for its role
            // (another workspace's id: nothing of this world is changed by it).
            let elsewhere = path.replace(&world.workspace.to_string(), &Uuid::new_v4().to_string());
            let admin = send(&world, &method, &elsewhere, &world.token).await;
            assert!(
                ![401, 403].contains(&admin.status().as_u16()),
                "{method} {elsewhere}: {}",
                admin.status()
            );
        }
        assert!(
            reads >= 25 && writes >= 20,
            "{reads} reads, {writes} writes"
        );
        // Every read with something to show showed it (the missing log and delivery are 404).
        assert!(
            answered >= reads - 2,
            "{answered} of {reads} reads answered 200"
        );
        world.work().await;
        assert_eq!(
            seen(&world, &world.token).await,
            before,
            "the refused writes changed nothing"
        );
    }
}
