//! Group commit: records that many tasks make together are written together.
//! A task hands its record to the writer and waits for its answer; the writer
//! writes every record waiting in one go ([`GroupWrite::write`]) and answers
//! each. One record alone waits for nothing; many finishing together cost one
//! write instead of one each, and on SQLite, where every write waits for the
//! database's one write lock, they no longer queue on it one by one.
//!
//! The writer is a task of its own, started by the record that finds none
//! running and ending when none is left: a record is written however its task
//! ends (a task dropped before its record was written strands no record, its own
//! or another's), and the last one is written at once, never left for the next.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

/// How records of one kind are written together.
#[async_trait::async_trait]
pub trait GroupWrite: Send + Sync + 'static {
    type Record: Send + Sync + 'static;
    type Answer: Send + 'static;
    /// What is written, for the log: "succeeded jobs".
    const WHAT: &'static str;
    /// Writes `records` (atomically, or so that writing them again is harmless),
    /// answering each, in their order.
    async fn write(
        &self,
        db: &DatabaseConnection,
        records: &[Self::Record],
    ) -> Result<Vec<Self::Answer>, DbErr>;
}

/// Tries of one write before its tasks are told it failed: a pool or lock that
/// is briefly busy costs a retry, not the records.
const TRIES: u32 = 3;
const RETRY_AFTER: Duration = Duration::from_millis(100);

type Reply<A> = oneshot::Sender<Result<A, String>>;

/// The records of one kind, written together.
pub struct GroupCommit<W: GroupWrite>(Arc<Shared<W>>);

impl<W: GroupWrite> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Shared<W: GroupWrite> {
    db: DatabaseConnection,
    kind: W,
    state: Mutex<State<W>>,
}

struct State<W: GroupWrite> {
    waiting: Vec<(W::Record, Reply<W::Answer>)>,
    /// A writer task is running: it takes what waits before it ends.
    writing: bool,
}

impl<W: GroupWrite> GroupCommit<W> {
    pub fn new(db: DatabaseConnection, kind: W) -> Self {
        Self(Arc::new(Shared {
            db,
            kind,
            state: Mutex::new(State {
                waiting: Vec::new(),
                writing: false,
            }),
        }))
    }

    /// Writes `record` with whatever else waits: its answer once written. The
    /// record is written even when this future is dropped once polled.
    pub async fn record(&self, record: W::Record) -> Result<W::Answer, DbErr> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.0.state();
            state.waiting.push((record, reply));
            !std::mem::replace(&mut state.writing, true)
        };
        if start {
            Writer::start(self.0.clone());
        }
        match answer.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(DbErr::Custom(error)),
            Err(_) => Err(DbErr::Custom(format!(
                "the writer of {} stopped before writing this one",
                W::WHAT
            ))),
        }
    }
}

impl<W: GroupWrite> Shared<W> {
    fn state(&self) -> MutexGuard<'_, State<W>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn write(&self, batch: Vec<(W::Record, Reply<W::Answer>)>) {
        let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let mut tries = 1;
        let written = loop {
            match self.kind.write(&self.db, &records).await {
                Err(error) if tries < TRIES => {
                    tracing::warn!(%error, records = records.len(), "could not record {}; trying again", W::WHAT);
                    tokio::time::sleep(RETRY_AFTER * tries).await;
                    tries += 1;
                }
                Ok(answers) if answers.len() != records.len() => {
                    break Err(format!(
                        "{} answers for {} records of {}",
                        answers.len(),
                        records.len(),
                        W::WHAT
                    ));
                }
                written => break written.map_err(|e| e.to_string()),
            }
        };
        match written {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// The one writer task of a [`GroupCommit`].
struct Writer<W: GroupWrite> {
    shared: Arc<Shared<W>>,
    finished: bool,
}

impl<W: GroupWrite> Writer<W> {
    fn start(shared: Arc<Shared<W>>) {
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
            self.shared.write(batch).await;
        }
    }
}

impl<W: GroupWrite> Drop for Writer<W> {
    /// Stopped before its end (a panic, its runtime shutting down): the tasks
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers each record doubled, taking its time; or fails every write.
    struct Doubling {
        writes: AtomicUsize,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl GroupWrite for Doubling {
        type Record = u32;
        type Answer = u32;
        const WHAT: &'static str = "numbers";

        async fn write(&self, _: &DatabaseConnection, records: &[u32]) -> Result<Vec<u32>, DbErr> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            match self.fail {
                true => Err(DbErr::Custom("refused".into())),
                false => Ok(records.iter().map(|n| n * 2).collect()),
            }
        }
    }

    async fn group(fail: bool) -> GroupCommit<Doubling> {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        GroupCommit::new(
            db,
            Doubling {
                writes: AtomicUsize::new(0),
                fail,
            },
        )
    }

    #[tokio::test]
    async fn records_arriving_during_a_write_are_written_together_and_each_gets_its_answer() {
        let group = group(false).await;
        let records = (0..50u32).map(|n| {
            let group = group.clone();
            tokio::spawn(async move { (n, group.record(n).await) })
        });
        for done in futures_util::future::join_all(records).await {
            let (n, answer) = done.expect("joined");
            assert_eq!(answer.expect("written"), n * 2);
        }
        let writes = group.0.kind.writes.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&writes),
            "50 records at once: {writes} writes"
        );
        // A record alone later is written at once, by a writer of its own.
        assert_eq!(group.record(7).await.expect("written"), 14);
        assert_eq!(group.0.kind.writes.load(Ordering::SeqCst), writes + 1);
    }

    #[tokio::test]
    async fn a_write_that_keeps_failing_is_tried_again_then_each_record_is_told() {
        let group = group(true).await;
        let (a, b) = tokio::join!(group.record(1), group.record(2));
        for answer in [a, b] {
            assert!(
                answer.is_err_and(|e| e.to_string().contains("refused")),
                "each record hears the failure"
            );
        }
        let writes = group.0.kind.writes.load(Ordering::SeqCst);
        assert!(
            (TRIES as usize..=2 * TRIES as usize).contains(&writes),
            "{writes} writes"
        );
    }
}
