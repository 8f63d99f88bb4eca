//! Admission of agent requests: a bounded number handled at once, a quarter of
//! them held back for step reports, and the ones refused told to come back after
//! a wait that grows with the overload.
//!
//! A fleet's load is its check-ins: 150,000 agents every 30 minutes are 83 a
//! second, and a herd (after an outage, or a fleet started together) is many
//! times that. Told to come back after a fixed minute or so, a refused herd comes
//! back as a herd: measured at `medium` with 2,500 requests a second offered,
//! three requests in four were refusals, each a whole request to answer. So the
//! wait grows with the share refused (offered / admitted over the last second,
//! smoothed), up to the check-in interval itself: a check-in that comes back later
//! than its next regular one gains nothing. A machine in the middle of its
//! migration reports each step; those reports may also take the held-back slots,
//! so a fleet of idle check-ins does not stall the machines that are moving, and a
//! refused report is told to come back within a few minutes whatever the overload.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::agent::CHECK_IN_INTERVAL_MINUTES;
use crate::error::retry_after_secs;

/// How long an agent request waits for a slot before it is refused: long enough to
/// ride out a burst (slots turn over in milliseconds), short enough that a herd is
/// told to come back at once instead of queueing.
const ADMISSION_WAIT: Duration = Duration::from_millis(200);

/// The span over which the share refused is measured.
const WINDOW: Duration = Duration::from_secs(1);

/// The longest wait a refusal asks for: the check-in interval.
const LONGEST_WAIT_SECS: u64 = CHECK_IN_INTERVAL_MINUTES as u64 * 60;

/// The most a refused report's wait grows with the overload: twice a minute or so.
const REPORT_OVERLOAD: f64 = 2.0;

/// What an agent request does, for its admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A check-in or an enrollment: it may come back later.
    Routine,
    /// A step of a machine's migration (an event, a log): the machine waits on it.
    Report,
}

pub struct Admission {
    /// Any agent request may take one of these.
    shared: Arc<Semaphore>,
    /// Reports only (a quarter of the slots, when there are four or more).
    reports: Arc<Semaphore>,
    load: Mutex<Load>,
}

/// Requests admitted and refused in the current window, and the overload so far.
struct Load {
    since: Instant,
    admitted: u64,
    refused: u64,
    /// Offered per admitted request, smoothed over the windows: 1 when none is refused.
    overload: f64,
}

impl Admission {
    /// `slots` agent requests handled at once.
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        let reports = if slots >= 4 { slots / 4 } else { 0 };
        Self {
            shared: Arc::new(Semaphore::new(slots - reports)),
            reports: Arc::new(Semaphore::new(reports)),
            load: Mutex::new(Load {
                since: Instant::now(),
                admitted: 0,
                refused: 0,
                overload: 1.0,
            }),
        }
    }

    /// A slot, held until the request is answered (waiting up to [`ADMISSION_WAIT`]
    /// for one, first come first served); refused, the seconds to wait before
    /// coming back.
    pub async fn admit(&self, request: Request) -> Result<OwnedSemaphorePermit, u64> {
        let shared = self.shared.clone().acquire_owned();
        let slot = match request {
            Request::Routine => tokio::time::timeout(ADMISSION_WAIT, shared).await,
            Request::Report => {
                let reserved = self.reports.clone().acquire_owned();
                tokio::time::timeout(ADMISSION_WAIT, async {
                    tokio::select! {
                        slot = shared => slot,
                        slot = reserved => slot,
                    }
                })
                .await
            }
        };
        let admitted = matches!(slot, Ok(Ok(_)));
        let overload = self.count(admitted);
        match (slot, request) {
            (Ok(Ok(slot)), _) => Ok(slot),
            (_, Request::Routine) => Err(Self::wait_secs(overload)),
            // A machine in the middle of its steps comes back soon whatever the overload:
            // told to wait as long as a check-in, it stayed `migrating` for minutes (at
            // `large`, half the reports refused, 15,000 machines at once).
            (_, Request::Report) => Err(Self::wait_secs(overload.min(REPORT_OVERLOAD))),
        }
    }

    /// What a routine request's refusal would ask for now: a minute or so times
    /// the overload, at most the check-in interval.
    #[cfg(test)]
    fn retry_after_secs(&self) -> u64 {
        Self::wait_secs(self.tally(|_| {}))
    }

    fn wait_secs(overload: f64) -> u64 {
        ((retry_after_secs() as f64 * overload) as u64).min(LONGEST_WAIT_SECS)
    }

    /// Counts a request admitted or refused; answers the overload.
    fn count(&self, admitted: bool) -> f64 {
        self.tally(|load| {
            if admitted {
                load.admitted += 1;
            } else {
                load.refused += 1;
            }
        })
    }

    fn tally(&self, change: impl FnOnce(&mut Load)) -> f64 {
        let mut load = self.load.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut load);
        let elapsed = load.since.elapsed();
        if elapsed >= WINDOW {
            // A window with nothing admitted but refusals is as overloaded as can be
            // told; an idle one (or one more than a window ago) lets the overload fall.
            let offered = (load.admitted + load.refused) as f64;
            let measured = if elapsed >= 2 * WINDOW {
                1.0
            } else {
                offered / (load.admitted.max(1) as f64)
            };
            let longest = LONGEST_WAIT_SECS as f64 / 30.0;
            load.overload = ((load.overload + measured) / 2.0).clamp(1.0, longest);
            load.since = Instant::now();
            load.admitted = 0;
            load.refused = 0;
        }
        load.overload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_wait_grows_with_the_share_refused_and_falls_when_it_ends() {
        let admission = Admission::new(4);
        let quiet = admission.retry_after_secs();
        assert!((30..=90).contains(&quiet), "{quiet}");
        // Three slots for routine requests: held, every further one is refused.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(admission.admit(Request::Routine).await.expect("a slot"));
        }
        // A report still gets the slot held back for reports.
        let report = admission
            .admit(Request::Report)
            .await
            .expect("a report's slot");
        let refused = admission.admit(Request::Routine).await;
        assert!(refused.is_err(), "the fourth routine request is refused");
        // Nineteen refused per admitted, over more than a window.
        {
            let mut load = admission.load.lock().unwrap();
            load.admitted = 10;
            load.refused = 190;
            load.since = Instant::now() - Duration::from_millis(1_100);
        }
        let busy = admission.retry_after_secs();
        assert!((300..=1_800).contains(&busy), "overloaded: {busy}");
        // A report refused now is told to come back within three minutes.
        let mut taken = Vec::new();
        while let Ok(slot) = admission.admit(Request::Report).await {
            taken.push(slot);
        }
        match admission.admit(Request::Report).await {
            Err(wait) => assert!((30..=180).contains(&wait), "a report's wait: {wait}"),
            Ok(_) => panic!("every slot is taken"),
        }
        drop(taken);
        // Then a quiet spell: the waits come down to a minute or so.
        drop(held);
        drop(report);
        for _ in 0..12 {
            admission.load.lock().unwrap().since = Instant::now() - Duration::from_secs(3);
            let _ = admission.retry_after_secs();
        }
        let after = admission.retry_after_secs();
        assert!((30..=95).contains(&after), "after the overload: {after}");
    }

    #[tokio::test]
    async fn a_wait_is_never_longer_than_the_check_in_interval() {
        let admission = Admission::new(1);
        for _ in 0..20 {
            {
                let mut load = admission.load.lock().unwrap();
                load.admitted = 0;
                load.refused = 10_000;
                load.since = Instant::now() - Duration::from_millis(1_100);
            }
            let wait = admission.retry_after_secs();
            assert!(wait <= 1_800, "{wait}");
        }
        assert!(admission.retry_after_secs() >= 600);
    }
}
