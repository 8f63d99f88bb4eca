//! The `transfer` job: carries out a batch of a migration's items against the
//! target. Every create looks up first (`ensure_tenant` by `internal_tag`,
//! `ensure_user` by `external_id` and login), and its outcome is recorded with
//! the source -> target mapping and the events in one transaction, so a crash at
//! any point leaves either nothing or the whole step, and the next attempt finds
//! what the target already holds.
//!
//! The migration's status is watched (read every 200 ms, `jobs::statuses`): a pause or cancel stops
//! new target calls within that. A target that stays unavailable makes the job
//! retry later; on its last attempt the items still open fail with the error.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use entity::migration::Model as Migration;
use entity::migration_item::Model as Item;
use futures_util::StreamExt;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use super::clients::{ClientPool, Clients};
use super::migration::{migration_of, options};
use super::provision::{self, Applications, Provision};
use super::statuses::{MigrationStatuses, Watch};
use super::{connector, worker_actor};
use crate::connectors::ConnectorError;
use crate::connectors::source::SourceApi;
use crate::connectors::target::{
    NewTenant, NewUser, Role, TargetApi, Tenant, TenantKind, User, UserContact,
};
use crate::crypto::SecretBox;
use crate::db::events::NewEvent;
use crate::db::migrations::{self as store, ItemProgress, Reached};
use crate::domain::migration::MigrationStatus;
use crate::domain::plan::{self, AdminRole, input::Contact};
use crate::domain::provisioning::{ExistingCustomers, Origin, Want};
use crate::domain::transfer::{
    ItemKind, Planned, PlannedAdmin, PlannedTenant, PlannedUser, UserMachine,
};
use crate::planning::MigrationOptions;
use crate::queue::{self, Job, JobError, JobHandler, JobRun, NewJob, database};

/// Carries out the items a migration put into this job, in plan order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TransferItems {
    pub migration_id: Uuid,
}

impl Job for TransferItems {
    const KIND: &'static str = "transfer";
    /// Retried this often (the target unavailable for a while) before its items fail.
    const MAX_ATTEMPTS: i32 = 12;
}

/// A batch of a migration's tenants: carried out like [`TransferItems`], in a
/// lane of its own, so that the tenants every other item waits for never queue
/// behind thousands of user batches (seen at `large`: tenants made ready two
/// minutes after their parents, their users waiting meanwhile).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TransferTenants {
    pub migration_id: Uuid,
}

impl Job for TransferTenants {
    const KIND: &'static str = "transfer_tenants";
    const MAX_ATTEMPTS: i32 = TransferItems::MAX_ATTEMPTS;
}

/// Tenant batches one process carries out at once.
const TENANT_LANE: usize = 4;

/// Runs the tenant batches with the transfer's handler (its caches shared).
pub struct TenantTransfers(pub Arc<TransferHandler>);

#[async_trait]
impl JobHandler for TenantTransfers {
    type Job = TransferTenants;

    fn lane(&self) -> Option<usize> {
        Some(TENANT_LANE)
    }

    async fn run(&self, job: TransferTenants, run: &JobRun) -> Result<Value, JobError> {
        let items = TransferItems {
            migration_id: job.migration_id,
        };
        JobHandler::run(self.0.as_ref(), items, run).await
    }
}

/// Fails, with `code` and `reason`, the items of this job still open.
async fn fail_open_items(
    run: &JobRun,
    migration_id: Uuid,
    code: &str,
    reason: &str,
) -> Result<(), JobError> {
    let db = run.db();
    let left = store::items_of_job(db, migration_id, run.job.id)
        .await
        .map_err(database)?;
    let txn = db.begin().await.map_err(database)?;
    for item in &left {
        store::record_failed(&txn, migration_id, item, code, reason)
            .await
            .map_err(database)?;
    }
    txn.commit().await.map_err(database)
}

/// Items per transfer job: tenants wait for their parents, so their batches are small.
const TENANT_BATCH: usize = 10;
const USER_BATCH: usize = 25;

/// Puts the items of `keys` into transfer jobs, tenants in small batches,
/// enqueued in the caller's transaction; answers how many items were taken.
pub async fn schedule(
    db: &impl sea_orm::ConnectionTrait,
    migration: &Migration,
    keys: Vec<(String, ItemKind)>,
) -> Result<usize, sea_orm::DbErr> {
    let (tenants, people): (Vec<_>, Vec<_>) = keys
        .into_iter()
        .partition(|(_, kind)| *kind == ItemKind::Tenant);
    let keys = |batch: &[(String, ItemKind)]| batch.iter().map(|(k, _)| k.clone()).collect();
    let migration_id = migration.id;
    let mut scheduled = 0;
    for batch in tenants.chunks(TENANT_BATCH) {
        let job = batch_of(migration, TransferTenants { migration_id });
        let job_id = queue::enqueue(db, job).await?.id;
        scheduled += store::queue_items(db, migration.id, job_id, keys(batch)).await?;
    }
    for batch in people.chunks(USER_BATCH) {
        let job = batch_of(migration, TransferItems { migration_id });
        let job_id = queue::enqueue(db, job).await?.id;
        scheduled += store::queue_items(db, migration.id, job_id, keys(batch)).await?;
    }
    Ok(scheduled)
}

/// A transfer job of `migration`'s tenant and workspace.
fn batch_of<J: Job>(migration: &Migration, job: J) -> NewJob<J> {
    NewJob {
        tenant_id: Some(migration.tenant_id),
        workspace_id: Some(migration.workspace_id),
        ..NewJob::new(job)
    }
}

/// A tenant's users listed by this process is trusted this long as the first
/// look-up of a create. Stale is safe: a user created meanwhile elsewhere makes
/// the create answer 409, and the fresh look-up after it finds the user.
const LISTING_MAX_AGE: Duration = Duration::from_secs(600);

pub struct TransferHandler {
    secrets: SecretBox,
    pool: Arc<ClientPool>,
    /// By target tenant: when listed, and its users (with those created since added).
    listings: std::sync::Mutex<HashMap<Uuid, (std::time::Instant, Vec<User>)>>,
    /// The migrations this process's batches watch for a pause.
    statuses: Arc<MigrationStatuses>,
}

impl TransferHandler {
    pub fn new(
        secrets: SecretBox,
        pool: Arc<ClientPool>,
        statuses: Arc<MigrationStatuses>,
    ) -> Self {
        Self {
            secrets,
            pool,
            listings: std::sync::Mutex::new(HashMap::new()),
            statuses,
        }
    }

    fn listings(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Uuid, (std::time::Instant, Vec<User>)>> {
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The users of `tenant_id`, from this process's listing when it is fresh.
    async fn tenant_users(&self, target: &dyn TargetApi, tenant_id: Uuid) -> Option<Vec<User>> {
        if let Some((_, users)) = self
            .listings()
            .get(&tenant_id)
            .filter(|(at, _)| at.elapsed() < LISTING_MAX_AGE)
        {
            return Some(users.clone());
        }
        match target.tenant_users(tenant_id).await {
            Ok(users) => {
                let mut listings = self.listings();
                listings.retain(|_, (at, _)| at.elapsed() < LISTING_MAX_AGE);
                listings.insert(tenant_id, (std::time::Instant::now(), users.clone()));
                Some(users)
            }
            Err(e) => {
                tracing::info!(error = %e, %tenant_id, "could not list the tenant's users; each create looks up on its own");
                None
            }
        }
    }

    /// Adds users this batch ensured to their tenants' listings.
    fn remember(&self, ensured: Vec<User>) {
        let mut listings = self.listings();
        for user in ensured {
            if let Some((_, users)) = listings.get_mut(&user.tenant_id)
                && !users.iter().any(|u| u.id == user.id)
            {
                users.push(user);
            }
        }
    }
}

/// How one item ended in this attempt.
enum Outcome {
    Done,
    Failed,
    /// The target (or the database) was unavailable: the item stays queued.
    Unavailable(String),
    /// The migration was paused or cancelled, or the worker is stopping.
    Stopped,
}

#[async_trait]
impl JobHandler for TransferHandler {
    type Job = TransferItems;

    async fn run(&self, job: TransferItems, run: &JobRun) -> Result<Value, JobError> {
        let id = job.migration_id;
        match self.transfer(id, run).await {
            // Items of a job that cannot run (credentials that no longer open, a deleted
            // workspace) fail with the reason, instead of being scheduled again for ever.
            Err(JobError::Fatal(reason)) => {
                fail_open_items(run, id, "job_failed", &reason).await?;
                Err(JobError::Fatal(reason))
            }
            other => other,
        }
    }
}

impl TransferHandler {
    async fn transfer(&self, id: Uuid, run: &JobRun) -> Result<Value, JobError> {
        let db = run.db();
        let (migration, workspace) = migration_of(run, id).await?;
        if migration.status != MigrationStatus::Running.as_str() {
            // Its items stay queued: the supervisor schedules them again on resume.
            return Ok(json!({"skipped": migration.status}));
        }
        let rows = store::items_of_job(db, id, run.job.id)
            .await
            .map_err(database)?;
        if rows.is_empty() {
            return Ok(json!({"items": 0}));
        }
        // Watched from here: a pause stops the listings below too, whose calls may wait
        // long for the workspace's pace.
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = Watcher(tokio::spawn(watch(
            self.statuses.watch(db, id),
            stop.clone(),
        )));
        let until_stopped = stopped(&stop, run);
        tokio::pin!(until_stopped);
        let items: Vec<BatchItem> = rows.iter().map(BatchItem::read).collect();
        let options = options(&migration)?;
        let clients = self
            .pool
            .clients_paced(&workspace, &self.secrets, options.target)?;
        let parent_keys: Vec<String> = items
            .iter()
            .filter_map(|i| i.item.parent_key.clone())
            .collect();
        let parents = store::mappings(db, workspace.id, &parent_keys)
            .await
            .map_err(database)?;
        // The users of each tenant this batch creates users in, listed once: the first
        // look-up of every create in it (later ones, after a lost answer, ask again).
        let people_tenants: std::collections::BTreeSet<Uuid> = items
            .iter()
            .filter(|i| matches!(i.planned, Ok(Planned::Admin(_) | Planned::User(_))))
            .filter_map(|i| {
                let key = i.item.parent_key.as_ref()?;
                parents.get(key).copied()
            })
            .collect();
        let mut listed = HashMap::new();
        for tenant_id in people_tenants {
            let users = tokio::select! {
                users = self.tenant_users(clients.target.as_ref(), tenant_id) => users,
                () = &mut until_stopped => return Ok(json!({"skipped": "stopped"})),
            };
            if let Some(users) = users {
                listed.insert(tenant_id, users);
            }
        }
        // Application ids by type, to name the cloud's items as the plan does.
        let applications = if items.iter().any(|i| match &i.planned {
            Ok(Planned::Tenant(_)) => true,
            Ok(Planned::User(user)) => user.personal_quota.is_some(),
            _ => false,
        }) {
            tokio::select! {
                applications = provision::applications(clients.target.as_ref()) => applications.map_err(connector)?,
                () = &mut until_stopped => return Ok(json!({"skipped": "stopped"})),
            }
        } else {
            Applications::new()
        };
        let concurrency = options
            .target
            .map_or(workspace.target_concurrency as usize, |l| {
                l.concurrency as usize
            })
            .max(1);
        let context = Context {
            db,
            migration: &migration,
            clients: &clients,
            parents: &parents,
            listed: &listed,
            applications: &applications,
            ensured: std::sync::Mutex::new(Vec::new()),
            root: workspace.tenant_id,
            options: &options,
            actor: worker_actor(run),
            stop: &stop,
            run,
        };
        let context = &context;
        let attempts: Vec<_> = items.iter().map(|item| context.carry_out(item)).collect();
        let outcomes: Vec<Outcome> = futures_util::stream::iter(attempts)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        drop(watcher);
        self.remember(std::mem::take(
            &mut *context.ensured.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        let mut tally: HashMap<&str, usize> = HashMap::new();
        let mut unavailable = None;
        for outcome in &outcomes {
            let name = match outcome {
                Outcome::Done => "done",
                Outcome::Failed => "failed",
                Outcome::Unavailable(reason) => {
                    unavailable = Some(reason.clone());
                    "unavailable"
                }
                Outcome::Stopped => "stopped",
            };
            *tally.entry(name).or_default() += 1;
        }
        if let Some(reason) = unavailable {
            if run.job.attempt < run.job.max_attempts {
                return Err(JobError::Retry(reason));
            }
            // The last attempt: what is still open fails with the error, and can be retried.
            fail_open_items(run, id, "target_unavailable", &reason).await?;
        }
        Ok(json!({"items": items.len(), "outcomes": tally}))
    }
}

/// Sets `stop` once the migration is no longer running (as read by the
/// process's task for it, every [`super::statuses::EVERY`]).
async fn watch(migration: Arc<Watch>, stop: Arc<AtomicBool>) {
    migration
        .until(|status| status != Some(MigrationStatus::Running.as_str()))
        .await;
    stop.store(true, Ordering::SeqCst);
}

/// The migration is no longer running (see [`watch`]) or the worker is stopping.
fn stopping(stop: &AtomicBool, run: &JobRun) -> bool {
    stop.load(Ordering::SeqCst) || run.should_stop()
}

/// Returns once [`stopping`], looked at every 50 ms.
async fn stopped(stop: &AtomicBool, run: &JobRun) {
    while !stopping(stop, run) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The task of [`watch`], stopped however the batch ends.
struct Watcher(tokio::task::JoinHandle<()>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Context<'a> {
    db: &'a DatabaseConnection,
    migration: &'a Migration,
    clients: &'a Clients,
    parents: &'a HashMap<String, Uuid>,
    /// Users of the tenants this batch creates users in, listed at its start.
    listed: &'a HashMap<Uuid, Vec<User>>,
    applications: &'a Applications,
    /// Users ensured by this batch, for the process's listings.
    ensured: std::sync::Mutex<Vec<User>>,
    /// The workspace's own tenant: the parent of top-level tenants.
    root: Uuid,
    options: &'a MigrationOptions,
    actor: String,
    stop: &'a AtomicBool,
    run: &'a JobRun,
}

/// An item of the batch with its plan, read once: an unreadable plan fails the
/// item, never runs it on defaults.
struct BatchItem<'a> {
    item: &'a Item,
    kind: Option<ItemKind>,
    /// Or why it does not read (serde's message).
    planned: Result<Planned, String>,
}

impl<'a> BatchItem<'a> {
    fn read(item: &'a Item) -> Self {
        let kind = ItemKind::parse(&item.kind);
        let planned = match kind {
            Some(kind) => Planned::parse(kind, &item.planned).map_err(|e| e.to_string()),
            None => Err(format!("unknown item kind {}", item.kind)),
        };
        Self {
            item,
            kind,
            planned,
        }
    }
}

/// The events of one item's attempt, recorded with its outcome.
struct Log<'a> {
    context: &'a Context<'a>,
    item: &'a Item,
    /// The events' subject kind.
    subject: &'static str,
    events: Vec<NewEvent>,
}

impl Log<'_> {
    fn push(&mut self, kind: &str, message: String, data: Option<Value>) {
        self.events.push(NewEvent {
            actor: self.context.actor.clone(),
            subject_kind: self.subject,
            subject_id: self.item.source_id.clone(),
            migration_id: Some(self.context.migration.id),
            kind: kind.to_string(),
            message,
            data: data.filter(|_| self.context.options.verbose),
        });
    }

    /// Records the calls provisioning made.
    fn calls(&mut self, calls: Vec<provision::Call>) {
        for call in calls {
            let message = match &call.outcome {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            };
            self.push(&format!("target.{}", call.name), message, Some(call.data));
        }
    }

    /// Records a call's outcome; `data` is what was sent (no secret in it).
    fn call<T>(&mut self, call: &str, result: &Result<T, ConnectorError>, data: Option<Value>) {
        let message = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        self.push(&format!("target.{call}"), message, data);
    }
}

/// Why an item's attempt ended early.
enum Stop {
    Final(ConnectorError),
    /// Its plan does not read: serde's message.
    Unreadable(String),
    Unavailable(String),
    Stopped,
}

impl From<ConnectorError> for Stop {
    fn from(e: ConnectorError) -> Self {
        if e.is_transient() {
            Stop::Unavailable(e.to_string())
        } else {
            Stop::Final(e)
        }
    }
}

impl Context<'_> {
    fn stopping(&self) -> bool {
        stopping(self.stop, self.run)
    }

    async fn stopped(&self) {
        stopped(self.stop, self.run).await
    }

    fn check(&self) -> Result<(), Stop> {
        if self.stopping() {
            Err(Stop::Stopped)
        } else {
            Ok(())
        }
    }

    async fn carry_out(&self, batched: &BatchItem<'_>) -> Outcome {
        if self.stopping() {
            return Outcome::Stopped;
        }
        let item = batched.item;
        let mut log = Log {
            context: self,
            item,
            subject: batched.kind.map_or("user", ItemKind::as_str),
            events: Vec::new(),
        };
        let work = async {
            match &batched.planned {
                Ok(Planned::Tenant(planned)) => self.tenant(planned, &mut log).await,
                Ok(Planned::Admin(planned)) => self.admin(planned, &mut log).await,
                Ok(Planned::User(planned)) => self.user(planned, &mut log).await,
                Err(message) => Err(Stop::Unreadable(message.clone())),
            }
        };
        // A pause or cancel drops the call in flight too (with its retries): the
        // next attempt looks up before it creates, so nothing is made twice.
        let result = tokio::select! {
            result = work => result,
            () = self.stopped() => Err(Stop::Stopped),
        };
        let (code, message) = match result {
            Ok(()) => return Outcome::Done,
            Err(Stop::Stopped) => return Outcome::Stopped,
            Err(Stop::Unavailable(reason)) => {
                log.push(
                    "item.retry",
                    format!("the target is unavailable; the item will be tried again: {reason}"),
                    None,
                );
                return self.note_retry(item, log, reason).await;
            }
            Err(Stop::Final(error)) => {
                let code = error
                    .remote_code()
                    .map(str::to_string)
                    .or_else(|| error.status().map(|s| s.to_string()))
                    .unwrap_or_else(|| "error".into());
                (code, error.to_string())
            }
            Err(Stop::Unreadable(message)) => ("unreadable_plan".to_string(), message),
        };
        log.push("item.failed", format!("failed: {message}"), None);
        let events = std::mem::take(&mut log.events);
        let recorded = async {
            let txn = self.db.begin().await?;
            store::record_failed(&txn, item.migration_id, item, &code, &message).await?;
            super::record_events(&txn, self.migration.workspace_id, events).await?;
            txn.commit().await
        };
        if let Err(e) = recorded.await {
            return Outcome::Unavailable(format!("database: {e}"));
        }
        Outcome::Failed
    }

    /// Keeps the attempt and its events of an item that stays queued.
    async fn note_retry(&self, item: &Item, mut log: Log<'_>, reason: String) -> Outcome {
        let events = std::mem::take(&mut log.events);
        let noted = async {
            let txn = self.db.begin().await?;
            store::record_attempt(&txn, item.migration_id, &item.key, &reason).await?;
            super::record_events(&txn, self.migration.workspace_id, events).await?;
            txn.commit().await
        };
        if let Err(e) = noted.await {
            tracing::warn!(error = %e, "could not record an item's attempt");
        }
        Outcome::Unavailable(reason)
    }

    /// Records the item's step (and, when finished, its end) with its mapping and
    /// events in one transaction; a user's machines are released in it too.
    async fn commit(
        &self,
        log: &mut Log<'_>,
        done: ItemProgress<'_>,
        release: Option<(Uuid, &[UserMachine])>,
    ) -> Result<(), Stop> {
        let migration = self.migration;
        let target_user_id = done.target_id;
        let txn = self.db.begin().await.map_err(db_stop)?;
        // A user created while the migration was being cancelled is kept, but its
        // machines are not released: under the migration's lock (shared with other
        // commits), either the cancel came first (seen here) or it takes back what
        // this releases.
        let cancelled = match release {
            Some(_) => {
                store::lock_shared(&txn, migration.id)
                    .await
                    .map_err(db_stop)?;
                store::get(&txn, migration.id)
                    .await
                    .map_err(db_stop)?
                    .is_none_or(|m| m.status == MigrationStatus::Cancelled.as_str())
            }
            None => false,
        };
        let recorded = store::record_progress(&txn, migration, done)
            .await
            .map_err(db_stop)?;
        if let Some(ready) = &recorded
            && !ready.is_empty()
        {
            schedule(&txn, migration, ready.clone())
                .await
                .map_err(db_stop)?;
        }
        if recorded.is_some()
            && !cancelled
            && let Some((tenant_id, machines)) = release
        {
            let user_id = log.item.source_id.as_str();
            let released = store::release_machines(
                &txn,
                migration,
                user_id,
                target_user_id,
                tenant_id,
                machines,
            )
            .await
            .map_err(db_stop)?;
            // Their agents find their registration tokens made when they check in.
            if !released.is_empty() {
                super::registration::schedule(
                    &txn,
                    migration.tenant_id,
                    migration.workspace_id,
                    target_user_id,
                )
                .await
                .map_err(db_stop)?;
            }
            for machine in released {
                log.events.push(NewEvent {
                    actor: self.actor.clone(),
                    subject_kind: "machine",
                    subject_id: machine,
                    migration_id: Some(migration.id),
                    kind: "machine.released".into(),
                    message: format!("released to its agent: idle -> pending (user {user_id})"),
                    data: None,
                });
            }
        }
        super::record_events(
            &txn,
            migration.workspace_id,
            std::mem::take(&mut log.events),
        )
        .await
        .map_err(db_stop)?;
        txn.commit().await.map_err(db_stop)
    }

    fn parent(&self, item: &Item) -> Result<Uuid, Stop> {
        match &item.parent_key {
            None => Ok(self.root),
            Some(key) => self
                .parents
                .get(key)
                .copied()
                .ok_or_else(|| Stop::Unavailable(format!("{key} is not mapped yet"))),
        }
    }

    async fn tenant(&self, planned: &PlannedTenant, log: &mut Log<'_>) -> Result<(), Stop> {
        let item = log.item;
        let parent_id = self.parent(item)?;
        let new = NewTenant {
            name: planned.name.clone(),
            parent_id,
            kind: match planned.kind {
                plan::TenantKind::Customer => TenantKind::Customer,
                plan::TenantKind::Partner => TenantKind::Partner,
            },
            internal_tag: planned.tenant_key.clone(),
        };
        let (tenant, origin) = self.find_or_create(item, &new, log).await?;
        let verb = match origin {
            Origin::Created => "is",
            Origin::Existing => "already existed as",
        };
        log.push(
            "tenant.ensured",
            format!("tenant {} ({:?}) {verb} {}", new.name, new.kind, tenant.id),
            None,
        );
        // Its services before its users and agents: a machine registering into a
        // tenant without the backup service is refused.
        self.check()?;
        let wants = &planned.services;
        let order = Provision {
            tenant_id: tenant.id,
            wants,
            origin,
            policy: planned.existing_customers,
            pricing: planned.pricing_mode,
        };
        let (mut done, result) =
            provision::tenant(self.clients.target.as_ref(), self.applications, order).await;
        log.calls(std::mem::take(&mut done.calls));
        result?;
        let services: Vec<String> = wants.iter().map(|w| w.item.key.to_string()).collect();
        let mut message = format!(
            "tenant {} ({:?}) {verb} {}; services: {}",
            new.name,
            new.kind,
            tenant.id,
            if services.is_empty() {
                "none".to_string()
            } else {
                services.join(", ")
            }
        );
        if !done.written.is_empty() {
            message.push_str(&format!("; turned on or set: {}", done.written.join(", ")));
        }
        if let Some(mode) = done.pricing {
            message.push_str(&format!("; pricing: {mode:?}"));
        }
        log.push("item.done", message, None);
        self.commit(
            log,
            ItemProgress {
                item,
                target_id: tenant.id,
                step: match origin {
                    Origin::Created => "provisioned",
                    Origin::Existing => "existing_provisioned",
                },
                reached: Reached::Done,
            },
            None,
        )
        .await
    }

    /// The item's tenant, and whether the migration made it: one found before this
    /// item ever asked for a create was in the cloud already (an existing
    /// customer); once a create may have been sent (the step says so), one found is ours.
    async fn find_or_create(
        &self,
        item: &Item,
        new: &NewTenant,
        log: &mut Log<'_>,
    ) -> Result<(Tenant, Origin), Stop> {
        self.check()?;
        let looked_up = item.step.is_none();
        if looked_up {
            let found = self
                .clients
                .target
                .find_tenant_by_tag(new.parent_id, &new.internal_tag)
                .await;
            log.call(
                "find_tenant_by_tag",
                &found,
                Some(json!({"parent_id": new.parent_id, "internal_tag": new.internal_tag})),
            );
            if let Some(tenant) = found? {
                // A migration of this workspace cancelled after its create is not a customer's own.
                let ours = store::attempted_elsewhere(
                    self.db,
                    self.migration.workspace_id,
                    item.migration_id,
                    &item.key,
                )
                .await
                .map_err(db_stop)?;
                return Ok((
                    tenant,
                    if ours {
                        Origin::Created
                    } else {
                        Origin::Existing
                    },
                ));
            }
            store::record_step(self.db, item.migration_id, &item.key, "creating")
                .await
                .map_err(db_stop)?;
        }
        self.check()?;
        // Just looked up and not found: create at once (one listing of the parent, not
        // two); a create that may have landed (a lost answer, a conflict) looks up again.
        let target = &self.clients.target;
        let result = if looked_up {
            match target.create_tenant(new).await {
                Err(e) if e.is_transient() || e.is_status(409) => target.ensure_tenant(new).await,
                other => other,
            }
        } else {
            target.ensure_tenant(new).await
        };
        log.call("ensure_tenant", &result, serde_json::to_value(new).ok());
        Ok((result?, Origin::Created))
    }

    async fn ensure_user(&self, new: &NewUser) -> Result<User, ConnectorError> {
        let user = match self.listed.get(&new.tenant_id) {
            Some(listed) => self.clients.target.ensure_user_listed(new, listed).await,
            None => self.clients.target.ensure_user(new).await,
        }?;
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(user.clone());
        Ok(user)
    }

    fn new_user(
        &self,
        tenant_id: Uuid,
        login: &str,
        external_id: &str,
        contact: &Contact,
    ) -> NewUser {
        let contact = contact
            .email
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|email| UserContact {
                email: email.to_string(),
                firstname: contact.first_name.clone(),
                lastname: contact.last_name.clone(),
            });
        NewUser {
            tenant_id,
            login: login.to_string(),
            contact,
            external_id: external_id.to_string(),
        }
    }

    async fn admin(&self, planned: &PlannedAdmin, log: &mut Log<'_>) -> Result<(), Stop> {
        let item = log.item;
        let tenant_id = self.parent(item)?;
        let new = self.new_user(tenant_id, &planned.login, &item.source_id, &planned.contact);
        let role = match planned.role {
            AdminRole::PartnerAdmin => Role::PartnerAdmin,
            AdminRole::CompanyAdmin => Role::CompanyAdmin,
        };
        self.check()?;
        let result = self.ensure_user(&new).await;
        log.call("ensure_user", &result, serde_json::to_value(&new).ok());
        let user = result?;
        self.check()?;
        let result = self.clients.target.grant_role(&user, role, tenant_id).await;
        log.call(
            "grant_role",
            &result,
            Some(json!({"user_id": user.id, "role": role.id(), "tenant_id": tenant_id})),
        );
        result?;
        if !self.options.send_activation_emails
            || user.activated
            || item.step.as_deref() == Some("activation_email_sent")
        {
            log.push(
                "item.done",
                format!("admin {} is {} with role {}", new.login, user.id, role.id()),
                None,
            );
            return self
                .commit(
                    log,
                    ItemProgress {
                        item,
                        target_id: user.id,
                        step: "role_granted",
                        reached: Reached::Done,
                    },
                    None,
                )
                .await;
        }
        // Kept before the email goes out: a retry after a crash finds the user and
        // its role done; only the email may go twice, never the user.
        self.commit(
            log,
            ItemProgress {
                item,
                target_id: user.id,
                step: "role_granted",
                reached: Reached::Step,
            },
            None,
        )
        .await?;
        self.check()?;
        let result = self.clients.target.send_activation_email(user.id).await;
        log.call(
            "send_activation_email",
            &result,
            Some(json!({"user_id": user.id})),
        );
        result?;
        log.push(
            "item.done",
            format!(
                "admin {} is {} with role {}; activation email sent",
                new.login,
                user.id,
                role.id()
            ),
            None,
        );
        self.commit(
            log,
            ItemProgress {
                item,
                target_id: user.id,
                step: "activation_email_sent",
                reached: Reached::Done,
            },
            None,
        )
        .await
    }

    async fn user(&self, planned: &PlannedUser, log: &mut Log<'_>) -> Result<(), Stop> {
        let item = log.item;
        let tenant_id = self.parent(item)?;
        let new = self.new_user(tenant_id, &planned.login, &item.source_id, &planned.contact);
        self.check()?;
        let result = self.ensure_user(&new).await;
        log.call("ensure_user", &result, serde_json::to_value(&new).ok());
        let user = result?;
        self.check()?;
        let result = self
            .clients
            .target
            .grant_role(&user, Role::BackupUser, tenant_id)
            .await;
        log.call(
            "grant_role",
            &result,
            Some(
                json!({"user_id": user.id, "role": Role::BackupUser.id(), "tenant_id": tenant_id}),
            ),
        );
        result?;
        self.personal_quota(&user, planned.personal_quota.as_deref(), log)
            .await?;
        self.check()?;
        // Read at this moment, sent on, never kept or logged.
        let password = self.clients.source.user_password(&item.source_id).await;
        log.push(
            "source.user_password",
            match &password {
                Ok(_) => "ok".into(),
                Err(e) => e.to_string(),
            },
            None,
        );
        let password = password?;
        self.check()?;
        let result = self.clients.target.set_password(user.id, &password).await;
        log.call(
            "set_password",
            &result,
            Some(json!({"user_id": user.id, "password": "[redacted]"})),
        );
        result?;
        drop(password);
        log.push(
            "item.done",
            format!("backup user {} is {}; password set", new.login, user.id),
            None,
        );
        let done = ItemProgress {
            item,
            target_id: user.id,
            step: "password_set",
            reached: Reached::Done,
        };
        self.commit(log, done, Some((tenant_id, &planned.machines)))
            .await
    }
}

impl Context<'_> {
    /// The user's source quota on its personal tenant's storage item (the cloud
    /// keeps a user's quotas there), before its machines are released.
    async fn personal_quota(
        &self,
        user: &User,
        want: Option<&Want>,
        log: &mut Log<'_>,
    ) -> Result<(), Stop> {
        let Some(want) = want else {
            return Ok(());
        };
        let Some(personal) = user.personal_tenant_id else {
            log.push(
                "item.note",
                "the cloud user has no personal tenant: its source quota is not set".into(),
                None,
            );
            return Ok(());
        };
        self.check()?;
        let order = Provision {
            tenant_id: personal,
            wants: std::slice::from_ref(want),
            origin: Origin::Created,
            policy: ExistingCustomers::AddMissing,
            pricing: None,
        };
        let (mut done, result) =
            provision::tenant(self.clients.target.as_ref(), self.applications, order).await;
        log.calls(std::mem::take(&mut done.calls));
        result?;
        Ok(())
    }
}

fn db_stop(e: sea_orm::DbErr) -> Stop {
    Stop::Unavailable(format!("database: {e}"))
}
