//! The machine watch: every minute, each worker flags the pending and migrating
//! machines whose agents have not been seen for more than two check-in
//! intervals and records `machine.not_seen` for each, once per absence (the
//! flag is cleared, with `machine.seen_again`, when the agent checks in).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::watch;

use crate::db::agents as store;
use crate::db::events::NewEvent;
use crate::domain::agent::CHECK_IN_INTERVAL_MINUTES;

const EVERY: Duration = Duration::from_secs(60);

/// Sweeps until `shutdown` turns true.
pub async fn run(db: DatabaseConnection, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            Ok(()) = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        if let Err(error) = not_seen(&db, Utc::now()).await {
            tracing::warn!(%error, "the machine watch could not run; it tries again in a minute");
        }
    }
}

/// Flags the machines not seen as of `now` and records one `machine.not_seen`
/// event each, in one transaction; the number flagged.
pub async fn not_seen(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<usize, DbErr> {
    let cutoff = now - chrono::Duration::minutes(2 * CHECK_IN_INTERVAL_MINUTES);
    let tx = db.begin().await?;
    let flagged = store::flag_not_seen(&tx, now, cutoff).await?;
    let mut by_workspace: std::collections::BTreeMap<uuid::Uuid, Vec<store::NotSeen>> =
        Default::default();
    for machine in flagged.iter().cloned() {
        by_workspace
            .entry(machine.workspace_id)
            .or_default()
            .push(machine);
    }
    for (workspace_id, machines) in by_workspace {
        let ids: Vec<&str> = machines.iter().map(|m| m.machine_id.as_str()).collect();
        let migrations = store::releasing_migrations(&tx, workspace_id, &ids).await?;
        let recorded = machines
            .into_iter()
            .map(|m| {
                let since = m.last_check_in_at.or(m.state_changed_at);
                let message = match m.last_check_in_at {
                    Some(t) => format!("the agent of this {} machine has not checked in since {}", m.state, t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    None => format!("the agent of this {} machine has not checked in since it was released", m.state),
                };
                NewEvent {
                    actor: "portal:watch".into(),
                    subject_kind: "machine",
                    migration_id: migrations.get(&m.machine_id).copied(),
                    kind: "machine.not_seen".into(),
                    message,
                    data: Some(serde_json::json!({"state": m.state, "last_check_in_at": m.last_check_in_at, "since": since})),
                    subject_id: m.machine_id,
                }
            })
            .collect();
        super::record_events(&tx, workspace_id, recorded).await?;
    }
    tx.commit().await?;
    Ok(flagged.len())
}
