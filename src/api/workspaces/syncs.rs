//! `POST /api/v1/workspaces/{id}/syncs`: copy the source install base into the snapshot.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, post, web};
use uuid::Uuid;

use crate::api::docs;
use crate::api::guard::partner_workspace;
use crate::api::operations::Operation;
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::error::ApiError;
use crate::jobs::SyncWorkspace;
use crate::queue::store as queue;

/// Start a sync of the workspace's BackupAgent install base.
///
/// Answers 202 with the operation to poll. While a sync of this workspace is
/// queued or running, starting another answers that one. A re-sync applies what
/// changed and keeps migration state; a failed sync leaves the snapshot as it was.
#[utoipa::path(
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 202, description = "Started (or already under way)", body = Operation,
            headers(("Location" = String, description = "The operation"))),
        docs::WorkspaceErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/syncs")]
#[tracing::instrument(name = "start sync", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
pub async fn start_sync(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let enqueued = queue::enqueue(
        &state.db,
        SyncWorkspace::of(partner.tenant_id, workspace.id),
    )
    .await?;
    let job = queue::get(&state.db, enqueued.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(operation = %job.id, created = enqueued.created, "sync requested");
    Ok(HttpResponse::Accepted()
        .insert_header((LOCATION, format!("/api/v1/operations/{}", job.id)))
        .json(Operation::from(job)))
}
