//! The `migration` job supervises a wave: it plans the selection (the same
//! planning code as the pre-check), records what re-planning changed against
//! the pre-check, writes the items and schedules those whose tenant is known.
//! Then it looks again every second, without holding a worker's slot: it
//! schedules again items whose job ended without them (a pause, a job that gave
//! up), reports progress, and ends the migration when no item is open.
//!
//! The `transfer` job carries out a batch of items (`transfer.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::clients::ClientPool;
use super::{connector, worker_actor};
use crate::connectors::target::TargetApi;
use crate::crypto::SecretBox;
use crate::db::events::NewEvent;
use crate::db::migrations as store;
use crate::db::prechecks;
use crate::domain::migration::MigrationStatus;
use crate::domain::plan::Selection;
use crate::domain::provisioning;
use crate::domain::report::{self, Section, compare_encoded};
use crate::domain::transfer::{self, ItemKind, ItemState, Planned};
use crate::planning::MigrationOptions;
use crate::planning::{self, Planning, Settled, Timer, offer};
use crate::queue::{Job, JobError, JobHandler, JobRun, NewJob, database};

/// Plans a migration, then looks at it every second while its items are
/// carried out, and finishes it; one per migration at a time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuperviseMigration {
    pub migration_id: Uuid,
}

impl Job for SuperviseMigration {
    const KIND: &'static str = "migration";
    /// Each look is a snooze, not an attempt; attempts are failures to look.
    const MAX_ATTEMPTS: i32 = 10_000;
}

impl SuperviseMigration {
    pub fn of(tenant_id: Uuid, workspace_id: Uuid, migration_id: Uuid) -> NewJob<Self> {
        NewJob {
            tenant_id: Some(tenant_id),
            workspace_id: Some(workspace_id),
            ..NewJob::new(Self { migration_id })
        }
    }
}
/// How often the supervisor looks at its migration.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Supervisors run in a lane of their own, this many at once per process: in the
/// shared lane, a supervisor that looked again in a second queued behind every
/// transfer batch due before it (at `large` on PostgreSQL it ran once in several
/// minutes, and with it the adoption of a dead worker's items and the folding
/// of the counts).
const SUPERVISORS: usize = 4;
/// How often a supervisor looks for items whose job ended without them: the
/// look reads every queued item of the migration (286 ms on average at `large` on
/// PostgreSQL, once a second in the supervisor's lane), and orphans come only
/// from jobs that gave up or ended early, after leases of minutes.
const ADOPT_EVERY: Duration = Duration::from_secs(15);
/// Items made and written at a time when a migration is planned.
const ITEMS_PER_WRITE: usize = 400;
/// The report's sections re-planning compares with the pre-check's.
const COMPARED: [Section; 3] = [Section::Hierarchy, Section::Groups, Section::Users];
/// Changed entries per section that re-planning lists.
const REPLAN_LISTED: usize = 50;

pub struct MigrationHandler {
    secrets: SecretBox,
    pool: Arc<ClientPool>,
    /// When this process last looked for each running migration's orphans.
    adopted: std::sync::Mutex<std::collections::HashMap<Uuid, std::time::Instant>>,
}

impl MigrationHandler {
    pub fn new(secrets: SecretBox, pool: Arc<ClientPool>) -> Self {
        Self {
            secrets,
            pool,
            adopted: Default::default(),
        }
    }

    /// True at most once per [`ADOPT_EVERY`] for a migration in this process.
    fn adoption_due(&self, migration_id: Uuid) -> bool {
        let mut adopted = self.adopted.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match adopted.get(&migration_id) {
            Some(last) if now.duration_since(*last) < ADOPT_EVERY => false,
            _ => {
                // A migration finished by another process, or cancelled, is looked at
                // here no more: its entry goes once it is older than the look's period.
                adopted.retain(|_, last| now.duration_since(*last) < 4 * ADOPT_EVERY);
                adopted.insert(migration_id, now);
                true
            }
        }
    }
}

/// A migration's options as stored; unreadable ones end the job rather than
/// run it with defaults the partner never chose.
pub(crate) fn options(migration: &entity::migration::Model) -> Result<MigrationOptions, JobError> {
    serde_json::from_str(&migration.options)
        .map_err(|e| JobError::Fatal(format!("the migration's options are unreadable: {e}")))
}

/// The migration a job works on, when it still exists in a workspace of the
/// job's tenant.
pub(crate) async fn migration_of(
    run: &JobRun,
    migration_id: Uuid,
) -> Result<(entity::migration::Model, entity::workspace::Model), JobError> {
    let migration = store::get(run.db(), migration_id)
        .await
        .map_err(database)?
        .ok_or_else(|| JobError::Fatal("the migration no longer exists".into()))?;
    let workspace = super::workspace_of(run, migration.workspace_id).await?;
    Ok((migration, workspace))
}

#[async_trait]
impl JobHandler for MigrationHandler {
    type Job = SuperviseMigration;

    fn lane(&self) -> Option<usize> {
        Some(SUPERVISORS)
    }

    async fn run(&self, job: SuperviseMigration, run: &JobRun) -> Result<Value, JobError> {
        let id = job.migration_id;
        let db = run.db();
        let (migration, workspace) = migration_of(run, id).await?;
        if migration.job_id != run.job.id {
            return Ok(json!({"superseded_by": migration.job_id}));
        }
        let Some(status) = MigrationStatus::parse(&migration.status) else {
            return Err(JobError::Fatal(format!(
                "the migration's status `{}` is not one",
                migration.status
            )));
        };
        match status {
            MigrationStatus::Planning => match self.plan(run, &migration, &workspace).await {
                Ok(()) => Err(JobError::Snooze(Duration::ZERO)),
                Err(JobError::Fatal(reason)) => {
                    // Whatever made planning impossible, the migration says so instead of planning forever.
                    store::set_status(
                        db,
                        id,
                        &[MigrationStatus::Planning],
                        MigrationStatus::Failed,
                        Some(&reason),
                    )
                    .await
                    .map_err(database)?;
                    Err(JobError::Fatal(reason))
                }
                Err(other) => Err(other),
            },
            MigrationStatus::Running => {
                if self.adoption_due(id) {
                    self.adopt_orphans(run, &migration).await?;
                }
                store::fold_counts(db, id).await.map_err(database)?;
                let counts = store::counts(db, id).await.map_err(database)?;
                if transfer::open_items(&counts) == 0 {
                    return match self.finish(run, &migration).await? {
                        Some(result) => {
                            self.adopted
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&id);
                            Ok(result)
                        }
                        // Paused, retried or cancelled meanwhile: look again.
                        None => Err(JobError::Snooze(Duration::ZERO)),
                    };
                }
                run.progress(progress(&migration.status, &counts)).await?;
                Err(JobError::Snooze(LOOK_EVERY))
            }
            MigrationStatus::Paused => {
                store::fold_counts(db, id).await.map_err(database)?;
                let counts = store::counts(db, id).await.map_err(database)?;
                run.progress(progress(&migration.status, &counts)).await?;
                Err(JobError::Snooze(LOOK_EVERY))
            }
            _ => {
                let counts = store::counts(db, id).await.map_err(database)?;
                Ok(progress(&migration.status, &counts))
            }
        }
    }
}

fn progress(
    status: &str,
    counts: &std::collections::BTreeMap<ItemKind, std::collections::BTreeMap<ItemState, u64>>,
) -> Value {
    let total: u64 = counts.values().flat_map(|s| s.values()).sum();
    let finished = total - transfer::open_items(counts);
    json!({"status": status, "items": total, "finished": finished, "counts": counts_json(counts)})
}

pub fn counts_json(
    counts: &std::collections::BTreeMap<ItemKind, std::collections::BTreeMap<ItemState, u64>>,
) -> Value {
    let mut out = serde_json::Map::new();
    for (kind, states) in counts {
        let states: serde_json::Map<String, Value> = states
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), json!(n)))
            .collect();
        out.insert(kind.as_str().to_string(), Value::Object(states));
    }
    Value::Object(out)
}

impl MigrationHandler {
    async fn plan(
        &self,
        run: &JobRun,
        migration: &entity::migration::Model,
        workspace: &entity::workspace::Model,
    ) -> Result<(), JobError> {
        let db = run.db();
        let selection: Selection = serde_json::from_str(&migration.selection)
            .map_err(|e| JobError::Fatal(format!("selection: {e}")))?;
        let target = self.pool.clients(workspace, &self.secrets)?.target;
        let mut timer = Timer::default();
        let planning = Planning {
            db,
            workspace_id: workspace.id,
            source_time: workspace.snapshot_source_time,
            selection: &selection,
            target: Some(target.as_ref() as &dyn TargetApi),
            concurrency: usize::try_from(workspace.target_concurrency)
                .unwrap_or(1)
                .max(1),
        };
        let progress = |p: Value| async move { run.progress(p).await };
        let Settled {
            snapshot,
            plan,
            answers,
            ..
        } = planning::settle(planning, &progress, &|| run.should_stop(), &mut timer).await?;
        let options = options(migration)?;
        let profile = options
            .provisioning
            .clone()
            .unwrap_or_else(|| crate::db::workspaces::provisioning(workspace));
        let (_, services) = offer::services(
            Some(target.as_ref()),
            workspace.tenant_id,
            &profile,
            &snapshot,
            &plan,
        )
        .await
        .map_err(connector)?;
        let replan = match migration.precheck_id {
            Some(precheck_id) => {
                let logins = planning::login_answers(&plan, &answers);
                // Only the target tree, the logins and what the tenants get are compared:
                // the estimates' options do not matter.
                let view = report::ProvisioningView {
                    profile: &profile,
                    services: &services,
                    verified: true,
                };
                let report = report::encode_sections(
                    &snapshot,
                    &plan,
                    &logins,
                    &Default::default(),
                    &view,
                    &|section| COMPARED.contains(&section),
                );
                Some(replan_changes(db, precheck_id, report).await?)
            }
            None => None,
        };
        timer.lap("replan");
        let flagged = provisioning::flag_summary(&services);
        if !flagged.is_empty() && !options.skip_unavailable_items {
            return Err(JobError::Fatal(format!(
                "provisioning_unavailable: the cloud cannot give {}; set options.skip_unavailable_items to migrate without them, or change the profile",
                flagged.join("; ")
            )));
        }
        let user_quotas: std::collections::HashMap<&str, u64> = snapshot
            .users
            .iter()
            .filter_map(|u| Some((u.id.as_str(), u.storage_quota_bytes?)))
            .collect();
        let known = store::all_mappings(db, workspace.id)
            .await
            .map_err(database)?;
        let actor = worker_actor(run);
        let txn = db.begin().await.map_err(database)?;
        // The items are made and written a few hundred at a time: at `large` all of
        // them at once (each user's machines with their plans) were 800 MiB more.
        let mut items = transfer::items(&plan);
        let mut ready = Vec::new();
        let mut planned: std::collections::BTreeMap<ItemKind, usize> = Default::default();
        let mut mapped_earlier = 0;
        loop {
            let mut specs: Vec<_> = items.by_ref().take(ITEMS_PER_WRITE).collect();
            if specs.is_empty() {
                break;
            }
            transfer::add_services(&mut specs, &services, &profile, &user_quotas);
            ready.extend(
                store::insert_items(&txn, migration, &specs, &known)
                    .await
                    .map_err(database)?,
            );
            for spec in &specs {
                *planned.entry(spec.planned.kind()).or_default() += 1;
                mapped_earlier += usize::from(known.contains_key(&spec.key));
            }
            release_new_machines(&txn, migration, &specs, &known).await?;
        }
        drop(items);
        drop(user_quotas);
        timer.lap("items_written");
        tokio::task::spawn_blocking(move || drop((snapshot, plan, answers, services)));
        let scheduled = super::transfer::schedule(&txn, migration, ready)
            .await
            .map_err(database)?;
        if let Some(replan) = &replan {
            store::set_replan(&txn, migration.id, replan)
                .await
                .map_err(database)?;
        }
        if !store::set_status(
            &txn,
            migration.id,
            &[MigrationStatus::Planning],
            MigrationStatus::Running,
            None,
        )
        .await
        .map_err(database)?
        {
            // Cancelled while planning: nothing is written.
            return Ok(());
        }
        let count = |kind: ItemKind| planned.get(&kind).copied().unwrap_or_default();
        let message = format!(
            "planned {} tenants, {} admins, {} backup users; {mapped_earlier} already mapped by an earlier wave; {scheduled} ready to start",
            count(ItemKind::Tenant),
            count(ItemKind::Admin),
            count(ItemKind::User),
        );
        let event = NewEvent {
            actor,
            subject_kind: "migration",
            subject_id: migration.id.to_string(),
            migration_id: Some(migration.id),
            kind: "migration.planned".into(),
            message,
            data: replan.clone(),
        };
        super::record_events(&txn, workspace.id, vec![event])
            .await
            .map_err(database)?;
        txn.commit().await.map_err(database)?;
        timer.lap("items");
        tracing::info!(migration = %migration.id, seconds = %timer.0, "migration planned");
        Ok(())
    }

    /// Items queued in a job that ended without them: scheduled again, or failed
    /// with the job's error when it gave up (so they do not go round for ever).
    async fn adopt_orphans(
        &self,
        run: &JobRun,
        migration: &entity::migration::Model,
    ) -> Result<(), JobError> {
        let db = run.db();
        let orphans = store::orphans(db, migration.id).await.map_err(database)?;
        if orphans.is_empty() {
            return Ok(());
        }
        let txn = db.begin().await.map_err(database)?;
        let mut again = Vec::new();
        for orphan in orphans {
            match orphan.gave_up {
                None => again.push((orphan.key, orphan.kind)),
                Some(error) => {
                    if let Some(item) = store::item(&txn, migration.id, &orphan.key)
                        .await
                        .map_err(database)?
                    {
                        store::record_failed(&txn, migration.id, &item, "job_failed", &error)
                            .await
                            .map_err(database)?;
                    }
                }
            }
        }
        let scheduled = super::transfer::schedule(&txn, migration, again)
            .await
            .map_err(database)?;
        txn.commit().await.map_err(database)?;
        tracing::info!(migration = %migration.id, scheduled, "items whose job ended without them scheduled again");
        Ok(())
    }

    /// Ends a migration with no open item; `None` when, under its row lock, it turns
    /// out not to be over (a retry or a pause came in between).
    async fn finish(
        &self,
        run: &JobRun,
        migration: &entity::migration::Model,
    ) -> Result<Option<Value>, JobError> {
        let db = run.db();
        let txn = db.begin().await.map_err(database)?;
        store::lock(&txn, migration.id).await.map_err(database)?;
        let counts = store::counts(&txn, migration.id).await.map_err(database)?;
        let open = transfer::open_items(&counts);
        let failed: u64 = counts
            .values()
            .map(|s| s[&ItemState::Failed] + s[&ItemState::Blocked])
            .sum();
        let status = if failed == 0 {
            MigrationStatus::Completed
        } else {
            MigrationStatus::CompletedWithFailures
        };
        if open > 0
            || !store::set_status(
                &txn,
                migration.id,
                &[MigrationStatus::Running],
                status,
                None,
            )
            .await
            .map_err(database)?
        {
            return Ok(None);
        }
        let event = NewEvent {
            actor: worker_actor(run),
            subject_kind: "migration",
            subject_id: migration.id.to_string(),
            migration_id: Some(migration.id),
            kind: format!("migration.{status}"),
            message: format!("migration {status}: {failed} items failed or blocked"),
            data: Some(counts_json(&counts)),
        };
        super::record_events(&txn, migration.workspace_id, vec![event])
            .await
            .map_err(database)?;
        txn.commit().await.map_err(database)?;
        Ok(Some(progress(status.as_str(), &counts)))
    }
}

/// What planning again changed against the pre-check, for the sections a
/// migration acts on (the target tree, admin and user logins).
async fn replan_changes(
    db: &DatabaseConnection,
    precheck_id: Uuid,
    report: report::EncodedReport,
) -> Result<Value, JobError> {
    let mut sections = serde_json::Map::new();
    let mut changed = false;
    for (section, entries) in report.sections {
        let before = prechecks::all_entries_encoded(db, precheck_id, section)
            .await
            .map_err(database)?;
        let changes = compare_encoded(before, entries, REPLAN_LISTED);
        changed |= changes.added + changes.removed + changes.changed > 0;
        sections.insert(
            section.as_str().to_string(),
            serde_json::to_value(changes).map_err(|e| JobError::Fatal(e.to_string()))?,
        );
    }
    Ok(json!({"precheck_id": precheck_id, "changed": changed, "sections": sections}))
}

/// Releases the machines of users an earlier wave migrated (they may have new
/// machines since) and schedules their registration tokens, in `txn`.
async fn release_new_machines(
    txn: &sea_orm::DatabaseTransaction,
    migration: &entity::migration::Model,
    specs: &[transfer::ItemSpec],
    known: &std::collections::HashMap<String, Uuid>,
) -> Result<(), JobError> {
    for spec in specs {
        let Planned::User(planned) = &spec.planned else {
            continue;
        };
        let (Some(user), Some(tenant)) = (
            known.get(&spec.key),
            spec.parent_key.as_ref().and_then(|p| known.get(p)),
        ) else {
            continue;
        };
        let machines = &planned.machines;
        let released =
            store::release_machines(txn, migration, &spec.source_id, *user, *tenant, machines)
                .await
                .map_err(database)?;
        if !released.is_empty() {
            let (tenant_id, workspace_id) = (migration.tenant_id, migration.workspace_id);
            super::registration::schedule(txn, tenant_id, workspace_id, *user)
                .await
                .map_err(database)?;
        }
    }
    Ok(())
}
