//! The job queue (docs/ARCHITECTURE.md, Job queue): jobs are rows of the `jobs`
//! table that workers claim under a lease, run, and finish, fenced by the
//! attempt. It knows nothing of what the jobs do: each kind is a serde type
//! with its name beside it ([`Job`]), its handler receives it decoded
//! ([`JobHandler`]). Which work to schedule, in which kinds and batches, is
//! decided by `jobs`.

mod completions;
pub mod group_commit;
pub mod store;
pub mod worker;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use completions::Completions;
pub use store::{Enqueued, Lease, NewJob, enqueue};
pub use worker::{Effect, Handler, JobError, JobHandler, JobRun, Worker, WorkerConfig, database};

/// A kind of job: its payload as a type, its name beside it.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name in the job's row; a worker finds the handler by it.
    const KIND: &'static str;
    /// How often a job of this kind is tried before it is discarded.
    const MAX_ATTEMPTS: i32 = 5;
}
