//! The database job queue and the worker, on each backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use migration_portal::queue::store::{
    self as queue, CANCELLED, DISCARDED, Lease, QUEUED, RUNNING, SUCCEEDED,
};
use migration_portal::queue::{
    Completions, Effect, Handler, Job, JobError, JobHandler, JobRun, NewJob, Worker, WorkerConfig,
};
use sea_orm::TransactionTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::helpers::{Backend, fresh_db};

const LEASE: Duration = Duration::from_secs(30);

/// Job kinds of these tests, each a number.
macro_rules! test_jobs {
    ($($name:ident = $kind:literal),* $(,)?) => {$(
        #[derive(Clone, Debug, Serialize, Deserialize)]
        struct $name {
            n: u64,
        }

        impl Job for $name {
            const KIND: &'static str = $kind;
        }
    )*};
}

test_jobs!(
    Work = "work",
    Other = "other",
    FlakyJob = "flaky",
    SlowJob = "slow",
    PromptJob = "prompt",
    Marked = "marked",
    Mark = "mark"
);

fn work(n: u64) -> NewJob<Work> {
    NewJob::new(Work { n })
}

#[tokio::test]
async fn an_active_unique_key_holds_one_job_and_frees_when_it_finishes() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let keyed = NewJob {
            unique_key: Some("sync:w1".into()),
            ..work(1)
        };
        let first = queue::enqueue(&db, keyed.clone()).await.expect("enqueue");
        let second = queue::enqueue(&db, keyed.clone()).await.expect("enqueue");
        assert!(first.created && !second.created, "{backend:?}");
        assert_eq!(
            first.id, second.id,
            "{backend:?}: the active job is returned"
        );
        let claimed = queue::claim(&db, "w", &["work"], 10, LEASE)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            queue::enqueue(&db, keyed.clone())
                .await
                .expect("enqueue")
                .id,
            first.id,
            "{backend:?}: running still holds the key"
        );
        assert!(
            queue::complete(&db, &claimed[0], &json!({}))
                .await
                .expect("complete")
        );
        let third = queue::enqueue(&db, keyed).await.expect("enqueue");
        assert!(
            third.created && third.id != first.id,
            "{backend:?}: a finished job frees its key"
        );
    }
}

#[tokio::test]
async fn enqueue_joins_the_callers_transaction() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let txn = db.begin().await.expect("begin");
        let rolled_back = queue::enqueue(&txn, work(1)).await.expect("enqueue");
        txn.rollback().await.expect("rollback");
        assert!(
            queue::get(&db, rolled_back.id)
                .await
                .expect("get")
                .is_none(),
            "{backend:?}"
        );
        let txn = db.begin().await.expect("begin");
        let committed = queue::enqueue(&txn, work(2)).await.expect("enqueue");
        txn.commit().await.expect("commit");
        assert_eq!(
            queue::get(&db, committed.id)
                .await
                .expect("get")
                .map(|j| j.status),
            Some(QUEUED.to_string())
        );
    }
}

#[tokio::test]
async fn concurrent_claims_split_the_jobs_without_overlap() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        for n in 0..60 {
            queue::enqueue(&db, work(n)).await.expect("enqueue");
        }
        queue::enqueue(&db, NewJob::new(Other { n: 0 }))
            .await
            .expect("enqueue");
        // Six workers claim at once, ten each: SKIP LOCKED (or SQLite's single writer)
        // must hand each a disjoint ten.
        let claims = (0..6).map(|w| {
            let db = db.clone();
            async move {
                queue::claim(&db, &format!("w{w}"), &["work"], 10, LEASE)
                    .await
                    .expect("claim")
            }
        });
        let results = futures_util::future::join_all(claims).await;
        assert!(
            results.iter().all(|r| r.len() == 10),
            "{backend:?}: {:?}",
            results.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let mut all: Vec<_> = results.iter().flatten().map(|j| j.id).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 60, "{backend:?}: every job claimed exactly once");
        assert!(
            results
                .iter()
                .flatten()
                .all(|j| j.status == RUNNING && j.attempt == 1)
        );
        assert_eq!(
            queue::count_by_status(&db, QUEUED).await.expect("count"),
            1,
            "{backend:?}: other kinds untouched"
        );
    }
}

/// The `work` job queued last claimed by worker "a" under a lease that lapses at
/// once, then taken over by worker "b": both attempts.
async fn taken_over(db: &sea_orm::DatabaseConnection) -> (entity::job::Model, entity::job::Model) {
    let first = queue::claim(db, "a", &["work"], 1, Duration::ZERO)
        .await
        .expect("claim")
        .remove(0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = queue::claim(db, "b", &["work"], 1, LEASE)
        .await
        .expect("claim")
        .remove(0);
    (first, second)
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_over_and_the_old_attempt_is_fenced_off() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        queue::enqueue(&db, work(1)).await.expect("enqueue");
        let (first, second) = taken_over(&db).await;
        assert_eq!(
            (first.id, first.attempt, second.attempt),
            (second.id, 1, 2),
            "{backend:?}"
        );
        assert_eq!(
            queue::heartbeat(&db, &first, LEASE)
                .await
                .expect("heartbeat"),
            Lease::Lost
        );
        assert!(
            !queue::complete(&db, &first, &json!({"by": "a"}))
                .await
                .expect("complete"),
            "{backend:?}: fenced"
        );
        assert!(
            !queue::fail(&db, &first, "late", None).await.expect("fail"),
            "{backend:?}: fenced"
        );
        assert_eq!(
            queue::heartbeat(&db, &second, LEASE)
                .await
                .expect("heartbeat"),
            Lease::Held
        );
        assert!(
            queue::complete(&db, &second, &json!({"by": "b"}))
                .await
                .expect("complete")
        );
        let done = queue::get(&db, first.id).await.expect("get").expect("job");
        assert_eq!(
            (done.status.as_str(), done.result.as_deref()),
            (SUCCEEDED, Some(r#"{"by":"b"}"#))
        );
    }
}

#[tokio::test]
async fn completing_many_at_once_records_each_attempt_still_ours_with_its_own_result() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        for n in 0..4 {
            queue::enqueue(&db, work(n)).await.expect("enqueue");
        }
        // The first job's lease lapses and another worker takes it over.
        let lapsed = queue::claim(&db, "a", &["work"], 1, Duration::ZERO)
            .await
            .expect("claim")
            .remove(0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut ours = queue::claim(&db, "b", &["work"], 10, LEASE)
            .await
            .expect("claim");
        assert_eq!(
            ours.len(),
            4,
            "{backend:?}: the lapsed one first, then the due ones"
        );
        assert_eq!((ours[0].id, ours[0].attempt), (lapsed.id, 2), "{backend:?}");
        // One more is cancelled before it completes.
        let cancelled = ours.pop().expect("a job");
        assert!(queue::cancel(&db, cancelled.id).await.expect("cancel"));
        let mut done: Vec<_> = ours
            .iter()
            .map(|job| (job, json!({"by": "b", "id": job.id}).to_string()))
            .collect();
        done.push((&lapsed, json!({"by": "a"}).to_string()));
        done.push((&cancelled, json!({"by": "b"}).to_string()));
        let recorded = queue::complete_many(&db, &done).await.expect("complete");
        let mut expected: Vec<_> = ours.iter().map(|j| j.id).collect();
        let mut got: Vec<_> = recorded.into_iter().collect();
        expected.sort();
        got.sort();
        assert_eq!(
            got, expected,
            "{backend:?}: the late attempt and the cancelled job are fenced off"
        );
        for job in &ours {
            let row = queue::get(&db, job.id).await.expect("get").expect("job");
            assert_eq!(row.status, SUCCEEDED, "{backend:?}");
            let result: serde_json::Value =
                serde_json::from_str(row.result.as_deref().unwrap_or_default()).expect("json");
            assert_eq!(
                result,
                json!({"by": "b", "id": job.id}),
                "{backend:?}: its own result"
            );
        }
        let row = queue::get(&db, cancelled.id)
            .await
            .expect("get")
            .expect("job");
        assert_eq!(row.status, CANCELLED, "{backend:?}");
    }
}

struct Echo;

#[async_trait]
impl JobHandler for Echo {
    type Job = Other;

    async fn run(&self, job: Other, _: &JobRun) -> Result<serde_json::Value, JobError> {
        Ok(json!({"n": job.n}))
    }
}

#[tokio::test]
async fn jobs_finishing_together_are_each_recorded_with_their_own_result() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let mut ids = Vec::new();
        for n in 0..50 {
            let job = queue::enqueue(&db, NewJob::new(Other { n }))
                .await
                .expect("enqueue");
            ids.push((n, job.id));
        }
        let config = WorkerConfig {
            concurrency: 16,
            ..fast()
        };
        let worker = Worker::new(db.clone(), config, vec![Handler::new(Echo)]);
        assert_eq!(worker.run_until_idle().await, 50, "{backend:?}");
        for (n, id) in ids {
            let row = queue::get(&db, id).await.expect("get").expect("job");
            assert_eq!(
                (
                    row.status.as_str(),
                    row.result.as_deref(),
                    row.locked_until_ms
                ),
                (SUCCEEDED, Some(json!({"n": n}).to_string().as_str()), None),
                "{backend:?}"
            );
        }
    }
}

#[tokio::test]
async fn cancellation_stops_queued_and_running_jobs() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let queued = queue::enqueue(&db, work(1)).await.expect("enqueue");
        assert!(queue::cancel(&db, queued.id).await.expect("cancel"));
        assert!(
            queue::claim(&db, "w", &["work"], 10, LEASE)
                .await
                .expect("claim")
                .is_empty(),
            "{backend:?}"
        );
        let running = queue::enqueue(&db, work(2)).await.expect("enqueue");
        let claimed = queue::claim(&db, "w", &["work"], 10, LEASE)
            .await
            .expect("claim")
            .remove(0);
        assert!(queue::cancel(&db, running.id).await.expect("cancel"));
        assert_eq!(
            queue::heartbeat(&db, &claimed, LEASE)
                .await
                .expect("heartbeat"),
            Lease::Cancelled
        );
        assert!(
            !queue::complete(&db, &claimed, &json!({}))
                .await
                .expect("complete")
        );
        assert_eq!(
            queue::get(&db, running.id)
                .await
                .expect("get")
                .map(|j| j.status),
            Some(CANCELLED.to_string())
        );
        assert!(
            !queue::cancel(&db, running.id).await.expect("cancel"),
            "{backend:?}: cancelling twice changes nothing"
        );
    }
}

struct Flaky {
    calls: AtomicUsize,
    /// Attempts that fail before one succeeds (per job).
    failures: i32,
    fatal: bool,
}

#[async_trait]
impl JobHandler for Flaky {
    type Job = FlakyJob;

    async fn run(&self, job: FlakyJob, run: &JobRun) -> Result<serde_json::Value, JobError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        run.progress(json!({"attempt": run.job.attempt})).await?;
        if self.fatal {
            return Err(JobError::Fatal("cannot ever work".into()));
        }
        if run.job.attempt <= self.failures {
            return Err(JobError::Retry(format!(
                "transient failure {}",
                run.job.attempt
            )));
        }
        Ok(json!({"n": job.n, "attempt": run.job.attempt}))
    }
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        min_backoff: Duration::ZERO,
        max_backoff: Duration::from_millis(1),
        ..WorkerConfig::default()
    }
}

#[tokio::test]
async fn the_worker_retries_transient_failures_and_discards_after_max_attempts() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let handler = Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            failures: 2,
            fatal: false,
        });
        let worker = Worker::new(db.clone(), fast(), vec![Handler::new(handler.clone())]);
        let mut ids = Vec::new();
        for n in 0..6 {
            ids.push(
                queue::enqueue(
                    &db,
                    NewJob {
                        max_attempts: 3,
                        ..NewJob::new(FlakyJob { n })
                    },
                )
                .await
                .expect("enqueue")
                .id,
            );
        }
        let gives_up = queue::enqueue(
            &db,
            NewJob {
                max_attempts: 2,
                ..NewJob::new(FlakyJob { n: 99 })
            },
        )
        .await
        .expect("enqueue")
        .id;
        while worker.run_until_idle().await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for id in &ids {
            let done = queue::get(&db, *id).await.expect("get").expect("job");
            assert_eq!(
                (done.status.as_str(), done.attempt),
                (SUCCEEDED, 3),
                "{backend:?}"
            );
            assert_eq!(
                done.last_error.as_deref(),
                Some("transient failure 2"),
                "{backend:?}: the last error is kept"
            );
            assert_eq!(done.progress.as_deref(), Some(r#"{"attempt":3}"#));
        }
        let discarded = queue::get(&db, gives_up).await.expect("get").expect("job");
        assert_eq!(
            (discarded.status.as_str(), discarded.attempt),
            (DISCARDED, 2),
            "{backend:?}"
        );
        assert_eq!(handler.calls.load(Ordering::SeqCst), 6 * 3 + 2);

        let fatal = Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            failures: 0,
            fatal: true,
        });
        let worker = Worker::new(db.clone(), fast(), vec![Handler::new(fatal.clone())]);
        let id = queue::enqueue(&db, NewJob::new(FlakyJob { n: 7 }))
            .await
            .expect("enqueue")
            .id;
        worker.run_until_idle().await;
        let done = queue::get(&db, id).await.expect("get").expect("job");
        assert_eq!(
            (
                done.status.as_str(),
                done.attempt,
                done.last_error.as_deref()
            ),
            (DISCARDED, 1, Some("cannot ever work"))
        );
    }
}

struct Slow;

#[async_trait]
impl JobHandler for Slow {
    type Job = SlowJob;

    async fn run(&self, _: SlowJob, _: &JobRun) -> Result<serde_json::Value, JobError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(json!({}))
    }
}

#[tokio::test]
async fn shutdown_gives_unfinished_jobs_back_to_the_queue() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let id = queue::enqueue(&db, NewJob::new(SlowJob { n: 1 }))
            .await
            .expect("enqueue")
            .id;
        let config = WorkerConfig {
            poll_interval: Duration::from_millis(10),
            shutdown_grace: Duration::from_millis(50),
            ..fast()
        };
        let (shutdown, signal) = tokio::sync::watch::channel(false);
        let running =
            tokio::spawn(Worker::new(db.clone(), config, vec![Handler::new(Slow)]).run(signal));
        for _ in 0..500 {
            if queue::get(&db, id)
                .await
                .expect("get")
                .is_some_and(|j| j.status == RUNNING)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            queue::get(&db, id).await.expect("get").map(|j| j.status),
            Some(RUNNING.to_string()),
            "{backend:?}"
        );
        shutdown.send(true).expect("signal");
        running.await.expect("worker stops");
        let released = queue::get(&db, id).await.expect("get").expect("job");
        assert_eq!(
            (
                released.status.as_str(),
                released.attempt,
                released.locked_by
            ),
            (QUEUED, 0, None),
            "{backend:?}: given back, attempt not counted"
        );
    }
}

/// A lane whose jobs someone waits for (as the webhook deliveries' lane).
struct Prompt;

#[async_trait]
impl JobHandler for Prompt {
    type Job = PromptJob;

    fn lane(&self) -> Option<usize> {
        Some(1)
    }

    fn lane_poll(&self) -> Option<Duration> {
        Some(Duration::from_millis(20))
    }

    async fn run(&self, job: PromptJob, _: &JobRun) -> Result<serde_json::Value, JobError> {
        Ok(json!({"n": job.n}))
    }
}

#[tokio::test]
async fn an_idle_lane_looks_for_due_jobs_as_often_as_its_kind_asks() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        // Not due when the worker first looks; due long before the worker's own next look.
        let id = queue::enqueue(
            &db,
            NewJob {
                delay: Duration::from_secs(1),
                ..NewJob::new(PromptJob { n: 1 })
            },
        )
        .await
        .expect("enqueue")
        .id;
        let config = WorkerConfig {
            poll_interval: Duration::from_secs(3600),
            ..fast()
        };
        let (shutdown, signal) = tokio::sync::watch::channel(false);
        let running =
            tokio::spawn(Worker::new(db.clone(), config, vec![Handler::new(Prompt)]).run(signal));
        let mut status = String::new();
        for _ in 0..1500 {
            status = queue::get(&db, id).await.expect("get").expect("job").status;
            if status == SUCCEEDED {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.send(true).expect("signal");
        running.await.expect("worker stops");
        assert_eq!(
            status, SUCCEEDED,
            "{backend:?}: the lane looked again within its own interval, not the worker's hour"
        );
    }
}

#[tokio::test]
async fn jobs_of_a_workspace_share_its_clients_until_the_workspace_changes() {
    use migration_portal::crypto::SecretBox;
    use migration_portal::jobs::clients::ClientPool;
    use sea_orm::EntityTrait;
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let created = app
        .create_workspace(&app.token, &crate::helpers::workspace_body("Pooled").0)
        .await;
    let id = uuid::Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid");
    let db = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("connect");
    let load = || async {
        entity::workspace::Entity::find_by_id(id)
            .one(&db)
            .await
            .expect("query")
            .expect("row")
    };
    let secrets = SecretBox::from_base64(&app.secret_key).expect("key");
    let pool = ClientPool::new(true);

    let first = pool.clients(&load().await, &secrets).expect("clients");
    let again = pool.clients(&load().await, &secrets).expect("clients");
    assert!(
        Arc::ptr_eq(&first.source, &again.source) && Arc::ptr_eq(&first.target, &again.target),
        "one set per workspace"
    );

    let limits = json!({"limits": {"source": {"rate_per_sec": 1, "concurrency": 1}, "target": {"rate_per_sec": 1, "concurrency": 1}}});
    assert_eq!(
        app.patch_json(&format!("/api/v1/workspaces/{id}"), &app.token, &limits)
            .send()
            .await
            .expect("patch")
            .status(),
        200
    );
    let rebuilt = pool.clients(&load().await, &secrets).expect("clients");
    assert!(
        !Arc::ptr_eq(&first.source, &rebuilt.source),
        "a changed workspace gets new clients"
    );

    let wrong_key = SecretBox::insecure_dev();
    assert!(
        matches!(
            ClientPool::new(true).clients(&load().await, &wrong_key),
            Err(JobError::Fatal(_))
        ),
        "sealed with another key"
    );
    assert!(
        matches!(
            ClientPool::new(false).clients(&load().await, &secrets),
            Err(JobError::Fatal(_))
        ),
        "loopback refused"
    );
}

/// Runs for an hour unless dropped; says when it was.
struct Watched(Arc<std::sync::atomic::AtomicBool>);

struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl JobHandler for Watched {
    type Job = SlowJob;

    async fn run(&self, _: SlowJob, _: &JobRun) -> Result<serde_json::Value, JobError> {
        let _flag = DropFlag(self.0.clone());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(json!({}))
    }
}

#[tokio::test]
async fn cancelling_a_running_job_stops_its_handler() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let id = queue::enqueue(&db, NewJob::new(SlowJob { n: 1 }))
            .await
            .expect("enqueue")
            .id;
        // Heartbeats every 100 ms; a stopped handler gets 100 ms more, then is dropped.
        let config = WorkerConfig {
            lease: Duration::from_millis(300),
            poll_interval: Duration::from_millis(10),
            ..fast()
        };
        let (shutdown, signal) = tokio::sync::watch::channel(false);
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running = tokio::spawn(
            Worker::new(
                db.clone(),
                config,
                vec![Handler::new(Watched(stopped.clone()))],
            )
            .run(signal),
        );
        for _ in 0..500 {
            if queue::get(&db, id)
                .await
                .expect("get")
                .is_some_and(|j| j.status == RUNNING)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(queue::cancel(&db, id).await.expect("cancel"), "{backend:?}");
        for _ in 0..100 {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            stopped.load(Ordering::SeqCst),
            "{backend:?}: the handler was stopped while the worker runs on"
        );
        // The worker notices, stops the handler and records nothing over the cancellation;
        // its lease keeps the job from being claimed again (it is cancelled for good).
        tokio::time::sleep(Duration::from_millis(600)).await;
        let job = queue::get(&db, id).await.expect("get").expect("job");
        assert_eq!(
            (job.status.as_str(), job.attempt),
            (CANCELLED, 1),
            "{backend:?}"
        );
        assert!(
            queue::claim(&db, "other", &["slow"], 1, LEASE)
                .await
                .expect("claim")
                .is_empty()
        );
        shutdown.send(true).expect("signal");
        running
            .await
            .expect("the worker stops: the cancelled run is not holding it");
    }
}

#[tokio::test]
async fn leases_run_on_the_databases_clock() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let here = chrono::Utc::now().timestamp_millis();
        let there = queue::now_ms(&db).await.expect("clock");
        // The same machine: the two clocks agree, which proves the expression's units.
        assert!(
            (there - here).abs() < 2_000,
            "{backend:?}: database {there}, process {here}"
        );
        let id = queue::enqueue(
            &db,
            NewJob {
                delay: Duration::from_secs(3600),
                ..work(1)
            },
        )
        .await
        .expect("enqueue")
        .id;
        let queued = queue::get(&db, id).await.expect("get").expect("job");
        assert!(
            (queued.run_at_ms - there - 3_600_000).abs() < 2_000,
            "{backend:?}: due in an hour by the database's clock"
        );
        assert!(
            queue::claim(&db, "w", &["work"], 1, LEASE)
                .await
                .expect("claim")
                .is_empty(),
            "{backend:?}: not due yet"
        );
    }
}

/// A kind whose payload carries more than [`Work`]'s: a `work` row written by
/// another version (or by hand) is not one of these.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Exacting {
    n: u64,
    workspace_id: uuid::Uuid,
}

impl Job for Exacting {
    const KIND: &'static str = "work";
}

struct RunsExacting(Arc<AtomicUsize>);

#[async_trait]
impl JobHandler for RunsExacting {
    type Job = Exacting;

    async fn run(&self, _: Exacting, _: &JobRun) -> Result<serde_json::Value, JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(json!({}))
    }
}

#[tokio::test]
async fn a_payload_that_is_not_of_its_kind_ends_the_job_saying_so() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        let id = queue::enqueue(&db, work(7)).await.expect("enqueue").id;
        let ran = Arc::new(AtomicUsize::new(0));
        let worker = Worker::new(
            db.clone(),
            fast(),
            vec![Handler::new(RunsExacting(ran.clone()))],
        );
        worker.run_until_idle().await;
        let job = queue::get(&db, id).await.expect("get").expect("job");
        assert_eq!(
            job.status, DISCARDED,
            "{backend:?}: not retried, not run with defaults"
        );
        assert_eq!(job.attempt, 1, "{backend:?}");
        let error = job.last_error.unwrap_or_default();
        assert!(
            error.contains("not one of a `work` job") && error.contains("workspace_id"),
            "{backend:?}: {error}"
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "{backend:?}: the handler never saw it"
        );
    }
}

#[tokio::test]
async fn a_completion_recorded_is_written_even_when_the_run_that_recorded_it_is_dropped() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        for n in 0..2 {
            queue::enqueue(&db, work(n)).await.expect("enqueue");
        }
        let claimed = queue::claim(&db, "w", &["work"], 2, LEASE)
            .await
            .expect("claim");
        let (first, second) = (&claimed[0], &claimed[1]);
        let completions = Completions::new(db.clone());
        // The first run records its outcome and waits for the write; the second records
        // its own, then is dropped (its task aborted) before anything was written. Both
        // polled by hand: on this test's one thread nothing else runs meanwhile.
        let (result_of_first, result_of_second) = (json!({"n": 0}), json!({"n": 1}));
        let mut writing = std::pin::pin!(completions.record(first, &result_of_first, None));
        for _ in 0..2 {
            assert!(poll_once(&mut writing).await.is_pending(), "{backend:?}");
        }
        {
            let mut dropped = std::pin::pin!(completions.record(second, &result_of_second, None));
            for _ in 0..2 {
                assert!(poll_once(&mut dropped).await.is_pending(), "{backend:?}");
            }
        }
        assert!(writing.await.expect("recorded"), "{backend:?}");
        // No other run records anything: the dropped run's record is written all the same.
        let second = queue::get(&db, second.id).await.expect("get").expect("job");
        assert_eq!(
            (second.status.as_str(), second.result.as_deref()),
            (SUCCEEDED, Some(r#"{"n":1}"#)),
            "{backend:?}: a completion recorded is written"
        );
    }
}

/// Writes a `mark` job numbered `n` (a row to look for) with a success.
struct Marking(u64);

#[async_trait]
impl Effect for Marking {
    async fn apply(&self, txn: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        queue::enqueue(txn, NewJob::new(Mark { n: self.0 }))
            .await
            .map(drop)
    }
}

/// Asks for a mark with its success; odd numbers then fail.
struct MarksThenMaybeFails;

#[async_trait]
impl JobHandler for MarksThenMaybeFails {
    type Job = Marked;

    async fn run(&self, job: Marked, run: &JobRun) -> Result<serde_json::Value, JobError> {
        run.on_success(Marking(job.n));
        match job.n % 2 {
            0 => Ok(json!({})),
            _ => Err(JobError::Fatal("odd".into())),
        }
    }
}

/// The numbers of the `mark` jobs written.
async fn marks(db: &sea_orm::DatabaseConnection) -> Vec<u64> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut marks: Vec<u64> = entity::job::Entity::find()
        .filter(entity::job::Column::Kind.eq("mark"))
        .all(db)
        .await
        .expect("marks")
        .into_iter()
        .map(|j| serde_json::from_str::<Mark>(&j.payload).expect("a mark").n)
        .collect();
    marks.sort_unstable();
    marks
}

#[tokio::test]
async fn a_runs_effect_is_written_with_its_success_only_and_only_while_the_attempt_is_ours() {
    for backend in Backend::enabled() {
        let (db, _dir) = fresh_db(backend).await;
        for n in 0..20 {
            queue::enqueue(&db, NewJob::new(Marked { n }))
                .await
                .expect("enqueue");
        }
        let worker = Worker::new(
            db.clone(),
            WorkerConfig {
                concurrency: 8,
                ..fast()
            },
            vec![Handler::new(MarksThenMaybeFails)],
        );
        assert_eq!(worker.run_until_idle().await, 20, "{backend:?}");
        assert_eq!(
            marks(&db).await,
            (0..20).step_by(2).collect::<Vec<_>>(),
            "{backend:?}: the runs that succeeded wrote their marks, the failed ones none"
        );

        // An attempt taken over writes neither its outcome nor its effect; the one
        // that took it over writes both.
        let job = queue::enqueue(&db, work(1)).await.expect("enqueue");
        let (first, second) = taken_over(&db).await;
        assert_eq!((first.id, second.id), (job.id, job.id), "{backend:?}");
        let completions = Completions::new(db.clone());
        let late = completions
            .record(&first, &json!({"by": "a"}), Some(Box::new(Marking(100))))
            .await
            .expect("recorded");
        assert!(!late, "{backend:?}: fenced");
        assert!(
            !marks(&db).await.contains(&100),
            "{backend:?}: the lost attempt's effect is not written"
        );
        let ours = completions
            .record(&second, &json!({"by": "b"}), Some(Box::new(Marking(200))))
            .await
            .expect("recorded");
        assert!(ours, "{backend:?}");
        assert!(marks(&db).await.contains(&200), "{backend:?}");
    }
}

/// Polls `future` once, from the calling task.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx)))
        .await
}
