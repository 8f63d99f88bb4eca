//! Sends webhook deliveries: one job per delivery, in the worker's webhook
//! lane. Each attempt is signed anew (Standard Webhooks) under the delivery's
//! stable id; a failure is tried again on the retry schedule, and a
//! subscription that keeps failing is disabled, saying why. Redirects are not
//! followed; receivers at private addresses are refused unless allowed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use entity::webhook_delivery;
use entity::webhook_subscription;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::WebhookSettings;
use crate::connectors::HttpPolicy;
use crate::crypto::SecretBox;
use crate::db::webhooks::{self as store, Attempt};
use crate::domain::webhooks::{AfterFailure, RetryPolicy, Secret, signature_header};
use crate::queue::{Effect, Job, JobError, JobHandler, JobRun, NewJob, database};

/// Sends one webhook delivery (one attempt; the schedule snoozes it between attempts).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeliverWebhook {
    pub delivery_id: Uuid,
}

impl Job for DeliverWebhook {
    const KIND: &'static str = "webhook";
}

/// Queues the job of each delivery just written, in the caller's transaction.
pub async fn schedule(
    db: &impl sea_orm::ConnectionTrait,
    deliveries: store::NewDeliveries,
) -> Result<(), sea_orm::DbErr> {
    for (workspace_id, delivery_id) in deliveries.0 {
        crate::queue::enqueue(db, DeliverWebhook::of(workspace_id, delivery_id)).await?;
    }
    Ok(())
}

impl DeliverWebhook {
    /// At most one job per delivery at a time.
    pub fn of(workspace_id: Uuid, delivery_id: Uuid) -> NewJob<Self> {
        NewJob {
            unique_key: Some(format!("webhook:{delivery_id}")),
            workspace_id: Some(workspace_id),
            ..NewJob::new(Self { delivery_id })
        }
    }
}

/// Signs and sends deliveries; shared by the job and the API's test delivery.
pub struct Sender {
    http: Result<reqwest::Client, String>,
    policy: HttpPolicy,
    secrets: SecretBox,
}

/// The sealing context of a subscription's secret.
pub fn secret_context(subscription_id: Uuid) -> String {
    format!("webhook_subscriptions:{subscription_id}:secret")
}

impl Sender {
    /// (Without an HTTP client, which only a broken TLS set-up denies, every attempt fails and says so.)
    pub fn new(
        secrets: SecretBox,
        settings: &WebhookSettings,
        allow_private_networks: bool,
    ) -> Sender {
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let policy = HttpPolicy {
            request_timeout: timeout,
            connect_timeout: timeout.min(Duration::from_secs(5)),
            allow_private_networks,
            ..HttpPolicy::default()
        };
        let http = policy.any_client("webhook receiver").map_err(|e| {
            tracing::error!(error = %e, "no HTTP client for webhook receivers");
            e.to_string()
        });
        Sender {
            http,
            policy,
            secrets,
        }
    }

    /// What receivers' addresses must satisfy.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// The secrets that sign now: the current one, and the previous one during its grace.
    fn signing_secrets(
        &self,
        subscription: &webhook_subscription::Model,
    ) -> Result<Vec<Secret>, String> {
        let context = secret_context(subscription.id);
        let open = |sealed: &[u8]| -> Result<Secret, String> {
            use secrecy::ExposeSecret;
            let text = self
                .secrets
                .open(sealed, &context)
                .map_err(|e| format!("the subscription's secret cannot be opened: {e}"))?;
            Secret::parse(text.expose_secret())
                .ok_or_else(|| "the subscription's secret is not a whsec_ secret".to_string())
        };
        let mut secrets = vec![open(&subscription.secret)?];
        if let (Some(previous), Some(until)) = (
            &subscription.previous_secret,
            subscription.previous_secret_expires_at,
        ) && until > Utc::now()
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }

    /// One attempt: POST the body with the Standard Webhooks headers.
    pub async fn send(
        &self,
        subscription: &webhook_subscription::Model,
        id: Uuid,
        body: &str,
    ) -> Attempt {
        let at = Utc::now();
        let failed = |error: String| Attempt {
            at,
            status_code: None,
            error: Some(error),
        };
        let url = match url::Url::parse(&subscription.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("the URL cannot be parsed: {e}")),
        };
        if let Err(e) = self.policy.check_url("webhook receiver", &url) {
            return failed(e.to_string());
        }
        let secrets = match self.signing_secrets(subscription) {
            Ok(secrets) => secrets,
            Err(e) => return failed(e),
        };
        let message_id = message_id(id);
        let timestamp = at.timestamp();
        let signature = signature_header(
            &secrets.iter().collect::<Vec<_>>(),
            &message_id,
            timestamp,
            body,
        );
        let http = match &self.http {
            Ok(http) => http,
            Err(e) => return failed(e.clone()),
        };
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let code = response.status().as_u16();
                let error = (!response.status().is_success()).then(|| match response.status() {
                    s if s.is_redirection() => {
                        format!("answered {code} (redirects are not followed)")
                    }
                    _ => format!("answered {code}"),
                });
                Attempt {
                    at,
                    status_code: Some(code),
                    error,
                }
            }
            Err(e) if e.is_timeout() => failed(format!(
                "no answer within {} ms",
                self.policy.request_timeout.as_millis()
            )),
            Err(e) => failed(format!(
                "not delivered: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.to_string())
            )),
        }
    }
}

/// The `webhook-id` of a delivery: the same at every attempt.
pub fn message_id(delivery_id: Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

pub struct WebhookHandler {
    sender: Arc<Sender>,
    retry: RetryPolicy,
    concurrency: usize,
    per_subscription: usize,
    /// Each subscription's share of the lane (one entry per subscription this
    /// process has sent to: a handful per partner).
    in_flight: Mutex<HashMap<Uuid, Arc<tokio::sync::Semaphore>>>,
}

/// A successful attempt, recorded with the job's success ([`Effect`]): the
/// worker writes the outcomes of the runs that end together in one transaction.
/// At the fleet's peaks on SQLite, a record each (a write behind the database's
/// one lock, shared with thousands of agent requests a second) before the job's
/// own held the lane's slots, and deliveries waited seconds for a slot.
struct Delivered {
    delivery: webhook_delivery::Model,
    attempt: Attempt,
}

#[async_trait::async_trait]
impl Effect for Delivered {
    async fn apply(&self, txn: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        store::record_delivered(txn, &self.delivery, &self.attempt).await
    }
}

/// How long a delivery waits for a slot of its subscription before it gives its
/// lane slot back and looks again later: a busy subscription's deliveries follow
/// one another at once (snoozed at once, each waited a claim or two, and at
/// `small` a machine's outcome took a second to reach the receiver at the median,
/// six at the 99th percentile), while a slow receiver's holds up the other
/// subscriptions for half a second at most.
const SLOT_WAIT: Duration = Duration::from_millis(500);

/// How often the idle webhook lane looks for new deliveries: a machine's outcome is
/// due at the partner within a second (at the worker's 500 ms, the poll alone was half
/// of the median delay at `medium` and `large`). A look that finds nothing is one
/// indexed read on PostgreSQL (a short write on SQLite): ten a second per worker.
const POLL: Duration = Duration::from_millis(100);

impl WebhookHandler {
    pub fn new(sender: Arc<Sender>, settings: &WebhookSettings) -> Self {
        Self {
            sender,
            retry: settings.retry_policy(),
            concurrency: settings.concurrency.max(1),
            per_subscription: settings.per_subscription.max(1),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A slot of the subscription's share of the lane, waiting up to [`SLOT_WAIT`].
    async fn slot(&self, subscription: Uuid) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let share = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(subscription)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_subscription)))
            .clone();
        tokio::time::timeout(SLOT_WAIT, share.acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

#[async_trait::async_trait]
impl JobHandler for WebhookHandler {
    type Job = DeliverWebhook;

    fn lane(&self) -> Option<usize> {
        Some(self.concurrency)
    }

    fn lane_poll(&self) -> Option<Duration> {
        Some(POLL)
    }

    async fn run(&self, job: DeliverWebhook, run: &JobRun) -> Result<Value, JobError> {
        let delivery_id = job.delivery_id;
        let Some(delivery) = store::delivery(run.db(), delivery_id)
            .await
            .map_err(database)?
        else {
            return Ok(json!({"skipped": "the delivery no longer exists"}));
        };
        if delivery.status != store::PENDING {
            return Ok(json!({"skipped": format!("the delivery is {}", delivery.status)}));
        }
        let Some(subscription) =
            store::subscription(run.db(), delivery.workspace_id, delivery.subscription_id)
                .await
                .map_err(database)?
        else {
            store::cancel_pending(run.db(), delivery.subscription_id)
                .await
                .map_err(database)?;
            return Ok(json!({"skipped": "the subscription was deleted"}));
        };
        if !subscription.enabled {
            // Sent when the subscription is enabled again.
            return Ok(json!({"waiting": "the subscription is disabled"}));
        }
        let Some(slot) = self.slot(subscription.id).await else {
            return Err(JobError::Snooze(Duration::from_millis(250)));
        };
        let attempt = self
            .sender
            .send(&subscription, delivery.id, &delivery.payload)
            .await;
        // The slot bounds what the receiver is sent at once, not the writes after (on
        // SQLite they wait for the database's lock, and a slot held through them sends nothing).
        drop(slot);
        self.record(run, &delivery, &subscription, &attempt).await
    }
}

impl WebhookHandler {
    /// Records the attempt; a retry is the job snoozed until the schedule says.
    async fn record(
        &self,
        run: &JobRun,
        delivery: &webhook_delivery::Model,
        subscription: &webhook_subscription::Model,
        attempt: &Attempt,
    ) -> Result<Value, JobError> {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(0) + 1;
        if attempt.succeeded() {
            run.on_success(Delivered {
                delivery: delivery.clone(),
                attempt: attempt.clone(),
            });
            return Ok(
                json!({"delivered": true, "attempts": attempts, "status_code": attempt.status_code}),
            );
        }
        let txn = run.db().begin().await.map_err(database)?;
        let next = self.retry.after_failure(attempts);
        let (status, next_at) = match next {
            AfterFailure::RetryIn(wait) => (
                store::PENDING,
                Some(attempt.at + chrono::Duration::from_std(wait).unwrap_or_default()),
            ),
            AfterFailure::GiveUp => (store::FAILED, None),
        };
        store::record_attempt(&txn, delivery, attempt, status, next_at)
            .await
            .map_err(database)?;
        let failing = store::record_failure(&txn, subscription.id, attempt.at)
            .await
            .map_err(database)?;
        if let Some(failing) = failing
            && let Some(since) = failing.failing_since
            && self.retry.disables(
                u32::try_from(failing.consecutive_failures).unwrap_or(0),
                since,
                attempt.at,
            )
        {
            let reason = format!(
                "disabled after {} failed deliveries in a row since {}; the last: {}",
                failing.consecutive_failures,
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                attempt.error.as_deref().unwrap_or("failed")
            );
            tracing::warn!(subscription = %subscription.id, %reason, "webhook subscription disabled");
            store::disable(&txn, subscription.id, &reason, attempt.at)
                .await
                .map_err(database)?;
        }
        txn.commit().await.map_err(database)?;
        match next {
            AfterFailure::RetryIn(wait) => Err(JobError::Snooze(wait)),
            AfterFailure::GiveUp => {
                Ok(json!({"delivered": false, "attempts": attempts, "error": attempt.error}))
            }
        }
    }
}
