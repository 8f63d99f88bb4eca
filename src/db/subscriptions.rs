//! Webhook subscriptions as partners manage them: created enabled with a sealed
//! secret, changed, paused or enabled again, rotated, deleted.

use chrono::{DateTime, Utc};
use entity::webhook_subscription::{self, Entity as Subscriptions};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::webhooks::cancel_pending;
use crate::domain::webhooks::{EventType, Switch};

/// The workspace's subscriptions by id; `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<webhook_subscription::Model>, DbErr> {
    let mut query =
        Subscriptions::find().filter(webhook_subscription::Column::WorkspaceId.eq(workspace_id));
    if let Some(after) = after {
        query = query.filter(webhook_subscription::Column::Id.gt(after));
    }
    query
        .order_by_asc(webhook_subscription::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await
}

/// A new subscription, enabled; `secret` is sealed for it (see
/// `jobs::webhook::secret_context`), so its id is chosen before.
pub struct NewSubscription {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<EventType>,
    pub secret: Vec<u8>,
}

pub async fn create(
    db: &impl ConnectionTrait,
    new: NewSubscription,
) -> Result<webhook_subscription::Model, DbErr> {
    let now = Utc::now();
    webhook_subscription::ActiveModel {
        id: Set(new.id),
        workspace_id: Set(new.workspace_id),
        url: Set(new.url),
        description: Set(new.description),
        event_types: Set(event_types_json(&new.event_types)),
        secret: Set(new.secret),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        enabled: Set(true),
        disabled_reason: Set(None),
        consecutive_failures: Set(0),
        failing_since: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

/// What a partner changes of a subscription; `None` keeps it.
pub struct SubscriptionChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub description: Option<String>,
    pub switch: Switch,
}

pub async fn update(
    db: &impl ConnectionTrait,
    current: &webhook_subscription::Model,
    changes: SubscriptionChanges,
) -> Result<webhook_subscription::Model, DbErr> {
    let mut model: webhook_subscription::ActiveModel = current.clone().into();
    if let Some(url) = changes.url {
        model.url = Set(url);
    }
    if let Some(types) = &changes.event_types {
        model.event_types = Set(event_types_json(types));
    }
    if let Some(description) = changes.description {
        model.description = Set(Some(description));
    }
    match changes.switch {
        Switch::Enable => {
            model.enabled = Set(true);
            model.disabled_reason = Set(None);
            model.consecutive_failures = Set(0);
            model.failing_since = Set(None);
        }
        Switch::Disable { reason } => {
            model.enabled = Set(false);
            model.disabled_reason = Set(Some(reason));
        }
        Switch::Keep => {}
    }
    model.updated_at = Set(Utc::now());
    model.update(db).await
}

/// Deletes a subscription; its deliveries still to send are cancelled.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    cancel_pending(db, id).await?;
    Subscriptions::delete_by_id(id).exec(db).await.map(drop)
}

/// A new signing secret (`sealed`); the one it replaces signs too until `grace_until`.
pub async fn rotate_secret(
    db: &impl ConnectionTrait,
    current: &webhook_subscription::Model,
    sealed: Vec<u8>,
    now: DateTime<Utc>,
    grace_until: DateTime<Utc>,
) -> Result<webhook_subscription::Model, DbErr> {
    let mut model: webhook_subscription::ActiveModel = current.clone().into();
    model.previous_secret = Set(Some(current.secret.clone()));
    model.previous_secret_expires_at = Set(Some(grace_until));
    model.secret = Set(sealed);
    model.updated_at = Set(now);
    model.update(db).await
}

/// The event types as a subscription keeps them: each name once, sorted.
fn event_types_json(types: &[EventType]) -> String {
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}
