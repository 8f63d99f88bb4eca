//! Successful attempts are recorded together (group commit): a run that succeeds
//! while another record is being written leaves its own with the next writer,
//! which records every one waiting in one statement ([`store::complete_many`],
//! fenced per attempt like [`store::complete`]). One job alone waits for
//! nothing; many finishing together cost one write instead of one each, and on
//! SQLite they no longer wait on each other's lock.

use std::sync::{Arc, Mutex};

use entity::job::Model as Job;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

use super::store;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Default)]
pub(super) struct Completions {
    waiting: Mutex<Vec<(Job, String, Reply)>>,
    /// Held while a record is written; the others' records wait in `waiting`.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl Completions {
    /// Records `job` as succeeded with `result`: true when the attempt was still ours.
    pub(super) async fn complete(
        &self,
        db: &DatabaseConnection,
        job: &Job,
        result: &serde_json::Value,
    ) -> Result<bool, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job.clone(), result.to_string(), reply));
        // Runs finishing in the same turn of the scheduler join this record.
        tokio::task::yield_now().await;
        let writer = self.writing.clone().lock_owned().await;
        let batch = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        // Empty when an earlier writer took this record along. The write runs on
        // its own: a run dropped meanwhile leaves the others' records written.
        if !batch.is_empty() {
            tokio::spawn(write(db.clone(), batch, writer));
        }
        match answer.await {
            Ok(Ok(ours)) => Ok(ours),
            Ok(Err(error)) => Err(DbErr::Custom(error)),
            Err(_) => Err(DbErr::Custom(
                "the run recording this job's outcome was dropped".into(),
            )),
        }
    }
}

async fn write(
    db: DatabaseConnection,
    batch: Vec<(Job, String, Reply)>,
    _writer: tokio::sync::OwnedMutexGuard<()>,
) {
    let done: Vec<_> = batch.iter().map(|(job, r, _)| (job, r.clone())).collect();
    let recorded = store::complete_many(&db, &done).await;
    for (job, _, reply) in batch {
        let answer = match &recorded {
            Ok(ids) => Ok(ids.contains(&job.id)),
            Err(e) => Err(e.to_string()),
        };
        let _ = reply.send(answer);
    }
}
