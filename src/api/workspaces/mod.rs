//! `/api/v1/workspaces`: connect a BackupAgent install base to the caller's tenant.

mod check;
mod dto;
mod syncs;

use actix_web::http::header::{self, ETag, EntityTag, Header, IfMatch};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::partner_workspace;
use crate::api::idempotency::{self, CreateRequest, Created, IdempotencyKey, Start};
use crate::api::paging::{PageParams, Paged};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::workspaces::{
    self as store, CloudClient, NewWorkspace, SourceLogin, StoreError, WorkspaceChanges,
};
use crate::domain::provisioning::Profile;
use crate::error::ApiError;
pub use dto::*;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_workspace)
        .service(list_workspaces)
        .service(get_workspace)
        .service(update_workspace)
        .service(delete_workspace)
        .service(check::check_workspace)
        .service(syncs::start_sync);
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::VersionMismatch => ApiError::PreconditionFailed,
            StoreError::Db(e) => e.into(),
            StoreError::Crypto(e) => ApiError::Internal(e.into()),
        }
    }
}

fn etag(version: i32) -> ETag {
    ETag(EntityTag::new_strong(format!("v{version}")))
}

/// The versions `If-Match` names: `None` when absent or `*` (any version will do).
/// A header naming no version of ours matches nothing: 412.
fn if_match_versions(req: &HttpRequest) -> Result<Option<Vec<i32>>, ApiError> {
    if !req.headers().contains_key(header::IF_MATCH) {
        return Ok(None);
    }
    let tags = match <IfMatch as Header>::parse(req) {
        Ok(IfMatch::Any) => return Ok(None),
        Ok(IfMatch::Items(tags)) => tags,
        Err(_) => return Err(ApiError::PreconditionFailed),
    };
    let versions: Vec<i32> = tags
        .iter()
        .filter(|t| !t.weak)
        .filter_map(|t| t.tag().strip_prefix('v')?.parse().ok())
        .collect();
    if versions.is_empty() {
        Err(ApiError::PreconditionFailed)
    } else {
        Ok(Some(versions))
    }
}

fn source(s: &SourceCredentials) -> SourceLogin<'_> {
    SourceLogin {
        url: &s.url,
        login: s.login.trim(),
        password: &s.password.0,
    }
}

fn target(t: &TargetCredentials) -> CloudClient<'_> {
    CloudClient {
        url: &t.url,
        client_id: t.client_id.trim(),
        client_secret: &t.client_secret.0,
    }
}

/// Connect a workspace.
///
/// Stores the BackupAgent login and the cloud API client credentials encrypted,
/// bound to the caller's tenant, and runs the connection check (its report is in
/// the answer; a failed check does not stop the creation, so that the credentials
/// can be corrected). Send an `Idempotency-Key` to retry safely: the same key with
/// the same body answers as the first time.
#[utoipa::path(
    tag = "workspaces",
    request_body = CreateWorkspace,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Connected", body = Workspace,
            headers(("Location" = String, description = "The new workspace"))),
        (status = 409, response = docs::Conflict),
        docs::PartnerErrors,
        docs::BodyErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces")]
#[tracing::instrument(name = "create workspace", skip_all, fields(tenant = %partner.tenant_id))]
async fn create_workspace(
    partner: Partner,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: ValidJson<CreateWorkspace>,
) -> Result<HttpResponse, ApiError> {
    let request = &body.value;
    let create = CreateRequest {
        tenant_id: partner.tenant_id,
        operation: "POST /api/v1/workspaces",
        key,
        body: &body.raw,
    };
    let pending = match idempotency::start(&state.db, &state.secrets, create).await? {
        Start::Replayed(response) => return Ok(response),
        Start::Proceed(pending) => pending,
    };
    let (source, target) = (source(&request.source), target(&request.target));
    let check = check::run_check(
        &source,
        &target,
        partner.tenant_id,
        state.allow_private_networks,
        &state.metrics,
        request
            .provisioning
            .as_ref()
            .unwrap_or(&Profile::standard()),
    )
    .await;
    pending
        .create(&state.db, async |txn| {
            let limits = request.limits.unwrap_or_default();
            let new = NewWorkspace {
                tenant_id: partner.tenant_id,
                name: request.name.trim(),
                source,
                target,
                connection_check: Some(&check),
                source_limit: limits.source,
                target_limit: limits.target,
                provisioning: request.provisioning.as_ref(),
            };
            let workspace = store::insert(txn, &state.secrets, new).await?;
            tracing::info!(workspace = %workspace.id, "workspace connected");
            Ok(Created {
                location: format!("/api/v1/workspaces/{}", workspace.id),
                body: serde_json::to_value(Workspace::from(workspace))
                    .map_err(anyhow::Error::from)?,
                status: actix_web::http::StatusCode::CREATED,
            })
        })
        .await
}

/// List the caller's workspaces, oldest first.
#[utoipa::path(
    tag = "workspaces",
    params(PageParams),
    responses(
        (status = 200, body = inline(Paged<Workspace>)),
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces")]
async fn list_workspaces(
    partner: Partner,
    state: web::Data<AppState>,
    query: web::Query<PageParams>,
) -> Result<web::Json<Paged<Workspace>>, ApiError> {
    let page = query.page()?;
    let rows = store::list(&state.db, partner.tenant_id, page).await?;
    Ok(web::Json(Paged::from_rows(
        rows,
        page,
        |w| w.id,
        Workspace::from,
    )))
}

/// Get one workspace; credentials are never returned.
#[utoipa::path(
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 200, body = Workspace, headers(("ETag" = String, description = "The version, for If-Match"))),
        docs::WorkspaceErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}")]
async fn get_workspace(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let workspace = partner_workspace(&state, &partner, *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(workspace.version))
        .json(Workspace::from(workspace)))
}

/// Rename a workspace or replace its source or target credentials.
///
/// A credentials object replaces the whole set (URL, login or client id, and secret).
/// With `If-Match`, the change applies only to that version (412 otherwise).
#[utoipa::path(
    tag = "workspaces",
    request_body = UpdateWorkspace,
    params(
        ("id" = Uuid, Path, description = "Workspace id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this change is based on"),
    ),
    responses(
        (status = 200, body = Workspace, headers(("ETag" = String, description = "The new version"))),
        (status = 404, response = docs::NotFound),
        (status = 412, response = docs::PreconditionFailed),
        docs::PartnerErrors,
        docs::BodyErrors,
    ),
    security(("bearer_auth" = []))
)]
#[patch("/workspaces/{id}")]
#[tracing::instrument(name = "update workspace", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
async fn update_workspace(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: ValidJson<UpdateWorkspace>,
) -> Result<HttpResponse, ApiError> {
    let request = &body.value;
    let changes = WorkspaceChanges {
        name: request.name.as_deref().map(str::trim),
        source: request.source.as_ref().map(source),
        target: request.target.as_ref().map(target),
        limits: request.limits.map(|l| (l.source, l.target)),
        provisioning: request.provisioning.as_ref(),
    };
    let versions = if_match_versions(&req)?;
    let updated = store::update(
        &state.db,
        &state.secrets,
        partner.tenant_id,
        *id,
        versions.as_deref(),
        &changes,
    )
    .await?;
    tracing::info!(version = updated.version, "workspace updated");
    Ok(HttpResponse::Ok()
        .insert_header(etag(updated.version))
        .json(Workspace::from(updated)))
}

/// Disconnect a workspace and forget its credentials.
#[utoipa::path(
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 204, description = "Deleted"),
        docs::WorkspaceErrors,
    ),
    security(("bearer_auth" = []))
)]
#[delete("/workspaces/{id}")]
#[tracing::instrument(name = "delete workspace", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
async fn delete_workspace(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if !store::delete(&state.db, partner.tenant_id, *id).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!("workspace deleted");
    Ok(HttpResponse::NoContent().finish())
}
