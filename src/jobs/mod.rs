//! The database job queue and the worker (DESIGN.md, Job queue).

pub mod clients;
pub mod precheck;
pub mod queue;
pub mod sync;
pub mod worker;

pub use queue::{Enqueued, NewJob};
pub use worker::{JobError, JobHandler, JobRun, Worker, WorkerConfig};
