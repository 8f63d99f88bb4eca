//! Migrations, their items, the source -> target mapping and the machines
//! released to their agents. Every change to an item names the states it may
//! come from (`ItemState::reachable_from`), so a late or repeated writer
//! changes nothing it should not.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use entity::machine_assignment;
use entity::migration::{self, Entity as Migrations};
use entity::migration_item::{self, Column as ItemColumn, Entity as Items};
use entity::target_mapping::{self, Entity as Mappings};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    ExprTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use crate::domain::migration::MigrationStatus;
use crate::domain::transfer::{ItemKind, ItemSpec, ItemState, UserMachine};
use crate::queue::store as queue;

fn states(states: &[ItemState]) -> Vec<&'static str> {
    states.iter().map(|s| s.as_str()).collect()
}

pub async fn insert(db: &impl ConnectionTrait, model: migration::Model) -> Result<(), DbErr> {
    Migrations::insert(migration::ActiveModel::from(model))
        .exec_without_returning(db)
        .await
        .map(drop)
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<migration::Model>, DbErr> {
    Migrations::find_by_id(id).one(db).await
}

/// Moves the migration from one of `from` to `to`; false when it was in none of
/// them. A `from` the status table does not allow to become `to` is never taken.
pub async fn set_status(
    db: &impl ConnectionTrait,
    id: Uuid,
    from: &[MigrationStatus],
    to: MigrationStatus,
    error: Option<&str>,
) -> Result<bool, DbErr> {
    debug_assert!(from.iter().all(|f| f.can_become(to)), "{from:?} -> {to}");
    let from: Vec<&str> = from
        .iter()
        .filter(|f| f.can_become(to))
        .map(|f| f.as_str())
        .collect();
    let now = Utc::now();
    let mut update = Migrations::update_many()
        .col_expr(migration::Column::Status, Expr::value(to.as_str()))
        .col_expr(migration::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            migration::Column::CompletedAt,
            Expr::value(to.is_final().then_some(now)),
        );
    if let Some(error) = error {
        update = update.col_expr(migration::Column::Error, Expr::value(error));
    }
    let result = update
        .filter(migration::Column::Id.eq(id))
        .filter(migration::Column::Status.is_in(from))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Takes the migration's lock alone for the rest of the transaction, so that
/// finishing, retrying and cancelling a migration, and the item commits that
/// release machines ([`lock_shared`]), see each other's changes instead of
/// interleaving. On PostgreSQL the lock is an advisory one (waiting its turn
/// behind the shared holders) with the row's own; SQLite serialises writers, and
/// the row's update takes the database's write lock at once.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        advisory(db, "pg_advisory_xact_lock", id).await?;
    }
    Migrations::update_many()
        .col_expr(migration::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(migration::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Takes the migration's lock beside other holders of it shared, for the rest of
/// the transaction: the item commits that release machines hold it so that a
/// cancel ([`lock`]) comes wholly before or after each of them, while they do not
/// wait for each other. At `large` they took the migration's row lock instead
/// (an update of it), and 27,000 such commits waited 86 ms each on average for
/// one another, the migration's throughput (pg_stat_statements).
pub async fn lock_shared(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => advisory(db, "pg_advisory_xact_lock_shared", id).await,
        _ => lock(db, id).await,
    }
}

/// The class of PostgreSQL's two-key advisory locks that are migrations' locks,
/// the second key the hash of the migration's id (a collision only makes two
/// migrations wait for each other). The two-key space is apart from the schema
/// upgrade's one-key lock.
const MIGRATION_LOCK_CLASS: i32 = 0x4D49_4752;

async fn advisory(db: &impl ConnectionTrait, function: &str, id: Uuid) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        format!("SELECT {function}($1, hashtext($2))"),
        [MIGRATION_LOCK_CLASS.into(), id.to_string().into()],
    ))
    .await
    .map(drop)
}

pub async fn set_replan(
    db: &impl ConnectionTrait,
    id: Uuid,
    replan: &serde_json::Value,
) -> Result<(), DbErr> {
    Migrations::update_many()
        .col_expr(migration::Column::Replan, Expr::value(replan.to_string()))
        .filter(migration::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// The target ids already known for `keys` in the workspace (from this or an earlier wave).
pub async fn mappings(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    keys: &[String],
) -> Result<HashMap<String, Uuid>, DbErr> {
    let mut out = HashMap::new();
    for batch in keys.chunks(500) {
        let rows = Mappings::find()
            .filter(target_mapping::Column::WorkspaceId.eq(workspace_id))
            .filter(target_mapping::Column::Key.is_in(batch.iter().cloned()))
            .all(db)
            .await?;
        out.extend(rows.into_iter().map(|r| (r.key, r.target_id)));
    }
    Ok(out)
}

/// Every mapping of the workspace (tests and the planner's view of earlier waves).
pub async fn all_mappings(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> Result<HashMap<String, Uuid>, DbErr> {
    let rows = Mappings::find()
        .filter(target_mapping::Column::WorkspaceId.eq(workspace_id))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.target_id)).collect())
}

/// Inserts a migration's items. An item already mapped by an earlier wave is done
/// at once; an item whose tenant is known (mapped, or the workspace's own) is
/// queued; the rest wait for their tenant. Answers the keys to schedule.
pub async fn insert_items(
    db: &impl ConnectionTrait,
    migration: &migration::Model,
    specs: &[ItemSpec],
    known: &HashMap<String, Uuid>,
) -> Result<Vec<(String, ItemKind)>, DbErr> {
    let now = Utc::now();
    let mut ready = Vec::new();
    // Built 400 at a time: at `large` every item at once would be another copy
    // of the whole plan in memory.
    for batch in specs.chunks(400) {
        let models: Vec<migration_item::ActiveModel> = batch
            .iter()
            .map(|spec| {
                let mapped = known.get(&spec.key).copied();
                let parent_known = spec
                    .parent_key
                    .as_ref()
                    .is_none_or(|p| known.contains_key(p));
                let state = match (mapped, parent_known) {
                    (Some(_), _) => ItemState::Done,
                    (None, true) => {
                        ready.push((spec.key.clone(), spec.planned.kind()));
                        ItemState::Waiting
                    }
                    (None, false) => ItemState::Waiting,
                };
                migration_item::ActiveModel {
                    migration_id: Set(migration.id),
                    key: Set(spec.key.clone()),
                    workspace_id: Set(migration.workspace_id),
                    kind: Set(spec.planned.kind().as_str().to_string()),
                    seq: Set(spec.seq),
                    source_id: Set(spec.source_id.clone()),
                    parent_key: Set(spec.parent_key.clone()),
                    state: Set(state.as_str().to_string()),
                    step: Set(mapped.map(|_| "mapped_earlier".to_string())),
                    planned: Set(spec.planned.to_json()),
                    target_id: Set(mapped),
                    job_id: Set(None),
                    attempts: Set(0),
                    error_code: Set(None),
                    error_message: Set(None),
                    updated_at: Set(now),
                }
            })
            .collect();
        Items::insert_many(models)
            .exec_without_returning(db)
            .await?;
    }
    Ok(ready)
}

/// Puts the items of `keys` into the job `job_id` (enqueued in the caller's
/// transaction): from waiting, failed (a retry) or queued in a job that ended
/// (an orphan). Answers how many it took.
pub async fn queue_items(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    job_id: Uuid,
    keys: Vec<String>,
) -> Result<usize, DbErr> {
    let result = Items::update_many()
        .col_expr(ItemColumn::State, Expr::value(ItemState::Queued.as_str()))
        .col_expr(ItemColumn::JobId, Expr::value(job_id))
        .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::Key.is_in(keys))
        .filter(schedulable())
        .exec(db)
        .await?;
    Ok(result.rows_affected as usize)
}

/// Waiting or failed items, or queued ones whose job is over (never one a live job holds).
/// The item's job is looked up by its key (`NOT EXISTS`): a `NOT IN` of the live jobs
/// made PostgreSQL hash every queued job on each call, 50 to 60 ms with a large
/// migration's thousands of batches queued.
fn schedulable() -> Condition {
    use entity::job::{Column as JobColumn, Entity as Jobs};
    let live_job = Query::select()
        .expr(Expr::value(1))
        .from(Jobs)
        .and_where(Expr::col((Jobs, JobColumn::Id)).equals((Items, ItemColumn::JobId)))
        .and_where(Expr::col((Jobs, JobColumn::Status)).is_in([queue::QUEUED, queue::RUNNING]))
        .to_owned();
    Condition::any()
        .add(ItemColumn::State.is_in(states(&[ItemState::Waiting, ItemState::Failed])))
        .add(
            Condition::all()
                .add(ItemColumn::State.eq(ItemState::Queued.as_str()))
                .add(Expr::exists(live_job).not()),
        )
}

/// The items a transfer job is to carry out, in plan order.
pub async fn items_of_job(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    job_id: Uuid,
) -> Result<Vec<migration_item::Model>, DbErr> {
    Items::find()
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::JobId.eq(job_id))
        .filter(ItemColumn::State.eq(ItemState::Queued.as_str()))
        .order_by_asc(ItemColumn::Seq)
        .all(db)
        .await
}

/// An item queued in a job that is over without it.
pub struct Orphan {
    pub key: String,
    pub kind: ItemKind,
    /// The job's error when it gave up (attempts exhausted): the item fails with it
    /// instead of going round again. `None`: the job ended cleanly (a pause).
    pub gave_up: Option<String>,
}

/// Items queued in jobs that are no longer queued or running: the supervisor
/// schedules them again, or fails them when their job gave up.
pub async fn orphans(db: &impl ConnectionTrait, migration_id: Uuid) -> Result<Vec<Orphan>, DbErr> {
    let sql = "SELECT i.key, i.kind, j.status, j.last_error FROM migration_items i LEFT JOIN jobs j ON j.id = i.job_id \
               WHERE i.migration_id = $1 AND i.state = 'queued' AND (j.id IS NULL OR j.status NOT IN ('queued', 'running'))";
    let rows = super::query(db, sql, vec![migration_id.into()]).await?;
    rows.into_iter()
        .map(|r| {
            let kind: String = r.try_get("", "kind")?;
            let status: Option<String> = r.try_get("", "status")?;
            let error: Option<String> = r.try_get("", "last_error")?;
            let gave_up = (status.as_deref() == Some(queue::DISCARDED))
                .then(|| error.unwrap_or_else(|| "the transfer job gave up".into()));
            Ok(Orphan {
                key: r.try_get("", "key")?,
                kind: ItemKind::parse(&kind).unwrap_or(ItemKind::User),
                gave_up,
            })
        })
        .collect()
}

/// Where an item's work has got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    /// A step on the way: its target id and step are kept, the item stays queued.
    Step,
    /// The item is done: mapped, and the items waiting for it are ready.
    Done,
}

/// An item's work, recorded with its mapping and its events in one transaction.
pub struct ItemProgress<'a> {
    pub item: &'a migration_item::Model,
    pub target_id: Uuid,
    pub step: &'a str,
    pub reached: Reached,
}

/// Records an item's target id and step; when it is done, it is mapped and the
/// answer holds the items that were waiting for it (a tenant's children), to
/// schedule. `None` when the item was no longer the caller's to change (done
/// or failed meanwhile).
pub async fn record_progress(
    db: &impl ConnectionTrait,
    migration: &migration::Model,
    done: ItemProgress<'_>,
) -> Result<Option<Vec<(String, ItemKind)>>, DbErr> {
    let finished = done.reached == Reached::Done;
    let now = Utc::now();
    let mut update = Items::update_many()
        .col_expr(ItemColumn::TargetId, Expr::value(done.target_id))
        .col_expr(ItemColumn::Step, Expr::value(done.step))
        .col_expr(ItemColumn::UpdatedAt, Expr::value(now));
    let from = if finished {
        update = update
            .col_expr(ItemColumn::State, Expr::value(ItemState::Done.as_str()))
            .col_expr(ItemColumn::ErrorCode, Expr::value(Option::<String>::None))
            .col_expr(
                ItemColumn::ErrorMessage,
                Expr::value(Option::<String>::None),
            );
        ItemState::Done.reachable_from()
    } else {
        &[ItemState::Queued, ItemState::Cancelled]
    };
    let result = update
        .filter(ItemColumn::MigrationId.eq(migration.id))
        .filter(ItemColumn::Key.eq(done.item.key.as_str()))
        .filter(ItemColumn::State.is_in(states(from)))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    if !finished {
        // Only a finished item is mapped: a later wave skips what is mapped, so an
        // admin mapped before its activation email went out would never get one.
        return Ok(Some(Vec::new()));
    }
    Mappings::insert(target_mapping::ActiveModel {
        workspace_id: Set(migration.workspace_id),
        key: Set(done.item.key.clone()),
        target_id: Set(done.target_id),
        migration_id: Set(migration.id),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            target_mapping::Column::WorkspaceId,
            target_mapping::Column::Key,
        ])
        .update_columns([target_mapping::Column::TargetId])
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if ItemKind::parse(&done.item.kind) == Some(ItemKind::Tenant) {
        let children = Items::find()
            .select_only()
            .columns([ItemColumn::Key, ItemColumn::Kind])
            .filter(ItemColumn::MigrationId.eq(migration.id))
            .filter(ItemColumn::ParentKey.eq(done.item.key.as_str()))
            .filter(ItemColumn::State.eq(ItemState::Waiting.as_str()))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?;
        let keys = children
            .into_iter()
            .map(|(key, kind)| (key, ItemKind::parse(&kind).unwrap_or(ItemKind::User)))
            .collect();
        return Ok(Some(keys));
    }
    Ok(Some(Vec::new()))
}

/// Fails an item for good with the remote's code and message; the items
/// waiting for it (and theirs) are blocked. False when it was not queued.
pub async fn record_failed(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    item: &migration_item::Model,
    code: &str,
    message: &str,
) -> Result<bool, DbErr> {
    let result = Items::update_many()
        .col_expr(ItemColumn::State, Expr::value(ItemState::Failed.as_str()))
        .col_expr(ItemColumn::ErrorCode, Expr::value(code))
        .col_expr(ItemColumn::ErrorMessage, Expr::value(message))
        .col_expr(ItemColumn::Attempts, Expr::col(ItemColumn::Attempts).add(1))
        .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::Key.eq(item.key.as_str()))
        .filter(ItemColumn::State.is_in(states(ItemState::Failed.reachable_from())))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Ok(false);
    }
    let mut parents = vec![item.key.clone()];
    let reason = format!("{} failed", item.key);
    while !parents.is_empty() {
        let blocked = Items::find()
            .select_only()
            .columns([ItemColumn::Key, ItemColumn::Kind])
            .filter(ItemColumn::MigrationId.eq(migration_id))
            .filter(ItemColumn::ParentKey.is_in(parents.clone()))
            .filter(ItemColumn::State.is_in(states(ItemState::Blocked.reachable_from())))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?;
        if blocked.is_empty() {
            break;
        }
        Items::update_many()
            .col_expr(ItemColumn::State, Expr::value(ItemState::Blocked.as_str()))
            .col_expr(ItemColumn::ErrorMessage, Expr::value(reason.as_str()))
            .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
            .filter(ItemColumn::MigrationId.eq(migration_id))
            .filter(ItemColumn::Key.is_in(blocked.iter().map(|(k, _)| k.clone())))
            .filter(ItemColumn::State.is_in(states(ItemState::Blocked.reachable_from())))
            .exec(db)
            .await?;
        parents = blocked
            .into_iter()
            .filter(|(_, kind)| ItemKind::parse(kind) == Some(ItemKind::Tenant))
            .map(|(k, _)| k)
            .collect();
    }
    Ok(true)
}

/// Whether an item with `key` in another migration of the workspace reached a
/// step (a create may have been sent): a tenant it made is the migrations' own.
pub async fn attempted_elsewhere(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    migration_id: Uuid,
    key: &str,
) -> Result<bool, DbErr> {
    let others = Query::select()
        .column(migration::Column::Id)
        .from(Migrations)
        .and_where(migration::Column::WorkspaceId.eq(workspace_id))
        .and_where(migration::Column::Id.ne(migration_id))
        .to_owned();
    Ok(Items::find()
        .filter(ItemColumn::Key.eq(key))
        .filter(ItemColumn::Step.is_not_null())
        .filter(ItemColumn::MigrationId.in_subquery(others))
        .one(db)
        .await?
        .is_some())
}

/// Records the step a queued item is about to take (before a call whose answer
/// could be lost), so that its next attempt knows what it may find.
pub async fn record_step(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    key: &str,
    step: &str,
) -> Result<bool, DbErr> {
    let result = Items::update_many()
        .col_expr(ItemColumn::Step, Expr::value(step))
        .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::Key.eq(key))
        .filter(ItemColumn::State.eq(ItemState::Queued.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Counts the attempt of a queued item that met an unavailable target.
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    key: &str,
    message: &str,
) -> Result<(), DbErr> {
    Items::update_many()
        .col_expr(ItemColumn::Attempts, Expr::col(ItemColumn::Attempts).add(1))
        .col_expr(ItemColumn::ErrorMessage, Expr::value(message))
        .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::Key.eq(key))
        .filter(ItemColumn::State.eq(ItemState::Queued.as_str()))
        .exec(db)
        .await
        .map(drop)
}

/// Releases a migrated user's machines to their agents: `idle` -> `pending`,
/// with where they go and their converted plans. Machines already beyond `idle`
/// (in another migration) keep their state.
pub async fn release_machines(
    db: &impl ConnectionTrait,
    migration: &migration::Model,
    user_id: &str,
    target_user_id: Uuid,
    target_tenant_id: Uuid,
    machines: &[UserMachine],
) -> Result<Vec<String>, DbErr> {
    let now = Utc::now();
    let mut released = Vec::new();
    for machine in machines {
        let id = machine.machine_id.as_str();
        let sql = "UPDATE source_machines SET migration_state = 'pending', state_changed_at = $1 WHERE workspace_id = $2 AND source_id = $3 AND migration_state = 'idle'";
        let result = db
            .execute_raw(super::statement(
                db.get_database_backend(),
                sql,
                vec![now.into(), migration.workspace_id.into(), id.into()],
            ))
            .await?;
        if result.rows_affected() == 0 {
            continue;
        }
        machine_assignment::Entity::insert(machine_assignment::ActiveModel {
            workspace_id: Set(migration.workspace_id),
            machine_id: Set(id.to_string()),
            migration_id: Set(migration.id),
            user_id: Set(user_id.to_string()),
            target_user_id: Set(target_user_id),
            target_tenant_id: Set(target_tenant_id),
            plans: Set(serde_json::Value::from(machine.plans.clone()).to_string()),
            released_at: Set(now),
            registration_token: Set(None),
            registration_expires_at: Set(None),
            registration_token_id: Set(None),
        })
        .on_conflict(
            OnConflict::columns([
                machine_assignment::Column::WorkspaceId,
                machine_assignment::Column::MachineId,
            ])
            .update_columns([
                machine_assignment::Column::MigrationId,
                machine_assignment::Column::TargetUserId,
                machine_assignment::Column::TargetTenantId,
                machine_assignment::Column::Plans,
                machine_assignment::Column::ReleasedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        released.push(id.to_string());
    }
    Ok(released)
}

/// Items by kind and state (every pair present, zeros included), as the
/// database's triggers keep them in `migration_item_counts` (migration
/// m20261207_000025): the sum of each pair's parts, never a count of the items.
pub async fn counts(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
) -> Result<BTreeMap<ItemKind, BTreeMap<ItemState, u64>>, DbErr> {
    let sql = "SELECT kind, state, CAST(SUM(n) AS BIGINT) AS n FROM migration_item_counts \
               WHERE migration_id = $1 GROUP BY kind, state";
    let mut out: BTreeMap<ItemKind, BTreeMap<ItemState, u64>> = ItemKind::ALL
        .into_iter()
        .map(|k| (k, ItemState::ALL.into_iter().map(|s| (s, 0)).collect()))
        .collect();
    for row in super::query(db, sql, vec![migration_id.into()]).await? {
        let kind: String = row.try_get("", "kind")?;
        let state: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        if let (Some(kind), Some(state)) = (ItemKind::parse(&kind), ItemState::parse(&state)) {
            out.entry(kind)
                .or_default()
                .insert(state, u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(out)
}

/// Folds the rows of changes that PostgreSQL's statements added to the
/// migration's counts into one row per kind and state (`part` 0), in one
/// statement; the sums stay what they were. SQLite keeps no such rows.
pub async fn fold_counts(db: &impl ConnectionTrait, migration_id: Uuid) -> Result<(), DbErr> {
    let sql = "WITH folded AS (DELETE FROM migration_item_counts WHERE migration_id = $1 AND part <> 0 \
               RETURNING kind, state, n) \
               INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
               SELECT $1, kind, state, 0, SUM(n) FROM folded GROUP BY kind, state \
               ON CONFLICT (migration_id, kind, state, part) DO UPDATE SET n = migration_item_counts.n + excluded.n";
    if db.get_database_backend() == DatabaseBackend::Postgres {
        super::execute(db, sql, vec![migration_id.into()]).await?;
    }
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct ItemFilter {
    pub state: Option<ItemState>,
    pub kind: Option<ItemKind>,
}

/// Items in plan order, keyset-paged by `seq`.
pub async fn items(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    filter: &ItemFilter,
    limit: u64,
    after_seq: Option<i32>,
) -> Result<Vec<migration_item::Model>, DbErr> {
    let mut query = Items::find().filter(ItemColumn::MigrationId.eq(migration_id));
    if let Some(state) = filter.state {
        query = query.filter(ItemColumn::State.eq(state.as_str()));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(ItemColumn::Kind.eq(kind.as_str()));
    }
    if let Some(after) = after_seq {
        query = query.filter(ItemColumn::Seq.gt(after));
    }
    query
        .order_by_asc(ItemColumn::Seq)
        .limit(limit + 1)
        .all(db)
        .await
}

pub async fn item(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
    key: &str,
) -> Result<Option<migration_item::Model>, DbErr> {
    Items::find_by_id((migration_id, key.to_string()))
        .one(db)
        .await
}

/// Cancels what is not done: open and blocked items, and the jobs they are queued in.
pub async fn cancel_items(db: &impl ConnectionTrait, migration_id: Uuid) -> Result<u64, DbErr> {
    let jobs = Items::find()
        .select_only()
        .column(ItemColumn::JobId)
        .distinct()
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::State.eq(ItemState::Queued.as_str()))
        .into_tuple::<Option<Uuid>>()
        .all(db)
        .await?;
    for batch in jobs.into_iter().flatten().collect::<Vec<_>>().chunks(500) {
        queue::cancel_many(db, batch).await?;
    }
    let result = Items::update_many()
        .col_expr(
            ItemColumn::State,
            Expr::value(ItemState::Cancelled.as_str()),
        )
        .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
        .filter(ItemColumn::MigrationId.eq(migration_id))
        .filter(ItemColumn::State.is_in(states(ItemState::Cancelled.reachable_from())))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Retries the failed items (and unblocks what waited for them); done items are
/// never touched. Answers how many failed items were scheduled again.
pub async fn retry_failed(
    db: &impl ConnectionTrait,
    migration: &migration::Model,
) -> Result<Vec<(String, ItemKind)>, DbErr> {
    Items::update_many()
        .col_expr(ItemColumn::State, Expr::value(ItemState::Waiting.as_str()))
        .col_expr(
            ItemColumn::ErrorMessage,
            Expr::value(Option::<String>::None),
        )
        .col_expr(ItemColumn::UpdatedAt, Expr::value(Utc::now()))
        .filter(ItemColumn::MigrationId.eq(migration.id))
        .filter(ItemColumn::State.eq(ItemState::Blocked.as_str()))
        .exec(db)
        .await?;
    let failed = Items::find()
        .select_only()
        .columns([ItemColumn::Key, ItemColumn::Kind])
        .filter(ItemColumn::MigrationId.eq(migration.id))
        .filter(ItemColumn::State.eq(ItemState::Failed.as_str()))
        .into_tuple::<(String, String)>()
        .all(db)
        .await?;
    Ok(failed
        .into_iter()
        .map(|(key, kind)| (key, ItemKind::parse(&kind).unwrap_or(ItemKind::User)))
        .collect())
}

/// Names a new supervising job (a migration started again by a retry).
pub async fn set_job(db: &impl ConnectionTrait, id: Uuid, job_id: Uuid) -> Result<(), DbErr> {
    Migrations::update_many()
        .col_expr(migration::Column::JobId, Expr::value(job_id))
        .filter(migration::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// The migration's released machines by their state now (every state present):
/// counted from the machines themselves, never kept in a counter that could drift.
pub async fn machine_counts(
    db: &impl ConnectionTrait,
    migration_id: Uuid,
) -> Result<BTreeMap<crate::domain::machines::MachineState, u64>, DbErr> {
    use crate::domain::machines::MachineState;
    let sql = "SELECT m.migration_state AS state, COUNT(*) AS n FROM machine_assignments a \
               JOIN source_machines m ON m.workspace_id = a.workspace_id AND m.source_id = a.machine_id \
               WHERE a.migration_id = $1 GROUP BY m.migration_state";
    let mut out: BTreeMap<MachineState, u64> =
        MachineState::ALL.into_iter().map(|s| (s, 0)).collect();
    for row in super::query(db, sql, vec![migration_id.into()]).await? {
        let state: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        if let Some(state) = MachineState::parse(&state) {
            out.insert(state, n as u64);
        }
    }
    Ok(out)
}

/// A cancelled migration takes back the machines it released whose agents have
/// not started: `pending` -> `cancelled` (their agents are told to do nothing).
/// Machines already migrating finish what they started.
pub async fn cancel_machines(
    db: &impl ConnectionTrait,
    migration: &migration::Model,
) -> Result<u64, DbErr> {
    let sql = "UPDATE source_machines SET migration_state = 'cancelled', state_changed_at = $1 \
               WHERE workspace_id = $2 AND migration_state = 'pending' \
               AND source_id IN (SELECT machine_id FROM machine_assignments WHERE workspace_id = $2 AND migration_id = $3)";
    let result = db
        .execute_raw(super::statement(
            db.get_database_backend(),
            sql,
            vec![
                Utc::now().into(),
                migration.workspace_id.into(),
                migration.id.into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected())
}
