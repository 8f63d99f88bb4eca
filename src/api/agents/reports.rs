//! Step reports: an agent tells each step of its machine's migration.

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, post, web};
use sea_orm::TransactionTrait;

use super::dto::{AgentEvent, Reported};
use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::require_reporting_agent;
use crate::api::state::AppState;
use crate::auth::Agent;
use crate::db::{agent_reports, agents as store};
use crate::domain::agent::{self, Outcome};
use crate::error::ApiError;
use crate::jobs::webhook;

/// Report a step: downloading, installing, registering, plans transferred,
/// restore-only, registration needs manual action, or failed (code, message).
///
/// Idempotent by `seq`; a report the machine's state does not allow is refused
/// with 409 and logged, never applied.
#[utoipa::path(
    tag = "agents",
    request_body = AgentEvent,
    responses(
        (status = 200, description = "Recorded (or already seen)", body = Reported),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::AgentErrors,
        docs::BodyErrors,
    ),
    security(("agent_token" = []))
)]
#[post("/events", wrap = "from_fn(require_reporting_agent)")]
pub async fn report_event(
    state: web::Data<AppState>,
    Agent(mut machine): Agent,
    body: ValidJson<AgentEvent>,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, machine_id) = (machine.workspace_id, machine.machine_id.clone());
    let (seq, report) = (body.value.seq(), body.value.report());
    // A lost race with another report of the same agent: read again and decide again.
    for attempt in 0..3 {
        if attempt > 0 {
            machine = store::machine(&state.db, workspace_id, &machine_id)
                .await?
                .ok_or(ApiError::NotFound)?;
        }
        let from = machine.status;
        match agent::report(from, seq, &report) {
            Outcome::AlreadySeen => return Ok(HttpResponse::Ok().json(Reported::new(false, from))),
            Outcome::Refused(reason) => {
                let deliveries = agent_reports::refuse_report(
                    &state.db,
                    workspace_id,
                    &machine_id,
                    seq,
                    &reason,
                )
                .await?;
                webhook::schedule(&state.db, deliveries).await?;
                return Err(ApiError::conflict("illegal_transition", reason));
            }
            Outcome::Moved(to) => {
                let txn = state.db.begin().await?;
                let Some(deliveries) =
                    agent_reports::apply_report(&txn, workspace_id, &machine_id, from, to, &report)
                        .await?
                else {
                    continue;
                };
                webhook::schedule(&txn, deliveries).await?;
                txn.commit().await?;
                return Ok(HttpResponse::Ok().json(Reported::new(true, to)));
            }
        }
    }
    Err(ApiError::conflict(
        "concurrent_reports",
        "Other reports of this machine keep arriving at the same time: send this one again.",
    ))
}
