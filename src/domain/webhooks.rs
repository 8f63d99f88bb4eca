//! Webhooks as the Standard Webhooks specification has them: which events a
//! subscription can ask for (and which operations-log events they come from),
//! the `whsec_` secrets, the `v1` HMAC-SHA256 signature over
//! `{id}.{timestamp}.{body}`, and when a failed delivery is tried again or its
//! subscription is disabled.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

/// What a subscription can be told of.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    #[serde(rename = "sync.completed")]
    SyncCompleted,
    #[serde(rename = "precheck.completed")]
    PrecheckCompleted,
    #[serde(rename = "migration.completed")]
    MigrationCompleted,
    #[serde(rename = "migration.item_failed")]
    MigrationItemFailed,
    #[serde(rename = "machine.migrated")]
    MachineMigrated,
    #[serde(rename = "machine.failed")]
    MachineFailed,
    #[serde(rename = "machine.manual_action_required")]
    MachineManualActionRequired,
    #[serde(rename = "machine.not_seen")]
    MachineNotSeen,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::SyncCompleted,
        EventType::PrecheckCompleted,
        EventType::MigrationCompleted,
        EventType::MigrationItemFailed,
        EventType::MachineMigrated,
        EventType::MachineFailed,
        EventType::MachineManualActionRequired,
        EventType::MachineNotSeen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SyncCompleted => "sync.completed",
            EventType::PrecheckCompleted => "precheck.completed",
            EventType::MigrationCompleted => "migration.completed",
            EventType::MigrationItemFailed => "migration.item_failed",
            EventType::MachineMigrated => "machine.migrated",
            EventType::MachineFailed => "machine.failed",
            EventType::MachineManualActionRequired => "machine.manual_action_required",
            EventType::MachineNotSeen => "machine.not_seen",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The webhook an operations-log event of `kind` makes, if any.
    pub fn of_event(kind: &str) -> Option<EventType> {
        Some(match kind {
            "sync.completed" => EventType::SyncCompleted,
            "precheck.completed" => EventType::PrecheckCompleted,
            "migration.completed" | "migration.completed_with_failures" => {
                EventType::MigrationCompleted
            }
            "item.failed" => EventType::MigrationItemFailed,
            // The agent switched the client to restore-only, or the partner marked the manual steps done.
            "machine.restore_only" | "machine.mark_manual_done" => EventType::MachineMigrated,
            "machine.failed" => EventType::MachineFailed,
            "machine.registration_manual" => EventType::MachineManualActionRequired,
            "machine.not_seen" => EventType::MachineNotSeen,
            _ => return None,
        })
    }
}

/// The type of the event a test delivery sends.
pub const TEST_EVENT: &str = "webhook.test";

/// Where a delivery is: retries left,
pub const PENDING: &str = "pending";
/// sent and answered with a 2xx,
pub const DELIVERED: &str = "delivered";
/// retries exhausted,
pub const FAILED: &str = "failed";
/// or its subscription was deleted.
pub const CANCELLED: &str = "cancelled";

/// Whether a delivery may be sent again: a failed or cancelled one, never a test.
pub fn redeliverable(event_type: &str, status: &str) -> bool {
    event_type != TEST_EVENT && matches!(status, FAILED | CANCELLED)
}

/// The body of a test delivery, asked for by `actor`.
pub fn test_payload(
    workspace_id: Uuid,
    subscription_id: Uuid,
    actor: &str,
    at: DateTime<Utc>,
) -> String {
    json!({
        "type": TEST_EVENT,
        "timestamp": at,
        "data": {"workspace_id": workspace_id, "subscription_id": subscription_id, "message": format!("a test delivery asked for by {actor}")},
    })
    .to_string()
}

/// The longest grace a rotated secret may keep signing.
const MAX_GRACE_SECS: u64 = 7 * 86_400;
const DEFAULT_GRACE_SECS: u64 = 86_400;

/// How long the secret before a rotation keeps signing: a day unless asked,
/// never more than a week.
pub fn rotation_grace(requested_secs: Option<u64>) -> chrono::Duration {
    let secs = requested_secs
        .unwrap_or(DEFAULT_GRACE_SECS)
        .min(MAX_GRACE_SECS);
    chrono::Duration::seconds(secs as i64)
}

/// What a partner's `enabled` does to a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Enabled, its run of failures forgotten (also when it already was enabled).
    Enable,
    /// Disabled, saying by whom.
    Disable {
        reason: String,
    },
    Keep,
}

impl Switch {
    /// `requested` by `actor` of a subscription that is `enabled` now.
    pub fn of(requested: Option<bool>, enabled: bool, actor: &str) -> Self {
        match requested {
            Some(true) => Switch::Enable,
            Some(false) if enabled => Switch::Disable {
                reason: format!("disabled by {actor}"),
            },
            _ => Switch::Keep,
        }
    }
}

/// A receiver's URL, or why it cannot receive webhooks: `http` or `https`, a
/// host, and no credentials (receivers verify the signature instead). Whether
/// its address may be contacted is the sender's policy to say.
pub fn receiver_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs receive webhooks".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the URL: verify the signature instead".into());
    }
    if url.host().is_none() {
        return Err("the URL names no host".into());
    }
    Ok(url)
}

const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: the key bytes behind `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// 32 random bytes.
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Secret(key))
    }

    /// `whsec_` and the base64 of 24 to 64 bytes (the specification's range).
    pub fn parse(text: &str) -> Option<Secret> {
        let key = STANDARD.decode(text.strip_prefix(SECRET_PREFIX)?).ok()?;
        (24..=64).contains(&key.len()).then_some(Secret(key))
    }

    /// The form given to the partner (once) and kept sealed.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        // Any key length is valid for HMAC.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret in force, space-separated
/// (after a rotation the previous secret signs too until its grace ends).
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// When failed deliveries are tried again, and when a failing subscription is disabled.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The wait before each retry: the first attempt, then one more per entry.
    pub schedule: Vec<Duration>,
    /// A subscription whose deliveries failed this many times in a row…
    pub disable_after_failures: u32,
    /// …for at least this long is disabled.
    pub disable_after: Duration,
}

impl Default for RetryPolicy {
    /// The specification's example schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h;
    /// a subscription failing for five days (and at least 20 attempts) is disabled.
    fn default() -> Self {
        let secs = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
        Self {
            schedule: secs.into_iter().map(Duration::from_secs).collect(),
            disable_after_failures: 20,
            disable_after: Duration::from_secs(5 * 86_400),
        }
    }
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    RetryIn(Duration),
    /// No retry is left: the delivery failed.
    GiveUp,
}

impl RetryPolicy {
    /// After the `attempts`-th attempt failed.
    pub fn after_failure(&self, attempts: u32) -> AfterFailure {
        match self.schedule.get(attempts.saturating_sub(1) as usize) {
            Some(wait) => AfterFailure::RetryIn(*wait),
            None => AfterFailure::GiveUp,
        }
    }

    /// Whether a subscription failing `failures` times in a row since `since` is to be disabled.
    pub fn disables(&self, failures: u32, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        failures >= self.disable_after_failures
            && (now - since).to_std().unwrap_or_default() >= self.disable_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specifications_test_vector() {
        let secret =
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret");
        let signed = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let other = Secret::generate().expect("random");
        let header = signature_header(
            &[&other, &secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert!(
            header.ends_with(" v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            "{header}"
        );
        assert_eq!(header.split(' ').count(), 2);
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_to_64_bytes() {
        let generated = Secret::generate().expect("random");
        assert_eq!(Secret::parse(&generated.expose()), Some(generated.clone()));
        assert!(generated.expose().starts_with("whsec_"));
        assert!(!format!("{generated:?}").contains(&generated.expose()[6..]));
        let b64 = |n: usize| STANDARD.encode(vec![7u8; n]);
        for (text, valid) in [
            (format!("whsec_{}", b64(24)), true),
            (format!("whsec_{}", b64(64)), true),
            (format!("whsec_{}", b64(23)), false),
            (format!("whsec_{}", b64(65)), false),
            (b64(32), false),
            ("whsec_not base64!".to_string(), false),
        ] {
            assert_eq!(Secret::parse(&text).is_some(), valid, "{text}");
        }
    }

    #[test]
    fn operations_log_events_make_the_webhooks_the_table_says() {
        use EventType::*;
        let table = [
            ("sync.completed", Some(SyncCompleted)),
            ("precheck.completed", Some(PrecheckCompleted)),
            ("migration.completed", Some(MigrationCompleted)),
            (
                "migration.completed_with_failures",
                Some(MigrationCompleted),
            ),
            ("migration.planned", None),
            ("item.failed", Some(MigrationItemFailed)),
            ("item.done", None),
            ("machine.restore_only", Some(MachineMigrated)),
            ("machine.mark_manual_done", Some(MachineMigrated)),
            ("machine.failed", Some(MachineFailed)),
            (
                "machine.registration_manual",
                Some(MachineManualActionRequired),
            ),
            ("machine.not_seen", Some(MachineNotSeen)),
            ("machine.downloading", None),
            ("machine.seen_again", None),
            ("target.ensure_user", None),
        ];
        for (kind, expected) in table {
            assert_eq!(EventType::of_event(kind), expected, "{kind}");
        }
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).expect("json"), t.as_str());
        }
    }

    #[test]
    fn failed_deliveries_follow_the_schedule_and_long_failing_subscriptions_are_disabled() {
        let policy = RetryPolicy::default();
        let table = [
            (1, AfterFailure::RetryIn(Duration::from_secs(5))),
            (2, AfterFailure::RetryIn(Duration::from_secs(300))),
            (7, AfterFailure::RetryIn(Duration::from_secs(36_000))),
            (8, AfterFailure::GiveUp),
        ];
        for (attempts, expected) in table {
            assert_eq!(
                policy.after_failure(attempts),
                expected,
                "after attempt {attempts}"
            );
        }
        let now = Utc::now();
        let days = |d: i64| now - chrono::Duration::days(d);
        // failures in a row, failing since, disabled
        for (failures, since, disabled) in [
            (20, days(5), true),
            (19, days(6), false),
            (500, days(4), false),
            (20, now, false),
        ] {
            assert_eq!(
                policy.disables(failures, since, now),
                disabled,
                "{failures} since {since}"
            );
        }
    }

    #[test]
    fn only_failed_or_cancelled_deliveries_are_sent_again_and_never_a_test() {
        let cases = [
            ("machine.failed", FAILED, true),
            ("machine.failed", CANCELLED, true),
            ("machine.failed", PENDING, false),
            ("machine.failed", DELIVERED, false),
            (TEST_EVENT, FAILED, false),
            (TEST_EVENT, CANCELLED, false),
        ];
        for (event_type, status, expected) in cases {
            assert_eq!(
                redeliverable(event_type, status),
                expected,
                "{event_type} {status}"
            );
        }
    }

    #[test]
    fn a_rotated_secret_signs_a_day_unless_asked_and_never_more_than_a_week() {
        let cases = [
            (None, 86_400),
            (Some(0), 0),
            (Some(3_600), 3_600),
            (Some(604_800), 604_800),
            (Some(604_801), 604_800),
            (Some(u64::MAX), 604_800),
        ];
        for (requested, secs) in cases {
            assert_eq!(
                rotation_grace(requested).num_seconds(),
                secs,
                "{requested:?}"
            );
        }
    }

    #[test]
    fn enabling_forgets_failures_and_only_an_enabled_subscription_is_disabled() {
        let disabled = Switch::Disable {
            reason: "disabled by partner:alice".into(),
        };
        let cases = [
            (Some(true), false, Switch::Enable),
            (Some(true), true, Switch::Enable),
            (Some(false), true, disabled),
            (Some(false), false, Switch::Keep),
            (None, true, Switch::Keep),
            (None, false, Switch::Keep),
        ];
        for (requested, enabled, expected) in cases {
            assert_eq!(
                Switch::of(requested, enabled, "partner:alice"),
                expected,
                "{requested:?} {enabled}"
            );
        }
    }

    #[test]
    fn receivers_are_http_urls_with_a_host_and_no_credentials() {
        let cases = [
            (
                "https://psa.example.com/hooks",
                Ok("https://psa.example.com/hooks"),
            ),
            (" http://10.0.0.5:8080/x ", Ok("http://10.0.0.5:8080/x")),
            ("ftp://psa.example.com/", Err("only http and https")),
            ("https://user:pw@psa.example.com/", Err("credentials")),
            ("https://token@psa.example.com/", Err("credentials")),
            ("psa.example.com/hooks", Err("not a URL")),
        ];
        for (text, expected) in cases {
            match (receiver_url(text), expected) {
                (Ok(url), Ok(want)) => assert_eq!(url.as_str(), want),
                (Err(reason), Err(want)) => assert!(reason.contains(want), "{text}: {reason}"),
                (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
            }
        }
    }
}
