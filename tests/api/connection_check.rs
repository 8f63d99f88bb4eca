//! The connection check against the simulators: on create and on demand.

use std::net::SocketAddr;

use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig};
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, Backend, TestApp, spawn_app_with, test_keys};

struct World {
    app: TestApp,
    cloud: CloudSim,
    source: SourceSim,
}

/// The service trusts the cloud simulator as its identity provider, as in production.
async fn world() -> World {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let cloud = CloudSim::start(
        CloudSimConfig {
            bind: loopback,
            audience: AUDIENCE.into(),
            ..CloudSimConfig::default()
        },
        &test_keys()[0],
    )
    .expect("cloud");
    let source =
        SourceSim::start(loopback, generate(&GenSpec::sized(Size::Small, 3))).expect("source");
    let issuer = cloud.base_url();
    let app = spawn_app_with(Backend::Sqlite, |c| c.auth.issuer = Some(issuer)).await;
    World { app, cloud, source }
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn body(world: &World, password: &str, client_id: &str, client_secret: &str) -> Value {
    let (login, _) = world.source.credentials();
    json!({
        "name": "Checked",
        "source": {"url": world.source.base_url(), "login": login, "password": password},
        "target": {"url": world.cloud.base_url(), "client_id": client_id, "client_secret": client_secret},
    })
}

#[tokio::test]
async fn good_credentials_pass_every_check_on_create_and_on_demand() {
    let world = world().await;
    let partner = world.cloud.root_client();
    let token = world.cloud.idp().partner_token(partner.tenant_id);
    let (_, password) = world.source.credentials();
    let created = world
        .app
        .create_workspace(
            &token,
            &body(
                &world,
                &password,
                &partner.client_id,
                &partner.client_secret,
            ),
        )
        .await;
    let report = &created["connection_check"];
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(
        statuses(report),
        [
            ("source_login", "passed"),
            ("target_credentials", "passed"),
            ("target_tenant", "passed"),
            ("target_permissions", "passed"),
            ("target_services", "passed")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let path = format!(
        "/api/v1/workspaces/{}/check",
        created["id"].as_str().expect("id")
    );
    let again: Value = world
        .app
        .http
        .post(world.app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(again["passed"], true);
    assert_ne!(again["checked_at"], report["checked_at"], "it ran again");

    // The partner's tenant loses an item the standard profile gives customers.
    let off = reqwest::Client::new()
        .put(format!(
            "{}/sim/cloud/offering_items",
            world.cloud.base_url()
        ))
        .json(&serde_json::json!({"off": ["servers"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(off.status(), 200);
    let without: Value = world
        .app
        .http
        .post(world.app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(without["passed"], false, "{without}");
    let services = &without["checks"][4];
    assert_eq!(services["name"], "target_services");
    assert_eq!(services["status"], "failed");
    let detail = services["detail"].as_str().expect("detail");
    assert!(
        detail.contains("backup/standard/servers to a customer")
            && detail.contains("backup/standard/servers to a partner"),
        "{detail}"
    );
}

#[tokio::test]
async fn each_wrong_credential_fails_its_own_check_with_a_reason() {
    let world = world().await;
    let partner = world.cloud.root_client();
    let token = world.cloud.idp().partner_token(partner.tenant_id);
    let (_, password) = world.source.credentials();

    let wrong_source = world
        .app
        .create_workspace(
            &token,
            &body(
                &world,
                "not-the-password",
                &partner.client_id,
                &partner.client_secret,
            ),
        )
        .await;
    let report = &wrong_source["connection_check"];
    assert_eq!(
        statuses(report)[0],
        ("source_login".to_string(), "failed".to_string())
    );
    assert!(
        report["checks"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("refused the login"),
        "{report}"
    );
    assert!(
        report["checks"].as_array().expect("checks")[1..]
            .iter()
            .all(|c| c["status"] == "passed"),
        "{report}"
    );

    let wrong_secret = world
        .app
        .create_workspace(
            &token,
            &body(&world, &password, &partner.client_id, "wrong-secret"),
        )
        .await;
    let names = statuses(&wrong_secret["connection_check"]);
    assert_eq!(
        names[1],
        ("target_credentials".to_string(), "failed".to_string())
    );
    assert_eq!(names[2].1, "skipped");

    // An API client of a tenant below the partner's cannot act for the partner's tenant.
    let child: Value = world
        .app
        .http
        .post(format!("{}/api/2/tenants", world.cloud.base_url()))
        .bearer_auth(world.cloud.idp().partner_token(partner.tenant_id))
        .json(&json!({"name": "Sub reseller", "parent_id": partner.tenant_id, "kind": "partner"}))
        .send()
        .await
        .expect("create child")
        .json()
        .await
        .expect("json");
    let child_id = uuid::Uuid::parse_str(child["id"].as_str().expect("child id")).expect("uuid");
    let child_client = world.cloud.register_client(child_id);
    let below = world
        .app
        .create_workspace(
            &token,
            &body(
                &world,
                &password,
                &child_client.client_id,
                &child_client.client_secret,
            ),
        )
        .await;
    let report = &below["connection_check"];
    assert_eq!(
        statuses(report)[2],
        ("target_tenant".to_string(), "failed".to_string()),
        "{report}"
    );
    assert!(
        report["checks"][2]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("own tenant"),
        "{report}"
    );
}
