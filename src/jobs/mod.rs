//! The database job queue and the worker (DESIGN.md, Job queue).

pub mod clients;
pub mod migration;
pub mod precheck;
pub mod provision;
pub mod queue;
pub mod sync;
pub mod transfer;
pub mod watch;
pub mod webhook;
pub mod worker;

pub use queue::{Enqueued, NewJob};

/// The job kinds this build runs.
pub const KINDS: [&str; 5] = [
    sync::KIND,
    precheck::KIND,
    migration::KIND,
    transfer::KIND,
    crate::db::webhooks::JOB_KIND,
];
pub use worker::{JobError, JobHandler, JobRun, Worker, WorkerConfig};
