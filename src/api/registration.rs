//! A released machine's registration token: the one-time code its cloud agent
//! registers with, bound to the machine's cloud user. At most one live token per
//! machine:
//!
//! - Tokens of one cloud user are made one request at a time (a claim in the
//!   database per user), so two check-ins of one machine, or of two machines of
//!   one user, never make tokens side by side.
//! - Under that claim, the tenant's listing tells our leftovers apart: a token with
//!   exactly our scope and our lifetime that no machine holds was made by a request
//!   of ours whose answer was lost (or a renewal whose revoke failed). A fresh one
//!   is adopted instead of making another; the others are revoked.
//! - A create that fails in a way that may hide a token made is followed by the
//!   listing again, which finds it.
//! - A renewal (less than a day left) revokes the old token once the new one is kept.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::state::AppState;
use crate::connectors::ConnectorError;
use crate::connectors::target::{RegistrationToken, TargetApi};
use crate::db::agents::{self as store, MachineRow};
use crate::db::registration as tokens;
use crate::error::ApiError;

/// How long a registration token lives.
pub const REGISTRATION_DAYS: i64 = 7;
/// A token with less than this left is renewed.
const RENEW_WITHIN_DAYS: i64 = 1;
/// How long a check-in waits for another request making a token of the same user.
const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// A claim older than this is taken over (its holder died or hangs).
const CLAIM_LEASE_SECS: i64 = 300;
/// Slack between our clock and the cloud's when a token's lifetime is read.
const LIFETIME_SLACK_SECS: i64 = 120;

fn fresh(expires_at: &DateTime<Utc>) -> bool {
    *expires_at > Utc::now() + chrono::Duration::days(RENEW_WITHIN_DAYS)
}

fn unavailable(machine: &str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(%error, machine, "no registration token from the cloud");
    ApiError::Unavailable("The cloud did not issue a registration token: check in again later.")
}

/// The machine's registration (`None` for a machine with no target yet): the
/// cloud's address and its token, made at its first `migrate` instructions and
/// kept sealed, renewed when less than a day is left.
pub async fn machine_registration(
    state: &AppState,
    workspace_id: Uuid,
    machine: &MachineRow,
) -> Result<Option<Value>, ApiError> {
    let Some((target_user, target_tenant)) = machine.target else {
        return Ok(None);
    };
    let context = format!(
        "machine_assignments:{workspace_id}:{}:registration_token",
        machine.machine_id
    );
    let registrant = Registrant {
        workspace_id,
        machine_id: &machine.machine_id,
        target_user,
        target_tenant,
        context: &context,
    };
    let (sealed, expires_at) = match machine
        .registration
        .clone()
        .filter(|(_, expires)| fresh(expires))
    {
        Some(kept) => kept,
        None => registrant.obtain(state).await?,
    };
    let token = state
        .secrets
        .open(&sealed, &context)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(
        json!({"address": machine.target_url, "token": token.expose_secret(), "expires_at": expires_at}),
    ))
}

/// The machine a registration token is made for: its cloud user and tenant,
/// and the context its token is sealed under.
struct Registrant<'a> {
    workspace_id: Uuid,
    machine_id: &'a str,
    target_user: Uuid,
    target_tenant: Uuid,
    context: &'a str,
}

impl Registrant<'_> {
    /// A fresh token for the machine, under the claim of its user.
    async fn obtain(&self, state: &AppState) -> Result<(Vec<u8>, DateTime<Utc>), ApiError> {
        let (workspace, user) = (self.workspace_id, self.target_user);
        let claim = Uuid::new_v4();
        let waited_since = Instant::now();
        loop {
            let stale_before = Utc::now() - chrono::Duration::seconds(CLAIM_LEASE_SECS);
            if tokens::claim_registration(&state.db, workspace, user, claim, stale_before).await? {
                break;
            }
            // Another request makes a token of this user now: it may be this machine's.
            if let Some(kept) = kept_fresh(state, workspace, self.machine_id).await? {
                return Ok(kept);
            }
            if waited_since.elapsed() > CLAIM_WAIT {
                return Err(ApiError::Unavailable(
                    "Another registration token of this user is being made: check in again later.",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let made = self.obtain_claimed(state).await;
        tokens::release_registration_claim(&state.db, workspace, user, claim).await?;
        made
    }

    /// A fresh token made (or found again) while holding the claim of its user.
    async fn obtain_claimed(&self, state: &AppState) -> Result<(Vec<u8>, DateTime<Utc>), ApiError> {
        let Registrant {
            workspace_id,
            machine_id,
            target_user,
            target_tenant,
            context,
        } = *self;
        // A check-in of this machine that held the claim before us may have made one.
        let machine = store::machine(&state.db, workspace_id, machine_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        if let Some(kept) = machine
            .registration
            .clone()
            .filter(|(_, expires)| fresh(expires))
        {
            return Ok(kept);
        }
        // The workspace is read only to make a token, not on every poll.
        let workspace = entity::workspace::Entity::find_by_id(workspace_id)
            .one(&state.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        let clients = state
            .clients
            .clients(&workspace, &state.secrets)
            .map_err(|e| unavailable(machine_id, &e))?;
        let target: &dyn TargetApi = clients.target.as_ref();
        let user = target
            .user(target_user)
            .await
            .map_err(|e| unavailable(machine_id, &e))?;
        // The document binds an agent to a user by the user's personal tenant; without one
        // there is nothing to bind to (never the customer tenant: the machine would be no one's).
        let Some(personal_tenant) = user.personal_tenant_id else {
            tracing::warn!(machine = machine_id, user = %target_user, "the cloud user has no personal tenant: no registration token yet");
            return Err(ApiError::Unavailable(
                "The machine's cloud user has no personal tenant yet: check in again later.",
            ));
        };
        let scopes = vec![format!(
            "urn:acronis.com:tenant-id:{personal_tenant}:backup_agent_admin"
        )];
        let held = tokens::held_registration_tokens(&state.db, target_user).await?;
        let mut leftovers = leftovers_of(target, target_tenant, &scopes, &held)
            .await
            .map_err(|e| unavailable(machine_id, &e))?;
        let token = match leftovers.iter().rposition(|t| fresh(&t.expires_at)) {
            Some(newest) => leftovers.remove(newest),
            None => {
                let lifetime = Duration::from_secs(REGISTRATION_DAYS as u64 * 86_400);
                match target
                    .create_registration_token(target_tenant, lifetime, &scopes)
                    .await
                {
                    Ok(token) => token,
                    Err(e) if may_have_landed(&e) => {
                        // Its answer may be lost, not the token: a new leftover is the one it made.
                        let known: HashSet<String> =
                            leftovers.iter().map(|t| t.id.clone()).collect();
                        let mut found: Vec<RegistrationToken> =
                            leftovers_of(target, target_tenant, &scopes, &held)
                                .await
                                .map_err(|_| unavailable(machine_id, &e))?
                                .into_iter()
                                .filter(|t| !known.contains(&t.id))
                                .collect();
                        let Some(made) = found.pop() else {
                            return Err(unavailable(machine_id, &e));
                        };
                        leftovers.extend(found);
                        tracing::info!(
                            machine = machine_id,
                            "a registration token whose answer was lost was found again"
                        );
                        made
                    }
                    Err(e) => return Err(unavailable(machine_id, &e)),
                }
            }
        };
        let sealed = state
            .secrets
            .seal(token.token.expose_secret(), context)
            .map_err(|e| ApiError::Internal(e.into()))?;
        tokens::keep_registration(
            &state.db,
            workspace_id,
            machine_id,
            sealed.clone(),
            token.expires_at,
            &token.id,
        )
        .await?;
        // Once the new token is kept: the one it replaces and every leftover go.
        let replaced = machine.registration_token_id.filter(|id| *id != token.id);
        for id in replaced
            .into_iter()
            .chain(leftovers.into_iter().map(|t| t.id))
        {
            if let Err(e) = target.revoke_registration_token(&id).await {
                // Not held by any machine, it is revoked by the next token made for this user.
                tracing::warn!(error = %e, machine = machine_id, token_id = %id, "a registration token could not be revoked yet");
            }
        }
        Ok((sealed, token.expires_at))
    }
}

async fn kept_fresh(
    state: &AppState,
    workspace_id: Uuid,
    machine_id: &str,
) -> Result<Option<(Vec<u8>, DateTime<Utc>)>, ApiError> {
    let machine = store::machine(&state.db, workspace_id, machine_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(machine.registration.filter(|(_, expires)| fresh(expires)))
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
