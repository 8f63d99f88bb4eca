//! The `precheck` job: plans a selection from the snapshot and keeps the report.
//!
//! Logins are planned against what the target said of them. Logins the plan
//! hands out and the target has no fresh answer for are asked (with the
//! workspace's concurrency and rate toward the target) and the plan is made
//! again, until every planned login has an answer: a numbered login may itself
//! be taken. Answers are kept per workspace, so the next pre-check asks only
//! about what it has not heard of.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::clients::ClientPool;
use super::connector;
use crate::connectors::target::TargetApi;
use crate::crypto::SecretBox;
use crate::db::prechecks as store;
use crate::domain::plan::Selection;
use crate::domain::provisioning::Profile;
use crate::domain::report;
use crate::planning::{Planning, PrecheckOptions, Settled, Timer, login_answers, offer, settle};
use crate::queue::{Job, JobError, JobHandler, JobRun, NewJob, database};

/// Plans a selection and writes the pre-check's report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunPrecheck {
    pub workspace_id: Uuid,
    pub precheck_id: Uuid,
}

impl Job for RunPrecheck {
    const KIND: &'static str = "precheck";
}

impl RunPrecheck {
    pub fn of(tenant_id: Uuid, workspace_id: Uuid, precheck_id: Uuid) -> NewJob<Self> {
        NewJob {
            tenant_id: Some(tenant_id),
            workspace_id: Some(workspace_id),
            ..NewJob::new(Self {
                workspace_id,
                precheck_id,
            })
        }
    }
}
pub struct PrecheckHandler {
    secrets: SecretBox,
    pool: Arc<ClientPool>,
}

impl PrecheckHandler {
    pub fn new(secrets: SecretBox, pool: Arc<ClientPool>) -> Self {
        Self { secrets, pool }
    }
}

#[async_trait]
impl JobHandler for PrecheckHandler {
    type Job = RunPrecheck;

    async fn run(&self, job: RunPrecheck, run: &JobRun) -> Result<Value, JobError> {
        let RunPrecheck {
            workspace_id,
            precheck_id,
        } = job;
        let workspace = super::workspace_of(run, workspace_id).await?;
        let precheck = crate::db::scoped::find::<entity::precheck::Entity>(
            run.db(),
            workspace.tenant_id,
            workspace.id,
            precheck_id,
        )
        .await
        .map_err(database)?
        .ok_or_else(|| JobError::Fatal("the pre-check no longer exists".into()))?;
        if precheck.completed_at.is_some() {
            // An earlier attempt finished it (its completion and event are one
            // transaction): building it again would hide a finished report meanwhile.
            return Ok(json!({"precheck_id": precheck_id, "already_completed": true}));
        }
        let target = if precheck.check_logins {
            Some(self.pool.clients(&workspace, &self.secrets)?.target)
        } else {
            None
        };
        let selection: Selection = serde_json::from_str(&precheck.selection)
            .map_err(|e| JobError::Fatal(format!("selection: {e}")))?;
        let options = PrecheckOptions::from_kept(precheck.options.as_deref())
            .map_err(|e| JobError::Fatal(format!("options: {e}")))?;
        let profile = options
            .provisioning
            .clone()
            .unwrap_or_else(|| crate::db::workspaces::provisioning(&workspace));
        let request = PrecheckRun {
            db: run.db(),
            workspace_id,
            precheck_id,
            source_time: workspace.snapshot_source_time,
            snapshot_synced_at: workspace.snapshot_synced_at,
            selection,
            target: target.as_deref().map(|t| t as &dyn TargetApi),
            concurrency: usize::try_from(workspace.target_concurrency)
                .unwrap_or(1)
                .max(1),
            options,
            profile,
            root: workspace.tenant_id,
        };
        precheck_run(
            request,
            |p| async move { run.progress(p).await },
            || run.should_stop(),
        )
        .await
    }
}

/// Report chunks built and not yet written, at most (about 0.5 MB each at `large`).
const REPORT_ROWS_IN_FLIGHT: usize = 64;

/// One pre-check, with what it needs from outside.
pub struct PrecheckRun<'a> {
    pub db: &'a DatabaseConnection,
    pub workspace_id: Uuid,
    pub precheck_id: Uuid,
    pub source_time: Option<DateTime<Utc>>,
    pub snapshot_synced_at: Option<DateTime<Utc>>,
    pub selection: Selection,
    /// Asked about logins without a fresh answer; `None` plans without asking.
    pub target: Option<&'a dyn TargetApi>,
    pub concurrency: usize,
    pub options: PrecheckOptions,
    /// The services the tenants get, shown per tenant.
    pub profile: Profile,
    /// The workspace's own tenant, whose offer to its children is read.
    pub root: Uuid,
}

pub async fn precheck_run<P, PF>(
    request: PrecheckRun<'_>,
    progress: P,
    stop: impl Fn() -> bool,
) -> Result<Value, JobError>
where
    P: Fn(Value) -> PF,
    PF: Future<Output = Result<(), JobError>>,
{
    let db = request.db;
    let mut timer = Timer::default();
    let planning = Planning {
        db,
        workspace_id: request.workspace_id,
        source_time: request.source_time,
        selection: &request.selection,
        target: request.target,
        concurrency: request.concurrency,
    };
    let Settled {
        snapshot,
        plan,
        answers,
        asked,
    } = settle(planning, &progress, &stop, &mut timer).await?;
    let logins = login_answers(&plan, &answers);
    // What the workspace's tenant offers its children, when the cloud is asked.
    let (offer, services) = offer::services(
        request.target,
        request.root,
        &request.profile,
        &snapshot,
        &plan,
    )
    .await
    .map_err(connector)?;
    // The report is written while it is built (on a blocking thread, and a second
    // for its users section): at `large` it is hundreds of megabytes of JSON text,
    // never held whole, and storing it no longer waits for the whole of it.
    progress(json!({"phase": "reporting", "asked_target": asked})).await?;
    let (rows, received) = tokio::sync::mpsc::channel(REPORT_ROWS_IN_FLIGHT);
    let writing = store::write_report_chunks(db, request.precheck_id, received);
    let verified = offer.is_some();
    let (profile, initial_backup) = (request.profile, request.options.initial_backup);
    let building = tokio::task::spawn_blocking(move || {
        let view = report::ProvisioningView {
            profile: &profile,
            services: &services,
            verified,
        };
        let send = |section, first_entry, entries: Vec<report::EncodedEntry>| {
            let row = store::ChunkRow {
                section,
                first_entry,
                entries: entries.len(),
                data: store::chunk_text(&entries),
            };
            // Closed: the writer failed, and its error is the pre-check's.
            let _ = rows.blocking_send(row);
        };
        let planning = report::stream(
            &snapshot,
            &plan,
            &logins,
            &initial_backup,
            &view,
            store::CHUNK,
            &send,
        );
        (planning, (snapshot, plan, answers, services))
    });
    let (written, built) = tokio::join!(writing, building);
    let built = built.map(|(planning, used)| {
        // Freeing millions of small values takes a while: not on the job's time.
        tokio::task::spawn_blocking(move || drop(used));
        planning
    });
    let outcome = match (written, built) {
        (Ok(()), Ok(planning)) => Ok(planning),
        (Err(error), _) => Err(database(error)),
        (_, Err(error)) => Err(JobError::Fatal(format!("building the report: {error}"))),
    };
    if stop() {
        // Cancelled, or the lease lost (another attempt may be writing): leave it as it is.
        return Err(JobError::Retry(
            "stopped before completing the report".into(),
        ));
    }
    let planning = match outcome {
        Ok(planning) => planning,
        Err(error) => {
            // Best effort: what was written is not a report (a retry forgets it anyway).
            let _ = store::forget_report(db, request.precheck_id).await;
            return Err(error);
        }
    };
    timer.lap("report");
    let counts = planning["counts"].clone();
    let event = crate::db::events::NewEvent {
        actor: "portal:precheck".into(),
        subject_kind: "precheck",
        subject_id: request.precheck_id.to_string(),
        migration_id: None,
        kind: "precheck.completed".into(),
        message: "the pre-check report is ready".into(),
        data: Some(json!({"precheck_id": request.precheck_id, "counts": counts})),
    };
    // The completion and its event together: a retry finds the pre-check complete.
    let txn = db.begin().await.map_err(database)?;
    store::complete_report(
        &txn,
        request.precheck_id,
        &planning,
        request.snapshot_synced_at,
    )
    .await
    .map_err(database)?;
    super::record_events(&txn, request.workspace_id, vec![event])
        .await
        .map_err(database)?;
    txn.commit().await.map_err(database)?;
    timer.lap("store");
    tracing::info!(precheck = %request.precheck_id, seconds = %timer.0, "pre-check done");
    Ok(json!({
        "precheck_id": request.precheck_id,
        "asked_target": asked,
        "counts": counts,
        "seconds": timer.0,
    }))
}
