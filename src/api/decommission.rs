//! `/api/v1/workspaces/{id}/decommission`: per customer of the install base,
//! when its BackupAgent can be switched off (its machines migrated and the
//! longest retention of their backup plans ran out), listed and as CSV.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::hierarchy::synced;
use crate::api::paging::{PageParams, encode_key};
use crate::api::prechecks::csv::{self, Column};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::{agents, prechecks};
use crate::domain::decommission::{
    CustomerDecommission, DEFAULT_LONG_RETENTION_DAYS, DecommissionSummary, customers_decommission,
    summary,
};
use crate::domain::names::NameRules;
use crate::domain::report::Entry;
use crate::error::ApiError;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_decommission).service(export_decommission);
}

/// The longest threshold accepted: a hundred years.
const MAX_LONG_RETENTION_DAYS: u32 = 36_500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DecommissionQuery {
    /// Flag customers whose longest retention exceeds this many days, 1 to 36500.
    #[param(minimum = 1, maximum = 36500, default = 365)]
    pub long_retention_days: Option<u32>,
    /// Customers per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Flag customers whose longest retention exceeds this many days, 1 to 36500.
    #[param(minimum = 1, maximum = 36500, default = 365)]
    pub long_retention_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecommissionPage {
    /// The threshold the customers were flagged with.
    pub long_retention_days: u32,
    /// Every customer of the install base, not only this page.
    pub summary: DecommissionSummary,
    /// Customers by key.
    pub items: Vec<CustomerDecommission>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn long_retention_days(asked: Option<u32>) -> Result<u32, ApiError> {
    let days = asked.unwrap_or(DEFAULT_LONG_RETENTION_DAYS);
    if !(1..=MAX_LONG_RETENTION_DAYS).contains(&days) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("long_retention_days must be between 1 and {MAX_LONG_RETENTION_DAYS}."),
        ));
    }
    Ok(days)
}

/// Every customer of the workspace's install base, computed from its snapshot
/// and its machines' migration states now.
async fn customers(
    state: &AppState,
    partner: &Partner,
    workspace_id: Uuid,
    long_retention_days: u32,
) -> Result<Vec<CustomerDecommission>, ApiError> {
    let workspace = synced(state, partner, workspace_id).await?;
    let (snapshot, migrated) = tokio::join!(
        prechecks::load_snapshot(&state.db, workspace.id),
        agents::migrated_machines(&state.db, workspace.id)
    );
    let (snapshot, migrated) = (snapshot?, migrated?);
    // Grouping a large install base takes a moment of CPU: off the request threads.
    let rows = tokio::task::spawn_blocking(move || {
        customers_decommission(
            &snapshot,
            &migrated,
            &NameRules::default(),
            long_retention_days,
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(rows)
}

/// When each customer's BackupAgent can be switched off.
///
/// BackupAgent data stays restorable until its retention runs out. Per customer
/// tenant of the plan (as in the pre-check's hierarchy section), paged by key:
/// `decommission_after` is the latest migration among its machines plus the
/// longest retention among their backup plans. It stays empty while machines
/// have not migrated (`status` `waiting_for_machines`, `machines_remaining`
/// says how many; failed, cancelled and manual-action machines have not) or
/// while a plan's retention is unknown (`retention_unknown`). Machines without
/// plans must migrate but add no retention. `long_retention` flags a retention
/// over `long_retention_days`: the seed asks such customers to contact their
/// Acronis representative. The summary covers every customer; the BackupAgent
/// server can go after `server_decommission_after`.
#[utoipa::path(
    tag = "decommission",
    params(("id" = Uuid, Path, description = "Workspace id"), DecommissionQuery),
    responses(
        (status = 200, body = DecommissionPage),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/decommission")]
#[tracing::instrument(name = "decommission plan", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
async fn list_decommission(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<DecommissionQuery>,
) -> Result<web::Json<DecommissionPage>, ApiError> {
    let query = query.into_inner();
    let (limit, after) = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .keyed::<String>()?;
    let threshold = long_retention_days(query.long_retention_days)?;
    let rows = customers(&state, &partner, *id, threshold).await?;
    let summary = summary(&rows);
    let mut items: Vec<CustomerDecommission> = rows
        .into_iter()
        .filter(|r| after.as_ref().is_none_or(|a| r.customer_key > *a))
        .take(limit as usize + 1)
        .collect();
    let more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|r| encode_key(&r.customer_key))
    } else {
        None
    };
    Ok(web::Json(DecommissionPage {
        long_retention_days: threshold,
        summary,
        items,
        next_cursor,
    }))
}

const COLUMNS: &[Column] = &[
    Column("customer_key", "/customer_key"),
    Column("group_id", "/group_id"),
    Column("group", "/group_name"),
    Column("tenant_name", "/tenant_name"),
    Column("status", "/status"),
    Column("machines", "/machines"),
    Column("machines_migrated", "/machines_migrated"),
    Column("machines_remaining", "/machines_remaining"),
    Column("machines_without_plans", "/machines_without_plans"),
    Column("backup_plans", "/backup_plans"),
    Column("plans_without_retention", "/plans_without_retention"),
    Column("last_migrated_at", "/last_migrated_at"),
    Column("longest_retention_days", "/longest_retention_days"),
    Column("decommission_after", "/decommission_after"),
    Column("long_retention", "/long_retention"),
];

/// Export every customer's decommission plan as CSV.
///
/// The same rows as the listing, one per customer. Cells that a spreadsheet
/// would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage
/// return) are prefixed with `'`.
#[utoipa::path(
    tag = "decommission",
    params(("id" = Uuid, Path, description = "Workspace id"), ExportQuery),
    responses(
        (status = 200, description = "CSV with a header row", content_type = "text/csv", body = String),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/exports/decommission")]
#[tracing::instrument(name = "export decommission plan", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
async fn export_decommission(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let threshold = long_retention_days(query.long_retention_days)?;
    let rows = customers(&state, &partner, *id, threshold).await?;
    let entries = rows
        .into_iter()
        .map(|r| {
            Ok(Entry {
                key: r.customer_key.clone(),
                value: serde_json::to_value(r)?,
            })
        })
        .collect::<Result<Vec<Entry>, serde_json::Error>>()
        .map_err(|e| ApiError::Internal(e.into()))?;
    let body = csv::write(COLUMNS, &entries).map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"decommission-{}.csv\"", *id),
        ))
        .body(body))
}
