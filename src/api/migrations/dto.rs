//! Request and response bodies of `/migrations` and `/events`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::domain::migration::MigrationStatus;
use crate::domain::plan::Node;
use crate::domain::transfer::{ItemKind, ItemState};
use crate::planning::MigrationOptions;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMigration {
    /// The pre-check whose plan to carry out; its selection is the migration's.
    pub precheck_id: Option<Uuid>,
    /// Groups (each with its subtree) and single users, when no pre-check is named.
    #[schema(example = json!([{"kind": "group", "id": "g-0000001"}]), min_items = 1, max_items = 10000)]
    #[validate(
        length(min = 1, max = 10000, message = "a selection names 1 to 10000 nodes"),
        nested
    )]
    pub selection: Option<Vec<Node>>,
    /// Plan again from the current snapshot even though the pre-check is older than it
    /// (or, without a pre-check, the snapshot is over a day old). What planning again
    /// changed against the pre-check is recorded on the migration.
    #[serde(default)]
    pub replan: bool,
    #[serde(default)]
    #[validate(nested)]
    pub options: MigrationOptions,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Migration {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub status: MigrationStatus,
    /// The supervising operation: progress, and when the migration is over, its counts.
    pub operation: String,
    pub precheck_id: Option<Uuid>,
    pub selection: Vec<Node>,
    pub options: MigrationOptions,
    /// Items by kind and state; every kind and state is present.
    #[schema(value_type = Object, example = json!({"tenant": {"waiting": 0, "queued": 2, "done": 5, "failed": 0, "blocked": 0, "cancelled": 0}}))]
    pub counts: BTreeMap<ItemKind, BTreeMap<ItemState, u64>>,
    /// The machines this migration released, by their state now (every state present).
    #[schema(value_type = Object, example = json!({"idle": 0, "pending": 10, "migrating": 2, "migrated": 30, "failed": 1, "manual_action_required": 0, "cancelled": 0}))]
    pub machines: BTreeMap<crate::domain::machines::MachineState, u64>,
    /// All items, and those no longer waiting or queued.
    pub items: u64,
    pub finished: u64,
    /// What planning again changed against the pre-check (`changed`, and per section the entries added, removed, changed).
    #[schema(value_type = Option<Object>)]
    pub replan: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The snapshot the plan was made from.
    pub snapshot_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Migration {
    pub fn new(
        model: entity::migration::Model,
        counts: BTreeMap<ItemKind, BTreeMap<ItemState, u64>>,
        machines: BTreeMap<crate::domain::machines::MachineState, u64>,
    ) -> Self {
        let items: u64 = counts.values().flat_map(|s| s.values()).sum();
        let finished = items - crate::domain::transfer::open_items(&counts);
        Self {
            id: model.id,
            workspace_id: model.workspace_id,
            // A status this build does not know cannot be written (`set_status` takes the enum).
            status: MigrationStatus::parse(&model.status).unwrap_or(MigrationStatus::Failed),
            operation: format!("/api/v1/operations/{}", model.job_id),
            precheck_id: model.precheck_id,
            selection: serde_json::from_str(&model.selection).unwrap_or_default(),
            options: serde_json::from_str(&model.options).unwrap_or_default(),
            counts,
            machines,
            items,
            finished,
            replan: model
                .replan
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            error: model.error,
            snapshot_synced_at: model.snapshot_synced_at,
            created_at: model.created_at,
            updated_at: model.updated_at,
            completed_at: model.completed_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// Only items in this state.
    pub state: Option<ItemState>,
    /// Only items of this kind.
    pub kind: Option<ItemKind>,
    /// Items per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationItem {
    /// `tenant:{key}`, `admin:{group id}` or `user:{user id}`.
    pub key: String,
    pub kind: ItemKind,
    pub state: ItemState,
    /// The source group or user.
    pub source_id: String,
    /// What is created: name and kind of a tenant; login, role and contact of a user.
    #[schema(value_type = Object)]
    pub planned: serde_json::Value,
    pub target_id: Option<Uuid>,
    /// The last step done (`created`, `role_granted`, `activation_email_sent`, `password_set`).
    pub step: Option<String>,
    /// Why it is where it is: what it waits for, or why it failed.
    pub reason: Option<String>,
    /// The target's error code when it failed.
    pub error_code: Option<String>,
    pub attempts: i32,
    pub updated_at: DateTime<Utc>,
}

impl MigrationItem {
    pub fn new(model: entity::migration_item::Model) -> Self {
        let state = ItemState::parse(&model.state).unwrap_or(ItemState::Queued);
        let mut planned: serde_json::Value =
            serde_json::from_str(&model.planned).unwrap_or_default();
        if let Some(map) = planned.as_object_mut() {
            // Machines are listed with the machine resources.
            if let Some(machines) = map.remove("machines") {
                map.insert(
                    "machines".into(),
                    serde_json::json!(machines.as_array().map_or(0, Vec::len)),
                );
            }
        }
        let reason = match state {
            ItemState::Waiting => Some(format!(
                "waits for {} to be created",
                model.parent_key.as_deref().unwrap_or("its tenant")
            )),
            ItemState::Queued if model.attempts > 0 => Some(format!(
                "queued; tried {} times: {}",
                model.attempts,
                model.error_message.as_deref().unwrap_or("")
            )),
            ItemState::Queued => Some("queued: its tenant exists, the worker takes it next".into()),
            ItemState::Blocked => Some(format!(
                "blocked: {}",
                model
                    .error_message
                    .as_deref()
                    .unwrap_or("its tenant failed")
            )),
            ItemState::Failed => model.error_message.clone(),
            ItemState::Done if model.step.as_deref() == Some("mapped_earlier") => {
                Some("created by an earlier migration".into())
            }
            ItemState::Done | ItemState::Cancelled => None,
        };
        Self {
            key: model.key,
            kind: ItemKind::parse(&model.kind).unwrap_or(ItemKind::User),
            state,
            source_id: model.source_id,
            planned,
            target_id: model.target_id,
            step: model.step,
            reason,
            error_code: model.error_code,
            attempts: model.attempts,
            updated_at: model.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events about this subject: a group, user or machine id, or a migration id.
    #[param(max_length = 200)]
    pub subject: Option<String>,
    /// Only events about this kind of subject: `migration`, `tenant`, `admin`, `user` or `machine`.
    #[param(max_length = 200)]
    pub subject_kind: Option<String>,
    /// Only events of this kind (`item.done`), or of kinds starting with it when it ends with `.` (`target.`).
    #[param(max_length = 200)]
    pub kind: Option<String>,
    /// Only events of this migration.
    pub migration_id: Option<Uuid>,
    /// Events per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// The longest `subject`, `subject_kind` or `kind` filter.
const MAX_FILTER_CHARS: usize = 200;

impl EventQuery {
    /// Its filters, each at most [`MAX_FILTER_CHARS`] characters.
    pub fn filter(self) -> Result<crate::db::events::EventFilter, crate::error::ApiError> {
        for (name, value) in [
            ("subject", &self.subject),
            ("subject_kind", &self.subject_kind),
            ("kind", &self.kind),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.chars().count() > MAX_FILTER_CHARS)
            {
                return Err(crate::error::ApiError::bad_request(
                    "invalid_query",
                    format!("{name} must be at most {MAX_FILTER_CHARS} characters."),
                ));
            }
        }
        Ok(crate::db::events::EventFilter {
            subject_id: self.subject,
            subject_kind: self.subject_kind,
            kind: self.kind,
            migration_id: self.migration_id,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// `partner:{subject}` or `worker:{id}`.
    pub actor: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub migration_id: Option<Uuid>,
    /// `migration.planned`, `item.done`, `item.failed`, `target.ensure_user`, `machine.released`, …
    pub kind: String,
    /// What happened, or the cause.
    pub message: String,
    /// Verbose mode: what was sent to the target, secrets redacted.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

impl From<entity::event::Model> for Event {
    fn from(e: entity::event::Model) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            subject_kind: e.subject_kind,
            subject_id: e.subject_id,
            migration_id: e.migration_id,
            kind: e.kind,
            message: e.message,
            data: e.data.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}
