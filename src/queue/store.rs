//! The queue's operations on the `jobs` table, each one statement (or a fenced pair).
//!
//! A claim is `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING *`
//! (one for lapsed leases, one for due jobs)
//! on PostgreSQL; SQLite drops the lock clause and serialises writers, so the
//! same statement is atomic there too. Every change to a claimed job names the
//! attempt it was claimed with: a worker whose lease lapsed and was taken over
//! cannot complete, fail or release the newer attempt.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use entity::job::{self, ActiveModel, Column, Entity as Jobs, Model};
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    ExprTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement, TryInsertResult,
    Value,
};
use uuid::Uuid;

use super::Job;

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const DISCARDED: &str = "discarded";
pub const CANCELLED: &str = "cancelled";

/// The predicate of the `jobs_active_unique_key` partial index (see its migration).
const ACTIVE_PREDICATE: &str = "status IN ('queued', 'running')";

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A job to add: a value of its kind's type, and how the queue is to hold it.
#[derive(Clone, Debug)]
pub struct NewJob<J> {
    pub job: J,
    /// At most one queued or running job per key; enqueueing another returns it.
    pub unique_key: Option<String>,
    pub max_attempts: i32,
    pub delay: Duration,
    pub tenant_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
}

impl<J: Job> NewJob<J> {
    pub fn new(job: J) -> Self {
        Self {
            job,
            unique_key: None,
            max_attempts: J::MAX_ATTEMPTS,
            delay: Duration::ZERO,
            tenant_id: None,
            workspace_id: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    pub id: Uuid,
    /// False when an active job with the same key already existed.
    pub created: bool,
}

/// Adds a job, in the caller's transaction when `db` is one.
pub async fn enqueue<J: Job>(db: &impl ConnectionTrait, new: NewJob<J>) -> Result<Enqueued, DbErr> {
    let payload = serde_json::to_string(&new.job)
        .map_err(|e| DbErr::Custom(format!("a `{}` job's payload: {e}", J::KIND)))?;
    let id = Uuid::now_v7();
    let now = Utc::now();
    let model = ActiveModel {
        id: Set(id),
        kind: Set(J::KIND.into()),
        payload: Set(payload),
        status: Set(QUEUED.into()),
        unique_key: Set(new.unique_key.clone()),
        attempt: Set(0),
        max_attempts: Set(Ord::max(new.max_attempts, 1)),
        run_at_ms: Set(now_ms(db).await? + ms(new.delay)),
        locked_until_ms: Set(None),
        locked_by: Set(None),
        last_error: Set(None),
        progress: Set(None),
        result: Set(None),
        tenant_id: Set(new.tenant_id),
        workspace_id: Set(new.workspace_id),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    };
    // The partial unique index is the arbiter. Both backends match the conflict
    // target to it by its predicate, written here exactly as in the migration.
    let on_conflict = OnConflict::column(Column::UniqueKey)
        .target_and_where(Expr::cust(ACTIVE_PREDICATE))
        .do_nothing()
        .to_owned();
    let inserted = Jobs::insert(model)
        .on_conflict(on_conflict)
        .try_insert()
        .exec_without_returning(db)
        .await?;
    if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        return Ok(Enqueued { id, created: true });
    }
    let key = new.unique_key.unwrap_or_default();
    let existing = Jobs::find()
        .filter(Column::UniqueKey.eq(key))
        .filter(Column::Status.is_in([QUEUED, RUNNING]))
        .one(db)
        .await?
        .ok_or_else(|| {
            DbErr::RecordNotFound(
                "the job holding this unique key finished meanwhile; enqueue again".into(),
            )
        })?;
    Ok(Enqueued {
        id: existing.id,
        created: false,
    })
}

/// The database's clock in epoch milliseconds, as an SQL expression.
fn clock(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

/// The database's clock, in epoch milliseconds. Every lease and due time is on
/// it, so workers on machines whose clocks disagree still agree on leases.
pub async fn now_ms(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!("SELECT {} AS now_ms", clock(backend));
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    row.ok_or_else(|| DbErr::RecordNotFound("the database has no clock".into()))?
        .try_get::<i64>("", "now_ms")
}

/// Claims up to `limit` jobs of `kinds`: first running ones whose lease lapsed
/// (their worker died), then queued ones that are due, oldest first. One
/// statement, the database's clock read once in it: the due jobs of each kind
/// are read in the order of the `(status, kind, run_at_ms)` index, so a claim
/// costs the same with 20 jobs queued or 20,000, of its kinds or of others (an
/// `OR` of the two parts made SQLite read every due job and sort them, on every
/// claim; one walk of `(status, run_at_ms)` for all kinds went past every due job
/// of the other lanes' kinds). PostgreSQL reads the parts through
/// `jobs_claimable` (see its migrations), which keeps that plan when the table's
/// statistics are stale.
pub async fn claim(
    db: &impl ConnectionTrait,
    worker: &str,
    kinds: &[&str],
    limit: u64,
    lease: Duration,
) -> Result<Vec<Model>, DbErr> {
    if kinds.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let kind_params = (4..4 + kinds.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The jobs to take (`claimable`), from the parts read before the update (`parts`).
    let (parts, claimable) = match backend {
        DatabaseBackend::Postgres => (
            String::new(),
            format!(
                "SELECT id FROM jobs_claimable(ARRAY[{kind_params}]::text[], {limit}, (SELECT now_ms FROM clock)) \
                 ORDER BY taken_over, run_at_ms LIMIT {limit}"
            ),
        ),
        // SQLite serialises writers: the statement is atomic without row locks.
        _ => (
            format!(
                ", lapsed AS (SELECT id, run_at_ms FROM jobs WHERE status = '{RUNNING}' AND locked_until_ms < (SELECT now_ms FROM clock) \
                   AND kind IN ({kind_params}) ORDER BY run_at_ms LIMIT {limit}), \
                 due AS ({due})",
                due = (4..4 + kinds.len())
                    .map(|i| format!(
                        "SELECT * FROM (SELECT id, run_at_ms FROM jobs WHERE status = '{QUEUED}' AND kind = ${i} \
                         AND run_at_ms <= (SELECT now_ms FROM clock) ORDER BY run_at_ms LIMIT {limit})"
                    ))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ")
            ),
            format!(
                "SELECT id FROM (SELECT id, 0 AS taken_over, run_at_ms FROM lapsed \
                   UNION ALL SELECT id, 1 AS taken_over, run_at_ms FROM due) AS claimable \
                 ORDER BY taken_over, run_at_ms LIMIT {limit}"
            ),
        ),
    };
    let sql = format!(
        "WITH clock AS MATERIALIZED (SELECT {clock} AS now_ms){parts} \
         UPDATE jobs SET status = '{RUNNING}', attempt = attempt + 1, locked_by = $1, \
           locked_until_ms = (SELECT now_ms FROM clock) + $2, updated_at = $3 \
         WHERE id IN ({claimable}) \
         RETURNING *",
        clock = clock(backend),
    );
    // SQLite's `?NNN` is PostgreSQL's `$NNN`.
    let sql = match backend {
        DatabaseBackend::Postgres => sql,
        _ => sql.replace('$', "?"),
    };
    let mut values: Vec<Value> = vec![worker.into(), ms(lease).into(), Utc::now().into()];
    values.extend(kinds.iter().map(|k| Value::from(*k)));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|j| j.run_at_ms);
    Ok(claimed)
}

/// The claimed attempt of a job: what every fenced change names.
fn fenced(job: &Model) -> Condition {
    Condition::all()
        .add(Column::Id.eq(job.id))
        .add(Column::Attempt.eq(job.attempt))
        .add(Column::Status.eq(RUNNING))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    Held,
    /// Cancelled by someone: stop.
    Cancelled,
    /// Taken over after the lease lapsed, or finished elsewhere: stop, change nothing.
    Lost,
}

/// Extends the lease of a claimed attempt.
pub async fn heartbeat(
    db: &impl ConnectionTrait,
    job: &Model,
    lease: Duration,
) -> Result<Lease, DbErr> {
    let result = Jobs::update_many()
        .col_expr(
            Column::LockedUntilMs,
            Expr::value(now_ms(db).await? + ms(lease)),
        )
        .filter(fenced(job))
        .exec(db)
        .await?;
    if result.rows_affected > 0 {
        return Ok(Lease::Held);
    }
    let current = Jobs::find_by_id(job.id).one(db).await?;
    Ok(match current {
        Some(j) if j.status == CANCELLED => Lease::Cancelled,
        _ => Lease::Lost,
    })
}

/// Records progress (and extends nothing): answers whether the attempt is still ours.
pub async fn set_progress(
    db: &impl ConnectionTrait,
    job: &Model,
    progress: &serde_json::Value,
) -> Result<bool, DbErr> {
    let result = Jobs::update_many()
        .col_expr(Column::Progress, Expr::value(progress.to_string()))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(fenced(job))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

pub async fn complete(
    db: &impl ConnectionTrait,
    job: &Model,
    result: &serde_json::Value,
) -> Result<bool, DbErr> {
    let done = [(job, result.to_string())];
    Ok(complete_many(db, &done).await?.contains(&job.id))
}

/// Most jobs one statement completes (within both backends' limits on bound values).
pub const COMPLETE_AT_ONCE: usize = 200;

/// Completes each attempt of `done` (a claimed job and its result) that is still
/// ours, in one statement per [`COMPLETE_AT_ONCE`], each fenced like
/// [`complete`]: answers the ids of the jobs recorded as succeeded.
pub async fn complete_many(
    db: &impl ConnectionTrait,
    done: &[(&Model, String)],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut recorded = HashSet::with_capacity(done.len());
    for chunk in done.chunks(COMPLETE_AT_ONCE) {
        let Some(((_, first), rest)) = chunk.split_first() else {
            continue;
        };
        // Most jobs answer the same result (`{}`): one value then, else one per job.
        let result: Expr = if rest.iter().all(|(_, r)| r == first) {
            Expr::value(first.clone())
        } else {
            let mut case = CaseStatement::new();
            for (job, result) in chunk {
                case = case.case(Column::Id.eq(job.id), Expr::value(result.clone()));
            }
            case.into()
        };
        let attempts = chunk.iter().fold(Condition::any(), |any, (job, _)| {
            any.add(
                Condition::all()
                    .add(Column::Id.eq(job.id))
                    .add(Column::Attempt.eq(job.attempt)),
            )
        });
        let now = Utc::now();
        let update = Query::update()
            .table(Jobs)
            .value(Column::Status, SUCCEEDED)
            .value(Column::LockedUntilMs, Option::<i64>::None)
            .value(Column::UpdatedAt, now)
            .value(Column::FinishedAt, Some(now))
            .value(Column::Result, result)
            .cond_where(
                Condition::all()
                    .add(Column::Id.is_in(chunk.iter().map(|(job, _)| job.id)))
                    .add(Column::Status.eq(RUNNING))
                    .add(attempts),
            )
            .returning_col(Column::Id)
            .to_owned();
        for row in db.query_all(&update).await? {
            recorded.insert(row.try_get::<Uuid>("", "id")?);
        }
    }
    Ok(recorded)
}

/// A failure: queued again after `retry_in`, or discarded with the error kept when `None`.
pub async fn fail(
    db: &impl ConnectionTrait,
    job: &Model,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<bool, DbErr> {
    match retry_in {
        None => finish(db, job, DISCARDED, None, Some(error)).await,
        Some(delay) => {
            let result = Jobs::update_many()
                .col_expr(Column::Status, Expr::value(QUEUED))
                .col_expr(Column::RunAtMs, Expr::value(now_ms(db).await? + ms(delay)))
                .col_expr(Column::LockedUntilMs, Expr::value(Option::<i64>::None))
                .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
                .col_expr(Column::LastError, Expr::value(error))
                .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(fenced(job))
                .exec(db)
                .await?;
            Ok(result.rows_affected > 0)
        }
    }
}

/// Gives a claimed job back untouched (shutdown): due at once, this attempt not counted.
pub async fn release(db: &impl ConnectionTrait, job: &Model) -> Result<bool, DbErr> {
    let result = Jobs::update_many()
        .col_expr(Column::Status, Expr::value(QUEUED))
        .col_expr(Column::Attempt, Expr::col(Column::Attempt).sub(1))
        .col_expr(Column::LockedUntilMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(fenced(job))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Runs the job again after `delay`, this attempt not counted: a supervisor's
/// next look, not a failure.
pub async fn snooze(
    db: &impl ConnectionTrait,
    job: &Model,
    delay: Duration,
    progress: Option<&serde_json::Value>,
) -> Result<bool, DbErr> {
    let mut update = Jobs::update_many()
        .col_expr(Column::Status, Expr::value(QUEUED))
        .col_expr(Column::Attempt, Expr::col(Column::Attempt).sub(1))
        .col_expr(Column::RunAtMs, Expr::value(now_ms(db).await? + ms(delay)))
        .col_expr(Column::LockedUntilMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()));
    if let Some(progress) = progress {
        update = update.col_expr(Column::Progress, Expr::value(progress.to_string()));
    }
    Ok(update.filter(fenced(job)).exec(db).await?.rows_affected > 0)
}

async fn finish(
    db: &impl ConnectionTrait,
    job: &Model,
    status: &str,
    result: Option<String>,
    error: Option<&str>,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let mut update = Jobs::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::LockedUntilMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::FinishedAt, Expr::value(Some(now)));
    if let Some(result) = result {
        update = update.col_expr(Column::Result, Expr::value(result));
    }
    if let Some(error) = error {
        update = update.col_expr(Column::LastError, Expr::value(error));
    }
    Ok(update.filter(fenced(job)).exec(db).await?.rows_affected > 0)
}

/// Cancels a job that has not finished; a running one stops at its next heartbeat.
pub async fn cancel(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    Ok(cancel_many(db, &[id]).await? > 0)
}

/// Cancels the jobs of `ids` that have not finished, in one statement.
pub async fn cancel_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<u64, DbErr> {
    let now = Utc::now();
    let result = Jobs::update_many()
        .col_expr(Column::Status, Expr::value(CANCELLED))
        .col_expr(Column::LockedUntilMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::FinishedAt, Expr::value(Some(now)))
        .filter(Column::Id.is_in(ids.iter().copied()))
        .filter(Column::Status.is_in([QUEUED, RUNNING]))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<job::Model>, DbErr> {
    Jobs::find_by_id(id).one(db).await
}

/// Jobs by status, for tests and operations views.
pub async fn count_by_status(db: &impl ConnectionTrait, status: &str) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Jobs::find()
        .filter(Column::Status.eq(status))
        .order_by_asc(Column::Id)
        .count(db)
        .await
}

/// Unfinished jobs by kind and status (`queued`, `running`): one scan of the
/// `(status, run_at_ms)` index's active part.
pub async fn active_counts(db: &impl ConnectionTrait) -> Result<Vec<(String, String, i64)>, DbErr> {
    Jobs::find()
        .select_only()
        .column(Column::Kind)
        .column(Column::Status)
        .column_as(Expr::col(Column::Id).count(), "n")
        .filter(Column::Status.is_in([QUEUED, RUNNING]))
        .group_by(Column::Kind)
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await
}

/// How long the oldest due job of each kind has waited to be claimed, in
/// milliseconds on the database's clock; kinds with nothing due are absent.
pub async fn oldest_due_waits(db: &impl ConnectionTrait) -> Result<Vec<(String, i64)>, DbErr> {
    let now = now_ms(db).await?;
    let due: Vec<(String, i64)> = Jobs::find()
        .select_only()
        .column(Column::Kind)
        .column_as(Expr::col(Column::RunAtMs).min(), "due")
        .filter(Column::Status.eq(QUEUED))
        .filter(Column::RunAtMs.lte(now))
        .group_by(Column::Kind)
        .into_tuple()
        .all(db)
        .await?;
    Ok(due
        .into_iter()
        .map(|(kind, due)| (kind, now - due))
        .collect())
}
