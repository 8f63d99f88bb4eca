//! Fault injection on the cloud's API: latency, random 503s, a rate limit and
//! "failed after commit" (the work is done, the answer is a 503).
//!
//! Faults apply to `/api/2/*` and `/api/policy_management/*`, never to `/sim/*`,
//! discovery or the key set. The token endpoint gets latency and 503s only.
//! Every draw comes from one generator seeded with `--seed`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::RETRY_AFTER;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Cloud;
use super::errors::CloudError;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Every faulted request waits this long before it is handled.
    pub latency_ms: u64,
    /// Share (0..=1) of requests answered 503 before anything is done.
    pub fail_rate: f64,
    /// Requests per second over all faulted requests (a token bucket holding one
    /// second's worth); the excess gets 429 with `Retry-After`.
    pub rate_limit_per_sec: Option<u32>,
    /// Share (0..=1) of creating (and revoking, and offering-item and pricing writing)
    /// requests that do their work, then answer 503.
    pub fail_after_commit_rate: f64,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("fail_rate", self.fail_rate),
            ("fail_after_commit_rate", self.fail_after_commit_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if self.rate_limit_per_sec == Some(0) {
            return Err("rate_limit_per_sec must be at least 1".into());
        }
        Ok(())
    }
}

/// Which faults a request is exposed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exposure {
    None,
    /// The token endpoint: latency and 503s.
    Token,
    Api {
        creating: bool,
    },
}

impl Exposure {
    fn of(method: &Method, path: &str) -> Self {
        if path == "/api/2/idp/token" {
            return Exposure::Token;
        }
        if path == "/api/2/idp/keys"
            || !(path.starts_with("/api/2/") || path.starts_with("/api/policy_management/"))
        {
            return Exposure::None;
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let creating = matches!(
            (method.as_str(), segments.as_slice()),
            ("POST", ["api", "2", "tenants" | "users"])
                | ("POST", ["api", "2", "tenants", _, "registration_tokens"])
                | ("POST", ["api", "policy_management", "v4", "policies"])
                | ("PUT", ["api", "2", "users", _, "access_policies"])
                | ("POST", ["api", "2", "users", _, "password"])
                | ("POST", ["api", "2", "users", _, "send-activation-email"])
                | ("DELETE", ["api", "2", "registration_tokens", _])
                | (
                    "PUT",
                    ["api", "2", "tenants", _, "offering_items" | "pricing"]
                )
        );
        Exposure::Api { creating }
    }
}

#[derive(Default)]
pub struct Counters {
    pub total: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unavailable: AtomicU64,
    pub failed_after_commit: AtomicU64,
}

impl Counters {
    pub fn to_json(&self) -> Value {
        json!({
            "total": self.total.load(Ordering::Relaxed),
            "rate_limited": self.rate_limited.load(Ordering::Relaxed),
            "unavailable": self.unavailable.load(Ordering::Relaxed),
            "failed_after_commit": self.failed_after_commit.load(Ordering::Relaxed),
        })
    }
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

struct Injector {
    faults: Faults,
    rng: ChaCha8Rng,
    bucket: Bucket,
}

pub struct FaultState {
    injector: Mutex<Injector>,
    pub counters: Counters,
}

/// What happens to one request.
struct Decision {
    latency: Duration,
    retry_after_secs: Option<u64>,
    unavailable: bool,
    fail_after_commit: bool,
}

impl FaultState {
    pub fn new(faults: Faults, seed: u64) -> Self {
        let bucket = Bucket {
            tokens: faults.rate_limit_per_sec.unwrap_or(0) as f64,
            refilled_at: Instant::now(),
        };
        Self {
            injector: Mutex::new(Injector {
                faults,
                rng: ChaCha8Rng::seed_from_u64(seed),
                bucket,
            }),
            counters: Counters::default(),
        }
    }

    pub fn get(&self) -> Faults {
        self.injector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .faults
            .clone()
    }

    /// Replaces the faults; the rate limit starts again with a full bucket.
    pub fn set(&self, faults: Faults) {
        let mut injector = self.injector.lock().unwrap_or_else(|e| e.into_inner());
        injector.bucket = Bucket {
            tokens: faults.rate_limit_per_sec.unwrap_or(0) as f64,
            refilled_at: Instant::now(),
        };
        injector.faults = faults;
    }

    fn decide(&self, exposure: Exposure) -> Decision {
        let mut injector = self.injector.lock().unwrap_or_else(|e| e.into_inner());
        let Injector {
            faults,
            rng,
            bucket,
        } = &mut *injector;
        let mut decision = Decision {
            latency: Duration::from_millis(faults.latency_ms),
            retry_after_secs: None,
            unavailable: false,
            fail_after_commit: false,
        };
        if let (Exposure::Api { .. }, Some(rate)) = (exposure, faults.rate_limit_per_sec) {
            let rate = f64::from(rate);
            let now = Instant::now();
            bucket.tokens = (bucket.tokens
                + now.duration_since(bucket.refilled_at).as_secs_f64() * rate)
                .min(rate);
            bucket.refilled_at = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
            } else {
                let wait = ((1.0 - bucket.tokens) / rate).ceil() as u64;
                decision.retry_after_secs = Some(wait.max(1));
                return decision;
            }
        }
        decision.unavailable = faults.fail_rate > 0.0 && rng.random::<f64>() < faults.fail_rate;
        if !decision.unavailable && exposure == (Exposure::Api { creating: true }) {
            decision.fail_after_commit = faults.fail_after_commit_rate > 0.0
                && rng.random::<f64>() < faults.fail_after_commit_rate;
        }
        decision
    }
}

/// The middleware (`actix_web::middleware::from_fn`) that injects the faults.
pub async fn inject(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let exposure = Exposure::of(req.method(), req.path());
    let cloud = req.app_data::<web::Data<Cloud>>().cloned();
    let (Some(cloud), false) = (cloud, exposure == Exposure::None) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let faults = &cloud.faults;
    faults.counters.total.fetch_add(1, Ordering::Relaxed);
    let decision = faults.decide(exposure);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(secs) = decision.retry_after_secs {
        faults.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut response = CloudError::too_many_requests().error_response();
        response.headers_mut().insert(RETRY_AFTER, secs.into());
        return Ok(req.into_response(response));
    }
    if decision.unavailable {
        faults.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        return Ok(req.into_response(CloudError::unavailable().error_response()));
    }
    let response = next.call(req).await?;
    if decision.fail_after_commit && response.status().is_success() {
        faults
            .counters
            .failed_after_commit
            .fetch_add(1, Ordering::Relaxed);
        let (req, _) = response.into_parts();
        return Ok(ServiceResponse::new(
            req,
            CloudError::unavailable().error_response(),
        ));
    }
    Ok(response.map_into_boxed_body())
}
