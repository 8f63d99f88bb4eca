//! What partners do about their agents: set the enrollment secret.

use actix_web::{HttpResponse, post, web};
use uuid::Uuid;

use super::dto::EnrollmentSecret;
use crate::api::docs;
use crate::api::guard::partner_workspace;
use crate::api::state::AppState;
use crate::auth::{Partner, digest, random_secret};
use crate::db::agents as store;
use crate::error::ApiError;
use crate::jobs::webhook;

/// Set a new enrollment secret for the workspace's agents.
///
/// The previous secret stops working; agents enrolled with it keep their tokens.
#[utoipa::path(
    tag = "agents",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 201, description = "The new secret, shown once", body = EnrollmentSecret),
        docs::WorkspaceErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/enrollment-secret")]
pub async fn rotate_enrollment_secret(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let secret = random_secret("mpe_", 24);
    let actor = format!("partner:{}", partner.subject);
    let deliveries =
        store::set_enrollment_secret(&state.db, workspace.id, &digest(&secret), actor).await?;
    webhook::schedule(&state.db, deliveries).await?;
    Ok(HttpResponse::Created().json(EnrollmentSecret {
        workspace_id: workspace.id,
        enrollment_secret: secret,
    }))
}
