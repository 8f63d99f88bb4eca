//! What agents tell of their machine: the client version at check-in, each
//! step of its migration, and the client's log.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use super::agents::{MachineRow, agent_event, transition};
use super::events;
use super::execute;
use super::webhooks::NewDeliveries;
use crate::domain::agent::{Report, Status, moved_message};

/// Keeps the client version a machine's agent reported and the `readiness` it
/// makes; a change of readiness is logged.
pub async fn client_reported(
    db: &impl ConnectionTrait,
    machine: &MachineRow,
    version: &str,
    readiness: Option<&str>,
) -> Result<NewDeliveries, DbErr> {
    execute(
        db,
        "UPDATE source_machines SET reported_client_version = $1, readiness = $2 WHERE workspace_id = $3 AND source_id = $4",
        vec![version.into(), readiness.map(str::to_string).into(), machine.workspace_id.into(), machine.machine_id.as_str().into()],
    )
    .await?;
    if readiness == machine.readiness.as_deref() {
        return Ok(NewDeliveries::default());
    }
    let mut event = agent_event(
        &machine.machine_id,
        "machine.client_updated",
        format!("the agent reports client {version}: the machine can migrate unattended"),
    );
    event.data =
        Some(json!({"client_version": version, "readiness": readiness, "was": machine.readiness}));
    events::record(db, machine.workspace_id, vec![event]).await
}

/// Applies a report that moves a machine from `from` to `to`, and logs the move
/// (answering the webhook deliveries it wrote); `None` when something else moved
/// the machine first (nothing is written).
pub async fn apply_report(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    from: Status,
    to: Status,
    report: &Report,
) -> Result<Option<NewDeliveries>, DbErr> {
    let error = report.error();
    if !transition(db, workspace_id, machine_id, from, to, error).await? {
        return Ok(None);
    }
    let event = agent_event(
        machine_id,
        format!("machine.{}", report.name()),
        moved_message(from, to, error),
    );
    events::record(db, workspace_id, vec![event])
        .await
        .map(Some)
}

/// Logs a report the machine's state does not allow.
pub async fn refuse_report(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    machine_id: &str,
    seq: i64,
    reason: &str,
) -> Result<NewDeliveries, DbErr> {
    let event = agent_event(
        machine_id,
        "machine.report_refused",
        format!("report {seq} refused: {reason}"),
    );
    events::record(db, workspace_id, vec![event]).await
}

/// Keeps a client log (`data`, gzip of `size_bytes` bytes) on its machine.
pub async fn store_log(
    db: &impl ConnectionTrait,
    machine: &MachineRow,
    size_bytes: usize,
    data: Vec<u8>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    let model = entity::machine_log::ActiveModel {
        id: Set(id),
        workspace_id: Set(machine.workspace_id),
        machine_id: Set(machine.machine_id.clone()),
        uploaded_at: Set(Utc::now()),
        size_bytes: Set(size_bytes as i64),
        data: Set(data),
    };
    entity::machine_log::Entity::insert(model)
        .exec_without_returning(db)
        .await?;
    Ok(id)
}
