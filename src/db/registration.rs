//! The registration tokens of released machines: each machine keeps its one
//! token sealed, and the tokens of one cloud user are made under a claim, one
//! request at a time.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use super::{execute, query, statement};

/// Keeps a machine's sealed registration token, its expiry and the cloud's id of
/// it, replacing the one it held (made under [`claim_registration`]).
pub async fn keep_registration(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    sealed: Vec<u8>,
    expires_at: DateTime<Utc>,
    token_id: &str,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE machine_assignments SET registration_token = $1, registration_expires_at = $2, registration_token_id = $3 WHERE workspace_id = $4 AND machine_id = $5",
        vec![sealed.into(), expires_at.into(), token_id.into(), workspace_id.into(), machine_id.into()],
    )
    .await
}

/// Claims the making of registration tokens for a cloud user's machines: true when
/// `claim` holds it now (no one did, or the holder's claim is older than `stale_before`).
pub async fn claim_registration(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    target_user_id: Uuid,
    claim: Uuid,
    stale_before: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let sql = "INSERT INTO registration_claims (workspace_id, target_user_id, claim, claimed_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (workspace_id, target_user_id) DO UPDATE SET claim = excluded.claim, claimed_at = excluded.claimed_at \
               WHERE registration_claims.claimed_at < $5";
    let values = vec![
        workspace_id.into(),
        target_user_id.into(),
        claim.into(),
        Utc::now().into(),
        stale_before.into(),
    ];
    let result = db
        .execute_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Renews a claim of [`claim_registration`] that `claim` still holds.
pub async fn renew_registration_claim(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    target_user_id: Uuid,
    claim: Uuid,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE registration_claims SET claimed_at = $1 WHERE workspace_id = $2 AND target_user_id = $3 AND claim = $4",
        vec![Utc::now().into(), workspace_id.into(), target_user_id.into(), claim.into()],
    )
    .await
}

/// Gives up a claim of [`claim_registration`] (one taken over meanwhile is left alone).
pub async fn release_registration_claim(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    target_user_id: Uuid,
    claim: Uuid,
) -> Result<(), DbErr> {
    execute(
        db,
        "DELETE FROM registration_claims WHERE workspace_id = $1 AND target_user_id = $2 AND claim = $3",
        vec![workspace_id.into(), target_user_id.into(), claim.into()],
    )
    .await
}

/// The cloud's ids of the registration tokens the machines of a cloud user hold, in any workspace.
pub async fn held_registration_tokens(
    db: &impl ConnectionTrait,
    target_user_id: Uuid,
) -> Result<HashSet<String>, DbErr> {
    let sql = "SELECT registration_token_id FROM machine_assignments WHERE target_user_id = $1 AND registration_token_id IS NOT NULL";
    let rows = query(db, sql, vec![target_user_id.into()]).await?;
    rows.into_iter()
        .map(|row| row.try_get::<String>("", "registration_token_id"))
        .collect()
}

/// The machines of a workspace released to a cloud user, by id, with the
/// migration that released each.
pub async fn machines_of_user(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    target_user_id: Uuid,
) -> Result<Vec<(String, Uuid)>, DbErr> {
    let sql = "SELECT machine_id, migration_id FROM machine_assignments \
               WHERE workspace_id = $1 AND target_user_id = $2 ORDER BY machine_id";
    let rows = query(db, sql, vec![workspace_id.into(), target_user_id.into()]).await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get("", "machine_id")?,
                row.try_get("", "migration_id")?,
            ))
        })
        .collect()
}
