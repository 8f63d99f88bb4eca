//! Webhook subscriptions and deliveries. A delivery is written in the
//! transaction of the event it tells of, and its job queued in the same one
//! (by `jobs`, from the [`NewDeliveries`] answered here): an event that
//! happened is delivered at least once, under one `webhook-id` for all its
//! attempts.

use chrono::{DateTime, Utc};
use entity::event;
use entity::webhook_delivery::{self, Entity as Deliveries};
use entity::webhook_subscription::{self, Entity as Subscriptions};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Page, execute};
use crate::domain::webhooks::EventType;

pub use crate::domain::webhooks::{CANCELLED, DELIVERED, FAILED, PENDING};

/// Deliveries just written, by workspace: each wants its job queued in the
/// same transaction, or it is never sent.
#[must_use = "each new delivery's job must be queued in the same transaction"]
#[derive(Debug, Default)]
pub struct NewDeliveries(pub Vec<(Uuid, Uuid)>);

impl NewDeliveries {
    pub fn add(&mut self, more: NewDeliveries) {
        self.0.extend(more.0);
    }
}

/// The event types a subscription asked for.
pub fn event_types(subscription: &webhook_subscription::Model) -> Vec<EventType> {
    serde_json::from_str::<Vec<String>>(&subscription.event_types)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| EventType::parse(t))
        .collect()
}

/// The body sent for an event: the same at every attempt (its signature is not).
pub fn payload(event_type: &str, event: &event::Model) -> String {
    json!({
        "type": event_type,
        "timestamp": event.at,
        "data": {
            "event_id": event.id,
            "workspace_id": event.workspace_id,
            "subject": {"kind": event.subject_kind, "id": event.subject_id},
            "migration_id": event.migration_id,
            "message": event.message,
            "details": event.data.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
        }
    })
    .to_string()
}

/// Writes a delivery per event and enabled subscription that asked for its type,
/// in the caller's transaction.
pub async fn fan_out(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    events: &[event::Model],
) -> Result<NewDeliveries, DbErr> {
    let typed: Vec<(EventType, &event::Model)> = events
        .iter()
        .filter_map(|e| EventType::of_event(&e.kind).map(|t| (t, e)))
        .collect();
    if typed.is_empty() {
        return Ok(NewDeliveries::default());
    }
    let subscriptions = Subscriptions::find()
        .filter(webhook_subscription::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_subscription::Column::Enabled.eq(true))
        .all(db)
        .await?;
    let now = Utc::now();
    let mut written = NewDeliveries::default();
    for subscription in &subscriptions {
        let wanted = event_types(subscription);
        for (event_type, event) in typed.iter().filter(|(t, _)| wanted.contains(t)) {
            let delivery = new_delivery(
                subscription,
                Some(event.id),
                event_type.as_str(),
                payload(event_type.as_str(), event),
                now,
            );
            written.add(insert(db, delivery).await?);
        }
    }
    Ok(written)
}

pub fn new_delivery(
    subscription: &webhook_subscription::Model,
    event_id: Option<Uuid>,
    event_type: &str,
    payload: String,
    now: DateTime<Utc>,
) -> webhook_delivery::Model {
    webhook_delivery::Model {
        id: Uuid::now_v7(),
        subscription_id: subscription.id,
        workspace_id: subscription.workspace_id,
        event_id,
        event_type: event_type.to_string(),
        payload,
        status: PENDING.into(),
        attempts: 0,
        last_status_code: None,
        last_error: None,
        created_at: now,
        last_attempt_at: None,
        next_attempt_at: Some(now),
        delivered_at: None,
    }
}

/// Stores a pending delivery.
pub async fn insert(
    db: &impl ConnectionTrait,
    delivery: webhook_delivery::Model,
) -> Result<NewDeliveries, DbErr> {
    let written = NewDeliveries(vec![(delivery.workspace_id, delivery.id)]);
    let model: webhook_delivery::ActiveModel = delivery.into();
    Deliveries::insert(model.reset_all())
        .exec_without_returning(db)
        .await?;
    Ok(written)
}

pub async fn subscription(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<webhook_subscription::Model>, DbErr> {
    Subscriptions::find_by_id(id)
        .filter(webhook_subscription::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
}

pub async fn delivery(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<webhook_delivery::Model>, DbErr> {
    Deliveries::find_by_id(id).one(db).await
}

/// Keeps a delivery sent once, outside the queue (a test delivery), as its attempt went.
pub async fn insert_sent(
    db: &impl ConnectionTrait,
    delivery: webhook_delivery::Model,
    attempt: &Attempt,
) -> Result<(), DbErr> {
    let status = if attempt.succeeded() {
        DELIVERED
    } else {
        FAILED
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
    webhook_delivery::ActiveModel::from(model)
        .reset_all()
        .insert(db)
        .await
        .map(drop)
}

/// Makes a delivery pending again with a fresh retry schedule (its job is the caller's to queue).
pub async fn redeliver(
    db: &impl ConnectionTrait,
    delivery: webhook_delivery::Model,
) -> Result<webhook_delivery::Model, DbErr> {
    let mut model: webhook_delivery::ActiveModel = delivery.into();
    model.status = Set(PENDING.into());
    model.attempts = Set(0);
    model.next_attempt_at = Set(Some(Utc::now()));
    model.update(db).await
}

/// A subscription's deliveries, newest first, optionally in one status.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    subscription_id: Uuid,
    status: Option<&str>,
    page: Page,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    let mut query =
        Deliveries::find().filter(webhook_delivery::Column::SubscriptionId.eq(subscription_id));
    if let Some(status) = status {
        query = query.filter(webhook_delivery::Column::Status.eq(status));
    }
    if let Some(before) = page.after {
        query = query.filter(webhook_delivery::Column::Id.lt(before));
    }
    query
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(page.limit + 1)
        .all(db)
        .await
}

/// The subscription's deliveries still to send (after it is enabled again).
pub async fn pending_ids(
    db: &impl ConnectionTrait,
    subscription_id: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    Deliveries::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::SubscriptionId.eq(subscription_id))
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .into_tuple()
        .all(db)
        .await
}

/// A deleted subscription's deliveries still to send are not sent.
pub async fn cancel_pending(db: &impl ConnectionTrait, subscription_id: Uuid) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = NULL WHERE subscription_id = $2 AND status = $3",
        vec![CANCELLED.into(), subscription_id.into(), PENDING.into()],
    )
    .await
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    /// Why it failed without an answer (timeout, refused connection, refused address).
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Records an attempt on the delivery: its new status and when it is tried next
/// (nothing, when the delivery was deleted meanwhile).
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    delivery: &webhook_delivery::Model,
    attempt: &Attempt,
    status: &str,
    next: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    use webhook_delivery::Column;
    Deliveries::update_many()
        .col_expr(Column::Attempts, Expr::value(delivery.attempts + 1))
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(
            Column::LastStatusCode,
            Expr::value(attempt.status_code.map(i32::from)),
        )
        .col_expr(Column::LastError, Expr::value(attempt.error.clone()))
        .col_expr(Column::LastAttemptAt, Expr::value(Some(attempt.at)))
        .col_expr(Column::NextAttemptAt, Expr::value(next))
        .col_expr(
            Column::DeliveredAt,
            match attempt.succeeded() {
                true => Expr::value(Some(attempt.at)),
                false => Expr::col(Column::DeliveredAt).into(),
            },
        )
        .filter(Column::Id.eq(delivery.id))
        .exec(db)
        .await
        .map(drop)
}

/// Records a delivery that succeeded (at its first attempt or after failed
/// ones), and its subscription as no longer failing.
pub async fn record_delivered(
    db: &impl ConnectionTrait,
    delivery: &webhook_delivery::Model,
    attempt: &Attempt,
) -> Result<(), DbErr> {
    record_attempt(db, delivery, attempt, DELIVERED, None).await?;
    reset_failures(db, delivery.subscription_id).await
}

/// A subscription delivered to again: its run of failures, if any, ends.
async fn reset_failures(db: &impl ConnectionTrait, subscription_id: Uuid) -> Result<(), DbErr> {
    // Written only when there is a run to reset: every delivery of a subscription
    // wrote its row, and at `large` its deliveries queued on that one row's lock.
    let sql = "UPDATE webhook_subscriptions SET consecutive_failures = 0, failing_since = NULL \
               WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)";
    execute(db, sql, vec![subscription_id.into()])
        .await
        .map(drop)
}

/// Records a failed attempt against its subscription: the subscription as it
/// is now, with its run of failures, to decide whether it is disabled.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    subscription_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<webhook_subscription::Model>, DbErr> {
    let sql = "UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, $2) WHERE id = $1";
    execute(db, sql, vec![subscription_id.into(), at.into()]).await?;
    Subscriptions::find_by_id(subscription_id).one(db).await
}

/// Disables a subscription, saying why; its pending deliveries wait until it is enabled again.
pub async fn disable(
    db: &impl ConnectionTrait,
    subscription_id: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE webhook_subscriptions SET enabled = $1, disabled_reason = $2, updated_at = $3 WHERE id = $4 AND enabled = $5",
        vec![false.into(), reason.into(), at.into(), subscription_id.into(), true.into()],
    )
    .await
}
