//! Successful attempts are recorded together (group commit): a run that succeeds
//! while a record is being written leaves its own with the writer, which
//! records every one waiting in one statement ([`store::complete_many`], fenced
//! per attempt like [`store::complete`]). One job alone waits for nothing; many
//! finishing together cost one write instead of one each, and on SQLite they no
//! longer wait on each other's lock.
//!
//! The writer is a task of its own, started by the record that finds none
//! running and ending when none is left: a record is written however its run
//! ends (a run dropped before it was written strands no record, its own or
//! another's), and the last one is written at once, never left for the next.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use entity::job::Model as Job;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

use super::store;

type Reply = oneshot::Sender<Result<bool, String>>;

/// Tries of one write before its runs are told it failed (their leases then lapse
/// and the jobs run again): a pool or lock that is briefly busy costs a retry, not a rerun.
const TRIES: u32 = 3;
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The succeeded attempts of one worker, written together.
#[derive(Clone)]
pub struct Completions(Arc<Shared>);

struct Shared {
    db: DatabaseConnection,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: Vec<(Job, String, Reply)>,
    /// A writer task is running: it takes what waits before it ends.
    writing: bool,
}

impl Completions {
    pub fn new(db: DatabaseConnection) -> Self {
        Self(Arc::new(Shared {
            db,
            state: Mutex::default(),
        }))
    }

    /// Records `job` as succeeded with `result`: true when the attempt was still
    /// ours. The record is kept when this future is dropped once polled.
    pub async fn record(&self, job: &Job, result: &serde_json::Value) -> Result<bool, DbErr> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.0.state();
            state.waiting.push((job.clone(), result.to_string(), reply));
            !std::mem::replace(&mut state.writing, true)
        };
        if start {
            Writer::start(self.0.clone());
        }
        match answer.await {
            Ok(Ok(ours)) => Ok(ours),
            Ok(Err(error)) => Err(DbErr::Custom(error)),
            Err(_) => Err(DbErr::Custom(
                "the writer of this job's outcome stopped before writing it".into(),
            )),
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The one writer task of a [`Completions`].
struct Writer {
    shared: Arc<Shared>,
    finished: bool,
}

impl Writer {
    fn start(shared: Arc<Shared>) {
        tokio::spawn(
            Writer {
                shared,
                finished: false,
            }
            .run(),
        );
    }

    async fn run(mut self) {
        loop {
            let batch = {
                let mut state = self.shared.state();
                if state.waiting.is_empty() {
                    state.writing = false;
                    self.finished = true;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            write(&self.shared.db, batch).await;
        }
    }
}

impl Drop for Writer {
    /// Stopped before its end (a panic, its runtime shutting down): the runs
    /// waiting are told at once rather than left waiting, and the next record
    /// starts a writer.
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.shared.state();
            state.waiting.clear();
            state.writing = false;
        }
    }
}

async fn write(db: &DatabaseConnection, batch: Vec<(Job, String, Reply)>) {
    let done: Vec<_> = batch.iter().map(|(job, r, _)| (job, r.clone())).collect();
    let mut tries = 1;
    let recorded = loop {
        match store::complete_many(db, &done).await {
            Err(error) if tries < TRIES => {
                tracing::warn!(%error, jobs = done.len(), "could not record succeeded jobs; trying again");
                tokio::time::sleep(RETRY_AFTER * tries).await;
                tries += 1;
            }
            recorded => break recorded,
        }
    };
    for (job, _, reply) in batch {
        let answer = match &recorded {
            Ok(ids) => Ok(ids.contains(&job.id)),
            Err(e) => Err(e.to_string()),
        };
        let _ = reply.send(answer);
    }
}
