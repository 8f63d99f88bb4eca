//! Successful attempts are recorded together ([`GroupCommit`]): a run that
//! succeeds while a record is being written leaves its own with the writer,
//! which records every one waiting in one statement ([`store::complete_many`],
//! fenced per attempt like [`store::complete`]).

use entity::job::Model as Job;
use sea_orm::{DatabaseConnection, DbErr};

use super::store;
use crate::db::group_commit::{GroupCommit, GroupWrite};

/// The succeeded attempts of one worker, written together.
#[derive(Clone)]
pub struct Completions(GroupCommit<Succeeded>);

/// A claimed attempt that succeeded, and its result as JSON text.
pub struct Succeeded;

#[async_trait::async_trait]
impl GroupWrite for Succeeded {
    type Record = (Job, String);
    /// The attempt was still ours, and is recorded.
    type Answer = bool;
    const WHAT: &'static str = "succeeded jobs";

    async fn write(
        &self,
        db: &DatabaseConnection,
        records: &[(Job, String)],
    ) -> Result<Vec<bool>, DbErr> {
        let done: Vec<_> = records.iter().map(|(job, r)| (job, r.clone())).collect();
        let recorded = store::complete_many(db, &done).await?;
        Ok(records
            .iter()
            .map(|(job, _)| recorded.contains(&job.id))
            .collect())
    }
}

impl Completions {
    pub fn new(db: DatabaseConnection) -> Self {
        Self(GroupCommit::new(db, Succeeded))
    }

    /// Records `job` as succeeded with `result`: true when the attempt was still
    /// ours. The record is kept when this future is dropped once polled.
    pub async fn record(&self, job: &Job, result: &serde_json::Value) -> Result<bool, DbErr> {
        self.0.record((job.clone(), result.to_string())).await
    }
}
