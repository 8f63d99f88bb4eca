//! `/api/v1/workspaces/{id}/webhooks`: subscriptions to the workspace's events,
//! delivered as Standard Webhooks (signed `webhook-id`, `webhook-timestamp`,
//! `webhook-signature` headers), at least once, with a delivery log, a test
//! delivery and secret rotation with a grace period.

mod deliveries;
mod dto;
mod subscriptions;

use entity::webhook_subscription;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::guard::partner_workspace;
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::webhooks as store;
use crate::domain::webhooks::{Secret, receiver_url};
use crate::error::ApiError;
use crate::jobs::webhook::secret_context;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(subscriptions::create_webhook)
        .service(subscriptions::list_webhooks)
        .service(subscriptions::get_webhook)
        .service(subscriptions::update_webhook)
        .service(subscriptions::delete_webhook)
        .service(subscriptions::rotate_secret)
        .service(deliveries::test_webhook)
        .service(deliveries::list_deliveries)
        .service(deliveries::redeliver);
}

/// The subscription `id` of the partner's workspace `workspace_id`.
async fn find(
    state: &AppState,
    partner: &Partner,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<webhook_subscription::Model, ApiError> {
    let workspace = partner_workspace(state, partner, workspace_id).await?;
    store::subscription(&state.db, workspace.id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// A receiver's URL as given, if it may receive webhooks, normalised.
fn checked_url(state: &AppState, text: &str) -> Result<String, ApiError> {
    let invalid = |detail: String| ApiError::invalid_field("/url", detail);
    let url = receiver_url(text).map_err(invalid)?;
    state
        .webhooks
        .policy()
        .check_url("webhook receiver", &url)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(url.to_string())
}

/// The secret sealed for subscription `id`.
fn seal(state: &AppState, secret: &Secret, id: Uuid) -> Result<Vec<u8>, ApiError> {
    state
        .secrets
        .seal(&secret.expose(), &secret_context(id))
        .map_err(|e| ApiError::Internal(e.into()))
}
