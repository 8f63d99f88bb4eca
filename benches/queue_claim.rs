//! Job queue throughput: 20,000 no-op jobs enqueued, then claimed, run and
//! completed by one worker (32 at a time), on SQLite and, when
//! MP_TEST_POSTGRES_URL is set, PostgreSQL, each with the default database
//! settings. A claim takes up to 32 jobs in one statement; the jobs that
//! finish together are completed together, in one fenced statement.
//!
//! Beside it, the floor: as many bare reads (the database's clock), one by one.
//!
//! cargo bench --bench queue_claim

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use migration_portal::config::{Config, DatabaseConfig};
use migration_portal::db;
use migration_portal::queue::store as queue;
use migration_portal::queue::{
    Handler, Job, JobError, JobHandler, JobRun, NewJob, Worker, WorkerConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const JOBS: usize = 20_000;

#[derive(Serialize, Deserialize)]
struct NoopJob {}

impl Job for NoopJob {
    const KIND: &'static str = "noop";
}

struct Noop(Arc<AtomicU64>);

#[async_trait]
impl JobHandler for Noop {
    type Job = NoopJob;

    async fn run(&self, _: NoopJob, _: &JobRun) -> Result<Value, JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(json!({}))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Each backend with the default settings (`database.*`), only the URL set.
    let mut targets = vec![(
        "sqlite",
        format!("sqlite://{}", dir.path().join("queue.db").display()),
    )];
    if let Some(url) = common::postgres_database().await? {
        targets.push(("postgres", url));
    }
    for (backend, url) in targets {
        let settings = DatabaseConfig {
            url,
            ..Config::default().database
        };
        let connections = settings.max_connections;
        let database = db::connect_upgraded(&settings).await?;
        // The floor: the same number of bare reads, one by one, on the same pool.
        let started = Instant::now();
        for _ in 0..JOBS {
            queue::now_ms(&database).await?;
        }
        let floor = JOBS as f64 / started.elapsed().as_secs_f64();
        println!(
            "queue_claim: {backend}, pool of {connections}: floor: {JOBS} bare reads one by one = {floor:.0}/s"
        );
        let started = Instant::now();
        for _ in 0..JOBS {
            queue::enqueue(&database, NewJob::new(NoopJob {})).await?;
        }
        let enqueue = started.elapsed().as_secs_f64();
        let ran = Arc::new(AtomicU64::new(0));
        let config = WorkerConfig {
            concurrency: 32,
            ..WorkerConfig::default()
        };
        let worker = Worker::new(
            database.clone(),
            config,
            vec![Handler::new(Noop(ran.clone()))],
        );
        let started = Instant::now();
        worker.run_until_idle().await;
        let seconds = started.elapsed().as_secs_f64();
        let succeeded = queue::count_by_status(&database, queue::SUCCEEDED).await?;
        println!(
            "queue_claim: {backend}, pool of {connections}: enqueued {JOBS} jobs one by one in {enqueue:.2} s = {:.0}/s; claimed, ran and completed {} ({succeeded} succeeded) in {seconds:.2} s = {:.0} jobs/s",
            JOBS as f64 / enqueue,
            ran.load(Ordering::Relaxed),
            succeeded as f64 / seconds
        );
    }
    Ok(())
}
