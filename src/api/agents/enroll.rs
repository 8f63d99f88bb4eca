//! Enrollment: an agent trades its workspace's enrollment secret for a token of
//! its own.

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, post, web};

use super::dto::{Enrolled, Enrollment};
use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::admit_agent;
use crate::api::state::AppState;
use crate::auth::{constant_time_eq, digest, random_secret};
use crate::db::agents as store;
use crate::domain::instructions::{Action, instruction, poll_after, poll_soon};
use crate::error::ApiError;
use crate::jobs::webhook;

/// Enroll a machine's agent.
#[utoipa::path(
    tag = "agents",
    request_body = Enrollment,
    responses(
        (status = 201, description = "Enrolled", body = Enrolled),
        (status = 404, response = docs::NotFound),
        docs::AgentErrors,
        docs::BodyErrors,
    )
)]
#[post("/enroll", wrap = "from_fn(admit_agent)")]
pub async fn enroll(
    state: web::Data<AppState>,
    body: ValidJson<Enrollment>,
) -> Result<HttpResponse, ApiError> {
    let request = &body.value;
    let expected = store::enrollment_secret(&state.db, request.workspace_id).await?;
    let presented = digest(&request.enrollment_secret);
    // The same answer for an unknown workspace and a wrong secret.
    let Some(expected) = expected else {
        return Err(ApiError::Unauthorized {
            credentials_present: true,
        });
    };
    if !constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
        tracing::info!(workspace = %request.workspace_id, "enrollment refused: wrong secret");
        return Err(ApiError::Unauthorized {
            credentials_present: true,
        });
    }
    let machine = store::machine(&state.db, request.workspace_id, &request.machine_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // A machine released to migrate checks in again within a minute or so, not at the
    // regular interval: enrolled when its migration is already under way, it would
    // otherwise wait half an hour to start.
    let poll = match instruction(machine.status.state, machine.readiness.as_deref()) {
        (Action::Migrate, _) => poll_soon(),
        _ => poll_after(),
    };
    let token = random_secret("mpa_", 32);
    let deliveries = store::enroll(
        &state.db,
        request.workspace_id,
        &request.machine_id,
        &digest(&token),
    )
    .await?;
    webhook::schedule(&state.db, deliveries).await?;
    Ok(HttpResponse::Created().json(Enrolled {
        machine_id: request.machine_id.clone(),
        token,
        poll_after_secs: poll,
    }))
}
