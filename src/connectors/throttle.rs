//! The pace toward one remote: a rate limit and a cap on requests in flight.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::policy::HttpPolicy;

/// The per-workspace rate limit and concurrency cap toward one remote; a pace
/// set `within` another keeps to both (a migration's pace inside its workspace's).
#[derive(Clone)]
pub struct Throttle {
    rate: Option<Arc<DefaultDirectRateLimiter>>,
    slots: Arc<Semaphore>,
    outer: Option<Arc<Throttle>>,
}

impl Throttle {
    pub fn new(policy: &HttpPolicy) -> Self {
        let rate = policy
            .rate_per_sec
            .and_then(NonZeroU32::new)
            .map(|per_sec| {
                // A burst of a tenth of a second keeps the average without a thundering start.
                let burst = NonZeroU32::new((per_sec.get() / 10).max(1)).unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(
                    Quota::per_second(per_sec).allow_burst(burst),
                ))
            });
        Self {
            rate,
            slots: Arc::new(Semaphore::new(policy.concurrency.max(1))),
            outer: None,
        }
    }

    /// This pace inside `outer`: every request waits for both.
    pub fn within(self, outer: &Throttle) -> Self {
        Self {
            outer: Some(Arc::new(outer.clone())),
            ..self
        }
    }

    /// Waits for a slot and the rate of every layer; the slots are held while the permits live.
    pub(super) async fn admit(&self) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
        let mut permits = Vec::new();
        let mut layer = Some(self);
        while let Some(throttle) = layer {
            permits.push(throttle.slots.clone().acquire_owned().await.ok()?);
            if let Some(rate) = &throttle.rate {
                rate.until_ready().await;
            }
            layer = throttle.outer.as_deref();
        }
        Some(permits)
    }
}
