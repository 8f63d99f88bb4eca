//! When each agent last checked in.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use super::agents::agent_event;
use super::events::{self, NewEvent};
use super::{execute, query};

/// Check-in times are written in batches: one statement per workspace and
/// second instead of a write per check-in (SQLite writers queue). A crash loses
/// at most the last second's times; nothing else depends on them.
#[derive(Default)]
pub struct CheckIns {
    pending: Mutex<HashMap<Uuid, Vec<String>>>,
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

    /// Writes what was recorded since the last flush, stamped now, with a
    /// `machine.seen_again` event for each machine that had not been seen; answers
    /// how many were written and the webhook deliveries whose jobs are to be queued.
    pub async fn flush(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<(usize, super::webhooks::NewDeliveries), DbErr> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let now = Utc::now();
        let mut written = 0;
        let mut deliveries = super::webhooks::NewDeliveries::default();
        for (workspace_id, mut machines) in pending {
            machines.sort();
            machines.dedup();
            for batch in machines.chunks(500) {
                let machines = || batch.iter().map(|m| sea_orm::Value::from(m.as_str()));
                let sql = format!(
                    "UPDATE agents SET last_check_in_at = $1 WHERE workspace_id = $2 AND machine_id IN ({})",
                    placeholders(3, batch.len())
                );
                let mut values: Vec<sea_orm::Value> = vec![now.into(), workspace_id.into()];
                values.extend(machines());
                execute(db, &sql, values).await?;
                // A machine flagged as not seen is back: clear the flag (so a next absence is told again) and say so.
                let sql = format!(
                    "UPDATE source_machines SET not_seen_at = NULL WHERE workspace_id = $1 AND not_seen_at IS NOT NULL AND source_id IN ({}) RETURNING source_id",
                    placeholders(2, batch.len())
                );
                let mut values: Vec<sea_orm::Value> = vec![workspace_id.into()];
                values.extend(machines());
                let back: Vec<NewEvent> = query(db, &sql, values)
                    .await?
                    .into_iter()
                    .filter_map(|row| row.try_get::<String>("", "source_id").ok())
                    .map(|machine_id| {
                        agent_event(
                            &machine_id,
                            "machine.seen_again",
                            "the agent checked in again after it had not been seen",
                        )
                    })
                    .collect();
                deliveries.add(events::record(db, workspace_id, back).await?);
                written += batch.len();
            }
        }
        Ok((written, deliveries))
    }
}

/// `$from, $from+1, …`: `count` numbered placeholders.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
