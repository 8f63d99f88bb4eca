//! What partners send and receive about webhook subscriptions and deliveries.

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_subscription};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::db::webhooks::{self as store};
use crate::domain::webhooks::{CANCELLED, DELIVERED, EventType, FAILED, PENDING};
use crate::jobs::webhook::message_id;

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

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing beside the new one (default a day, at most 7 days; 0 ends it now).
    #[validate(range(max = 604800))]
    #[schema(maximum = 604800)]
    pub grace_secs: Option<u64>,
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
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => PENDING,
            Self::Delivered => DELIVERED,
            Self::Failed => FAILED,
            Self::Cancelled => CANCELLED,
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
