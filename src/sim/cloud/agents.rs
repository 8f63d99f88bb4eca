//! A machine's registration with the cloud. The real agent registers through another
//! endpoint than the Account Management API, which its published document does not
//! hold; the simulator models it as a route of its own (not faulted, not recorded in
//! the exchange log, like every `/sim/*` route):
//!
//! `POST /sim/cloud/agents/register` `{"token": "XXXX-XXXX-XXXX", "machine_id": "..."}`
//! answers 200 `{"agent_id", "tenant_id", "user_id"}`. The token names its tenant, and
//! its scope `urn:acronis.com:tenant-id:{personal_tenant_id}:backup_agent_admin` the user
//! whose personal tenant that is; the agent belongs to that user and its tenant (a token
//! without such a scope registers into its own tenant, with no user).
//!
//! - An unknown or expired token: 401 (code 1012).
//! - Refused, 403 (code 1013) with a message naming the tenant and what is missing, when
//!   the user's tenant has no Backup offering item for machines on (`workstations`,
//!   `servers`, `vms` or their `adv_` variants: a tenant made by `POST /tenants` has
//!   none until they are set), or the user's personal tenant has them all turned off.
//! - A machine registered again keeps its agent id (the latest registration counts).
//!
//! Registered agents are listed in `GET /sim/cloud/state` (`agents`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Cloud;
use super::catalogue::MACHINE_ITEMS;
use super::errors::{
    CloudError, CloudResult, JsonBody, REGISTRATION_REFUSED, UNKNOWN_REGISTRATION_TOKEN,
};
use super::state::{Store, timestamp};

/// An agent the cloud registered.
#[derive(Clone, Debug)]
pub struct RegisteredAgent {
    pub id: Uuid,
    pub machine_id: String,
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    pub registered_at: DateTime<Utc>,
    /// Registration order.
    pub seq: u64,
}

impl RegisteredAgent {
    pub fn to_json(&self) -> Value {
        json!({
            "agent_id": self.id,
            "machine_id": self.machine_id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "registered_at": timestamp(self.registered_at),
        })
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sim/cloud/agents/register", web::post().to(register));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    token: String,
    machine_id: String,
}

/// The personal tenant a `backup_agent_admin` scope names.
fn scoped_personal_tenant(scopes: &[String]) -> Option<Uuid> {
    scopes.iter().find_map(|scope| {
        scope
            .strip_prefix("urn:acronis.com:tenant-id:")?
            .strip_suffix(":backup_agent_admin")
            .and_then(|id| Uuid::parse_str(id).ok())
    })
}

fn refused(message: String) -> CloudError {
    CloudError::new(StatusCode::FORBIDDEN, REGISTRATION_REFUSED, message)
}

/// Where the agent goes (tenant, user), if the cloud lets it register.
fn placement(
    store: &Store,
    token_tenant: Uuid,
    scopes: &[String],
) -> CloudResult<(Uuid, Option<Uuid>)> {
    let user = scoped_personal_tenant(scopes)
        .and_then(|p| store.personal_tenants.get(&p))
        .and_then(|u| store.users.get(u));
    let tenant_id = user.map_or(token_tenant, |u| u.tenant_id);
    let tenant_name = store.tenants.get(&tenant_id).map_or_else(
        || tenant_id.to_string(),
        |t| format!("{:?} ({tenant_id})", t.name),
    );
    let for_machines = |id: Uuid| {
        store
            .items_on(id)
            .iter()
            .any(|h| MACHINE_ITEMS.contains(&h.item.name))
    };
    let wanted = MACHINE_ITEMS.join(", ");
    if !for_machines(tenant_id) {
        return Err(refused(format!(
            "Registration refused: tenant {tenant_name} has no Backup offering item for machines on (one of {wanted})"
        )));
    }
    if let Some(user) = user
        && !for_machines(user.personal_tenant_id)
    {
        let login = user.login.clone().unwrap_or_else(|| user.id.to_string());
        return Err(refused(format!(
            "Registration refused: user {login:?} of tenant {tenant_name} has the Backup offering items for machines ({wanted}) turned off on its personal tenant {}",
            user.personal_tenant_id
        )));
    }
    Ok((tenant_id, user.map(|u| u.id)))
}

async fn register(cloud: web::Data<Cloud>, registration: JsonBody<Registration>) -> CloudResult {
    let registration = registration.parse()?;
    let machine_id = registration.machine_id.trim();
    if machine_id.is_empty() {
        return Err(CloudError::invalid("machine_id must not be empty"));
    }
    let mut store = cloud.store();
    let now = Utc::now();
    store.drop_expired_tokens(now);
    let (token_tenant, scopes) = store
        .registration_tokens
        .by_code(registration.token.trim())
        .map(|t| (t.tenant_id, t.scopes.clone()))
        .ok_or_else(|| {
            CloudError::new(
                StatusCode::UNAUTHORIZED,
                UNKNOWN_REGISTRATION_TOKEN,
                "Registration token unknown or expired",
            )
        })?;
    let (tenant_id, user_id) = placement(&store, token_tenant, &scopes)?;
    let seq = store.next_seq();
    let id = match store.agents.get(machine_id) {
        Some(agent) => agent.id,
        None => store.new_id(),
    };
    let agent = RegisteredAgent {
        id,
        machine_id: machine_id.to_string(),
        tenant_id,
        user_id,
        registered_at: now,
        seq,
    };
    store.agents.insert(agent.machine_id.clone(), agent);
    Ok(HttpResponse::Ok()
        .json(json!({ "agent_id": id, "tenant_id": tenant_id, "user_id": user_id })))
}
