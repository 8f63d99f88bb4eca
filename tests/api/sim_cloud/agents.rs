//! A machine's registration with `sim cloud` (its own route, not in the published
//! document): only into a tenant, and for a user, that has the Backup service for machines.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use super::offering::{BACKUP, item};
use super::{Sim, assert_error, id, start};

impl Sim {
    /// A user of `tenant` and a registration token bound to its personal tenant: (user, token).
    async fn user_with_token(&self, tenant: Uuid, login: &str, expires_in: u64) -> (Value, String) {
        let user = self.create_user(&json!({"id": tenant}), login).await;
        let scope = format!(
            "urn:acronis.com:tenant-id:{}:backup_agent_admin",
            user["personal_tenant_id"]
                .as_str()
                .expect("personal tenant")
        );
        let token = self.token_for(tenant, &[scope], expires_in).await;
        (user, token)
    }

    async fn token_for(&self, tenant: Uuid, scopes: &[String], expires_in: u64) -> String {
        let response = self
            .post(
                &format!("/api/2/tenants/{tenant}/registration_tokens"),
                &json!({"expires_in": expires_in, "scopes": scopes}),
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let token: Value = response.json().await.expect("json");
        token["token"].as_str().expect("token").to_string()
    }

    async fn register(&self, token: &str, machine: &str) -> Response {
        self.http
            .post(self.url("/sim/cloud/agents/register"))
            .json(&json!({"token": token, "machine_id": machine}))
            .send()
            .await
            .expect("request")
    }
}

/// A 403 registration refusal whose message names each of `what`.
async fn refused(response: Response, what: &[&str]) {
    let body = assert_error(response, 403, 1013).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for name in what {
        assert!(message.contains(name), "{name:?} not named: {body}");
    }
}

#[tokio::test]
async fn a_machine_registers_into_a_tenant_with_the_backup_service_for_machines() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Served").await;
    let (user, token) = sim.user_with_token(customer, "served.user", 600).await;
    let response = sim.register(&token, "machine-1").await;
    assert_eq!(response.status(), 200);
    let agent: Value = response.json().await.expect("json");
    assert_eq!(
        (agent["tenant_id"].clone(), agent["user_id"].clone()),
        (json!(customer), user["id"].clone())
    );
    // Registered again, it keeps its agent; the token serves other machines of the user too.
    let again: Value = sim
        .register(&token, "machine-1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["agent_id"], agent["agent_id"]);
    let other: Value = sim
        .register(&token, "machine-2")
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(other["agent_id"], agent["agent_id"]);
    let state = sim.sim.inspect();
    let agents = state["agents"].as_array().expect("agents");
    assert_eq!(
        agents
            .iter()
            .map(|a| (
                a["machine_id"].as_str().unwrap_or_default(),
                a["agent_id"].clone()
            ))
            .collect::<Vec<_>>(),
        [
            ("machine-1", agent["agent_id"].clone()),
            ("machine-2", other["agent_id"].clone())
        ]
    );
    assert_eq!(agents[0]["tenant_id"], json!(customer));
}

#[tokio::test]
async fn a_tenant_without_the_backup_service_refuses_the_machine_and_says_why() {
    let sim = start().await;
    // Made by POST /tenants: no service at all.
    let bare = id(&sim
        .create_tenant(sim.root(), "Bare Customer", "customer")
        .await);
    let (_, token) = sim.user_with_token(bare, "bare.user", 600).await;
    refused(
        sim.register(&token, "machine-1").await,
        &["Bare Customer", "workstations", "adv_vms"],
    )
    .await;
    // Storage alone is no service for machines.
    sim.set_items(
        bare,
        &[item(BACKUP, "storage", 1), item(BACKUP, "local_storage", 1)],
    )
    .await;
    refused(sim.register(&token, "machine-1").await, &["Bare Customer"]).await;
    // The advanced edition serves machines as well.
    sim.set_items(
        bare,
        &[
            item(BACKUP, "adv_servers", 1),
            item(BACKUP, "adv_storage", 1),
        ],
    )
    .await;
    assert_eq!(sim.register(&token, "machine-1").await.status(), 200);
    assert_eq!(
        sim.sim.inspect()["agents"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_user_whose_personal_tenant_has_the_machines_off_is_refused() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Strict Family").await;
    let (user, token) = sim.user_with_token(customer, "no.machines", 600).await;
    let personal = Uuid::parse_str(user["personal_tenant_id"].as_str().expect("id")).expect("uuid");
    // Storage only: the Backup items for machines not listed go off.
    let response = sim.put_items(personal, &[item(BACKUP, "storage", 1)]).await;
    assert_eq!(response.status(), 200);
    refused(
        sim.register(&token, "machine-1").await,
        &["no.machines", "Strict Family"],
    )
    .await;
    assert_eq!(sim.sim.inspect()["agents"], json!([]));
}

#[tokio::test]
async fn unknown_and_expired_tokens_are_401_and_bad_bodies_422() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Expiring").await;
    assert_error(sim.register("AAAA-BBBB-CCCC", "machine-1").await, 401, 1012).await;
    let (_, token) = sim.user_with_token(customer, "expiring.user", 1).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_error(sim.register(&token, "machine-1").await, 401, 1012).await;
    // A token whose scope names no user registers into its tenant, with no user.
    let tenant_token = sim.token_for(customer, &[], 600).await;
    let agent: Value = sim
        .register(&tenant_token, "machine-2")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (agent["tenant_id"].clone(), agent["user_id"].clone()),
        (json!(customer), Value::Null)
    );
    for body in [
        json!({"token": tenant_token}),
        json!({"token": tenant_token, "machine_id": " "}),
        json!({"token": tenant_token, "machine_id": "m", "os": "linux"}),
    ] {
        let response = sim
            .http
            .post(sim.url("/sim/cloud/agents/register"))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_error(response, 422, 1006).await;
    }
}
