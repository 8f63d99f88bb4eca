//! The work the service does in the background, as jobs on the queue
//! (docs/ARCHITECTURE.md, Job queue). Each kind is a type here with its name
//! beside it; its handler receives it decoded. What to schedule, in which
//! kinds and batches, is decided here too: the API and the jobs themselves
//! enqueue through these types, never by name.

pub mod clients;
pub mod migration;
pub mod precheck;
pub mod provision;
pub mod registration;
pub mod statuses;
pub mod sync;
pub mod transfer;
pub mod watch;
pub mod webhook;

use uuid::Uuid;

pub use migration::SuperviseMigration;
pub use precheck::RunPrecheck;
pub use registration::IssueRegistration;
pub use sync::SyncWorkspace;
pub use transfer::{TransferItems, TransferTenants};
pub use webhook::DeliverWebhook;

use crate::queue::{Job, JobError, JobRun, database};

/// The job kinds this build runs.
pub const KINDS: [&str; 7] = [
    SyncWorkspace::KIND,
    RunPrecheck::KIND,
    SuperviseMigration::KIND,
    TransferItems::KIND,
    TransferTenants::KIND,
    DeliverWebhook::KIND,
    IssueRegistration::KIND,
];

/// A transient failure of another system is tried again; any other ends the job.
pub(crate) fn connector(e: crate::connectors::ConnectorError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fatal(e.to_string())
    }
}

impl From<crate::planning::Error> for JobError {
    fn from(e: crate::planning::Error) -> Self {
        use crate::planning::Error;
        match e {
            Error::Database(e) => database(e),
            Error::Target(e) => connector(e),
            Error::Unplannable(reason) => JobError::Fatal(reason),
            Error::Stopping => JobError::Retry(e.to_string()),
        }
    }
}

/// The workspace a job works in, when it still exists and belongs to the
/// tenant the job was enqueued for: a job never reaches another tenant's data.
pub(crate) async fn workspace_of(
    run: &JobRun,
    workspace_id: Uuid,
) -> Result<entity::workspace::Model, JobError> {
    let Some(tenant_id) = run.job.tenant_id else {
        return Err(JobError::Fatal("the job names no tenant".into()));
    };
    crate::db::workspaces::find(run.db(), tenant_id, workspace_id)
        .await
        .map_err(database)?
        .ok_or_else(|| JobError::Fatal("the workspace no longer exists".into()))
}

/// Records events in the caller's transaction, with the webhook deliveries
/// they call for and those deliveries' jobs: what every writer of the
/// operations log calls.
pub async fn record_events(
    db: &impl sea_orm::ConnectionTrait,
    workspace_id: Uuid,
    events: Vec<crate::db::events::NewEvent>,
) -> Result<(), sea_orm::DbErr> {
    let deliveries = crate::db::events::record(db, workspace_id, events).await?;
    webhook::schedule(db, deliveries).await
}

/// The name the operations log gives a job's worker.
pub(crate) fn worker_actor(run: &JobRun) -> String {
    // A lane's worker is named `<process's worker>/<kind>`: the actor is the process.
    let worker = run.job.locked_by.as_deref().unwrap_or("unknown");
    format!("worker:{}", worker.split('/').next().unwrap_or(worker))
}

/// Everything a worker of this build runs, and the machine watch beside it,
/// until `shutdown` turns true.
pub async fn run(worker: crate::queue::Worker, shutdown: tokio::sync::watch::Receiver<bool>) {
    let db = worker.db().clone();
    let watching = tokio::spawn(watch::run(db, shutdown.clone()));
    worker.run(shutdown).await;
    let _ = watching.await;
}
