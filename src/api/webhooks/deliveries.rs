//! Deliveries: the log of a subscription's deliveries, sending one again, and a
//! test delivery sent at once.

use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::dto::{Delivery, DeliveryQuery, DeliveryStatus, TestDelivery};
use super::find;
use crate::api::docs;
use crate::api::paging::{PageParams, Paged};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::webhooks as store;
use crate::domain::webhooks::{TEST_EVENT, redeliverable, test_payload};
use crate::error::ApiError;
use crate::jobs::webhook::{DeliverWebhook, message_id};

/// Send a `webhook.test` event to the subscription now and tell how it went
/// (also for a disabled subscription: to check a fix before enabling it again).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, body = TestDelivery), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/webhooks/{subscription_id}/test")]
pub async fn test_webhook(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<TestDelivery>, ApiError> {
    let subscription = find(&state, &partner, path.0, path.1).await?;
    let now = Utc::now();
    let actor = format!("partner:{}", partner.subject);
    let body = test_payload(subscription.workspace_id, subscription.id, &actor, now);
    let delivery = store::new_delivery(&subscription, None, TEST_EVENT, body, now);
    let started = std::time::Instant::now();
    let attempt = state
        .webhooks
        .send(&subscription, delivery.id, &delivery.payload)
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let id = delivery.id;
    store::insert_sent(&state.db, delivery, &attempt).await?;
    Ok(web::Json(TestDelivery {
        webhook_id: message_id(id),
        delivered: attempt.succeeded(),
        status_code: attempt.status_code,
        error: attempt.error,
        duration_ms,
    }))
}

/// The subscription's delivery log, newest first: each delivery's status, attempts and last answer.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Workspace id"), ("subscription_id" = Uuid, Path, description = "Subscription id"), DeliveryQuery),
    responses((status = 200, body = Paged<Delivery>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/webhooks/{subscription_id}/deliveries")]
pub async fn list_deliveries(
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
pub async fn redeliver(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let subscription = find(&state, &partner, path.0, path.1).await?;
    let delivery = store::delivery(&state.db, path.2)
        .await?
        .filter(|d| d.subscription_id == subscription.id)
        .ok_or(ApiError::NotFound)?;
    if !redeliverable(&delivery.event_type, &delivery.status) {
        return Err(ApiError::conflict(
            "not_redeliverable",
            format!(
                "A {} {} delivery is not sent again.",
                delivery.status, delivery.event_type
            ),
        ));
    }
    let txn = state.db.begin().await?;
    let updated = store::redeliver(&txn, delivery).await?;
    crate::queue::enqueue(&txn, DeliverWebhook::of(updated.workspace_id, updated.id)).await?;
    txn.commit().await?;
    Ok(HttpResponse::Accepted().json(Delivery::from(updated)))
}
