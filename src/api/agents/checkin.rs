//! The check-in: an agent asks what to do now, and may state its client version.

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, get, web};
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

use super::dto::Instructions;
use crate::api::docs;
use crate::api::guard::require_agent;
use crate::api::registration::{Registration, machine_registration};
use crate::api::state::AppState;
use crate::auth::{Agent, digest};
use crate::db::agent_reports;
use crate::db::agents::MachineRow;
use crate::domain::instructions::{
    Action, REGISTRATION_PENDING, installer, instruction, poll_after, poll_soon,
    readiness_with_client, stated_client_version,
};
use crate::error::ApiError;
use crate::jobs::webhook;

/// The header an agent states its BackupAgent client version in.
const CLIENT_VERSION: &str = "x-client-version";

/// Get the agent's instructions.
///
/// Cheap to poll: the answer's `ETag` changes only when the instructions do, and
/// `If-None-Match` with it answers 304 without a body. An agent states its client
/// version in `X-Client-Version`: a released machine that waited for its client's
/// update migrates at the check-in that reports a recent enough version, without
/// waiting for the next sync.
#[utoipa::path(
    tag = "agents",
    params(
        ("X-Client-Version" = Option<String>, Header, description = "The BackupAgent client's version, `major.minor.patch.build`, at most 64 characters (another form is ignored)", example = "5.5.0.15908"),
    ),
    responses(
        (status = 200, description = "What to do now", body = Instructions, headers(("ETag" = String, description = "Changes when the instructions do"))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, response = docs::NotFound),
        (status = 503, response = docs::Unavailable),
        docs::AgentErrors,
    ),
    security(("agent_token" = []))
)]
#[get("/instructions", wrap = "from_fn(require_agent)")]
pub async fn instructions(
    state: web::Data<AppState>,
    req: HttpRequest,
    Agent(mut machine): Agent,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = machine.workspace_id;
    state.check_ins.record(workspace_id, &machine.machine_id);
    if let Some(version) = req
        .headers()
        .get(CLIENT_VERSION)
        .and_then(|v| v.to_str().ok())
        .and_then(stated_client_version)
    {
        client_reported(&state, &mut machine, version).await?;
    }
    let (mut action, mut reason) = instruction(machine.status.state, machine.readiness.as_deref());
    // The registration token is made ahead by a job (see `api::registration`); until
    // it is there, the agent waits and comes back soon.
    let registration = match action {
        Action::Migrate => match machine_registration(&state, &machine).await? {
            Some(Registration::Ready(registration)) => Some(registration),
            Some(Registration::Pending) => {
                (action, reason) = (Action::None, Some(REGISTRATION_PENDING));
                None
            }
            None => None,
        },
        _ => None,
    };
    let migrate = action == Action::Migrate;
    let body = Instructions {
        registration,
        reason: reason.map(str::to_string),
        action: action.as_str().into(),
        machine_id: machine.machine_id.clone(),
        state: machine.status.state,
        package: migrate.then(|| package(&machine.data)),
        plans: if migrate { machine.plans.clone() } else { None },
        last_seq: machine.status.last_seq,
        poll_after_secs: 0,
    };
    let etag = etag(&body)?;
    let poll = if reason == Some(REGISTRATION_PENDING) {
        poll_soon()
    } else {
        poll_after()
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    state.metrics.check_in(matches);
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header((
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.into()))?,
    ));
    response.insert_header(("Poll-After", poll.to_string()));
    if matches {
        return Ok(response.finish());
    }
    Ok(response.json(Instructions {
        poll_after_secs: poll,
        ..body
    }))
}

/// Keeps the client version an agent reports, and the readiness it makes (a
/// write only when either changes: a check-in is otherwise read-only).
async fn client_reported(
    state: &AppState,
    machine: &mut MachineRow,
    version: &str,
) -> Result<(), ApiError> {
    let os_family = machine.data["os"]["family"].as_str().unwrap_or_default();
    let readiness =
        readiness_with_client(os_family, version, machine.readiness.as_deref()).map(str::to_string);
    if machine.reported_client_version.as_deref() == Some(version) && readiness == machine.readiness
    {
        return Ok(());
    }
    let tx = state.db.begin().await?;
    let deliveries =
        agent_reports::client_reported(&tx, machine, version, readiness.as_deref()).await?;
    webhook::schedule(&tx, deliveries).await?;
    tx.commit().await?;
    machine.reported_client_version = Some(version.to_string());
    machine.readiness = readiness;
    Ok(())
}

/// The installer for the machine's platform, as the agent reads it.
fn package(data: &Value) -> Value {
    let installer = installer(data["os"]["family"].as_str().unwrap_or_default());
    json!({"platform": installer.platform, "file": installer.file, "command": installer.command})
}

/// A strong ETag over what the instructions say (the jittered poll time left out).
fn etag(body: &Instructions) -> Result<String, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(format!(
        "\"{}\"",
        &digest(&String::from_utf8_lossy(&bytes))[..32]
    ))
}
