//! Request and response bodies of `/prechecks`.

use chrono::{DateTime, Utc};
use entity::precheck::Model;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::domain::plan::Node;
use crate::planning::PrecheckOptions;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrecheck {
    /// Groups (each with its whole subtree) and single users; overlaps are fine.
    /// The whole hierarchy is the root group.
    #[schema(example = json!([{"kind": "group", "id": "g-0000001"}]), min_items = 1, max_items = 10000)]
    #[validate(
        length(min = 1, max = 10000, message = "a selection names 1 to 10000 nodes"),
        nested
    )]
    pub selection: Vec<Node>,
    /// Ask the target whether planned logins are taken (default true). Without
    /// it, logins the target was never asked about are marked unverified.
    #[serde(default = "yes")]
    pub check_logins: bool,
    /// How the report estimates; every field has a default.
    #[serde(default)]
    #[validate(nested)]
    #[schema(example = json!({"initial_backup": {"bandwidth_mbps": 100.0, "physical_shipping_after_days": 7.0}}))]
    pub options: PrecheckOptions,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrecheckStatus {
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Precheck {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub status: PrecheckStatus,
    /// The operation computing the report: progress, and the error if it failed.
    pub operation: String,
    pub selection: Vec<Node>,
    pub check_logins: bool,
    pub options: PrecheckOptions,
    /// Entries per section, once completed.
    #[schema(value_type = Option<Object>)]
    pub sections: Option<serde_json::Value>,
    /// When the snapshot the report was computed from was synced.
    pub snapshot_synced_at: Option<DateTime<Utc>>,
    /// The workspace was synced again since: the report describes an older snapshot.
    pub stale: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Precheck {
    pub fn new(
        model: Model,
        job_status: Option<&str>,
        workspace_synced_at: Option<DateTime<Utc>>,
    ) -> Self {
        let status = match (model.completed_at, job_status) {
            (Some(_), _) => PrecheckStatus::Completed,
            (None, Some("queued" | "running")) => PrecheckStatus::Running,
            (None, _) => PrecheckStatus::Failed,
        };
        let planning: Option<serde_json::Value> = model
            .planning
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        Self {
            id: model.id,
            workspace_id: model.workspace_id,
            status,
            operation: format!("/api/v1/operations/{}", model.job_id),
            selection: serde_json::from_str(&model.selection).unwrap_or_default(),
            check_logins: model.check_logins,
            // Kept options were validated on the way in; none kept means the defaults.
            options: PrecheckOptions::from_kept(model.options.as_deref()).unwrap_or_default(),
            sections: planning.map(|p| p["sections"].clone()),
            snapshot_synced_at: model.snapshot_synced_at,
            stale: model.completed_at.is_some() && model.snapshot_synced_at != workspace_synced_at,
            created_at: model.created_at,
            completed_at: model.completed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SectionPage {
    pub section: crate::domain::report::Section,
    /// The section's entries, in report order.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrecheckChanges {
    pub precheck_id: Uuid,
    /// The earlier pre-check compared with.
    pub since: Uuid,
    /// Figures of the planning section that differ: `{path: {before, after}}`.
    #[schema(value_type = Object)]
    pub planning: serde_json::Value,
    #[schema(value_type = Object)]
    pub sections: std::collections::BTreeMap<
        crate::domain::report::Section,
        crate::domain::report::SectionChanges,
    >,
}
