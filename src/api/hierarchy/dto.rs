//! Response bodies of the hierarchy: nodes, search hits, and the detail of a
//! group, a user and a machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::snapshot::{Child, Kind, Rollup, Row};
use crate::domain::machines::{ActionCause, ContactReason, MachineState};
use crate::domain::plan::PlannedBackupPlan;
use crate::domain::plan::input::Contact;
use crate::domain::support::{ClientStatus, Platform, Readiness};
use crate::domain::tenants::GroupPlan;

/// The parts of a snapshot row's source data that listings show.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Shown {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub admin: Option<Contact>,
}

impl Shown {
    pub fn of(row: &Row) -> Self {
        serde_json::from_str(&row.data).unwrap_or_default()
    }

    /// A group's name, a user's login, a machine's hostname.
    pub fn title(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.login.clone())
            .or_else(|| self.hostname.clone())
            .unwrap_or_default()
    }

    /// A user's login, or a group admin's.
    pub fn login(&self) -> Option<String> {
        self.login
            .clone()
            .or_else(|| self.admin.as_ref().map(|a| a.login.clone()))
    }

    pub fn email(&self) -> Option<String> {
        self.email
            .clone()
            .or_else(|| self.admin.as_ref().and_then(|a| a.email.clone()))
    }
}

/// The root of a workspace's snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hierarchy {
    pub workspace_id: Uuid,
    /// When the snapshot was last synced.
    pub snapshot_synced_at: Option<DateTime<Utc>>,
    /// The BackupAgent server's clock at that sync; readiness is judged on it.
    pub source_time: Option<DateTime<Utc>>,
    pub root: Node,
}

/// A group or a backup user in the tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct Node {
    pub kind: Kind,
    pub id: String,
    /// A group's name; a user's login.
    pub name: String,
    /// A user's login; a group's admin login.
    pub login: Option<String>,
    pub email: Option<String>,
    /// Whether the node has subgroups, users (groups) or machines (users).
    pub has_children: bool,
    /// Groups: direct subgroups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subgroups: Option<u64>,
    /// Groups: direct backup users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// Users: their machines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machines: Option<u64>,
    /// The storage BackupAgent lets the group or user use, in bytes; null: no quota.
    pub storage_quota_bytes: Option<u64>,
    /// Gone from the source since, kept because it is in a migration.
    pub removed_from_source: bool,
    /// Groups, when asked for (`rollup=true`) and on the root: what the subtree holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollup: Option<Rollup>,
}

impl Node {
    pub fn new(child: Child, rollup: Option<Rollup>) -> Self {
        let shown = Shown::of(&child.row);
        let group = child.row.kind == Kind::Group;
        Self {
            kind: child.row.kind,
            id: child.row.id,
            name: shown.title(),
            login: shown.login(),
            email: shown.email(),
            has_children: child.subgroups + child.users + child.machines > 0,
            subgroups: group.then_some(child.subgroups),
            users: group.then_some(child.users),
            machines: (!group).then_some(child.machines),
            storage_quota_bytes: child.row.storage_quota_bytes,
            removed_from_source: child.row.removed_at.is_some(),
            rollup,
        }
    }
}

/// A search hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    pub kind: Kind,
    pub id: String,
    /// A group's name, a user's login, a machine's hostname.
    pub name: String,
    pub login: Option<String>,
    pub email: Option<String>,
    /// The group the object is in (a group's parent; none for the root).
    pub group_id: Option<String>,
    /// Machines: their user.
    pub user_id: Option<String>,
    pub removed_from_source: bool,
}

impl Hit {
    pub fn new(row: Row) -> Self {
        let shown = Shown::of(&row);
        Self {
            kind: row.kind,
            name: shown.title(),
            login: shown.login(),
            email: shown.email(),
            group_id: row.group_id,
            user_id: (row.kind == Kind::Machine)
                .then_some(row.parent_id)
                .flatten(),
            removed_from_source: row.removed_at.is_some(),
            id: row.id,
        }
    }
}

/// What a group has as children (machines are on users).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    Group,
    User,
}

impl From<ChildKind> for Kind {
    fn from(kind: ChildKind) -> Self {
        match kind {
            ChildKind::Group => Kind::Group,
            ChildKind::User => Kind::User,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChildrenParams {
    /// Only subgroups (`group`) or only users (`user`); both by default, subgroups first.
    #[param(inline)]
    pub kind: Option<ChildKind>,
    /// Add each subgroup's subtree rollup (one query for the page).
    #[serde(default)]
    pub rollup: bool,
    /// Items per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Text to find in group names, logins, emails and hostnames (case-insensitive, 1 to 200 characters,
    /// not only blanks; leading and trailing blanks are ignored).
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub q: String,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Items per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// A group on the way from the root.
#[derive(Debug, Serialize, ToSchema)]
pub struct PathEntry {
    pub id: String,
    pub name: String,
}

/// A source group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDetail {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    /// From the root down to this group, itself included.
    pub path: Vec<PathEntry>,
    pub admin: Option<Contact>,
    /// What the group becomes in the target, from its place in the tree (its subgroups and users).
    pub target_kind: GroupPlan,
    /// Direct subgroups.
    pub subgroups: u64,
    /// Direct backup users.
    pub users: u64,
    pub rollup: Rollup,
    /// The storage BackupAgent lets the group use (its users together), in bytes; null: no quota.
    pub storage_quota_bytes: Option<u64>,
    pub removed_from_source: bool,
    /// The last sync that found it in the source (the workspace's last sync unless it is gone since).
    pub synced_at: DateTime<Utc>,
    /// The group as the BackupAgent server gave it.
    #[schema(value_type = Object)]
    pub source: Value,
}

/// A machine in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineSummary {
    pub id: String,
    pub hostname: String,
    pub readiness: Option<Readiness>,
    pub migration_state: MachineState,
    pub data_size_bytes: u64,
    pub removed_from_source: bool,
}

/// A backup user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    pub id: String,
    pub login: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub auto_update: bool,
    pub group_id: String,
    /// The groups from the root down to the user's.
    pub path: Vec<PathEntry>,
    pub machines: Vec<MachineSummary>,
    /// The data of the machines listed, in bytes (the sum of their `data_size_bytes`).
    pub data_size_bytes: u64,
    /// The storage BackupAgent lets the user use, in bytes; null: no quota.
    pub storage_quota_bytes: Option<u64>,
    /// Whether `data_size_bytes` is more than the quota already (false without one).
    pub data_exceeds_quota: bool,
    pub removed_from_source: bool,
    /// The last sync that found it in the source (the workspace's last sync unless it is gone since).
    pub synced_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub source: Value,
}

/// A step-by-step action a machine needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineAction {
    pub cause: ActionCause,
    pub instructions: Vec<&'static str>,
}

/// A backup plan as BackupAgent has it, beside what it becomes in the cloud.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineBackupPlan {
    #[schema(value_type = Object)]
    pub source: Value,
    pub target: PlannedBackupPlan,
}

/// A machine, its readiness with every cause, and its backup plans converted.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineDetail {
    pub id: String,
    pub hostname: String,
    pub user_id: String,
    pub user_login: Option<String>,
    pub group_id: Option<String>,
    /// The groups from the root down to the user's.
    pub path: Vec<PathEntry>,
    pub platform: Platform,
    pub os_name: String,
    pub client_version: Option<String>,
    pub client: ClientStatus,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub data_size_bytes: u64,
    pub readiness: Readiness,
    /// What someone must do by hand, with the steps.
    pub actions: Vec<MachineAction>,
    /// Why the user should be contacted.
    pub contact: Vec<ContactReason>,
    /// The clock readiness was judged on: the BackupAgent server's at the last sync.
    pub judged_at: DateTime<Utc>,
    pub backup_plans: Vec<MachineBackupPlan>,
    pub migration_state: MachineState,
    pub removed_from_source: bool,
    /// The last sync that found it in the source (the workspace's last sync unless it is gone since).
    pub synced_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub source: Value,
}
