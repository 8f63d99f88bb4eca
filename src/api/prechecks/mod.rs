//! `/api/v1/workspaces/{id}/prechecks`: the pre-check report of a selection,
//! which is the migration plan; kept, listed, read by section, exported as CSV
//! and compared with an earlier one.

pub(crate) mod csv;
mod dto;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::partner_workspace;
use crate::api::idempotency::{self, Created, IdempotencyKey};
use crate::api::paging::{PageParams, Paged, encode_cursor, invalid_cursor};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::prechecks as store;
use crate::db::scoped;
use crate::domain::report::{Section, compare_encoded};
use crate::error::{ApiError, FieldError};
use crate::jobs::RunPrecheck;
use crate::queue::store as queue;
pub use dto::*;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_precheck)
        .service(list_prechecks)
        .service(get_precheck)
        .service(get_planning)
        .service(get_section)
        .service(export_csv)
        .service(get_changes);
}

/// How many changed entries per section a comparison lists.
const MAX_CHANGES_LISTED: usize = 200;

/// Run a pre-check of a selection.
///
/// Answers 202 with the pre-check, whose report is ready when its `status` is
/// `completed` (its `operation` shows the progress). The report is computed from
/// the workspace's snapshot: sync first. Planned logins are checked with the
/// target unless `check_logins` is false; answers are kept a day per workspace.
/// `options.initial_backup` sets the upload bandwidth and the duration above
/// which Physical Data Shipping is advised (defaults 100 Mbit/s and 7 days).
#[utoipa::path(
    tag = "prechecks",
    request_body = CreatePrecheck,
    params(
        ("id" = Uuid, Path, description = "Workspace id"),
        IdempotencyKey,
    ),
    responses(
        (status = 202, description = "Started", body = Precheck, headers(("Location" = String, description = "The pre-check"))),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::PartnerErrors,
        docs::BodyErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/prechecks")]
#[tracing::instrument(name = "create precheck", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
async fn create_precheck(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<CreatePrecheck>,
) -> Result<HttpResponse, ApiError> {
    let (workspace, pending) = match idempotency::start_in_workspace(
        &state.db,
        &state.secrets,
        partner.tenant_id,
        *id,
        "prechecks",
        key,
        &body.raw,
    )
    .await?
    {
        Ok(go_ahead) => go_ahead,
        Err(replayed) => return Ok(replayed),
    };
    if workspace.snapshot_synced_at.is_none() {
        return Err(ApiError::conflict(
            "not_synced",
            "The workspace has no snapshot yet: start a sync and wait for it to finish.",
        ));
    }
    let request = &body.value;
    check_selection(&state.db, workspace.id, &request.selection).await?;
    let selection = serde_json::to_string(&request.selection).map_err(anyhow::Error::from)?;
    let options = serde_json::to_string(&request.options).map_err(anyhow::Error::from)?;
    pending
        .create(&state.db, async |txn| {
            let precheck_id = Uuid::now_v7();
            let job = RunPrecheck::of(partner.tenant_id, workspace.id, precheck_id);
            let enqueued = queue::enqueue(txn, job).await?;
            let model = entity::precheck::Model {
                id: precheck_id,
                workspace_id: workspace.id,
                tenant_id: partner.tenant_id,
                job_id: enqueued.id,
                selection,
                check_logins: request.check_logins,
                options: Some(options),
                planning: None,
                snapshot_synced_at: None,
                created_at: Utc::now(),
                completed_at: None,
            };
            store::insert(txn, model.clone()).await?;
            tracing::info!(precheck = %precheck_id, operation = %enqueued.id, "pre-check requested");
            Ok(Created {
                location: format!("/api/v1/workspaces/{}/prechecks/{precheck_id}", workspace.id),
                body: serde_json::to_value(Precheck::new(model, Some("queued"), workspace.snapshot_synced_at)).map_err(anyhow::Error::from)?,
                status: StatusCode::ACCEPTED,
            })
        })
        .await
}

/// 409 naming each node of `selection` that is not in the workspace's snapshot
/// (a state, not a malformed request: a later sync may bring it).
pub(crate) async fn check_selection(
    db: &sea_orm::DatabaseConnection,
    workspace_id: Uuid,
    selection: &[crate::domain::plan::Node],
) -> Result<(), ApiError> {
    let missing = store::missing_nodes(db, workspace_id, selection).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let errors = missing
        .into_iter()
        .map(|i| FieldError {
            pointer: format!("/selection/{i}"),
            detail: "No such group or user in this workspace's snapshot.".into(),
        })
        .collect();
    Err(ApiError::conflict_at(
        "unknown_nodes",
        "The selection names groups or users that the workspace's snapshot does not have.",
        errors,
    ))
}

/// List the workspace's pre-checks, oldest first.
#[utoipa::path(
    tag = "prechecks",
    params(("id" = Uuid, Path, description = "Workspace id"), PageParams),
    responses((status = 200, body = Paged<Precheck>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/prechecks")]
async fn list_prechecks(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<PageParams>,
) -> Result<web::Json<Paged<Precheck>>, ApiError> {
    let page = params.page()?;
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let rows =
        scoped::list::<entity::precheck::Entity>(&state.db, partner.tenant_id, workspace.id, page)
            .await?;
    let mut statuses = std::collections::HashMap::new();
    for row in &rows {
        statuses.insert(row.id, job_status(&state, row).await?);
    }
    Ok(web::Json(Paged::from_rows(
        rows,
        page,
        |r| r.id,
        |r| {
            let status = statuses.get(&r.id).cloned().flatten();
            Precheck::new(r, status.as_deref(), workspace.snapshot_synced_at)
        },
    )))
}

async fn job_status(
    state: &AppState,
    precheck: &entity::precheck::Model,
) -> Result<Option<String>, ApiError> {
    if precheck.completed_at.is_some() {
        return Ok(None);
    }
    Ok(queue::get(&state.db, precheck.job_id)
        .await?
        .map(|j| j.status))
}

/// The pre-check, and the workspace it belongs to; another tenant's is not found.
async fn find(
    state: &AppState,
    partner: &Partner,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<(entity::workspace::Model, entity::precheck::Model), ApiError> {
    let workspace = partner_workspace(state, partner, workspace_id).await?;
    let precheck =
        scoped::find::<entity::precheck::Entity>(&state.db, partner.tenant_id, workspace.id, id)
            .await?
            .ok_or(ApiError::NotFound)?;
    Ok((workspace, precheck))
}

fn completed(precheck: &entity::precheck::Model) -> Result<Value, ApiError> {
    let planning = precheck
        .planning
        .as_deref()
        .filter(|_| precheck.completed_at.is_some())
        .ok_or_else(|| {
            ApiError::conflict(
                "precheck_not_ready",
                "The report is not ready: see the pre-check's operation.",
            )
        })?;
    serde_json::from_str(planning).map_err(|e| ApiError::Internal(e.into()))
}

/// Get a pre-check: its status and, once completed, the entries per section.
#[utoipa::path(
    tag = "prechecks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("precheck_id" = Uuid, Path, description = "Pre-check id")),
    responses((status = 200, body = Precheck), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/prechecks/{precheck_id}")]
async fn get_precheck(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Precheck>, ApiError> {
    let (workspace, precheck) = find(&state, &partner, path.0, path.1).await?;
    let status = job_status(&state, &precheck).await?;
    Ok(web::Json(Precheck::new(
        precheck,
        status.as_deref(),
        workspace.snapshot_synced_at,
    )))
}

/// The report's *Migration planning* section.
///
/// Counts of companies, users, machines and data volume; machines by readiness;
/// client versions by platform; clients that will update by themselves; users to
/// contact by reason (their contacts are the `contacts` section); machines that
/// need additional actions by cause, with the steps; how fresh the target's
/// answers on logins are; initial backups (`initial_backup`): the bandwidth and
/// threshold used, the customers' data volume, the longest duration and the
/// customers for whom Physical Data Shipping is advised (each customer is in
/// the `initial_backup` section).
#[utoipa::path(
    tag = "prechecks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("precheck_id" = Uuid, Path, description = "Pre-check id")),
    responses(
        (status = 200, description = "The planning section", body = Object),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/prechecks/{precheck_id}/planning")]
async fn get_planning(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Value>, ApiError> {
    let (_, precheck) = find(&state, &partner, path.0, path.1).await?;
    let mut planning = completed(&precheck)?;
    if let Some(map) = planning.as_object_mut() {
        map.remove("sections");
    }
    Ok(web::Json(planning))
}

/// A section of the report, cursor-paged.
///
/// `contacts`: users to contact, why, and how to reach them. `actions`: machines
/// for which additional actions should be taken, one entry per machine and cause
/// (the steps are in the planning section). `hierarchy`: each group beside the
/// tenant it becomes, names as segments (kept, removed, substituted, added).
/// `groups`: each group's admin, source login -> target login. `users`: each
/// backup user, source login -> target login, with the reasons for any change.
/// `initial_backup`: each customer tenant's data volume, the estimated duration
/// of its initial backup and whether Physical Data Shipping is advised, the
/// largest volume first.
#[utoipa::path(
    tag = "prechecks",
    params(
        ("id" = Uuid, Path, description = "Workspace id"),
        ("precheck_id" = Uuid, Path, description = "Pre-check id"),
        ("section" = Section, Path, description = "Section"),
        PageParams,
    ),
    responses(
        (status = 200, body = SectionPage),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/prechecks/{precheck_id}/sections/{section}")]
async fn get_section(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid, Section)>,
    params: web::Query<PageParams>,
) -> Result<web::Json<SectionPage>, ApiError> {
    let (workspace_id, id, section) = path.into_inner();
    let page = params.page()?;
    let (_, precheck) = find(&state, &partner, workspace_id, id).await?;
    completed(&precheck)?;
    // The cursor holds the position of the next entry: far below 2^32 in any report, so a
    // larger one was not issued here (and would overflow the arithmetic below).
    let offset = match page.after {
        None => 0,
        Some(position) => u32::try_from(position.as_u128())
            .map(u64::from)
            .map_err(|_| invalid_cursor())?,
    };
    let mut entries = store::entries(&state.db, precheck.id, section, offset, page.limit).await?;
    let more = entries.len() as u64 > page.limit;
    entries.truncate(page.limit as usize);
    let next = offset + entries.len() as u64;
    Ok(web::Json(SectionPage {
        section,
        items: entries.into_iter().map(|e| e.value).collect(),
        next_cursor: more.then(|| encode_cursor(Uuid::from_u128(u128::from(next)))),
    }))
}

/// Export a section as CSV: `contacts`, `actions`, `groups`, `users` or `initial_backup`.
///
/// Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, tab or carriage return) are prefixed with `'`.
#[utoipa::path(
    tag = "prechecks",
    params(
        ("id" = Uuid, Path, description = "Workspace id"),
        ("precheck_id" = Uuid, Path, description = "Pre-check id"),
        ("section" = Section, Path, description = "Section (`hierarchy` has no CSV form)"),
    ),
    responses(
        (status = 200, description = "CSV with a header row", content_type = "text/csv", body = String),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/prechecks/{precheck_id}/exports/{section}")]
async fn export_csv(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid, Section)>,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, id, section) = path.into_inner();
    let (_, precheck) = find(&state, &partner, workspace_id, id).await?;
    completed(&precheck)?;
    let Some(columns) = csv::columns(section) else {
        return Err(ApiError::NotFound);
    };
    let entries = store::all_entries(&state.db, precheck.id, section).await?;
    let body = csv::write(columns, &entries).map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"precheck-{}-{}.csv\"",
                precheck.id,
                section.as_str()
            ),
        ))
        .body(body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ChangesParams {
    /// The earlier pre-check; by default the workspace's completed pre-check before this one.
    since: Option<Uuid>,
}

/// What changed since an earlier pre-check: the planning figures that differ,
/// and per section the entries added, removed and changed.
#[utoipa::path(
    tag = "prechecks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("precheck_id" = Uuid, Path, description = "Pre-check id"), ChangesParams),
    responses(
        (status = 200, body = PrecheckChanges),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/prechecks/{precheck_id}/changes")]
async fn get_changes(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    params: web::Query<ChangesParams>,
) -> Result<web::Json<PrecheckChanges>, ApiError> {
    let (workspace, later) = find(&state, &partner, path.0, path.1).await?;
    let after = completed(&later)?;
    let earlier = match params.since {
        Some(since) => scoped::find::<entity::precheck::Entity>(
            &state.db,
            partner.tenant_id,
            workspace.id,
            since,
        )
        .await?
        .ok_or(ApiError::NotFound)?,
        None => store::previous(&state.db, workspace.id, later.id)
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "no_earlier_precheck",
                    "The workspace has no completed pre-check before this one.",
                )
            })?,
    };
    let before = completed(&earlier)?;
    let mut sections = std::collections::BTreeMap::new();
    for section in Section::ALL {
        // As text: a large report's sections as JSON trees, twice, took gigabytes.
        let old = store::all_entries_encoded(&state.db, earlier.id, section).await?;
        let new = store::all_entries_encoded(&state.db, later.id, section).await?;
        sections.insert(section, compare_encoded(old, new, MAX_CHANGES_LISTED));
    }
    let mut planning = serde_json::Map::new();
    diff_figures("", &before, &after, &mut planning);
    Ok(web::Json(PrecheckChanges {
        precheck_id: later.id,
        since: earlier.id,
        planning: Value::Object(planning),
        sections,
    }))
}

/// Every number or string that differs, by JSON Pointer.
fn diff_figures(
    path: &str,
    before: &Value,
    after: &Value,
    out: &mut serde_json::Map<String, Value>,
) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                diff_figures(&format!("{path}/{key}"), x, y, out);
            }
        }
        (a, b) if a != b => {
            out.insert(path.to_string(), json!({"before": a, "after": b}));
        }
        _ => {}
    }
}
