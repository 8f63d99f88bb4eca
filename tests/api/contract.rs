//! The cloud's published document as the contract: every request the connector
//! sends and every answer `sim cloud` gives, recorded by `sim cloud` through
//! scenarios that use every operation the connector knows, refusals and faults
//! included, are held against `openapi/acronis-account-management-v2.json` by
//! openapi-core (`tests/contract/validate.py`), an independent validator.

use std::collections::BTreeMap;
use std::time::Duration;

use migration_portal::connectors::target::{
    NewTenant, NewUser, OfferingItem, OfferingItemPut, PricingMode, Quota, TargetApi, TargetClient,
    TenantKind,
};
use migration_portal::connectors::{ConnectorError, HttpPolicy};
use migration_portal::sim::cloud::Faults;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{Backend, python_with, test_keys};
use crate::migrations::{make_fast, small};
use crate::registration_tokens::{check_in_until_registered, released_machines};
use crate::world::{World, world_with_cloud};

const DOCUMENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/openapi/acronis-account-management-v2.json"
);

/// What the document does not hold, each allowed for a reason and counted in the summary.
fn allowances() -> Value {
    json!([
        {"id": "rate_limit_and_unavailable", "kind": "status", "statuses": [429, 503], "operations": "*", "retry_after": [429],
         "reason": "the document declares no 429 or 503; the platform rate-limits with 429 and Retry-After and answers 503 when busy (docs/cloud-contract.md); the body must still be its errorScheme"},
        {"id": "conflict_on_create", "kind": "status", "statuses": [409], "operations": ["POST /tenants", "POST /users"],
         "reason": "the document lists no conflict for these creates, though it declares 409 'another object of the same type already exists' elsewhere; the platform refuses a sibling's name (code 1004) and a taken login with it; the body must still be its errorScheme"},
        {"id": "jwks", "kind": "path", "method": "GET", "path": "/api/2/idp/keys",
         "reason": "the issuer's key set, named by discovery's jwks_uri; not an operation of the document (the service's token verification reads it, not the connector)"},
        {"id": "discovery_at_issuer_root", "kind": "alias", "method": "GET", "path": "/.well-known/openid-configuration", "as": "/api/2/.well-known/openid-configuration",
         "reason": "the service's token verification reads discovery at the issuer's root (OIDC); validated as the document's FetchOpenIDConfiguration"},
        {"id": "policy_management", "kind": "prefix", "prefix": "/api/policy_management/",
         "reason": "protection plans are another API (policy management v4), not in this document"},
        {"id": "nullable_beside_allof", "kind": "reading",
         "reason": "the document writes a nullable reference as nullable beside allOf, which OpenAPI 3.0.3 would read as never null (nullable applies only beside type); read as the reference or null, as its fields (deleted_at, owner_id, personal_tenant_id) mean"},
        {"id": "version_conflict_on_pricing", "kind": "status", "statuses": [409], "operations": ["PUT /tenants/{tenant_id}/pricing"],
         "reason": "the document declares no 409 for a pricing update, though the settings carry a version the update must send and it declares 409 on other versioned writes; the platform refuses a stale version with 409 and error code 1001 (docs/cloud-contract.md); the body must still be its errorScheme"},
        {"id": "registration_token_id_is_an_integer", "kind": "parameter", "operation": "DELETE /registration_tokens/{token_id}", "parameter": "token_id", "must_match": "[0-9]+",
         "reason": "the document contradicts itself: registrationToken.id is an integer, while this path declares a UUID pattern; the id the create and the listing answer is sent"},
    ])
}

/// Every operation of the document the connector uses (all must be exercised).
const CONNECTOR_OPERATIONS: &[&str] = &[
    "POST /idp/token",
    "GET /tenants",
    "GET /tenants/{tenant_id}",
    "POST /tenants",
    "GET /users/check_login",
    "GET /users/{user_id}",
    "GET /users",
    "GET /tenants/{tenant_id}/users",
    "POST /users",
    "GET /users/{user_id}/access_policies",
    "PUT /users/{user_id}/access_policies",
    "POST /users/{user_id}/send-activation-email",
    "POST /users/{user_id}/password",
    "POST /tenants/{tenant_id}/registration_tokens",
    "GET /tenants/{tenant_id}/registration_tokens",
    "DELETE /registration_tokens/{token_id}",
    "GET /applications",
    "GET /tenants/{tenant_id}/offering_items",
    "PUT /tenants/{tenant_id}/offering_items",
    "GET /tenants/{tenant_id}/offering_items/available_for_child",
    "GET /tenants/{tenant_id}/pricing",
    "PUT /tenants/{tenant_id}/pricing",
];

fn quick_policy() -> HttpPolicy {
    HttpPolicy {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        rate_per_sec: None,
        allow_private_networks: true,
        ..HttpPolicy::default()
    }
}

/// The scenarios on one backend; answers what `sim cloud` recorded.
async fn scenarios(backend: Backend) -> Vec<Value> {
    let base = small();
    // Recorded from the start: the service reads the issuer's discovery and keys at its first partner call.
    let world = make_fast(
        world_with_cloud(
            backend,
            base.clone(),
            |cloud| cloud.record_exchanges = true,
            |_| {},
        )
        .await,
    )
    .await;

    // The connection check.
    let checked = world
        .app
        .post_json(&world.path("/check"), &world.token, &json!({}))
        .send()
        .await
        .expect("check");
    assert_eq!(checked.status(), 200, "{backend:?}");

    // Sync and pre-check: every planned login checked, some taken in the cloud already.
    world.sync().await;
    let precheck = world.whole_precheck(&base).await;
    // A login the plan hands out is taken after the pre-check: its create is refused.
    let users = world.section(&precheck, "users").await;
    let victim = users
        .iter()
        .find(|u| u["target_login"].as_str().is_some_and(|l| l.len() > 3))
        .expect("a user");
    world
        .cloud
        .take_login(victim["target_login"].as_str().expect("login"));

    // The whole migration (admins with activation emails, backup users with passwords)
    // through 503s, 429s and answers lost after commit (found by looking up again).
    let worker = world.run_worker();
    let faults = Faults {
        fail_rate: 0.1,
        rate_limit_per_sec: Some(150),
        fail_after_commit_rate: 0.1,
        latency_ms: 0,
    };
    let location = world
        .start_migration_rate_limited(json!({"precheck_id": precheck["id"]}), faults)
        .await;
    let migration = world.wait_over(&location).await;
    worker.stop().await;
    assert_eq!(
        migration["status"], "completed_with_failures",
        "{backend:?}: only the user whose login was taken fails: {migration}"
    );

    // Agents of released machines: first check-ins at once, half the token answers lost.
    world.cloud.set_faults(Faults {
        fail_after_commit_rate: 0.5,
        ..Faults::default()
    });
    let secret = world.enrollment_secret().await;
    let machines = released_machines(&world, 6).await;
    let mut agents = BTreeMap::new();
    for machine in &machines {
        let agent = world.agent_token(&secret, machine).await;
        check_in_until_registered(&world, &agent).await;
        agents.insert(machine.clone(), agent);
    }
    // A renewal without faults: the old token is revoked once the new one is kept, and that
    // revoke's 204 is recorded (a revoke whose answer is lost is retried into a 404).
    world.cloud.set_faults(Faults::default());
    let renewing = &machines[0];
    migration_portal::db::execute(
        &world.db,
        "UPDATE machine_assignments SET registration_expires_at = $1 WHERE workspace_id = $2 AND machine_id = $3",
        vec![(chrono::Utc::now() + chrono::Duration::hours(1)).into(), world.workspace.into(), renewing.as_str().into()],
    )
    .await
    .expect("expiring");
    check_in_until_registered(&world, &agents[renewing]).await;

    // The connector on its own: a wrong secret, a sibling's name, a token renewed after the issuer drops its key.
    let client = world.cloud.root_client();
    let wrong = TargetClient::new(
        &world.cloud.base_url(),
        &client.client_id,
        SecretString::from("wrong-secret".to_string()),
        quick_policy(),
    )
    .expect("client");
    assert!(
        wrong
            .token_info()
            .await
            .expect_err("refused")
            .is_status(401),
        "{backend:?}"
    );
    let target = TargetClient::new(
        &world.cloud.base_url(),
        &client.client_id,
        SecretString::from(client.client_secret.clone()),
        quick_policy(),
    )
    .expect("client");
    let root = world.cloud.root_tenant_id();
    let new = NewTenant {
        name: "Contract Customer".into(),
        parent_id: root,
        kind: TenantKind::Customer,
        internal_tag: "contract-1".into(),
    };
    target.create_tenant(&new).await.expect("created");
    let clash = NewTenant {
        internal_tag: "contract-2".into(),
        ..new.clone()
    };
    assert!(
        matches!(
            target.create_tenant(&clash).await,
            Err(ConnectorError::Remote { status: 409, .. })
        ),
        "{backend:?}: a sibling's name"
    );
    offering(&world, &target, backend).await;
    world.cloud.idp().rotate(&test_keys()[1], true);
    target
        .children(root)
        .await
        .expect("a refused token is renewed");

    world.cloud.record_exchanges(false);
    world.cloud.exchanges()
}

fn named<'a>(items: &'a [OfferingItem], name: &str) -> &'a OfferingItem {
    items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} in {items:?}"))
}

/// Applications, offering items and pricing through the connector: every call, a
/// refusal, stale versions, and writes whose answer is lost after they happened.
async fn offering(world: &World, target: &TargetClient, backend: Backend) {
    let root = world.cloud.root_tenant_id();
    let applications = target.applications().await.expect("applications");
    let backup = applications
        .iter()
        .find(|a| a.kind == "backup")
        .expect("Backup")
        .id;
    let available = target
        .available_for_child(root, TenantKind::Customer)
        .await
        .expect("available for a customer");
    assert!(
        available.iter().any(|i| i.name == "adv_workstations"),
        "{backend:?}: every edition"
    );
    let customer = target
        .create_tenant(&NewTenant {
            name: "Contract Provisioned".into(),
            parent_id: root,
            kind: TenantKind::Customer,
            internal_tag: "contract-3".into(),
        })
        .await
        .expect("created");
    let items = target
        .offering_items(customer.id)
        .await
        .expect("offering items");
    assert!(
        items.iter().all(|i| !i.is_on()),
        "{backend:?}: no service yet"
    );
    let on = |name: &str| OfferingItemPut {
        application_id: backup,
        name: name.into(),
        status: 1,
        infra_id: None,
        quota: None,
    };
    let storage = |value: i64, version: i64| OfferingItemPut {
        infra_id: named(&items, "storage").infra_id,
        quota: Some(Quota {
            value: Some(value),
            overage: None,
            version,
        }),
        ..on("storage")
    };
    let answer = target
        .set_offering_items(customer.id, &[on("workstations"), storage(1 << 40, 0)])
        .await
        .expect("provisioned");
    let version = named(&answer, "storage").quota.expect("quota").version;
    assert_eq!(version, 1, "{backend:?}");
    let second_edition = target
        .set_offering_items(customer.id, &[on("workstations"), on("adv_servers")])
        .await
        .expect_err("a second edition on a customer");
    assert!(second_edition.is_status(400), "{second_edition}");
    let stale = target
        .set_offering_items(customer.id, &[on("workstations"), storage(1 << 40, 0)])
        .await
        .expect_err("a stale quota version");
    assert!(stale.is_version_conflict(), "{stale}");

    // Answers lost after the write: the replay meets the new version, and a read tells.
    world.cloud.set_faults(Faults {
        fail_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let lost = target
        .set_offering_items(
            customer.id,
            &[on("workstations"), storage(2 << 40, version)],
        )
        .await
        .expect_err("its answer lost, then a stale replay");
    let pricing = target.pricing(customer.id).await.expect("pricing");
    assert_eq!(pricing.mode, PricingMode::Trial, "{backend:?}");
    let lost_pricing = target
        .set_pricing(customer.id, PricingMode::Production, pricing.version)
        .await
        .expect_err("its answer lost, then a stale replay");
    world.cloud.set_faults(Faults::default());
    assert!(lost.is_version_conflict(), "{lost}");
    assert!(lost_pricing.is_version_conflict(), "{lost_pricing}");
    let items = target
        .offering_items(customer.id)
        .await
        .expect("read again");
    assert_eq!(
        named(&items, "storage").quota.and_then(|q| q.value),
        Some(2 << 40),
        "{backend:?}: the lost write happened"
    );
    let pricing = target.pricing(customer.id).await.expect("read again");
    assert_eq!(pricing.mode, PricingMode::Production, "{backend:?}");
    assert!(pricing.production_start_date.is_some(), "{backend:?}");
    let back = target
        .set_pricing(customer.id, PricingMode::Trial, pricing.version)
        .await
        .expect_err("production is one-way");
    assert!(back.is_status(403), "{back}");
    let suspended = target
        .set_pricing(customer.id, PricingMode::Suspended, pricing.version)
        .await
        .expect("suspended");
    assert_eq!(suspended.version, pricing.version + 1, "{backend:?}");

    // A user's personal tenant holds its quotas.
    let user = target
        .create_user(&NewUser {
            tenant_id: customer.id,
            login: "contract.provisioned".into(),
            contact: None,
            external_id: "contract-user-3".into(),
        })
        .await
        .expect("user");
    let personal = target
        .offering_items(user.personal_tenant_id.expect("personal tenant"))
        .await
        .expect("personal offering items");
    assert!(
        named(&personal, "workstations").is_on(),
        "{backend:?}: {personal:?}"
    );
}

/// Runs the validator on `exchanges`: whether it passed them, and what it printed.
fn validate(exchanges: &[Value]) -> (bool, String) {
    let job = tempfile::NamedTempFile::new().expect("temp file");
    let input = json!({"spec": DOCUMENT, "allowances": allowances(), "exchanges": exchanges});
    std::fs::write(job.path(), serde_json::to_vec(&input).expect("json")).expect("write");
    // To look at the exchanges or run the validator by hand: MP_CONTRACT_KEEP=FILE keeps its input.
    if let Some(keep) = std::env::var_os("MP_CONTRACT_KEEP") {
        std::fs::copy(job.path(), keep).expect("keep the validator's input");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/validate.py");
    let requirements = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/contract/requirements.txt"
    );
    let out = python_with(
        "pydeps-openapi-core",
        "openapi_core",
        &["--no-deps", "-r", requirements],
        &[script, job.path().to_str().expect("path")],
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

fn exchange(
    method: &str,
    path: &str,
    request: Option<Value>,
    status: u16,
    answer: Option<Value>,
) -> Value {
    json!({
        "method": method, "path": path, "query": "", "auth": "Bearer",
        "request_content_type": request.as_ref().map(|_| "application/json"), "request_body": request.map(|b| b.to_string()),
        "status": status, "response_content_type": answer.as_ref().map(|_| "application/json"), "response_body": answer.map(|b| b.to_string()),
        "retry_after": null,
    })
}

/// The validator is not a rubber stamp: what the connector and `sim cloud` did before
/// they were held to the document is refused.
#[test]
fn the_validator_refuses_what_the_document_does_not_allow() {
    let user = "0b6e7d2a-1c1e-4d0e-9a55-7a8f6f1e2b3c";
    let known = [
        // A body where the document declares none.
        exchange(
            "POST",
            &format!("/api/2/users/{user}/send-activation-email"),
            Some(json!({})),
            204,
            None,
        ),
        // A token answer without the id_token the document requires.
        {
            let mut token = exchange(
                "POST",
                "/api/2/idp/token",
                None,
                200,
                Some(json!({"access_token": "x", "token_type": "bearer", "expires_on": 1})),
            );
            token["request_content_type"] = json!("application/x-www-form-urlencoded");
            token["request_body"] = json!("grant_type=client_credentials");
            token["auth"] = json!("Basic");
            token
        },
        // A created user answered 201 (the document: 200).
        exchange(
            "POST",
            "/api/2/users",
            Some(json!({"tenant_id": user, "login": "someone"})),
            201,
            Some(json!({"id": user})),
        ),
        // A login refused with 422 (the document: 406).
        {
            let mut check = exchange(
                "GET",
                "/api/2/users/check_login",
                None,
                422,
                Some(
                    json!({"error": {"code": 1006, "message": "no", "details": {}, "domain": "x"}}),
                ),
            );
            check["query"] = json!("username=ab");
            check
        },
        // No such operation.
        exchange(
            "POST",
            &format!("/api/2/users/{user}/activate"),
            None,
            204,
            None,
        ),
    ];
    let (passed, printed) = validate(&known);
    assert!(!passed, "{printed}");
    assert!(
        printed
            .contains("1 undeclared requests, 1 non-conforming requests, 3 non-conforming answers"),
        "{printed}"
    );
}

#[tokio::test]
async fn every_request_to_the_cloud_and_every_answer_of_sim_cloud_conform_to_its_published_document()
 {
    let mut exchanges = Vec::new();
    for backend in Backend::enabled() {
        exchanges.extend(scenarios(backend).await);
    }
    // What the scenarios must have provoked, so that refusals and faults are held against the document too.
    let provoked = |method: &str, path: &str, status: u64| {
        exchanges.iter().any(|e| {
            (method == "*" || e["method"] == method)
                && e["path"].as_str().is_some_and(|p| p.starts_with(path))
                && e["status"] == status
        })
    };
    for (method, path, status) in [
        ("POST", "/api/2/idp/token", 401),
        ("GET", "/api/2/tenants", 401),
        ("GET", "/api/2/users/check_login", 409),
        ("POST", "/api/2/users", 409),
        ("POST", "/api/2/tenants", 409),
        ("*", "/api/2/", 429),
        ("POST", "/api/2/tenants", 503),
        ("POST", "/api/2/users", 503),
        ("POST", "/api/2/tenants/", 503),
        ("DELETE", "/api/2/registration_tokens/", 204),
        ("PUT", "/api/2/tenants/", 400),
        ("PUT", "/api/2/tenants/", 409),
        ("PUT", "/api/2/tenants/", 403),
        ("PUT", "/api/2/tenants/", 503),
    ] {
        assert!(
            provoked(method, path, status),
            "no {method} {path}… answered {status} in the scenarios"
        );
    }

    let (passed, printed) = validate(&exchanges);
    // The summary shows in every run, captured or not (allowances are reported, never silent).
    std::io::Write::write_all(&mut std::io::stderr(), printed.as_bytes()).expect("stderr");
    assert!(
        passed,
        "the exchanges do not conform to the document:\n{printed}"
    );
    assert!(
        printed
            .contains("0 undeclared requests, 0 non-conforming requests, 0 non-conforming answers"),
        "{printed}"
    );
    for operation in CONNECTOR_OPERATIONS {
        let exercised = printed.lines().any(|l| {
            l.trim_start().split_once("  ").is_some_and(|(count, op)| {
                count.trim().parse::<u64>().is_ok_and(|n| n > 0) && op.trim() == *operation
            })
        });
        assert!(exercised, "{operation} was never exercised:\n{printed}");
    }
}
