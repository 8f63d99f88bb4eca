//! The `registration` job: makes a released machine's registration token, the
//! one-time code its cloud agent registers with, bound to the machine's cloud
//! user. No agent request waits on the cloud for it: the transfer schedules the
//! job when it releases a machine, and a check-in that finds no live token (or
//! one to renew) schedules it again and is told to come back soon. At most one
//! live token per machine:
//!
//! - One job per cloud user at a time (its unique key) makes the tokens of that
//!   user's machines one after another, under a claim in the database per user
//!   (a job that finds it held, by a job whose lease lapsed, snoozes and looks again).
//! - Under that claim, the tenant's listing tells our leftovers apart: a token with
//!   exactly our scope and our lifetime that no machine holds was made by a request
//!   of ours whose answer was lost (or a renewal whose revoke failed). A fresh one
//!   is adopted instead of making another; the others are revoked.
//! - A create that fails in a way that may hide a token made is followed by the
//!   listing again, which finds it.
//! - A renewal (less than a day left) revokes the old token once the new one is kept.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

use super::clients::ClientPool;
use super::statuses::{MigrationStatuses, Watch};
use super::{connector, workspace_of};
use crate::connectors::ConnectorError;
use crate::connectors::target::{RegistrationToken, TargetApi};
use crate::crypto::SecretBox;
use crate::db::agents as machines;
use crate::db::registration as tokens;
use crate::domain::migration::MigrationStatus;
use crate::queue::{self, Job, JobError, JobHandler, JobRun, NewJob, database};

/// How long a registration token lives.
pub const REGISTRATION_DAYS: i64 = 7;
/// A token with less than this left is renewed.
const RENEW_WITHIN_DAYS: i64 = 1;
/// A claim not renewed for this long is taken over (its holder died or hangs).
/// Its holder renews it every [`CLAIM_RENEWAL`]: a SIGKILLed worker held its
/// users' machines back for five minutes with a lease of 300 s that nobody
/// renewed (seen at `medium`: 186 machines told `registration_pending` meanwhile).
const CLAIM_LEASE_SECS: i64 = 30;
/// How often a job renews the claim it holds.
const CLAIM_RENEWAL: Duration = Duration::from_secs(10);
/// How long a job whose user's claim is held waits before it looks again.
const CLAIM_HELD_SNOOZE: Duration = Duration::from_millis(500);
/// How long a job whose migration is paused waits before it looks again.
const PAUSED_SNOOZE: Duration = Duration::from_secs(5);
/// Registration jobs one process runs at once, in a lane of their own: a
/// migration releases a user's machines with every user item it finishes, so
/// these jobs come by the thousand, and in the worker's shared slots they held
/// up the transfers that make the next tenants (measured at `medium` on
/// PostgreSQL: 2,000 registration jobs queued ahead of 350 transfers). A job
/// mostly waits on the cloud, so the lane is wide: at 8 per process, `large`
/// (133,629 machines released) made about 100 tokens a second, and the fleet
/// waited on them for twenty minutes after the migration had completed.
const LANE: usize = 32;
/// Slack between our clock and the cloud's when a token's lifetime is read.
const LIFETIME_SLACK_SECS: i64 = 120;

/// Whether a kept token is still good for a while (more than a day left): older
/// ones are renewed.
pub fn fresh(expires_at: &DateTime<Utc>) -> bool {
    *expires_at > Utc::now() + chrono::Duration::days(RENEW_WITHIN_DAYS)
}

/// The sealing context of a machine's registration token.
pub fn sealing_context(workspace_id: Uuid, machine_id: &str) -> String {
    format!("machine_assignments:{workspace_id}:{machine_id}:registration_token")
}

/// Makes (or renews) the registration tokens of a cloud user's released machines.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IssueRegistration {
    pub workspace_id: Uuid,
    pub target_user_id: Uuid,
}

impl Job for IssueRegistration {
    const KIND: &'static str = "registration";
    /// The cloud unavailable for a while: tried again with backoff; a machine's
    /// next check-in schedules it anew after that.
    const MAX_ATTEMPTS: i32 = 8;
}

impl IssueRegistration {
    /// The job of a cloud user's machines in `tenant_id`'s workspace; one at a
    /// time per user, so that a user's tokens are made one after another.
    pub fn of(tenant_id: Uuid, workspace_id: Uuid, target_user_id: Uuid) -> NewJob<Self> {
        NewJob {
            unique_key: Some(format!("registration:{workspace_id}:{target_user_id}")),
            tenant_id: Some(tenant_id),
            workspace_id: Some(workspace_id),
            ..NewJob::new(Self {
                workspace_id,
                target_user_id,
            })
        }
    }
}

/// Schedules the registration tokens of a user's machines just released, in
/// the caller's transaction.
pub async fn schedule(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    workspace_id: Uuid,
    target_user_id: Uuid,
) -> Result<(), sea_orm::DbErr> {
    queue::enqueue(
        db,
        IssueRegistration::of(tenant_id, workspace_id, target_user_id),
    )
    .await
    .map(drop)
}

pub struct RegistrationHandler {
    secrets: SecretBox,
    pool: Arc<ClientPool>,
    /// The migrations this process's jobs watch for a pause.
    statuses: Arc<MigrationStatuses>,
}

impl RegistrationHandler {
    pub fn new(
        secrets: SecretBox,
        pool: Arc<ClientPool>,
        statuses: Arc<MigrationStatuses>,
    ) -> Self {
        Self {
            secrets,
            pool,
            statuses,
        }
    }
}

#[async_trait]
impl JobHandler for RegistrationHandler {
    type Job = IssueRegistration;

    fn lane(&self) -> Option<usize> {
        Some(LANE)
    }

    async fn run(&self, job: IssueRegistration, run: &JobRun) -> Result<Value, JobError> {
        let workspace = workspace_of(run, job.workspace_id).await?;
        let (db, user) = (run.db(), job.target_user_id);
        let claim = Uuid::new_v4();
        let stale_before = Utc::now() - chrono::Duration::seconds(CLAIM_LEASE_SECS);
        if !tokens::claim_registration(db, workspace.id, user, claim, stale_before)
            .await
            .map_err(database)?
        {
            // Another job makes a token of this user now (one whose lease lapsed).
            return Err(JobError::Snooze(CLAIM_HELD_SNOOZE));
        }
        // Renewed while the tokens are made, until the run ends or is told to stop
        // (its lease lost): then the claim lapses and another attempt takes it over.
        let renew = async {
            loop {
                tokio::time::sleep(CLAIM_RENEWAL).await;
                if run.should_stop() {
                    std::future::pending::<()>().await;
                }
                if let Err(e) =
                    tokens::renew_registration_claim(db, workspace.id, user, claim).await
                {
                    tracing::warn!(error = %e, "a registration claim could not be renewed");
                }
            }
        };
        let made = tokio::select! {
            made = self.under_claim(run, &workspace, user) => made,
            never = renew => never,
        };
        tokens::release_registration_claim(db, workspace.id, user, claim)
            .await
            .map_err(database)?;
        made
    }
}

impl RegistrationHandler {
    /// The tokens of the user's machines that hold none fresh, made one after
    /// another while holding the claim of the user.
    async fn under_claim(
        &self,
        run: &JobRun,
        workspace: &entity::workspace::Model,
        target_user: Uuid,
    ) -> Result<Value, JobError> {
        let db = run.db();
        let released = tokens::machines_of_user(db, workspace.id, target_user)
            .await
            .map_err(database)?;
        let mut made = 0;
        let mut paused = false;
        let mut known = None;
        let mut watched: HashMap<Uuid, Arc<Watch>> = HashMap::new();
        for (machine_id, migration_id) in &released {
            let migration = watched
                .entry(*migration_id)
                .or_insert_with(|| self.statuses.watch(db, *migration_id))
                .clone();
            // A paused migration makes no call to the cloud, these neither: made on resume.
            // Looked at before each machine, so a pause stops the job between two of them.
            if is_paused(&migration).await {
                paused = true;
                continue;
            }
            // Read under the claim: a job that held it before (its lease lapsed) may have made it.
            let Some(machine) = machines::machine(db, workspace.id, machine_id)
                .await
                .map_err(database)?
            else {
                continue;
            };
            let Some((user, target_tenant)) = machine.target else {
                continue;
            };
            if user != target_user || holds_fresh(&machine) {
                continue;
            }
            let clients = self.pool.clients(workspace, &self.secrets)?;
            let registrant = Registrant {
                workspace_id: workspace.id,
                migration: &migration,
                machine_id,
                target_user,
                target_tenant,
                replaces: machine.registration_token_id.as_deref(),
            };
            let obtained =
                registrant.obtain_claimed(db, &self.secrets, clients.target.as_ref(), &mut known);
            // A call may wait long for the workspace's pace: a pause drops it there (or
            // in flight; a token it made is found again as a leftover on resume).
            let obtained = tokio::select! {
                obtained = obtained => obtained?,
                () = migration.until(|status| status == Some(MigrationStatus::Paused.as_str())) => Obtained::Paused,
            };
            match obtained {
                Obtained::Kept => made += 1,
                Obtained::Paused => paused = true,
            }
        }
        if paused {
            return Err(JobError::Snooze(PAUSED_SNOOZE));
        }
        Ok(json!({"machines": released.len(), "tokens_made": made}))
    }
}

/// Whether the migration that released a machine is paused (as last read by
/// the process's task for it): its machines' tokens are made on resume, and no
/// call to the cloud is made meanwhile.
async fn is_paused(migration: &Watch) -> bool {
    migration.status().await.as_deref() == Some(MigrationStatus::Paused.as_str())
}

/// How obtaining a machine's token ended.
enum Obtained {
    Kept,
    /// The migration was paused before the next call: nothing more was asked.
    Paused,
}

fn holds_fresh(machine: &machines::MachineRow) -> bool {
    machine
        .registration
        .as_ref()
        .is_some_and(|(_, expires)| fresh(expires))
}

/// The machine a registration token is made for: its cloud user and tenant,
/// and the token it replaces.
struct Registrant<'a> {
    workspace_id: Uuid,
    /// The migration that released the machine: a pause of it stops the calls.
    migration: &'a Watch,
    machine_id: &'a str,
    target_user: Uuid,
    target_tenant: Uuid,
    replaces: Option<&'a str>,
}

/// What a job reads once for all the machines of its user: the scopes of the
/// user's tokens, the tokens machines hold, and the leftovers in the tenant (ours,
/// held by none). Under the user's claim no other job of the workspace makes tokens
/// with these scopes, so what was read stays true as the job goes on, but for what
/// the job itself makes, adopts and revokes, which it keeps up to date. (The claim is
/// per workspace: two workspaces migrating to the same cloud user would race here,
/// as they did between a listing and a revoke when each machine listed anew.) Read per machine, it was
/// two more calls to the cloud for each: registration tokens were made at about
/// 100 a second at `large`, and machines waited for them.
struct UserTokens {
    scopes: Vec<String>,
    held: HashSet<String>,
    leftovers: Vec<RegistrationToken>,
}

impl Registrant<'_> {
    /// The user's scopes, held tokens and leftovers, read now unless `known`.
    async fn user_tokens<'k>(
        &self,
        db: &impl ConnectionTrait,
        target: &dyn TargetApi,
        known: &'k mut Option<UserTokens>,
    ) -> Result<Option<&'k mut UserTokens>, JobError> {
        if known.is_none() {
            let user = target.user(self.target_user).await.map_err(connector)?;
            // The document binds an agent to a user by the user's personal tenant; without one
            // there is nothing to bind to (never the customer tenant: the machine would be no one's).
            let Some(personal_tenant) = user.personal_tenant_id else {
                tracing::warn!(machine = self.machine_id, user = %self.target_user, "the cloud user has no personal tenant: no registration token yet");
                return Err(JobError::Retry(
                    "the machine's cloud user has no personal tenant yet".into(),
                ));
            };
            let scopes = vec![format!(
                "urn:acronis.com:tenant-id:{personal_tenant}:backup_agent_admin"
            )];
            let held = tokens::held_registration_tokens(db, self.target_user)
                .await
                .map_err(database)?;
            if is_paused(self.migration).await {
                return Ok(None);
            }
            let leftovers = leftovers_of(target, self.target_tenant, &scopes, &held)
                .await
                .map_err(connector)?;
            *known = Some(UserTokens {
                scopes,
                held,
                leftovers,
            });
        }
        Ok(known.as_mut())
    }

    /// A fresh token made (or found again) and kept, while holding the claim of its user.
    async fn obtain_claimed(
        &self,
        db: &impl ConnectionTrait,
        secrets: &SecretBox,
        target: &dyn TargetApi,
        known: &mut Option<UserTokens>,
    ) -> Result<Obtained, JobError> {
        // A pause stops the calls between two of them: the wait for the workspace's
        // pace before each may be long, and the partner was told the calls stop.
        if is_paused(self.migration).await {
            return Ok(Obtained::Paused);
        }
        let Some(UserTokens {
            scopes,
            held,
            leftovers,
        }) = self.user_tokens(db, target, known).await?
        else {
            return Ok(Obtained::Paused);
        };
        let token = match leftovers.iter().rposition(|t| fresh(&t.expires_at)) {
            Some(newest) => leftovers.remove(newest),
            None if is_paused(self.migration).await => return Ok(Obtained::Paused),
            None => {
                let lifetime = Duration::from_secs(REGISTRATION_DAYS as u64 * 86_400);
                match target
                    .create_registration_token(self.target_tenant, lifetime, scopes)
                    .await
                {
                    Ok(token) => token,
                    Err(e) if may_have_landed(&e) => {
                        // Its answer may be lost, not the token: a new leftover is the one it made.
                        let known: HashSet<String> =
                            leftovers.iter().map(|t| t.id.clone()).collect();
                        let mut found: Vec<RegistrationToken> =
                            leftovers_of(target, self.target_tenant, scopes, held)
                                .await
                                .map_err(|_| connector(e.clone()))?
                                .into_iter()
                                .filter(|t| !known.contains(&t.id))
                                .collect();
                        let Some(made) = found.pop() else {
                            return Err(connector(e));
                        };
                        leftovers.extend(found);
                        tracing::info!(
                            machine = self.machine_id,
                            "a registration token whose answer was lost was found again"
                        );
                        made
                    }
                    Err(e) => return Err(connector(e)),
                }
            }
        };
        let context = sealing_context(self.workspace_id, self.machine_id);
        let sealed = secrets
            .seal(token.token.expose_secret(), &context)
            .map_err(|e| JobError::Fatal(format!("sealing the registration token: {e}")))?;
        tokens::keep_registration(
            db,
            self.workspace_id,
            self.machine_id,
            sealed,
            token.expires_at,
            &token.id,
        )
        .await
        .map_err(database)?;
        held.insert(token.id.clone());
        // Once the new token is kept: the one it replaces and every leftover go.
        let replaced = self
            .replaces
            .filter(|id| *id != token.id)
            .map(str::to_string);
        if let Some(id) = &replaced {
            held.remove(id);
        }
        let going: Vec<(String, Option<RegistrationToken>)> = replaced
            .into_iter()
            .map(|id| (id, None))
            .chain(leftovers.drain(..).map(|t| (t.id.clone(), Some(t))))
            .collect();
        for (id, leftover) in going {
            // Held by no machine, one not revoked now is revoked (or adopted) with the
            // next token made for this user.
            if is_paused(self.migration).await {
                leftovers.extend(leftover);
                continue;
            }
            if let Err(e) = target.revoke_registration_token(&id).await {
                tracing::warn!(error = %e, machine = self.machine_id, token_id = %id, "a registration token could not be revoked yet");
                leftovers.extend(leftover);
            }
        }
        Ok(Obtained::Kept)
    }
}

/// Whether a failed create may still have made its token (the request reached the cloud).
fn may_have_landed(error: &ConnectorError) -> bool {
    error.is_transient()
}

/// The tenant's tokens that are ours and held by no machine, oldest first: exactly
/// our scopes and our lifetime.
async fn leftovers_of(
    target: &dyn TargetApi,
    tenant: Uuid,
    scopes: &[String],
    held: &HashSet<String>,
) -> Result<Vec<RegistrationToken>, ConnectorError> {
    let lifetime = REGISTRATION_DAYS * 86_400;
    let mut ours: Vec<RegistrationToken> = target
        .registration_tokens(tenant)
        .await?
        .into_iter()
        .filter(|t| t.scopes == scopes && !held.contains(&t.id))
        .filter(|t| {
            ((t.expires_at - t.created_at).num_seconds() - lifetime).abs() <= LIFETIME_SLACK_SECS
        })
        .collect();
    ours.sort_by_key(|t| t.created_at);
    Ok(ours)
}
