//! The database job queue and the worker (DESIGN.md, Job queue).

pub mod clients;
pub mod migration;
pub mod precheck;
pub mod queue;
pub mod sync;
pub mod transfer;
pub mod watch;
pub mod webhook;
pub mod worker;

pub use queue::{Enqueued, NewJob};
pub use worker::{JobError, JobHandler, JobRun, Worker, WorkerConfig};
