//! Successful attempts are recorded together ([`GroupCommit`]): a run that
//! succeeds while a record is being written leaves its own with the writer,
//! which records every one waiting in one statement ([`store::complete_many`],
//! fenced per attempt like [`store::complete`]), with the [`Effect`]s of those
//! still ours in the same transaction.

use entity::job::Model as Job;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use super::group_commit::{GroupCommit, GroupWrite};
use super::store;
use super::worker::Effect;

/// The succeeded attempts of one worker, written together.
#[derive(Clone)]
pub struct Completions(GroupCommit<Succeeded>);

/// Claimed attempts that succeeded: each with its result as JSON text and what
/// its handler wants written with it.
pub struct Succeeded;

#[async_trait::async_trait]
impl GroupWrite for Succeeded {
    type Record = (Job, String, Option<Box<dyn Effect>>);
    /// The attempt was still ours, and is recorded.
    type Answer = bool;
    const WHAT: &'static str = "succeeded jobs";

    async fn write(
        &self,
        db: &DatabaseConnection,
        records: &[Self::Record],
    ) -> Result<Vec<bool>, DbErr> {
        let done: Vec<_> = records.iter().map(|(job, r, _)| (job, r.clone())).collect();
        let recorded = if records.iter().any(|(_, _, effect)| effect.is_some()) {
            let txn = db.begin().await?;
            let recorded = store::complete_many(&txn, &done).await?;
            for (job, _, effect) in records {
                if let Some(effect) = effect
                    && recorded.contains(&job.id)
                {
                    effect.apply(&txn).await?;
                }
            }
            txn.commit().await?;
            recorded
        } else {
            store::complete_many(db, &done).await?
        };
        Ok(records
            .iter()
            .map(|(job, _, _)| recorded.contains(&job.id))
            .collect())
    }
}

impl Completions {
    pub fn new(db: DatabaseConnection) -> Self {
        Self(GroupCommit::new(db, Succeeded))
    }

    /// Records `job` as succeeded with `result`, and writes its `effect`: true
    /// when the attempt was still ours (only then is the effect written). The
    /// record is kept when this future is dropped once polled.
    pub async fn record(
        &self,
        job: &Job,
        result: &serde_json::Value,
        effect: Option<Box<dyn Effect>>,
    ) -> Result<bool, DbErr> {
        self.0
            .record((job.clone(), result.to_string(), effect))
            .await
    }
}
