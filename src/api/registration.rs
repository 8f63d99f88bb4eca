//! A released machine's registration as a check-in hands it: the cloud's address
//! and the one-time token the `registration` job made (`jobs::registration`),
//! opened from its seal. A check-in never calls the cloud: a machine without a
//! live token is told to come back soon and its job is scheduled (one per
//! cloud user at a time); a token with less than a day left is handed while its
//! renewal is scheduled.

use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::api::state::AppState;
use crate::db::agents::MachineRow;
use crate::error::ApiError;
use crate::jobs::IssueRegistration;
use crate::jobs::registration::{fresh, sealing_context};
use crate::queue;

/// A kept token closer to its expiry than this is not handed: the agent could
/// not register with it in time.
const HAND_OUT_SLACK_MINUTES: i64 = 60;

/// What a released machine's check-in hands for its registration.
pub enum Registration {
    /// The cloud's address and the token.
    Ready(Value),
    /// No live token yet: its job is scheduled.
    Pending,
}

/// The machine's registration (`None` for a machine with no target yet).
pub async fn machine_registration(
    state: &AppState,
    machine: &MachineRow,
) -> Result<Option<Registration>, ApiError> {
    let Some((target_user, _)) = machine.target else {
        return Ok(None);
    };
    let live = machine.registration.as_ref().filter(|(_, expires)| {
        *expires > Utc::now() + chrono::Duration::minutes(HAND_OUT_SLACK_MINUTES)
    });
    if live.is_none_or(|(_, expires)| !fresh(expires)) {
        // Made, or renewed, by a job; a job already queued or running is that one.
        queue::enqueue(
            &state.db,
            IssueRegistration::of(machine.tenant_id, machine.workspace_id, target_user),
        )
        .await?;
    }
    let Some((sealed, expires_at)) = live else {
        return Ok(Some(Registration::Pending));
    };
    let context = sealing_context(machine.workspace_id, &machine.machine_id);
    let token = state
        .secrets
        .open(sealed, &context)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(Registration::Ready(json!({
        "address": machine.target_url,
        "token": token.expose_secret(),
        "expires_at": expires_at,
    }))))
}
