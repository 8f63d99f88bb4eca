//! `POST /api/v1/workspaces/{id}/check`: the prerequisite checks, run now.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{post, web};
use uuid::Uuid;

use crate::api::docs;
use crate::api::guard::partner_workspace;
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::connectors::HttpPolicy;
use crate::connectors::check::{ConnectionCheck, WantedItem, WantedServices, check_connection};
use crate::connectors::source::{SourceApi, SourceClient};
use crate::connectors::target::{TargetApi, TargetClient};
use crate::db::workspaces::{self as store, CloudClient, SourceLogin};
use crate::domain::provisioning::{ItemRule, Profile};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A check answers within seconds: one attempt (the partner re-runs it), short timeouts.
fn check_policy() -> HttpPolicy {
    HttpPolicy {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        max_attempts: 1,
        rate_per_sec: None,
        concurrency: 2,
        ..HttpPolicy::default()
    }
}

/// Runs the checks; the requests to the cloud are counted in `metrics`.
pub async fn run_check(
    source: &SourceLogin<'_>,
    target: &CloudClient<'_>,
    partner_tenant: Uuid,
    allow_private_networks: bool,
    metrics: &Arc<Metrics>,
    profile: &Profile,
) -> ConnectionCheck {
    let policy = HttpPolicy {
        allow_private_networks,
        ..check_policy()
    };
    let source = SourceClient::new(
        source.url,
        source.login,
        source.password.clone(),
        policy.clone(),
    );
    let observed = HttpPolicy {
        observer: Some(metrics.clone()),
        ..policy
    };
    let target = TargetClient::new(
        target.url,
        target.client_id,
        target.client_secret.clone(),
        observed,
    );
    let source = source
        .as_ref()
        .map(|s| s as &dyn SourceApi)
        .map_err(Clone::clone);
    let target = target
        .as_ref()
        .map(|t| t as &dyn TargetApi)
        .map_err(Clone::clone);
    let report = check_connection(source, target, partner_tenant, &wanted(profile)).await;
    tracing::info!(passed = report.passed, "connection checked");
    report
}

/// The profile's items as the check names them.
fn wanted(profile: &Profile) -> WantedServices {
    let items = |rules: &[ItemRule]| {
        rules
            .iter()
            .map(|r| WantedItem {
                application: r.application.clone(),
                edition: r.edition.clone(),
                name: r.name.clone(),
            })
            .collect()
    };
    WantedServices {
        customer: items(&profile.customer),
        partner: items(&profile.partner),
    }
}

/// Check the connection to the BackupAgent server and the cloud now.
///
/// Logs in to the BackupAgent server, gets a token for the cloud API client,
/// checks that the client's tenant can reach the caller's tenant, that it may
/// create tenants and users there, and that your tenant may give migrated
/// customers and partners the offering items of the workspace's provisioning
/// profile. The report is also kept on the workspace.
#[utoipa::path(
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The checks, each passed, failed or skipped, with a reason", body = ConnectionCheck),
        docs::WorkspaceErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/check")]
#[tracing::instrument(name = "check workspace", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
pub async fn check_workspace(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ConnectionCheck>, ApiError> {
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let password = store::source_password(&state.secrets, &workspace)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let secret = store::target_client_secret(&state.secrets, &workspace)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let source = SourceLogin {
        url: &workspace.source_url,
        login: &workspace.source_login,
        password: &password,
    };
    let target = CloudClient {
        url: &workspace.target_url,
        client_id: &workspace.target_client_id,
        client_secret: &secret,
    };
    let report = run_check(
        &source,
        &target,
        partner.tenant_id,
        state.allow_private_networks,
        &state.metrics,
        &store::provisioning(&workspace),
    )
    .await;
    if !store::set_connection_check(&state.db, &workspace, &report).await? {
        tracing::info!("credentials changed during the check; its report is not kept");
    }
    Ok(web::Json(report))
}
