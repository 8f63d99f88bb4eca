//! `/api/v1/workspaces/{id}/machines`: every machine's migration state, why it
//! waits, whether its agent is overdue; retry a failed machine; mark manual
//! steps done.

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::guard::partner_workspace;
use crate::api::paging::{PageParams, Paged, encode_key};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::agents::{self as store, MachineRow};
use crate::db::events::NewEvent;
use crate::domain::agent::{Operation, Outcome, Phase, Waiting, operate, waiting_reason};
use crate::domain::machines::MachineState;
use crate::error::ApiError;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_machines)
        .service(retry_machine)
        .service(manual_done)
        .service(list_logs)
        .service(get_log);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MachineQuery {
    /// Only machines in this state.
    pub state: Option<MachineState>,
    /// Machines per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MachineStatus {
    pub machine_id: String,
    pub user_id: Option<String>,
    pub hostname: Option<String>,
    pub state: MachineState,
    /// Where a migrating machine is.
    pub phase: Option<Phase>,
    /// Why a pending or migrating machine waits.
    pub waiting_reason: Option<String>,
    /// Not seen for more than two check-in intervals.
    pub not_seen: bool,
    /// A failed machine's error, or a manual action's instructions.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub state_changed_at: Option<DateTime<Utc>>,
}

impl MachineStatus {
    fn new(row: MachineRow, now: DateTime<Utc>) -> Self {
        let (waiting_reason, not_seen) = waiting_reason(Waiting {
            state: row.status.state,
            readiness: row.readiness.as_deref(),
            client_version: row
                .reported_client_version
                .as_deref()
                .or(row.data["client_version"].as_str()),
            last_check_in_at: row.last_check_in_at,
            since: row.state_changed_at,
            now,
        });
        Self {
            hostname: row.data["hostname"].as_str().map(str::to_string),
            machine_id: row.machine_id,
            user_id: row.user_id,
            state: row.status.state,
            phase: row.status.phase,
            waiting_reason,
            not_seen,
            error_code: row.error_code,
            error_message: row.error_message,
            last_check_in_at: row.last_check_in_at,
            state_changed_at: row.state_changed_at,
        }
    }
}

/// List the workspace's machines by id, optionally in one state
/// (`?state=failed`, `?state=pending`, …), each with why it waits.
#[utoipa::path(
    tag = "machines",
    params(("id" = Uuid, Path, description = "Workspace id"), MachineQuery),
    responses((status = 200, body = Paged<MachineStatus>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/machines")]
async fn list_machines(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<MachineQuery>,
) -> Result<web::Json<Paged<MachineStatus>>, ApiError> {
    let query = query.into_inner();
    let (limit, after) = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .keyed::<String>()?;
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let mut rows = store::machines(
        &state.db,
        workspace.id,
        query.state,
        after.as_deref(),
        limit,
    )
    .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_key(&r.machine_id))
    } else {
        None
    };
    let now = Utc::now();
    Ok(web::Json(Paged {
        items: rows
            .into_iter()
            .map(|r| MachineStatus::new(r, now))
            .collect(),
        next_cursor,
    }))
}

async fn operate_on(
    state: &AppState,
    partner: &Partner,
    workspace_id: Uuid,
    machine_id: &str,
    operation: Operation,
) -> Result<web::Json<MachineStatus>, ApiError> {
    let workspace = partner_workspace(state, partner, workspace_id).await?;
    let machine = store::machine(&state.db, workspace.id, machine_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let to = match operate(machine.status, operation) {
        Outcome::Moved(to) => to,
        Outcome::Refused(reason) => return Err(ApiError::conflict("illegal_transition", reason)),
        Outcome::AlreadySeen => {
            return Err(ApiError::conflict("illegal_transition", "nothing to do"));
        }
    };
    let txn = state.db.begin().await?;
    if !store::transition(&txn, workspace.id, machine_id, machine.status, to, None).await? {
        return Err(ApiError::conflict(
            "concurrent_change",
            "The machine changed meanwhile: look again.",
        ));
    }
    let event = NewEvent {
        actor: format!("partner:{}", partner.subject),
        subject_kind: "machine",
        subject_id: machine_id.to_string(),
        migration_id: None,
        kind: format!("machine.{}", operation.name()),
        message: format!("{} -> {}", machine.status.state.as_str(), to.state.as_str()),
        data: None,
    };
    crate::jobs::record_events(&txn, workspace.id, vec![event]).await?;
    txn.commit().await?;
    let row = store::machine(&state.db, workspace.id, machine_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(MachineStatus::new(row, Utc::now())))
}

/// Retry a failed machine once its cause is fixed: it goes back to `pending` and
/// its agent starts again at its next check-in.
#[utoipa::path(
    tag = "machines",
    params(("id" = Uuid, Path, description = "Workspace id"), ("machine_id" = String, Path, description = "Machine id")),
    responses((status = 200, body = MachineStatus), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/machines/{machine_id}/retry")]
async fn retry_machine(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<web::Json<MachineStatus>, ApiError> {
    operate_on(&state, &partner, path.0, &path.1, Operation::Retry).await
}

/// Mark a machine's manual action (e.g. registering SQL Server or Exchange) done: it is migrated.
#[utoipa::path(
    tag = "machines",
    params(("id" = Uuid, Path, description = "Workspace id"), ("machine_id" = String, Path, description = "Machine id")),
    responses((status = 200, body = MachineStatus), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/machines/{machine_id}/manual-done")]
async fn manual_done(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<web::Json<MachineStatus>, ApiError> {
    operate_on(&state, &partner, path.0, &path.1, Operation::MarkManualDone).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MachineLog {
    pub id: Uuid,
    pub uploaded_at: DateTime<Utc>,
    pub size_bytes: i64,
}

/// List the client logs the machine's agent uploaded, oldest first.
#[utoipa::path(
    tag = "machines",
    params(("id" = Uuid, Path, description = "Workspace id"), ("machine_id" = String, Path, description = "Machine id")),
    responses((status = 200, body = Vec<MachineLog>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/machines/{machine_id}/logs")]
async fn list_logs(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<web::Json<Vec<MachineLog>>, ApiError> {
    use entity::machine_log::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let workspace = partner_workspace(&state, &partner, path.0).await?;
    store::machine(&state.db, workspace.id, &path.1)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rows: Vec<(Uuid, DateTime<Utc>, i64)> = Entity::find()
        .select_only()
        .columns([Column::Id, Column::UploadedAt, Column::SizeBytes])
        .filter(Column::WorkspaceId.eq(workspace.id))
        .filter(Column::MachineId.eq(path.1.as_str()))
        .order_by_asc(Column::Id)
        .limit(500)
        .into_tuple()
        .all(&state.db)
        .await?;
    Ok(web::Json(
        rows.into_iter()
            .map(|(id, uploaded_at, size_bytes)| MachineLog {
                id,
                uploaded_at,
                size_bytes,
            })
            .collect(),
    ))
}

/// Get one client log, as text.
#[utoipa::path(
    tag = "machines",
    params(("id" = Uuid, Path, description = "Workspace id"), ("machine_id" = String, Path, description = "Machine id"), ("log_id" = Uuid, Path, description = "Log id")),
    responses((status = 200, description = "The log", content_type = "text/plain", body = String), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/machines/{machine_id}/logs/{log_id}")]
async fn get_log(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String, Uuid)>,
) -> Result<actix_web::HttpResponse, ApiError> {
    use entity::machine_log::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use std::io::Read;
    let workspace = partner_workspace(&state, &partner, path.0).await?;
    let log = Entity::find_by_id(path.2)
        .filter(Column::WorkspaceId.eq(workspace.id))
        .filter(Column::MachineId.eq(path.1.as_str()))
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut text = Vec::with_capacity(log.size_bytes.max(0) as usize);
    flate2::read::GzDecoder::new(log.data.as_slice())
        .read_to_end(&mut text)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(actix_web::HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
