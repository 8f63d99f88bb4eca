//! Subscriptions: create, list, read, change, pause or enable, rotate the
//! secret of, and delete them.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::dto::{CreateWebhook, RotateSecret, UpdateWebhook, Webhook, WebhookWithSecret};
use super::{checked_url, find, seal};
use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::partner_workspace;
use crate::api::paging::{PageParams, Paged};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::subscriptions::{self, NewSubscription, SubscriptionChanges};
use crate::db::webhooks as store;
use crate::domain::webhooks::{Secret, Switch, rotation_grace};
use crate::error::ApiError;
use crate::jobs::webhook::DeliverWebhook;

/// Subscribe to the workspace's events. The answer carries the signing secret,
/// which is not shown again (rotate it to get a new one).
#[utoipa::path(
    tag = "webhooks",
    request_body = CreateWebhook,
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 201, description = "Subscribed", body = WebhookWithSecret, headers(("Location" = String, description = "The subscription"))),
        (status = 404, response = docs::NotFound),
        docs::PartnerErrors,
        docs::BodyErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/webhooks")]
#[tracing::instrument(name = "create webhook", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
pub async fn create_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ValidJson<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let request = body.value;
    let url = checked_url(&state, &request.url)?;
    let secret = match &request.secret {
        Some(text) => Secret::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                "/secret",
                "a secret is whsec_ and the base64 of 24 to 64 bytes",
            )
        })?,
        None => new_secret()?,
    };
    let subscription_id = Uuid::now_v7();
    let new = NewSubscription {
        id: subscription_id,
        workspace_id: workspace.id,
        url,
        description: request.description,
        event_types: request.event_types,
        secret: seal(&state, &secret, subscription_id)?,
    };
    let created = subscriptions::create(&state.db, new).await?;
    let location = format!(
        "/api/v1/workspaces/{}/webhooks/{}",
        workspace.id, created.id
    );
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(WebhookWithSecret {
            webhook: created.into(),
            secret: secret.expose(),
        }))
}

fn new_secret() -> Result<Secret, ApiError> {
    Secret::generate().map_err(|e| ApiError::Internal(anyhow::anyhow!("random: {e}")))
}

/// List the workspace's webhook subscriptions.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), PageParams),
    responses((status = 200, body = Paged<Webhook>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/webhooks")]
pub async fn list_webhooks(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    paging: web::Query<PageParams>,
) -> Result<web::Json<Paged<Webhook>>, ApiError> {
    let page = paging.page()?;
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let rows = subscriptions::list(&state.db, workspace.id, page.after, page.limit).await?;
    Ok(web::Json(Paged::from_rows(
        rows,
        page,
        |r| r.id,
        Webhook::from,
    )))
}

/// Get a webhook subscription: whether it is enabled, and if not, why.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, body = Webhook), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/webhooks/{subscription_id}")]
pub async fn get_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Webhook>, ApiError> {
    Ok(web::Json(
        find(&state, &partner, path.0, path.1).await?.into(),
    ))
}

/// Change a subscription's URL, events or description, or enable or disable it.
/// Enabling it again sends the deliveries that waited meanwhile.
#[utoipa::path(
    tag = "webhooks",
    request_body = UpdateWebhook,
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, body = Webhook), (status = 404, response = docs::NotFound), docs::PartnerErrors, docs::BodyErrors),
    security(("bearer_auth" = []))
)]
#[patch("/workspaces/{id}/webhooks/{subscription_id}")]
pub async fn update_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: ValidJson<UpdateWebhook>,
) -> Result<web::Json<Webhook>, ApiError> {
    let current = find(&state, &partner, path.0, path.1).await?;
    let request = body.value;
    let url = match &request.url {
        Some(url) => Some(checked_url(&state, url)?),
        None => None,
    };
    let actor = format!("partner:{}", partner.subject);
    let switch = Switch::of(request.enabled, current.enabled, &actor);
    let enabling = switch == Switch::Enable && !current.enabled;
    let changes = SubscriptionChanges {
        url,
        event_types: request.event_types,
        description: request.description,
        switch,
    };
    let txn = state.db.begin().await?;
    let updated = subscriptions::update(&txn, &current, changes).await?;
    // The deliveries that waited while it was disabled are sent now.
    if enabling {
        for delivery in store::pending_ids(&txn, updated.id).await? {
            crate::queue::enqueue(&txn, DeliverWebhook::of(updated.workspace_id, delivery)).await?;
        }
    }
    txn.commit().await?;
    Ok(web::Json(updated.into()))
}

/// Delete a subscription; its deliveries still to send are cancelled.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id")),
    responses((status = 204, description = "Deleted"), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[delete("/workspaces/{id}/webhooks/{subscription_id}")]
pub async fn delete_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let current = find(&state, &partner, path.0, path.1).await?;
    let txn = state.db.begin().await?;
    subscriptions::delete(&txn, current.id).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate the signing secret. During the grace period every delivery carries
/// two signatures, by the new secret and by the old one, so receivers can
/// switch without losing a delivery.
#[utoipa::path(
    tag = "webhooks",
    request_body = RotateSecret,
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, body = WebhookWithSecret), (status = 404, response = docs::NotFound), docs::PartnerErrors, docs::BodyErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/webhooks/{subscription_id}/rotate-secret")]
pub async fn rotate_secret(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: ValidJson<RotateSecret>,
) -> Result<web::Json<WebhookWithSecret>, ApiError> {
    let current = find(&state, &partner, path.0, path.1).await?;
    let grace = rotation_grace(body.value.grace_secs);
    let secret = new_secret()?;
    let now = chrono::Utc::now();
    let sealed = seal(&state, &secret, current.id)?;
    let updated =
        subscriptions::rotate_secret(&state.db, &current, sealed, now, now + grace).await?;
    Ok(web::Json(WebhookWithSecret {
        webhook: updated.into(),
        secret: secret.expose(),
    }))
}
