//! `/api/v1/workspaces/{id}/webhooks`: subscriptions to the workspace's events,
//! delivered as Standard Webhooks (signed `webhook-id`, `webhook-timestamp`,
//! `webhook-signature` headers), at least once, with a delivery log, a test
//! delivery and secret rotation with a grace period.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use entity::webhook_delivery;
use entity::webhook_subscription;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;
use validator::Validate;

use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::paging::{PageParams, Paged};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::webhooks::{self as store};
use crate::db::workspaces;
use crate::domain::webhooks::{EventType, Secret, TEST_EVENT};
use crate::error::ApiError;
use crate::jobs::webhook::{message_id, secret_context};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_webhook)
        .service(list_webhooks)
        .service(get_webhook)
        .service(update_webhook)
        .service(delete_webhook)
        .service(rotate_secret)
        .service(test_webhook)
        .service(list_deliveries)
        .service(redeliver);
}

/// The longest grace a rotated secret may keep signing.
const MAX_GRACE_SECS: u64 = 7 * 86_400;
const DEFAULT_GRACE_SECS: u64 = 86_400;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: `http` or `https`, no credentials in it; redirects are not followed.
    #[validate(length(min = 1, max = 2048))]
    #[schema(
        example = "https://psa.example.com/hooks/migration",
        format = "uri",
        min_length = 1,
        max_length = 2048
    )]
    pub url: String,
    /// The events to deliver (at least one).
    #[validate(length(min = 1, max = 8, message = "name 1 to 8 event types"))]
    #[schema(min_items = 1, max_items = 8)]
    pub event_types: Vec<EventType>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Your own `whsec_…` secret (base64 of 24 to 64 bytes); one is made when left out.
    #[schema(
        max_length = 94,
        pattern = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/][AQgw]==)?)$"
    )]
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[validate(length(min = 1, max = 2048))]
    #[schema(format = "uri", min_length = 1, max_length = 2048)]
    pub url: Option<String>,
    #[validate(length(min = 1, max = 8, message = "name 1 to 8 event types"))]
    #[schema(min_items = 1, max_items = 8)]
    pub event_types: Option<Vec<EventType>>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `true` enables a disabled subscription again (its pending deliveries are sent); `false` pauses it.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// Why it was disabled (by the partner, or after failing for too long).
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row (0 after a success).
    pub consecutive_failures: i32,
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation signs too.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_subscription::Model> for Webhook {
    fn from(m: webhook_subscription::Model) -> Self {
        Self {
            event_types: store::event_types(&m),
            id: m.id,
            url: m.url,
            description: m.description,
            enabled: m.enabled,
            disabled_reason: m.disabled_reason,
            consecutive_failures: m.consecutive_failures,
            failing_since: m.failing_since,
            previous_secret_expires_at: m.previous_secret_expires_at.filter(|t| *t > Utc::now()),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A subscription with its secret: answered once, at creation or rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Verify `webhook-signature` with it (Standard Webhooks); it is not shown again.
    pub secret: String,
}

fn checked_url(state: &AppState, text: &str) -> Result<String, ApiError> {
    let invalid = |detail: String| ApiError::invalid_field("/url", detail);
    let url = url::Url::parse(text.trim()).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs receive webhooks".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the URL: verify the signature instead".into(),
        ));
    }
    if url.host().is_none() {
        return Err(invalid("the URL names no host".into()));
    }
    state
        .webhooks
        .policy()
        .check_url("webhook receiver", &url)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(url.to_string())
}

fn types_json(types: &[EventType]) -> String {
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

fn seal(state: &AppState, secret: &Secret, id: Uuid) -> Result<Vec<u8>, ApiError> {
    state
        .secrets
        .seal(&secret.expose(), &secret_context(id))
        .map_err(|e| ApiError::Internal(e.into()))
}

async fn find(
    state: &AppState,
    partner: &Partner,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<webhook_subscription::Model, ApiError> {
    let workspace = workspaces::find(&state.db, partner.tenant_id, workspace_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    store::subscription(&state.db, workspace.id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

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
async fn create_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ValidJson<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let workspace = workspaces::find(&state.db, partner.tenant_id, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let request = body.value;
    let url = checked_url(&state, &request.url)?;
    let secret = match &request.secret {
        Some(text) => Secret::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                "/secret",
                "a secret is whsec_ and the base64 of 24 to 64 bytes",
            )
        })?,
        None => {
            Secret::generate().map_err(|e| ApiError::Internal(anyhow::anyhow!("random: {e}")))?
        }
    };
    let now = Utc::now();
    let subscription_id = Uuid::now_v7();
    let model = webhook_subscription::ActiveModel {
        id: Set(subscription_id),
        workspace_id: Set(workspace.id),
        url: Set(url),
        description: Set(request.description),
        event_types: Set(types_json(&request.event_types)),
        secret: Set(seal(&state, &secret, subscription_id)?),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        enabled: Set(true),
        disabled_reason: Set(None),
        consecutive_failures: Set(0),
        failing_since: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let created = model.insert(&state.db).await?;
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

/// List the workspace's webhook subscriptions.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), PageParams),
    responses((status = 200, body = Paged<Webhook>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/webhooks")]
async fn list_webhooks(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    paging: web::Query<PageParams>,
) -> Result<web::Json<Paged<Webhook>>, ApiError> {
    let page = paging.page()?;
    let workspace = workspaces::find(&state.db, partner.tenant_id, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rows = store::subscriptions(&state.db, workspace.id, page.after, page.limit).await?;
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
async fn get_webhook(
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
async fn update_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: ValidJson<UpdateWebhook>,
) -> Result<web::Json<Webhook>, ApiError> {
    let current = find(&state, &partner, path.0, path.1).await?;
    let request = body.value;
    let mut model: webhook_subscription::ActiveModel = current.clone().into();
    if let Some(url) = &request.url {
        model.url = Set(checked_url(&state, url)?);
    }
    if let Some(types) = &request.event_types {
        model.event_types = Set(types_json(types));
    }
    if let Some(description) = request.description {
        model.description = Set(Some(description));
    }
    let enabling = request.enabled == Some(true) && !current.enabled;
    match request.enabled {
        Some(true) => {
            model.enabled = Set(true);
            model.disabled_reason = Set(None);
            model.consecutive_failures = Set(0);
            model.failing_since = Set(None);
        }
        Some(false) if current.enabled => {
            model.enabled = Set(false);
            model.disabled_reason = Set(Some(format!("disabled by partner:{}", partner.subject)));
        }
        _ => {}
    }
    model.updated_at = Set(Utc::now());
    let txn = state.db.begin().await?;
    let updated = model.update(&txn).await?;
    if enabling {
        for delivery in store::pending_ids(&txn, updated.id).await? {
            store::enqueue(&txn, updated.workspace_id, delivery).await?;
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
async fn delete_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let current = find(&state, &partner, path.0, path.1).await?;
    let txn = state.db.begin().await?;
    store::cancel_pending(&txn, current.id).await?;
    webhook_subscription::Entity::delete_by_id(current.id)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing beside the new one (default a day, at most 7 days; 0 ends it now).
    #[validate(range(max = 604800))]
    #[schema(maximum = 604800)]
    pub grace_secs: Option<u64>,
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
async fn rotate_secret(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: ValidJson<RotateSecret>,
) -> Result<web::Json<WebhookWithSecret>, ApiError> {
    let current = find(&state, &partner, path.0, path.1).await?;
    let grace = body
        .value
        .grace_secs
        .unwrap_or(DEFAULT_GRACE_SECS)
        .min(MAX_GRACE_SECS);
    let secret =
        Secret::generate().map_err(|e| ApiError::Internal(anyhow::anyhow!("random: {e}")))?;
    let now = Utc::now();
    let mut model: webhook_subscription::ActiveModel = current.clone().into();
    model.previous_secret = Set(Some(current.secret.clone()));
    model.previous_secret_expires_at = Set(Some(now + chrono::Duration::seconds(grace as i64)));
    model.secret = Set(seal(&state, &secret, current.id)?);
    model.updated_at = Set(now);
    let updated = model.update(&state.db).await?;
    Ok(web::Json(WebhookWithSecret {
        webhook: updated.into(),
        secret: secret.expose(),
    }))
}

/// How a test delivery went.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestDelivery {
    /// The `webhook-id` it was sent with (listed among the deliveries).
    pub webhook_id: String,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Send a `webhook.test` event to the subscription now and tell how it went
/// (also for a disabled subscription: to check a fix before enabling it again).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, body = TestDelivery), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/webhooks/{subscription_id}/test")]
async fn test_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<TestDelivery>, ApiError> {
    let subscription = find(&state, &partner, path.0, path.1).await?;
    let now = Utc::now();
    let body = serde_json::json!({
        "type": TEST_EVENT,
        "timestamp": now,
        "data": {"workspace_id": subscription.workspace_id, "subscription_id": subscription.id, "message": format!("a test delivery asked for by partner:{}", partner.subject)},
    })
    .to_string();
    let delivery = store::new_delivery(&subscription, None, TEST_EVENT, body, now);
    let started = std::time::Instant::now();
    let attempt = state
        .webhooks
        .send(&subscription, delivery.id, &delivery.payload)
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let status = if attempt.succeeded() {
        store::DELIVERED
    } else {
        store::FAILED
    };
    let model = webhook_delivery::Model {
        status: status.into(),
        attempts: 1,
        last_status_code: attempt.status_code.map(i32::from),
        last_error: attempt.error.clone(),
        last_attempt_at: Some(attempt.at),
        next_attempt_at: None,
        delivered_at: attempt.succeeded().then_some(attempt.at),
        ..delivery
    };
    let id = model.id;
    webhook_delivery::ActiveModel::from(model)
        .reset_all()
        .insert(&state.db)
        .await?;
    Ok(web::Json(TestDelivery {
        webhook_id: message_id(id),
        delivered: attempt.succeeded(),
        status_code: attempt.status_code,
        error: attempt.error,
        duration_ms,
    }))
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Retries left.
    Pending,
    Delivered,
    /// Retries exhausted.
    Failed,
    /// Its subscription was deleted.
    Cancelled,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => store::PENDING,
            Self::Delivered => store::DELIVERED,
            Self::Failed => store::FAILED,
            Self::Cancelled => store::CANCELLED,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    /// The `webhook-id` header of every attempt.
    pub webhook_id: String,
    pub event_type: String,
    /// The operations-log event it tells of.
    pub event_id: Option<Uuid>,
    /// `pending` (retries left), `delivered`, `failed` (retries exhausted) or `cancelled` (subscription deleted).
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<webhook_delivery::Model> for Delivery {
    fn from(m: webhook_delivery::Model) -> Self {
        Self {
            webhook_id: message_id(m.id),
            id: m.id,
            event_type: m.event_type,
            event_id: m.event_id,
            status: m.status,
            attempts: m.attempts,
            last_status_code: m.last_status_code,
            last_error: m.last_error,
            created_at: m.created_at,
            last_attempt_at: m.last_attempt_at,
            next_attempt_at: m.next_attempt_at,
            delivered_at: m.delivered_at,
        }
    }
}

/// The subscription's delivery log, newest first: each delivery's status, attempts and last answer.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id"), DeliveryQuery),
    responses((status = 200, body = Paged<Delivery>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/webhooks/{subscription_id}/deliveries")]
async fn list_deliveries(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<DeliveryQuery>,
) -> Result<web::Json<Paged<Delivery>>, ApiError> {
    let query = query.into_inner();
    let status = query.status.map(DeliveryStatus::as_str);
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let subscription = find(&state, &partner, path.0, path.1).await?;
    let rows = store::deliveries(&state.db, subscription.id, status, page).await?;
    Ok(web::Json(Paged::from_rows(
        rows,
        page,
        |r| r.id,
        Delivery::from,
    )))
}

/// Send a failed or cancelled delivery again, under the same `webhook-id`, with a fresh retry schedule.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id"), ("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses((status = 202, body = Delivery), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver")]
async fn redeliver(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let subscription = find(&state, &partner, path.0, path.1).await?;
    let delivery = store::delivery(&state.db, path.2)
        .await?
        .filter(|d| d.subscription_id == subscription.id)
        .ok_or(ApiError::NotFound)?;
    if delivery.event_type == TEST_EVENT
        || !matches!(delivery.status.as_str(), store::FAILED | store::CANCELLED)
    {
        return Err(ApiError::conflict(
            "not_redeliverable",
            format!(
                "A {} {} delivery is not sent again.",
                delivery.status, delivery.event_type
            ),
        ));
    }
    let txn = state.db.begin().await?;
    let mut model: webhook_delivery::ActiveModel = delivery.into();
    model.status = Set(store::PENDING.into());
    model.attempts = Set(0);
    model.next_attempt_at = Set(Some(Utc::now()));
    let updated = model.update(&txn).await?;
    store::enqueue(&txn, updated.workspace_id, updated.id).await?;
    txn.commit().await?;
    Ok(HttpResponse::Accepted().json(Delivery::from(updated)))
}
