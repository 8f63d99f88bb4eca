//! Agents: enrollment, token look-up, and a machine's migration status as its
//! agent reports it. Status changes are compare-and-set on (state, last
//! sequence number), so two reports racing cannot both apply.

use chrono::{DateTime, Utc};
use entity::agent::{self, Entity as Agents};
use entity::workspace::{Column as WorkspaceColumn, Entity as Workspaces};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    FromQueryResult, QuerySelect,
};
use uuid::Uuid;

use super::events::{self, NewEvent};
use super::webhooks::NewDeliveries;
use super::{execute, query, statement};
use crate::domain::agent::{Phase, Status};
use crate::domain::machines::MachineState;

/// The digest of the workspace's enrollment secret; `None` for an unknown
/// workspace or one without a secret.
pub async fn enrollment_secret(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> Result<Option<String>, DbErr> {
    let hash: Option<Option<String>> = Workspaces::find_by_id(workspace_id)
        .select_only()
        .column(WorkspaceColumn::EnrollmentSecretHash)
        .into_tuple()
        .one(db)
        .await?;
    Ok(hash.flatten())
}

/// Sets the workspace's enrollment secret (its digest), logged as `actor`'s.
pub async fn set_enrollment_secret(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    hash: &str,
    actor: String,
) -> Result<NewDeliveries, DbErr> {
    execute(
        db,
        "UPDATE workspaces SET enrollment_secret_hash = $1 WHERE id = $2",
        vec![hash.into(), workspace_id.into()],
    )
    .await?;
    let event = NewEvent {
        actor,
        subject_kind: "workspace",
        subject_id: workspace_id.to_string(),
        migration_id: None,
        kind: "workspace.enrollment_secret_rotated".into(),
        message: "a new enrollment secret was set; the previous one no longer enrolls agents"
            .into(),
        data: None,
    };
    events::record(db, workspace_id, vec![event]).await
}

/// Enrolls (or re-enrolls, replacing the token) the agent of a machine.
pub async fn enroll(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    token_hash: &str,
) -> Result<NewDeliveries, DbErr> {
    Agents::insert(agent::ActiveModel {
        workspace_id: Set(workspace_id),
        machine_id: Set(machine_id.to_string()),
        token_hash: Set(token_hash.to_string()),
        enrolled_at: Set(Utc::now()),
        // A re-enrolled agent keeps its last check-in.
        last_check_in_at: NotSet,
    })
    .on_conflict(
        OnConflict::columns([agent::Column::WorkspaceId, agent::Column::MachineId])
            .update_columns([agent::Column::TokenHash, agent::Column::EnrolledAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let event = agent_event(
        machine_id,
        "agent.enrolled",
        "the agent enrolled; an earlier token of this machine no longer works",
    );
    events::record(db, workspace_id, vec![event]).await
}

/// An event of a machine told by its agent.
pub(super) fn agent_event(
    machine_id: &str,
    kind: impl Into<String>,
    message: impl Into<String>,
) -> NewEvent {
    NewEvent {
        actor: format!("agent:{machine_id}"),
        subject_kind: "machine",
        subject_id: machine_id.to_string(),
        migration_id: None,
        kind: kind.into(),
        message: message.into(),
        data: None,
    }
}

/// What the agent API needs of a machine.
#[derive(Clone, Debug)]
pub struct MachineRow {
    pub workspace_id: Uuid,
    /// The partner tenant the workspace belongs to.
    pub tenant_id: Uuid,
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

const MACHINE_COLUMNS: &str = "SELECT m.workspace_id, w.tenant_id, w.target_url, m.source_id, m.parent_source_id, m.data, m.readiness, m.migration_state, m.migration_phase, m.last_report_seq, \
     m.error_code, m.error_message, m.state_changed_at, g.last_check_in_at, m.reported_client_version, m.not_seen_at, a.plans, \
     a.target_user_id, a.target_tenant_id, a.registration_token, a.registration_expires_at, a.registration_token_id \
     FROM source_machines m JOIN workspaces w ON w.id = m.workspace_id \
     LEFT JOIN machine_assignments a ON a.workspace_id = m.workspace_id AND a.machine_id = m.source_id";

/// [`MACHINE_COLUMNS`]' join of the machine's agent (its last check-in), for a
/// machine that may have none.
const ANY_AGENT: &str =
    "LEFT JOIN agents g ON g.workspace_id = m.workspace_id AND g.machine_id = m.source_id";

/// The columns of [`MACHINE_COLUMNS`] as stored.
#[derive(FromQueryResult)]
struct MachineColumns {
    workspace_id: Uuid,
    tenant_id: Uuid,
    target_url: String,
    source_id: String,
    parent_source_id: Option<String>,
    data: String,
    readiness: Option<String>,
    migration_state: String,
    migration_phase: Option<String>,
    last_report_seq: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    state_changed_at: Option<DateTime<Utc>>,
    last_check_in_at: Option<DateTime<Utc>>,
    reported_client_version: Option<String>,
    not_seen_at: Option<DateTime<Utc>>,
    plans: Option<String>,
    target_user_id: Option<Uuid>,
    target_tenant_id: Option<Uuid>,
    registration_token: Option<Vec<u8>>,
    registration_expires_at: Option<DateTime<Utc>>,
    registration_token_id: Option<String>,
}

impl From<MachineColumns> for MachineRow {
    fn from(m: MachineColumns) -> Self {
        Self {
            workspace_id: m.workspace_id,
            tenant_id: m.tenant_id,
            target_url: m.target_url,
            machine_id: m.source_id,
            user_id: m.parent_source_id,
            data: serde_json::from_str(&m.data).unwrap_or_default(),
            readiness: m.readiness,
            status: Status {
                state: MachineState::parse(&m.migration_state).unwrap_or(MachineState::Idle),
                phase: m.migration_phase.as_deref().and_then(Phase::parse),
                last_seq: m.last_report_seq,
            },
            error_code: m.error_code,
            error_message: m.error_message,
            state_changed_at: m.state_changed_at,
            last_check_in_at: m.last_check_in_at,
            reported_client_version: m.reported_client_version,
            not_seen_at: m.not_seen_at,
            plans: m.plans.and_then(|p| serde_json::from_str(&p).ok()),
            target: m.target_user_id.zip(m.target_tenant_id),
            registration: m.registration_token.zip(m.registration_expires_at),
            registration_token_id: m.registration_token_id,
        }
    }
}

fn parse(row: sea_orm::QueryResult) -> Result<MachineRow, DbErr> {
    MachineColumns::from_query_result(&row, "").map(MachineRow::from)
}

/// The machines of agent tokens (digests), in one query (the check-in path;
/// see `auth::agent::AgentTokens`): each found token's digest with its
/// machine; a token no agent holds is absent.
pub async fn machines_of_tokens(
    db: &impl ConnectionTrait,
    token_hashes: &[&str],
) -> Result<Vec<(String, MachineRow)>, DbErr> {
    if token_hashes.is_empty() {
        return Ok(Vec::new());
    }
    // PostgreSQL: one statement whatever the number of tokens (the digests, hex, joined
    // by commas), so that each connection plans it once, not once per number of tokens.
    let (matching, values) = match db.get_database_backend() {
        DatabaseBackend::Postgres => (
            "= ANY (string_to_array($1, ','))".to_string(),
            vec![token_hashes.join(",").into()],
        ),
        _ => (
            format!(
                "IN ({})",
                (1..=token_hashes.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            token_hashes.iter().map(|h| (*h).into()).collect(),
        ),
    };
    // The machine's columns with the token's digest in front.
    let columns = MACHINE_COLUMNS.replacen("SELECT ", "SELECT g.token_hash, ", 1);
    let sql = format!(
        "{columns} JOIN agents g ON g.workspace_id = m.workspace_id AND g.machine_id = m.source_id WHERE g.token_hash {matching}"
    );
    query(db, &sql, values)
        .await?
        .into_iter()
        .map(|row| {
            let hash = row.try_get::<String>("", "token_hash")?;
            Ok((hash, parse(row)?))
        })
        .collect()
}

pub async fn machine(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
) -> Result<Option<MachineRow>, DbErr> {
    let sql =
        format!("{MACHINE_COLUMNS} {ANY_AGENT} WHERE m.workspace_id = $1 AND m.source_id = $2");
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
    let mut sql = format!("{MACHINE_COLUMNS} {ANY_AGENT} WHERE m.workspace_id = $1");
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

/// The last check-in of the agent of the `source_machines` row at hand.
const LAST_CHECK_IN: &str = "SELECT g.last_check_in_at FROM agents g \
     WHERE g.workspace_id = source_machines.workspace_id AND g.machine_id = source_machines.source_id";

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
    let sql = format!(
        "UPDATE source_machines SET not_seen_at = $1 \
         WHERE migration_state IN ('pending', 'migrating') AND not_seen_at IS NULL AND COALESCE(({LAST_CHECK_IN}), state_changed_at) < $2 \
         RETURNING workspace_id, source_id, migration_state, ({LAST_CHECK_IN}) AS last_check_in_at, state_changed_at"
    );
    let rows = query(db, &sql, vec![now.into(), cutoff.into()]).await?;
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
