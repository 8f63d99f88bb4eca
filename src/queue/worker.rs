//! The worker: claims jobs, runs their handlers with a heartbeat that extends
//! the lease, and records the outcome, fenced by the attempt. Execution is
//! at-least-once: handlers must be idempotent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use entity::job::Model as Job;
use rand::Rng;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::completions::Completions;
use super::store::{self as queue, Lease};
use crate::metrics::Metrics;

/// Why a run did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (a remote was unavailable, …).
    #[error("{0}")]
    Retry(String),
    /// Will fail again: discard now, keeping the reason.
    #[error("{0}")]
    Fatal(String),
    /// Not finished, nothing failed: run again after this long (a supervisor
    /// looking again), without holding a worker's slot meanwhile.
    #[error("snoozed for {0:?}")]
    Snooze(Duration),
}

/// A database error in a job: worth another attempt.
pub fn database(e: sea_orm::DbErr) -> JobError {
    JobError::Retry(format!("database: {e}"))
}

/// One claimed attempt, as its handler sees it.
pub struct JobRun {
    pub job: Job,
    db: DatabaseConnection,
    stop: watch::Receiver<bool>,
    on_success: Mutex<Option<Box<dyn Effect>>>,
}

/// A change a handler wants written with its success: in the transaction that
/// records the attempt as succeeded, and only if the attempt was still ours
/// (an attempt taken over writes nothing; the one that took it over writes its own).
#[async_trait]
pub trait Effect: Send + Sync + 'static {
    async fn apply(&self, txn: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr>;
}

impl JobRun {
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Has `effect` written with this attempt's success ([`Effect`]), the job's
    /// outcome and its effect one write: with the worker's completions grouped,
    /// many runs' effects and outcomes are one transaction. Ignored unless the
    /// handler then succeeds; a second call replaces the first.
    pub fn on_success(&self, effect: impl Effect) {
        *self.on_success.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(effect));
    }

    /// Records progress; an error when the attempt is no longer ours.
    pub async fn progress(&self, progress: serde_json::Value) -> Result<(), JobError> {
        match queue::set_progress(&self.db, &self.job, &progress).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::Fatal(
                "the job was cancelled or taken over".into(),
            )),
            Err(e) => Err(database(e)),
        }
    }

    /// True once the job was cancelled, its lease lost or the worker is stopping: end at
    /// the next safe point (within a third of the lease, or the run is dropped).
    pub fn should_stop(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Runs the jobs of one kind, each handed over decoded.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    type Job: super::Job;
    /// Jobs of this kind run in a lane of their own with this many at once, so
    /// that they never take the slots of other jobs (webhook deliveries waiting
    /// on slow receivers); `None` shares the worker's slots.
    fn lane(&self) -> Option<usize> {
        None
    }
    /// How often this kind's lane (see [`JobHandler::lane`]; a kind without one
    /// shares the worker's interval) looks for due jobs when idle, when someone waits
    /// for them sooner than the worker's poll interval (never less often than that).
    fn lane_poll(&self) -> Option<Duration> {
        None
    }
    async fn run(&self, job: Self::Job, run: &JobRun) -> Result<serde_json::Value, JobError>;
}

/// A shared handler is a handler (tests keep one to look at what it saw).
#[async_trait]
impl<H: JobHandler> JobHandler for Arc<H> {
    type Job = H::Job;
    fn lane(&self) -> Option<usize> {
        H::lane(self)
    }
    fn lane_poll(&self) -> Option<Duration> {
        H::lane_poll(self)
    }
    async fn run(&self, job: Self::Job, run: &JobRun) -> Result<serde_json::Value, JobError> {
        H::run(self, job, run).await
    }
}

/// A handler of some kind, as the worker holds it: the payload is decoded
/// here, and one that is not a value of the kind's type ends the job.
#[derive(Clone)]
pub struct Handler(Arc<dyn Erased>);

impl Handler {
    pub fn new(handler: impl JobHandler) -> Self {
        Self(Arc::new(handler))
    }

    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

#[async_trait]
trait Erased: Send + Sync {
    fn kind(&self) -> &'static str;
    fn lane(&self) -> Option<usize>;
    fn lane_poll(&self) -> Option<Duration>;
    async fn run(&self, run: &JobRun) -> Result<serde_json::Value, JobError>;
}

#[async_trait]
impl<H: JobHandler> Erased for H {
    fn kind(&self) -> &'static str {
        <H::Job as super::Job>::KIND
    }
    fn lane(&self) -> Option<usize> {
        JobHandler::lane(self)
    }
    fn lane_poll(&self) -> Option<Duration> {
        JobHandler::lane_poll(self)
    }
    async fn run(&self, run: &JobRun) -> Result<serde_json::Value, JobError> {
        let job = serde_json::from_str::<H::Job>(&run.job.payload).map_err(|e| {
            JobError::Fatal(format!(
                "the payload is not one of a `{}` job: {e}",
                <H::Job as super::Job>::KIND
            ))
        })?;
        JobHandler::run(self, job, run).await
    }
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How long shutdown waits for running jobs before giving them back.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl From<&crate::config::WorkerSettings> for WorkerConfig {
    fn from(settings: &crate::config::WorkerSettings) -> Self {
        Self {
            concurrency: settings.concurrency.max(1),
            lease: Duration::from_secs(settings.lease_secs.max(3)),
            poll_interval: Duration::from_millis(settings.poll_interval_ms.max(10)),
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_secs),
            ..Self::default()
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    id: String,
    config: WorkerConfig,
    handlers: Arc<HashMap<&'static str, Handler>>,
    metrics: Option<Arc<Metrics>>,
    /// Records of succeeded attempts, written together.
    completions: Completions,
}

impl Worker {
    pub fn new(db: DatabaseConnection, config: WorkerConfig, handlers: Vec<Handler>) -> Self {
        let id = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple());
        let handlers = handlers.into_iter().map(|h| (h.kind(), h)).collect();
        Self {
            completions: Completions::new(db.clone()),
            db,
            id,
            config,
            handlers: Arc::new(handlers),
            metrics: None,
        }
    }

    /// Counts each attempt's outcome and run time in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }

    /// Claims and runs jobs until `shutdown` turns true; then stops claiming,
    /// lets running jobs finish within the grace period, and gives back the rest.
    /// Kinds with a lane of their own run beside, each in a worker of its own.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let (shared, laned): (Vec<_>, Vec<_>) = self
            .handlers
            .values()
            .cloned()
            .partition(|h| h.0.lane().is_none());
        let lanes: Vec<_> = laned
            .into_iter()
            .map(|handler| {
                let config = WorkerConfig {
                    concurrency: handler.0.lane().unwrap_or(1).max(1),
                    poll_interval: handler
                        .0
                        .lane_poll()
                        .map_or(self.config.poll_interval, |p| {
                            p.min(self.config.poll_interval)
                        }),
                    ..self.config.clone()
                };
                let lane = Worker {
                    db: self.db.clone(),
                    id: format!("{}/{}", self.id, handler.kind()),
                    config,
                    handlers: Arc::new(HashMap::from([(handler.kind(), handler)])),
                    metrics: self.metrics.clone(),
                    completions: self.completions.clone(),
                };
                tokio::spawn(lane.run_lane(shutdown.clone()))
            })
            .collect();
        let main = Worker {
            handlers: Arc::new(shared.into_iter().map(|h| (h.kind(), h)).collect()),
            ..self
        };
        main.run_lane(shutdown).await;
        for lane in lanes {
            let _ = lane.await;
        }
    }

    async fn run_lane(self, mut shutdown: watch::Receiver<bool>) {
        let mut running: JoinSet<()> = JoinSet::new();
        let (stop_all, _) = watch::channel(false);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = self.config.concurrency.saturating_sub(running.len());
            let claimed = if free > 0 {
                self.claim(free as u64).await
            } else {
                Vec::new()
            };
            let idle = claimed.is_empty();
            for job in claimed {
                let worker = self.clone();
                let stop = stop_all.subscribe();
                running.spawn(async move { worker.execute(job, stop).await });
            }
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    // A dropped sender is no signal (and must not make this loop spin).
                    Ok(()) = shutdown.changed() => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
            }
            while let Some(joined) = running.try_join_next() {
                log_panic(joined);
            }
        }
        tracing::info!(worker = %self.id, running = running.len(), "worker stopping");
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while let Some(joined) = running.join_next().await {
                log_panic(joined);
            }
        })
        .await;
        if drained.is_err() {
            // Handlers see `should_stop`; their jobs are given back as they return.
            let _ = stop_all.send(true);
            while let Some(joined) = running.join_next().await {
                log_panic(joined);
            }
        }
    }

    /// Runs due jobs until none is left: for tests and one-off commands.
    pub async fn run_until_idle(&self) -> usize {
        let mut done = 0;
        loop {
            let claimed = self.claim(self.config.concurrency as u64).await;
            if claimed.is_empty() {
                return done;
            }
            done += claimed.len();
            // Kept alive to the end: a dropped sender would read as a change to every receiver.
            let (_never, stop) = watch::channel(false);
            let runs = claimed
                .into_iter()
                .map(|job| self.execute(job, stop.clone()));
            futures_util::future::join_all(runs).await;
        }
    }

    async fn claim(&self, limit: u64) -> Vec<Job> {
        if self.handlers.is_empty() {
            return Vec::new();
        }
        match queue::claim(&self.db, &self.id, &self.kinds(), limit, self.config.lease).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "could not claim jobs");
                Vec::new()
            }
        }
    }

    #[tracing::instrument(name = "job", skip_all, fields(job = %job.id, kind = %job.kind, attempt = job.attempt))]
    async fn execute(&self, job: Job, shutdown: watch::Receiver<bool>) {
        let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
            let _ = queue::release(&self.db, &job).await;
            return;
        };
        let started = std::time::Instant::now();
        if job.attempt > job.max_attempts {
            // Claimed again after lapsed leases more often than it may be tried.
            if let Ok(true) = queue::fail(
                &self.db,
                &job,
                "attempts exhausted (the job's leases lapsed)",
                None,
            )
            .await
            {
                self.count(&job, "failed", started);
            }
            return;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let run = JobRun {
            job: job.clone(),
            db: self.db.clone(),
            stop: stop_rx,
            on_success: Mutex::new(None),
        };
        let heartbeat = self.heartbeat(job.clone(), stop_tx, shutdown.clone());
        let handling = handler.0.run(&run);
        tokio::pin!(handling);
        let outcome = tokio::select! {
            outcome = &mut handling => Some(outcome),
            lease = heartbeat => {
                // The handler sees `should_stop` and may end at a safe point; past the
                // grace it is dropped (handlers are idempotent: the next attempt redoes it).
                tracing::info!(?lease, "job stopping");
                // At shutdown the grace has already run out (`shutdown_grace`).
                let grace = if *shutdown.borrow() { Duration::ZERO } else { self.config.lease / 3 };
                tokio::time::timeout(grace, &mut handling).await.ok()
            }
        };
        let (counted_as, recorded) = match outcome {
            None if *shutdown.borrow() => ("released", queue::release(&self.db, &job).await),
            None => ("lost", Ok(false)),
            Some(Ok(result)) => {
                let effect = run
                    .on_success
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                (
                    "succeeded",
                    self.completions.record(&job, &result, effect).await,
                )
            }
            Some(Err(JobError::Fatal(reason))) => {
                ("failed", queue::fail(&self.db, &job, &reason, None).await)
            }
            Some(Err(JobError::Snooze(delay))) => {
                ("snoozed", queue::snooze(&self.db, &job, delay, None).await)
            }
            Some(Err(JobError::Retry(reason))) => {
                let retry = (job.attempt < job.max_attempts).then(|| self.backoff(job.attempt));
                (
                    if retry.is_some() { "retried" } else { "failed" },
                    queue::fail(&self.db, &job, &reason, retry).await,
                )
            }
        };
        match recorded {
            Ok(true) => self.count(&job, counted_as, started),
            Ok(false) => {
                self.count(&job, "lost", started);
                tracing::info!("the attempt was no longer ours; its outcome is not recorded");
            }
            Err(error) => {
                tracing::warn!(%error, "could not record the job's outcome; its lease will lapse")
            }
        }
    }

    /// Extends the lease every third of it; returns when the job must stop: it
    /// was cancelled or taken over, the worker shuts down, or the lease could not be
    /// extended for two thirds of it (past that, another worker may take the job).
    async fn heartbeat(
        &self,
        job: Job,
        stop: watch::Sender<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Lease {
        let every = self.config.lease / 3;
        let mut extended = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                Ok(()) = shutdown.changed() => {
                    if *shutdown.borrow() {
                        let _ = stop.send(true);
                        return Lease::Lost;
                    }
                }
            }
            match queue::heartbeat(&self.db, &job, self.config.lease).await {
                Ok(Lease::Held) => extended = std::time::Instant::now(),
                Ok(lease) => {
                    let _ = stop.send(true);
                    return lease;
                }
                Err(error) if extended.elapsed() >= self.config.lease - every => {
                    tracing::warn!(%error, "the lease could not be extended in time; stopping before another worker takes over");
                    let _ = stop.send(true);
                    return Lease::Lost;
                }
                Err(error) => tracing::warn!(%error, "heartbeat failed; retrying"),
            }
        }
    }

    fn count(&self, job: &Job, outcome: &'static str, started: std::time::Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.job_outcome(&job.kind, outcome, started.elapsed());
        }
    }

    /// Exponential in the attempt, with full jitter, within the configured bounds.
    fn backoff(&self, attempt: i32) -> Duration {
        let exp = self
            .config
            .min_backoff
            .saturating_mul(1 << attempt.clamp(0, 16))
            .min(self.config.max_backoff);
        let jittered =
            rand::rng().random_range(exp.as_millis() as u64 / 2..=exp.as_millis().max(1) as u64);
        Duration::from_millis(jittered)
    }
}

/// A handler that panicked leaves its job to lapse and be taken over; say so.
fn log_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "a job run panicked; its lease will lapse and another attempt will follow");
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}
