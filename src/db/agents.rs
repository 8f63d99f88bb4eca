//! Agents: enrollment, token look-up, and a machine's migration status as its
//! agent reports it. Status changes are compare-and-set on (state, last
//! sequence number), so two reports racing cannot both apply.

use chrono::{DateTime, Utc};
use entity::agent::{self, Entity as Agents};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use uuid::Uuid;

use super::events::{self, NewEvent};
use super::{execute, query, statement};
use crate::domain::agent::{Phase, Status};
use crate::domain::machines::MachineState;

pub async fn set_enrollment_secret(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    hash: &str,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE workspaces SET enrollment_secret_hash = $1 WHERE id = $2",
        vec![hash.into(), workspace_id.into()],
    )
    .await
}

/// Enrolls (or re-enrolls, replacing the token) the agent of a machine.
pub async fn enroll(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    token_hash: &str,
) -> Result<(), DbErr> {
    Agents::insert(agent::ActiveModel {
        workspace_id: Set(workspace_id),
        machine_id: Set(machine_id.to_string()),
        token_hash: Set(token_hash.to_string()),
        enrolled_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([agent::Column::WorkspaceId, agent::Column::MachineId])
            .update_columns([agent::Column::TokenHash, agent::Column::EnrolledAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map(drop)
}

/// What the agent API needs of a machine.
#[derive(Clone, Debug)]
pub struct MachineRow {
    pub workspace_id: Uuid,
    /// The workspace's cloud: where the machine's agent registers.
    pub target_url: String,
    pub machine_id: String,
    pub user_id: Option<String>,
    pub data: serde_json::Value,
    pub readiness: Option<String>,
    pub status: Status,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub state_changed_at: Option<DateTime<Utc>>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    /// The client version its agent last reported at check-in.
    pub reported_client_version: Option<String>,
    /// Since when it is flagged as not seen (see [`flag_not_seen`]).
    pub not_seen_at: Option<DateTime<Utc>>,
    /// The converted backup plans, once the machine was released.
    pub plans: Option<serde_json::Value>,
    /// Where the machine goes in the target, once released.
    pub target: Option<(Uuid, Uuid)>,
    /// The sealed one-time registration token and its expiry.
    pub registration: Option<(Vec<u8>, DateTime<Utc>)>,
    /// The cloud's id of that token.
    pub registration_token_id: Option<String>,
}

const MACHINE_COLUMNS: &str = "SELECT m.workspace_id, w.target_url, m.source_id, m.parent_source_id, m.data, m.readiness, m.migration_state, m.migration_phase, m.last_report_seq, \
     m.error_code, m.error_message, m.state_changed_at, m.last_check_in_at, m.reported_client_version, m.not_seen_at, a.plans, \
     a.target_user_id, a.target_tenant_id, a.registration_token, a.registration_expires_at, a.registration_token_id \
     FROM source_machines m JOIN workspaces w ON w.id = m.workspace_id \
     LEFT JOIN machine_assignments a ON a.workspace_id = m.workspace_id AND a.machine_id = m.source_id";

fn parse(row: sea_orm::QueryResult) -> Result<MachineRow, DbErr> {
    let state: String = row.try_get("", "migration_state")?;
    let phase: Option<String> = row.try_get("", "migration_phase")?;
    let data: String = row.try_get("", "data")?;
    let plans: Option<String> = row.try_get("", "plans")?;
    Ok(MachineRow {
        workspace_id: row.try_get("", "workspace_id")?,
        target_url: row.try_get("", "target_url")?,
        machine_id: row.try_get("", "source_id")?,
        user_id: row.try_get("", "parent_source_id")?,
        data: serde_json::from_str(&data).unwrap_or_default(),
        readiness: row.try_get("", "readiness")?,
        status: Status {
            state: MachineState::parse(&state).unwrap_or(MachineState::Idle),
            phase: phase.as_deref().and_then(Phase::parse),
            last_seq: row.try_get("", "last_report_seq")?,
        },
        error_code: row.try_get("", "error_code")?,
        error_message: row.try_get("", "error_message")?,
        state_changed_at: row.try_get("", "state_changed_at")?,
        last_check_in_at: row.try_get("", "last_check_in_at")?,
        reported_client_version: row.try_get("", "reported_client_version")?,
        not_seen_at: row.try_get("", "not_seen_at")?,
        plans: plans.and_then(|p| serde_json::from_str(&p).ok()),
        target: row
            .try_get::<Option<Uuid>>("", "target_user_id")?
            .zip(row.try_get::<Option<Uuid>>("", "target_tenant_id")?),
        registration: row
            .try_get::<Option<Vec<u8>>>("", "registration_token")?
            .zip(row.try_get::<Option<DateTime<Utc>>>("", "registration_expires_at")?),
        registration_token_id: row.try_get("", "registration_token_id")?,
    })
}

/// Keeps the client version a machine's agent reported and the readiness it makes.
pub async fn client_reported(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    version: &str,
    readiness: Option<&str>,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE source_machines SET reported_client_version = $1, readiness = $2 WHERE workspace_id = $3 AND source_id = $4",
        vec![version.into(), readiness.map(str::to_string).into(), workspace_id.into(), machine_id.into()],
    )
    .await
}

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
) -> Result<std::collections::HashSet<String>, DbErr> {
    let sql = "SELECT registration_token_id FROM machine_assignments WHERE target_user_id = $1 AND registration_token_id IS NOT NULL";
    let rows = query(db, sql, vec![target_user_id.into()]).await?;
    rows.into_iter()
        .map(|row| row.try_get::<String>("", "registration_token_id"))
        .collect()
}

/// The machine an agent token belongs to, in one query (the check-in path).
pub async fn machine_of_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<MachineRow>, DbErr> {
    let sql = format!(
        "{MACHINE_COLUMNS} JOIN agents g ON g.workspace_id = m.workspace_id AND g.machine_id = m.source_id WHERE g.token_hash = $1"
    );
    query(db, &sql, vec![token_hash.into()])
        .await?
        .into_iter()
        .next()
        .map(parse)
        .transpose()
}

/// Check-in times are written in batches: one statement per workspace and
/// second instead of a write per check-in (SQLite writers queue). A crash loses
/// at most the last second's times; nothing else depends on them.
#[derive(Default)]
pub struct CheckIns {
    pending: std::sync::Mutex<std::collections::HashMap<Uuid, Vec<String>>>,
}

impl CheckIns {
    pub fn record(&self, workspace_id: Uuid, machine_id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(workspace_id)
            .or_default()
            .push(machine_id.to_string());
    }

    /// Writes what was recorded since the last flush, stamped now.
    pub async fn flush(&self, db: &impl ConnectionTrait) -> Result<usize, DbErr> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let now = Utc::now();
        let mut written = 0;
        for (workspace_id, mut machines) in pending {
            machines.sort();
            machines.dedup();
            for batch in machines.chunks(500) {
                let placeholders: Vec<String> =
                    (0..batch.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "UPDATE source_machines SET last_check_in_at = $1 WHERE workspace_id = $2 AND source_id IN ({})",
                    placeholders.join(", ")
                );
                let mut values: Vec<sea_orm::Value> = vec![now.into(), workspace_id.into()];
                values.extend(batch.iter().map(|m| sea_orm::Value::from(m.as_str())));
                execute(db, &sql, values).await?;
                // A machine flagged as not seen is back: clear the flag (so a next absence is told again) and say so.
                let sql = format!(
                    "UPDATE source_machines SET not_seen_at = NULL WHERE workspace_id = $1 AND not_seen_at IS NOT NULL AND source_id IN ({}) RETURNING source_id",
                    (0..batch.len())
                        .map(|i| format!("${}", i + 2))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut values: Vec<sea_orm::Value> = vec![workspace_id.into()];
                values.extend(batch.iter().map(|m| sea_orm::Value::from(m.as_str())));
                let back = query(db, &sql, values).await?;
                let back: Vec<NewEvent> = back
                    .into_iter()
                    .filter_map(|row| row.try_get::<String>("", "source_id").ok())
                    .map(|machine_id| NewEvent {
                        actor: format!("agent:{machine_id}"),
                        subject_kind: "machine",
                        subject_id: machine_id,
                        migration_id: None,
                        kind: "machine.seen_again".into(),
                        message: "the agent checked in again after it had not been seen".into(),
                        data: None,
                    })
                    .collect();
                events::record(db, workspace_id, back).await?;
                written += batch.len();
            }
        }
        Ok(written)
    }
}

pub async fn machine(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
) -> Result<Option<MachineRow>, DbErr> {
    let sql = format!("{MACHINE_COLUMNS} WHERE m.workspace_id = $1 AND m.source_id = $2");
    let rows = query(db, &sql, vec![workspace_id.into(), machine_id.into()]).await?;
    rows.into_iter().next().map(parse).transpose()
}

/// The workspace's machines by id, optionally in one state; `limit + 1` rows.
pub async fn machines(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    state: Option<MachineState>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<MachineRow>, DbErr> {
    let mut sql = format!("{MACHINE_COLUMNS} WHERE m.workspace_id = $1");
    let mut values: Vec<sea_orm::Value> = vec![workspace_id.into()];
    if let Some(state) = state {
        values.push(state.as_str().into());
        sql.push_str(&format!(" AND m.migration_state = ${}", values.len()));
    }
    if let Some(after) = after {
        values.push(after.into());
        sql.push_str(&format!(" AND m.source_id > ${}", values.len()));
    }
    sql.push_str(&format!(" ORDER BY m.source_id LIMIT {}", limit + 1));
    query(db, &sql, values)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// Every workspace's machines by migration state, as the machine listing counts
/// them (removed ones included): one scan of the `source_machines_state` index.
pub async fn machine_counts(db: &impl ConnectionTrait) -> Result<Vec<(Uuid, String, i64)>, DbErr> {
    let sql = "SELECT workspace_id, migration_state, COUNT(*) AS n FROM source_machines GROUP BY workspace_id, migration_state";
    let rows = query(db, sql, vec![]).await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get("", "workspace_id")?,
                r.try_get("", "migration_state")?,
                r.try_get("", "n")?,
            ))
        })
        .collect()
}

/// Moves a machine from `from` to `to` if it is still at `from`; false when
/// something else moved it first. `error` is kept for a failure, cleared otherwise.
pub async fn transition(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    from: Status,
    to: Status,
    error: Option<(&str, &str)>,
) -> Result<bool, DbErr> {
    let sql = "UPDATE source_machines SET migration_state = $1, migration_phase = $2, last_report_seq = $3, error_code = $4, error_message = $5, \
               state_changed_at = CASE WHEN migration_state = $1 THEN state_changed_at ELSE $6 END, \
               not_seen_at = CASE WHEN migration_state = $1 THEN not_seen_at ELSE NULL END \
               WHERE workspace_id = $7 AND source_id = $8 AND migration_state = $9 AND last_report_seq = $10";
    let values = vec![
        to.state.as_str().into(),
        to.phase.map(|p| p.as_str().to_string()).into(),
        to.last_seq.into(),
        error.map(|(code, _)| code.to_string()).into(),
        error.map(|(_, message)| message.to_string()).into(),
        Utc::now().into(),
        workspace_id.into(),
        machine_id.into(),
        from.state.as_str().into(),
        from.last_seq.into(),
    ];
    let result = db
        .execute_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    Ok(result.rows_affected() > 0)
}

/// A pending or migrating machine just flagged as not seen.
#[derive(Clone, Debug)]
pub struct NotSeen {
    pub workspace_id: Uuid,
    pub machine_id: String,
    pub state: String,
    /// When its agent last checked in (`None`: never since it was released).
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub state_changed_at: Option<DateTime<Utc>>,
}

/// Flags the pending and migrating machines not seen since `cutoff` (their last
/// check-in, or when they entered their state), once per absence: a machine
/// already flagged is not returned again until it checks in. Two workers
/// sweeping at once flag each machine once.
pub async fn flag_not_seen(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<Vec<NotSeen>, DbErr> {
    let sql = "UPDATE source_machines SET not_seen_at = $1 \
               WHERE migration_state IN ('pending', 'migrating') AND not_seen_at IS NULL AND COALESCE(last_check_in_at, state_changed_at) < $2 \
               RETURNING workspace_id, source_id, migration_state, last_check_in_at, state_changed_at";
    let rows = query(db, sql, vec![now.into(), cutoff.into()]).await?;
    rows.into_iter()
        .map(|row| {
            Ok(NotSeen {
                workspace_id: row.try_get("", "workspace_id")?,
                machine_id: row.try_get("", "source_id")?,
                state: row.try_get("", "migration_state")?,
                last_check_in_at: row.try_get("", "last_check_in_at")?,
                state_changed_at: row.try_get("", "state_changed_at")?,
            })
        })
        .collect()
}

/// The migrations that released these machines, by machine id.
pub async fn releasing_migrations(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machines: &[&str],
) -> Result<std::collections::HashMap<String, Uuid>, DbErr> {
    let mut found = std::collections::HashMap::new();
    for batch in machines.chunks(500) {
        let placeholders: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT machine_id, migration_id FROM machine_assignments WHERE workspace_id = $1 AND machine_id IN ({})",
            placeholders.join(", ")
        );
        let mut values: Vec<sea_orm::Value> = vec![workspace_id.into()];
        values.extend(batch.iter().map(|m| sea_orm::Value::from(*m)));
        for row in query(db, &sql, values).await? {
            found.insert(
                row.try_get("", "machine_id")?,
                row.try_get("", "migration_id")?,
            );
        }
    }
    Ok(found)
}

/// When each migrated machine of the workspace's live snapshot migrated (the
/// time it entered `migrated`, which it never leaves).
pub async fn migrated_machines(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> Result<std::collections::HashMap<String, DateTime<Utc>>, DbErr> {
    let sql = "SELECT source_id, state_changed_at FROM source_machines WHERE workspace_id = $1 AND migration_state = $2 AND removed_at IS NULL";
    let rows = query(
        db,
        sql,
        vec![workspace_id.into(), MachineState::Migrated.as_str().into()],
    )
    .await?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        // Every move into a state stamps it; a migrated machine without a time counts as not migrated.
        if let Some(at) = row.try_get::<Option<DateTime<Utc>>>("", "state_changed_at")? {
            out.insert(row.try_get("", "source_id")?, at);
        }
    }
    Ok(out)
}
