//! Browsing the snapshot: `/api/v1/workspaces/{id}/hierarchy` (the root with its
//! rollup, children of a group, search) and the detail of a group, a user and
//! a machine.

mod dto;

use actix_web::{get, web};
use chrono::Utc;
use serde_json::Value;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::guard::partner_workspace;
use crate::api::paging::{PageParams, Paged, encode_key};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::snapshot::{self, Child, Key, Kind, Row};
use crate::domain::machines::{Clock, MachineFacts, MachineState, OFFLINE_AFTER_DAYS};
use crate::domain::plan::backup_plan;
use crate::domain::plan::input::{BackupPlan, Group, Machine, User};
use crate::domain::support::{ClientStatus, Platform, Readiness, SupportMatrix};
use crate::domain::tenants::GroupPlan;
use crate::error::ApiError;
pub use dto::*;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_hierarchy)
        .service(search)
        .service(get_children)
        .service(get_group)
        .service(get_user)
        .service(get_machine);
}

const MAX_QUERY_CHARS: usize = 200;

/// The caller's workspace, once synced.
pub(crate) async fn synced(
    state: &AppState,
    partner: &Partner,
    id: Uuid,
) -> Result<entity::workspace::Model, ApiError> {
    let workspace = partner_workspace(state, partner, id).await?;
    if workspace.snapshot_synced_at.is_none() {
        return Err(ApiError::conflict(
            "not_synced",
            "The workspace has no snapshot yet: start a sync and wait for it to finish.",
        ));
    }
    Ok(workspace)
}

fn parse<T: serde::de::DeserializeOwned>(row: &Row) -> Result<T, ApiError> {
    serde_json::from_str(&row.data).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!(
            "snapshot {} {}: {e}",
            row.kind.as_str(),
            row.id
        ))
    })
}

fn source(row: &Row) -> Value {
    serde_json::from_str(&row.data).unwrap_or(Value::Null)
}

fn path_entries(path: Vec<(String, String)>) -> Vec<PathEntry> {
    path.into_iter()
        .map(|(id, data)| {
            let name = serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_string))
                .unwrap_or_default();
            PathEntry { id, name }
        })
        .collect()
}

/// The root of the snapshot, with the rollup of the whole install base.
#[utoipa::path(
    tag = "hierarchy",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 200, body = Hierarchy),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/hierarchy")]
async fn get_hierarchy(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Hierarchy>, ApiError> {
    let workspace = synced(&state, &partner, *id).await?;
    let root = snapshot::root(&state.db, workspace.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let contents = snapshot::contents(&state.db, workspace.id, &root.id).await?;
    let (subgroups, users) = contents.as_ref().map_or((0, 0), |c| (c.subgroups, c.users));
    let rollup = contents.map(|c| c.rollup);
    Ok(web::Json(Hierarchy {
        workspace_id: workspace.id,
        snapshot_synced_at: workspace.snapshot_synced_at,
        source_time: workspace.snapshot_source_time,
        root: Node::new(
            Child {
                row: root,
                subgroups,
                users,
                machines: 0,
            },
            rollup,
        ),
    }))
}

/// The children of a group: its subgroups, then its backup users, each by name.
///
/// With `rollup=true` each subgroup carries the rollup of its subtree.
#[utoipa::path(
    tag = "hierarchy",
    params(("id" = Uuid, Path, description = "Workspace id"), ("group_id" = String, Path, description = "Source group id"), ChildrenParams),
    responses(
        (status = 200, body = Paged<Node>),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/groups/{group_id}/children")]
async fn get_children(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
    params: web::Query<ChildrenParams>,
) -> Result<web::Json<Paged<Node>>, ApiError> {
    let (id, group) = path.into_inner();
    let params = params.into_inner();
    let (limit, after) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .keyed::<Key>()?;
    let kinds = params
        .kind
        .map_or_else(|| vec![Kind::Group, Kind::User], |kind| vec![kind.into()]);
    let workspace = synced(&state, &partner, id).await?;
    snapshot::find(&state.db, workspace.id, Kind::Group, &group)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut children = snapshot::children(
        &state.db,
        workspace.id,
        &group,
        &kinds,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let more = children.len() as u64 > limit;
    children.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            children
                .last()
                .map(|c| encode_key(&Key(c.row.kind, c.row.search.clone(), c.row.id.clone())))
        })
        .flatten();
    let mut rollups = if params.rollup {
        let groups: Vec<String> = children
            .iter()
            .filter(|c| c.row.kind == Kind::Group)
            .map(|c| c.row.id.clone())
            .collect();
        snapshot::rollups(&state.db, workspace.id, &groups).await?
    } else {
        Default::default()
    };
    let items = children
        .into_iter()
        .map(|child| {
            let rollup = rollups
                .remove(&child.row.id)
                .filter(|_| child.row.kind == Kind::Group);
            Node::new(child, rollup)
        })
        .collect();
    Ok(web::Json(Paged { items, next_cursor }))
}

/// Find groups, users and machines by group name, login, email or hostname.
///
/// Case-insensitive substring match; groups first, then users, then machines,
/// each by name.
#[utoipa::path(
    tag = "hierarchy",
    params(("id" = Uuid, Path, description = "Workspace id"), SearchParams),
    responses(
        (status = 200, body = Paged<Hit>),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/hierarchy/search")]
async fn search(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<SearchParams>,
) -> Result<web::Json<Paged<Hit>>, ApiError> {
    let params = params.into_inner();
    let (limit, after) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .keyed::<Key>()?;
    let text = params.q.trim();
    // Counted as sent, as `maxLength` counts it.
    if text.is_empty() || params.q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q must hold 1 to {MAX_QUERY_CHARS} characters."),
        ));
    }
    let kinds = params.kind.map_or_else(|| Kind::ALL.to_vec(), |k| vec![k]);
    let workspace = synced(&state, &partner, *id).await?;
    let mut rows = snapshot::search(
        &state.db,
        workspace.id,
        text,
        &kinds,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| encode_key(&Key(r.kind, r.search.clone(), r.id.clone())))
        })
        .flatten();
    Ok(web::Json(Paged {
        items: rows.into_iter().map(Hit::new).collect(),
        next_cursor,
    }))
}

/// A group: its path from the root, admin, what it becomes in the target,
/// direct contents and the rollup of its subtree.
#[utoipa::path(
    tag = "hierarchy",
    params(("id" = Uuid, Path, description = "Workspace id"), ("group_id" = String, Path, description = "Source group id")),
    responses(
        (status = 200, body = GroupDetail),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/groups/{group_id}")]
async fn get_group(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<web::Json<GroupDetail>, ApiError> {
    let (id, group_id) = path.into_inner();
    let workspace = synced(&state, &partner, id).await?;
    let row = snapshot::find(&state.db, workspace.id, Kind::Group, &group_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let group: Group = parse(&row)?;
    let snapshot::Contents {
        subgroups,
        users,
        rollup,
    } = snapshot::contents(&state.db, workspace.id, &row.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let path = path_entries(snapshot::path(&state.db, workspace.id, &row.id).await?);
    Ok(web::Json(GroupDetail {
        target_kind: GroupPlan::of(group.parent_id.is_none(), subgroups > 0, users > 0),
        id: group.id,
        name: group.name,
        parent_id: group.parent_id,
        path,
        admin: group.admin,
        subgroups,
        users,
        rollup,
        storage_quota_bytes: row.storage_quota_bytes,
        removed_from_source: row.removed_at.is_some(),
        synced_at: row.seen_at(workspace.snapshot_synced_at),
        source: source(&row),
    }))
}

/// A backup user, with their machines.
#[utoipa::path(
    tag = "hierarchy",
    params(("id" = Uuid, Path, description = "Workspace id"), ("user_id" = String, Path, description = "Source user id")),
    responses(
        (status = 200, body = UserDetail),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/users/{user_id}")]
async fn get_user(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<web::Json<UserDetail>, ApiError> {
    let (id, user_id) = path.into_inner();
    let workspace = synced(&state, &partner, id).await?;
    let row = snapshot::find(&state.db, workspace.id, Kind::User, &user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let user: User = parse(&row)?;
    let mut machines = snapshot::rows_of(&state.db, workspace.id, Kind::Machine, &row.id).await?;
    machines.sort_by(|a, b| (&a.search, &a.id).cmp(&(&b.search, &b.id)));
    let machines: Vec<MachineSummary> = machines
        .iter()
        .map(|m| MachineSummary {
            id: m.id.clone(),
            hostname: Shown::of(m).title(),
            readiness: m
                .readiness
                .as_deref()
                .and_then(|t| Readiness::ALL.into_iter().find(|r| r.as_str() == t)),
            migration_state: MachineState::parse(&m.migration_state).unwrap_or(MachineState::Idle),
            data_size_bytes: m.size_bytes.max(0) as u64,
            removed_from_source: m.removed_at.is_some(),
        })
        .collect();
    let data_size_bytes = machines
        .iter()
        .fold(0u64, |sum, m| sum.saturating_add(m.data_size_bytes));
    let storage_quota_bytes = row.storage_quota_bytes;
    Ok(web::Json(UserDetail {
        path: path_entries(snapshot::path(&state.db, workspace.id, &user.group_id).await?),
        id: user.id,
        login: user.login,
        email: user.email,
        first_name: user.first_name,
        last_name: user.last_name,
        auto_update: user.auto_update,
        group_id: user.group_id,
        machines,
        data_size_bytes,
        storage_quota_bytes,
        data_exceeds_quota: storage_quota_bytes.is_some_and(|quota| data_size_bytes > quota),
        removed_from_source: row.removed_at.is_some(),
        synced_at: row.seen_at(workspace.snapshot_synced_at),
        source: source(&row),
    }))
}

/// A machine: its readiness with every cause and the steps to take, and its
/// backup plans beside what each becomes in the cloud, with warnings.
#[utoipa::path(
    tag = "hierarchy",
    params(("id" = Uuid, Path, description = "Workspace id"), ("machine_id" = String, Path, description = "Source machine id")),
    responses(
        (status = 200, body = MachineDetail),
        docs::NotReadyErrors,
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/machines/{machine_id}")]
async fn get_machine(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<web::Json<MachineDetail>, ApiError> {
    let (id, machine_id) = path.into_inner();
    let workspace = synced(&state, &partner, id).await?;
    let (row, user_row) = snapshot::machine_with_user(&state.db, workspace.id, &machine_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let machine: Machine = parse(&row)?;
    // Its user is its parent: the sync stores `user_id` there.
    let user_row = user_row.filter(|u| u.id == machine.user_id);
    let user: Option<User> = user_row.as_ref().map(parse).transpose()?;
    let plans = snapshot::rows_under(&state.db, workspace.id, "source_plans", &row.id).await?;
    let plans: Vec<(Value, BackupPlan)> = plans
        .into_iter()
        .map(|(id, data)| {
            let plan = serde_json::from_str(&data)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("snapshot plan {id}: {e}")))?;
            Ok((serde_json::from_str(&data).unwrap_or(Value::Null), plan))
        })
        .collect::<Result<_, ApiError>>()?;
    // Judged as the sync judged it: on the BackupAgent server's clock.
    let judged_at = workspace.snapshot_source_time.unwrap_or_else(Utc::now);
    let clock = Clock {
        now: judged_at,
        offline_after: chrono::Duration::days(OFFLINE_AFTER_DAYS),
    };
    let platform = Platform::from_family(&machine.os.family);
    let facts = MachineFacts {
        platform,
        os_name: &machine.os.name,
        client_version: machine.client_version.as_deref(),
        auto_update: user.as_ref().is_some_and(|u| u.auto_update),
        last_seen_at: machine.last_seen_at,
        plan_types: plans.iter().map(|(_, p)| p.kind.as_str()).collect(),
    };
    let assessed = SupportMatrix::default().assess(&facts, clock);
    let current = assessed.client == ClientStatus::Current;
    let backup_plans = plans
        .iter()
        .map(|(source, plan)| MachineBackupPlan {
            source: source.clone(),
            target: backup_plan(plan, current),
        })
        .collect();
    let group_id = user.as_ref().map(|u| u.group_id.clone());
    let path = match &group_id {
        Some(group) => path_entries(snapshot::path(&state.db, workspace.id, group).await?),
        None => Vec::new(),
    };
    Ok(web::Json(MachineDetail {
        id: machine.id,
        hostname: machine.hostname,
        user_id: machine.user_id,
        user_login: user.map(|u| u.login),
        group_id,
        path,
        platform,
        os_name: machine.os.name,
        client_version: machine.client_version,
        client: assessed.client,
        last_seen_at: machine.last_seen_at,
        data_size_bytes: machine.data_size_bytes,
        readiness: assessed.readiness,
        actions: assessed
            .actions
            .into_iter()
            .map(|cause| MachineAction {
                cause,
                instructions: cause.instructions().to_vec(),
            })
            .collect(),
        contact: assessed.contact,
        judged_at,
        backup_plans,
        migration_state: MachineState::parse(&row.migration_state).unwrap_or(MachineState::Idle),
        removed_from_source: row.removed_at.is_some(),
        synced_at: row.seen_at(workspace.snapshot_synced_at),
        source: source(&row),
    }))
}
