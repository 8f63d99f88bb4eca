//! The `precheck` job: plans a selection from the snapshot and keeps the report.
//!
//! Logins are planned against what the target said of them. Logins the plan
//! hands out and the target has no fresh answer for are asked (with the
//! workspace's concurrency and rate toward the target) and the plan is made
//! again, until every planned login has an answer: a numbered login may itself
//! be taken. Answers are kept per workspace, so the next pre-check asks only
//! about what it has not heard of.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use validator::Validate;

use super::clients::ClientPool;
use super::connector;
use super::provision;
use crate::connectors::target::{LoginStatus, TargetApi};
use crate::crypto::SecretBox;
use crate::db::prechecks as store;
use crate::domain::initial_backup::InitialBackupOptions;
use crate::domain::machines::{Clock, OFFLINE_AFTER_DAYS};
use crate::domain::names::NameRules;
use crate::domain::plan::{Plan, Selection, Settings, Snapshot, plan};
use crate::domain::provisioning::{self, Profile};
use crate::domain::report::{self, LoginAnswers};
use crate::domain::support::SupportMatrix;
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
/// A target answer on a login older than this is asked again.
pub const LOGIN_ANSWER_MAX_AGE_HOURS: i64 = 24;
/// Each round settles the logins the previous one numbered; more would mean a runaway.
const MAX_ROUNDS: usize = 8;

/// What a pre-check request may set besides its selection; kept with the pre-check.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    Validate,
    utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PrecheckOptions {
    /// How the customers' initial backups are estimated.
    #[serde(default)]
    #[validate(nested)]
    pub initial_backup: InitialBackupOptions,
    /// The services migrated tenants get, instead of the workspace's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub provisioning: Option<Profile>,
}

impl PrecheckOptions {
    /// As kept with a pre-check: none kept (an older pre-check) means the defaults.
    pub fn from_kept(kept: Option<&str>) -> Result<Self, serde_json::Error> {
        kept.map_or(Ok(Self::default()), serde_json::from_str)
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
        let precheck = store::find(run.db(), workspace.tenant_id, workspace.id, precheck_id)
            .await
            .map_err(database)?
            .ok_or_else(|| JobError::Fatal("the pre-check no longer exists".into()))?;
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
    let mut report = report::build(&snapshot, &plan, &logins, &request.options.initial_backup);
    // What the workspace's tenant offers its children, when the cloud is asked.
    let offer = match request.target {
        Some(target) => {
            let applications = provision::applications(target).await.map_err(connector)?;
            Some(
                provision::offer(target, &applications, request.root)
                    .await
                    .map_err(connector)?,
            )
        }
        None => None,
    };
    let quotas = snapshot.group_quotas();
    let services = provisioning::for_tenants(
        &request.profile,
        offer
            .as_ref()
            .unwrap_or(&provisioning::Offer::assumed(&request.profile)),
        &plan.tenants,
        |group| quotas.get(group).copied(),
    );
    report::add_provisioning(
        &mut report,
        &snapshot,
        &request.profile,
        &services,
        offer.is_some(),
    );
    timer.lap("report");
    progress(json!({"phase": "storing", "asked_target": asked})).await?;
    store::store_report(db, request.precheck_id, &report, request.snapshot_synced_at)
        .await
        .map_err(database)?;
    timer.lap("store");
    tracing::info!(precheck = %request.precheck_id, seconds = %timer.0, "pre-check done");
    let counts = report.planning["counts"].clone();
    let event = crate::db::events::NewEvent {
        actor: "portal:precheck".into(),
        subject_kind: "precheck",
        subject_id: request.precheck_id.to_string(),
        migration_id: None,
        kind: "precheck.completed".into(),
        message: "the pre-check report is ready".into(),
        data: Some(json!({"precheck_id": request.precheck_id, "counts": counts})),
    };
    super::record_events(db, request.workspace_id, vec![event])
        .await
        .map_err(database)?;
    // Freeing millions of small values takes a while: not on the job's time.
    tokio::task::spawn_blocking(move || drop((snapshot, plan, report, answers)));
    Ok(json!({
        "precheck_id": request.precheck_id,
        "asked_target": asked,
        "counts": counts,
        "seconds": timer.0,
    }))
}

/// What planning a selection needs from outside.
pub struct Planning<'a> {
    pub db: &'a DatabaseConnection,
    pub workspace_id: Uuid,
    pub source_time: Option<DateTime<Utc>>,
    pub selection: &'a Selection,
    /// Asked about logins without a fresh answer; `None` plans without asking.
    pub target: Option<&'a dyn TargetApi>,
    pub concurrency: usize,
}

/// A plan whose logins all have an answer from the target (when it was asked).
pub struct Settled {
    pub snapshot: Snapshot,
    pub plan: Plan,
    pub answers: HashMap<String, (bool, DateTime<Utc>)>,
    pub asked: usize,
}

/// Reads the snapshot and plans the selection, asking the target about the
/// logins the plan hands out that it has no fresh answer for, until none is left.
/// The pre-check and the migration plan through this one function.
pub async fn settle<P, PF>(
    request: Planning<'_>,
    progress: &P,
    stop: &impl Fn() -> bool,
    timer: &mut Timer,
) -> Result<Settled, JobError>
where
    P: Fn(Value) -> PF,
    PF: Future<Output = Result<(), JobError>>,
{
    let db = request.db;
    progress(json!({"phase": "reading"})).await?;
    let since = Utc::now() - Duration::hours(LOGIN_ANSWER_MAX_AGE_HOURS);
    let (snapshot, answers) = tokio::join!(
        store::load_snapshot(db, request.workspace_id),
        store::login_answers(db, request.workspace_id, since)
    );
    let (snapshot, mut answers) = (snapshot.map_err(database)?, answers.map_err(database)?);
    timer.lap("read");
    let settings = Settings {
        names: NameRules::default(),
        matrix: SupportMatrix::default(),
        clock: Clock {
            now: request.source_time.unwrap_or_else(Utc::now),
            offline_after: Duration::days(OFFLINE_AFTER_DAYS),
        },
    };
    let mut asked = 0usize;
    let mut planned: Option<Plan> = None;
    for _ in 0..MAX_ROUNDS {
        progress(json!({"phase": "planning", "asked_target": asked})).await?;
        let lookup = |login: &str| answers.get(&login.to_lowercase()).map(|(taken, _)| *taken);
        let plan = plan(&snapshot, request.selection, &settings, &lookup)
            .map_err(|e| JobError::Fatal(e.to_string()))?;
        let unknown = unknown_logins(&plan);
        let Some(target) = request.target.filter(|_| !unknown.is_empty()) else {
            planned = Some(plan);
            break;
        };
        let total = unknown.len();
        for batch in unknown.chunks(200) {
            if stop() {
                return Err(JobError::Retry("the worker is stopping".into()));
            }
            let replies: Vec<(String, Result<LoginStatus, _>)> =
                futures_util::stream::iter(batch.iter().cloned())
                    .map(|login| async move {
                        let status = target.check_login(&login).await;
                        (login, status)
                    })
                    .buffer_unordered(request.concurrency)
                    .collect()
                    .await;
            let now = Utc::now();
            let mut known = Vec::with_capacity(replies.len());
            let mut failure = None;
            for (login, status) in replies {
                match status {
                    Ok(status) => known.push((login, status == LoginStatus::Taken)),
                    Err(e) => failure = Some(e),
                }
            }
            // What was learnt is kept even when a reply failed: the retry asks only the rest.
            store::record_login_answers(db, request.workspace_id, &known, now)
                .await
                .map_err(database)?;
            asked += known.len();
            answers.extend(
                known
                    .into_iter()
                    .map(|(login, taken)| (login.to_lowercase(), (taken, now))),
            );
            if let Some(e) = failure {
                return Err(if e.is_transient() {
                    JobError::Retry(e.to_string())
                } else {
                    JobError::Fatal(e.to_string())
                });
            }
            progress(json!({"phase": "asking_target", "asked_target": asked, "to_ask_this_round": total})).await?;
        }
    }
    let plan = planned.ok_or_else(|| {
        JobError::Fatal("logins did not settle: the target keeps answering taken".into())
    })?;
    timer.lap("plan");
    Ok(Settled {
        snapshot,
        plan,
        answers,
        asked,
    })
}

/// Seconds per phase (planning includes asking the target).
pub struct Timer(pub Value, std::time::Instant);

impl Default for Timer {
    fn default() -> Self {
        Self(json!({}), std::time::Instant::now())
    }
}

impl Timer {
    pub fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        self.0[phase] = json!(((now - self.1).as_secs_f64() * 1000.0).round() / 1000.0);
        self.1 = now;
    }
}

/// The logins the plan hands out that the target was not asked about.
fn unknown_logins(plan: &Plan) -> Vec<String> {
    let mut seen = HashSet::new();
    plan.users
        .iter()
        .filter(|u| u.unverified)
        .map(|u| &u.login.target)
        .chain(
            plan.admins
                .iter()
                .filter(|a| a.unverified)
                .map(|a| &a.login.target),
        )
        .filter(|l| seen.insert(l.to_lowercase()))
        .cloned()
        .collect()
}

pub fn login_answers(
    plan: &Plan,
    answers: &HashMap<String, (bool, DateTime<Utc>)>,
) -> LoginAnswers {
    let logins = plan
        .users
        .iter()
        .map(|u| (&u.login.target, u.unverified))
        .chain(plan.admins.iter().map(|a| (&a.login.target, a.unverified)));
    let mut out = LoginAnswers::default();
    for (login, unverified) in logins {
        if unverified {
            out.unverified += 1;
        } else if let Some((_, at)) = answers.get(&login.to_lowercase()) {
            out.known += 1;
            out.oldest_answer_at = Some(
                out.oldest_answer_at
                    .map_or(*at, |o: DateTime<Utc>| o.min(*at)),
            );
        }
    }
    out
}
