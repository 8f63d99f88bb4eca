//! Planning a selection: what the pre-check and the migration share. Both read
//! the snapshot, plan, settle the logins the plan hands out with the target
//! ([`settle`]), and read what the cloud offers ([`offer`]); the pre-check
//! then reports, the migration turns the plan into items.

pub mod offer;
pub mod options;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use uuid::Uuid;

pub use options::{MigrationOptions, PrecheckOptions};

use crate::connectors::ConnectorError;
use crate::connectors::target::{LoginStatus, TargetApi};
use crate::db::prechecks as store;
use crate::domain::machines::{Clock, OFFLINE_AFTER_DAYS};
use crate::domain::names::NameRules;
use crate::domain::plan::{Plan, Selection, Settings, Snapshot, plan_machines, plan_people};
use crate::domain::report::LoginAnswers;
use crate::domain::support::SupportMatrix;

/// A target answer on a login older than this is asked again.
pub const LOGIN_ANSWER_MAX_AGE_HOURS: i64 = 24;
/// Each round settles the logins the previous one numbered; more would mean a runaway.
const MAX_ROUNDS: usize = 8;

/// Why planning stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(DbErr),
    /// The target failed to answer about a login.
    #[error("{0}")]
    Target(ConnectorError),
    /// The selection cannot be planned (it will not be, however often tried).
    #[error("{0}")]
    Unplannable(String),
    /// The caller asked to stop between batches.
    #[error("the worker is stopping")]
    Stopping,
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
    /// The snapshot's groups and users; its machines and backup plans moved
    /// into the plan's machines (held once, not twice).
    pub snapshot: Snapshot,
    pub plan: Plan,
    pub answers: HashMap<String, (bool, DateTime<Utc>)>,
    pub asked: usize,
}

/// Reads the snapshot and plans the selection, asking the target about the
/// logins the plan hands out that it has no fresh answer for, until none is left.
/// The pre-check and the migration plan through this one function.
pub async fn settle<P, PF, E>(
    request: Planning<'_>,
    progress: &P,
    stop: &impl Fn() -> bool,
    timer: &mut Timer,
) -> Result<Settled, E>
where
    P: Fn(Value) -> PF,
    PF: Future<Output = Result<(), E>>,
    E: From<Error>,
{
    let db = request.db;
    progress(json!({"phase": "reading"})).await?;
    let since = Utc::now() - Duration::hours(LOGIN_ANSWER_MAX_AGE_HOURS);
    let (snapshot, answers) = tokio::join!(
        store::load_snapshot(db, request.workspace_id),
        store::login_answers(db, request.workspace_id, since)
    );
    let (mut snapshot, mut answers) = (
        snapshot.map_err(Error::Database)?,
        answers.map_err(Error::Database)?,
    );
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
    // The machines and backup plans move into the plan's machines, so that they
    // are not held twice. Machines do not depend on logins: they are planned
    // once, on a second core beside the first round.
    let mut machines_to_plan = Some((
        std::mem::take(&mut snapshot.machines),
        std::mem::take(&mut snapshot.plans),
    ));
    let mut planned_machines = Vec::new();
    for _ in 0..MAX_ROUNDS {
        progress(json!({"phase": "planning", "asked_target": asked})).await?;
        let lookup = |login: &str| answers.get(&login.to_lowercase()).map(|(taken, _)| *taken);
        let people = match machines_to_plan.take() {
            Some((machines, plans)) => {
                let (people, machines) = std::thread::scope(|scope| {
                    let machines = scope.spawn(|| {
                        plan_machines(&snapshot, request.selection, &settings, machines, plans)
                    });
                    let people = plan_people(&snapshot, request.selection, &settings, &lookup);
                    (
                        people,
                        machines
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    )
                });
                planned_machines = machines.map_err(|e| Error::Unplannable(e.to_string()))?;
                people
            }
            None => plan_people(&snapshot, request.selection, &settings, &lookup),
        };
        let plan = people.map_err(|e| Error::Unplannable(e.to_string()))?;
        let unknown = unknown_logins(&plan);
        let Some(target) = request.target.filter(|_| !unknown.is_empty()) else {
            planned = Some(plan);
            break;
        };
        let total = unknown.len();
        for batch in unknown.chunks(200) {
            if stop() {
                return Err(Error::Stopping.into());
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
                .map_err(Error::Database)?;
            asked += known.len();
            answers.extend(
                known
                    .into_iter()
                    .map(|(login, taken)| (login.to_lowercase(), (taken, now))),
            );
            if let Some(e) = failure {
                return Err(Error::Target(e).into());
            }
            progress(json!({"phase": "asking_target", "asked_target": asked, "to_ask_this_round": total})).await?;
        }
    }
    let mut plan = planned.ok_or_else(|| {
        Error::Unplannable("logins did not settle: the target keeps answering taken".into())
    })?;
    plan.machines = planned_machines;
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
        tracing::debug!(phase, resident_mib = ?resident_mib(), "planning phase done");
    }
}

/// This process's resident memory now, where the system tells it (Linux).
fn resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
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
