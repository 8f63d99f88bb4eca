//! The migration plan: from the snapshot and a selection, what the target will
//! hold. The pre-check shows it; the migration carries it out. Kinds, names and
//! logins are planned over the whole install base, so that a group or user gets
//! the same target whichever wave it migrates in; the selection says which of
//! them this plan covers.

#[cfg(test)]
pub(crate) mod examples;
pub mod input;
mod machines;
mod selection;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::logins::{LoginBook, LoginChange, PlannedLogin};
use super::machines::Clock;
use super::names::{NameRules, PlannedName, Siblings, clean};
use super::segments::{Segment, Segments};
use super::support::SupportMatrix;
use super::tenants::GroupPlan;
pub use input::Snapshot;
pub use machines::{PlanWarning, PlannedBackupPlan, PlannedMachine, backup_plan};
pub use selection::{Node, Selection, SelectionError};

/// What the planner is told besides the snapshot.
#[derive(Clone, Debug)]
pub struct Settings {
    pub names: NameRules,
    pub matrix: SupportMatrix,
    pub clock: Clock,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantKind {
    Partner,
    Customer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    PartnerAdmin,
    CompanyAdmin,
}

/// A tenant to create. `key` is the group's id, or `"{group id}#users"` for the
/// customer that holds the direct users of a group that also has subgroups.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedTenant {
    pub key: String,
    pub group_id: String,
    /// `None`: a child of the workspace's own tenant.
    pub parent_key: Option<String>,
    pub kind: TenantKind,
    pub name: Named,
    /// Holds the direct users of a group that also has subgroups (or of the root).
    pub direct_users: bool,
}

/// A source text and what it becomes, with the changes shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Named {
    pub source: String,
    pub target: String,
    pub segments: Vec<Segment>,
}

impl Named {
    fn of(segments: Segments) -> Self {
        Self {
            source: segments.source(),
            target: segments.target(),
            segments: segments.into_vec(),
        }
    }
}

/// A source group and what becomes of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedGroup {
    pub group_id: String,
    pub parent_id: Option<String>,
    pub depth: usize,
    pub plan: GroupPlan,
    /// Inside a selected subtree; otherwise only an ancestor of the selection,
    /// created as structure (without its admin) if the target lacks it.
    pub selected: bool,
    /// The tenant the group becomes (none for the root and empty groups).
    pub tenant_key: Option<String>,
    /// Where the group's direct users go.
    pub users_tenant_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedAdmin {
    pub group_id: String,
    pub tenant_key: String,
    pub role: AdminRole,
    pub login: Named,
    pub changes: Vec<LoginChange>,
    /// Whether the target was not asked about the login.
    pub unverified: bool,
    pub contact: input::Contact,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedUser {
    pub user_id: String,
    pub group_id: String,
    pub tenant_key: String,
    pub login: Named,
    pub changes: Vec<LoginChange>,
    pub unverified: bool,
    pub contact: input::Contact,
}

/// The plan for a selection; lists are in source-id order, tenants parent first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Every group of the selection and its ancestors.
    pub groups: Vec<PlannedGroup>,
    pub tenants: Vec<PlannedTenant>,
    pub admins: Vec<PlannedAdmin>,
    pub users: Vec<PlannedUser>,
    pub machines: Vec<PlannedMachine>,
}

/// Suffix of the customer that holds a partner group's direct users, shown as added.
pub const DIRECT_USERS_SUFFIX: &str = " (users)";

/// Plans `selection`; `in_target` says whether the target already holds a login
/// (`None`: not asked; the login is planned as free and marked unverified).
pub fn plan(
    snapshot: &Snapshot,
    selection: &Selection,
    settings: &Settings,
    in_target: &dyn Fn(&str) -> Option<bool>,
) -> Result<Plan, SelectionError> {
    let mut plan = plan_people(snapshot, selection, settings, in_target)?;
    plan.machines = plan_machines(
        snapshot,
        selection,
        settings,
        snapshot.machines.clone(),
        snapshot.plans.clone(),
    )?;
    Ok(plan)
}

/// [`plan`] without the machines: what depends on the target's answers on logins.
pub fn plan_people(
    snapshot: &Snapshot,
    selection: &Selection,
    settings: &Settings,
    in_target: &dyn Fn(&str) -> Option<bool>,
) -> Result<Plan, SelectionError> {
    let tree = Tree::new(snapshot);
    let chosen = selection.expand(&tree)?;
    let names = tenant_names(&tree, &settings.names);
    let mut plan = Plan::default();
    for &g in &tree.parent_first {
        let group = &snapshot.groups[g];
        let kind = tree.kind(g);
        let tenant_key = matches!(
            kind,
            GroupPlan::Partner | GroupPlan::Customer | GroupPlan::PartnerWithCustomer
        )
        .then(|| group.id.clone());
        let users_tenant_key = tree.customer_key(g);
        if !chosen.groups[g] {
            continue;
        }
        plan.groups.push(PlannedGroup {
            group_id: group.id.clone(),
            parent_id: group.parent_id.clone(),
            depth: tree.depth[g],
            plan: kind,
            selected: chosen.whole[g],
            tenant_key: tenant_key.clone(),
            users_tenant_key: users_tenant_key.clone(),
        });
        let parent_key = tree.parent[g]
            .and_then(|p| (tree.kind(p) != GroupPlan::Root).then(|| snapshot.groups[p].id.clone()));
        if let (Some(key), Some(name)) = (&tenant_key, &names.groups[g]) {
            let tenant_kind = if kind == GroupPlan::Customer {
                TenantKind::Customer
            } else {
                TenantKind::Partner
            };
            plan.tenants.push(PlannedTenant {
                key: key.clone(),
                group_id: group.id.clone(),
                parent_key,
                kind: tenant_kind,
                name: Named::of(name.segments.clone()),
                direct_users: false,
            });
        }
        if let (Some(key), Some(name)) = (&users_tenant_key, &names.direct_users[g])
            && chosen.direct_users[g]
        {
            plan.tenants.push(PlannedTenant {
                key: key.clone(),
                group_id: group.id.clone(),
                parent_key: tenant_key.clone(),
                kind: TenantKind::Customer,
                name: Named::of(name.segments.clone()),
                direct_users: true,
            });
        }
    }
    plan_logins(&tree, &chosen, in_target, &mut plan);
    Ok(plan)
}

/// The machines of [`plan`], planned from `machines` and `plans` (the snapshot's,
/// whose texts move into the plan; `snapshot`'s own are not read), in source-id order.
pub fn plan_machines(
    snapshot: &Snapshot,
    selection: &Selection,
    settings: &Settings,
    machines: Vec<input::Machine>,
    plans: Vec<input::BackupPlan>,
) -> Result<Vec<PlannedMachine>, SelectionError> {
    let tree = Tree::new(snapshot);
    let chosen = selection.expand(&tree)?;
    Ok(machines::plan_machines(
        &tree, &chosen, settings, machines, plans,
    ))
}

/// A customer tenant of the whole install base, as [`plan`] makes it: the
/// tenant that holds backup users and their machines.
#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    /// The planned tenant's key: the group's id, or `"{group id}#users"`.
    pub key: String,
    pub group_id: String,
    /// The source group's name.
    pub group_name: String,
    /// The tenant's planned name.
    pub name: String,
    /// Its backup users, in source-id order.
    pub user_ids: Vec<String>,
}

/// Every customer of the install base (whatever a selection would cover), in key order.
pub fn customers(snapshot: &Snapshot, rules: &NameRules) -> Vec<Customer> {
    let tree = Tree::new(snapshot);
    let names = tenant_names(&tree, rules);
    let mut out: Vec<Customer> = tree
        .by_id
        .iter()
        .filter_map(|&g| {
            let key = tree.customer_key(g)?;
            let group = &snapshot.groups[g];
            let name = if key == group.id {
                &names.groups[g]
            } else {
                &names.direct_users[g]
            };
            Some(Customer {
                group_id: group.id.clone(),
                group_name: group.name.clone(),
                name: name.as_ref().map(PlannedName::target).unwrap_or_default(),
                user_ids: tree.users_of[g]
                    .iter()
                    .map(|&u| snapshot.users[u].id.clone())
                    .collect(),
                key,
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Backup users claim their logins before admins: their logins are kept where
/// they can be, while admins get new logins and an activation email anyway.
fn plan_logins(
    tree: &Tree<'_>,
    chosen: &selection::Chosen,
    in_target: &dyn Fn(&str) -> Option<bool>,
    plan: &mut Plan,
) {
    let snapshot = tree.snapshot;
    let mut book = LoginBook::new(in_target);
    for (u, user) in snapshot.users.iter().enumerate() {
        let login = book.backup_user(&user.login);
        // A user's group has users, so it always has a customer key.
        let Some(tenant_key) = tree.user_group[u]
            .filter(|_| chosen.users[u])
            .and_then(|g| tree.customer_key(g))
        else {
            continue;
        };
        let PlannedLogin {
            segments,
            changes,
            unverified,
        } = login;
        plan.users.push(PlannedUser {
            user_id: user.id.clone(),
            group_id: user.group_id.clone(),
            tenant_key,
            login: Named::of(segments),
            changes,
            unverified,
            contact: user.contact(),
        });
    }
    for &g in &tree.by_id {
        let group = &snapshot.groups[g];
        let role = match tree.kind(g) {
            GroupPlan::Partner | GroupPlan::PartnerWithCustomer => AdminRole::PartnerAdmin,
            GroupPlan::Customer => AdminRole::CompanyAdmin,
            GroupPlan::Root | GroupPlan::Empty => continue,
        };
        let Some(admin) = &group.admin else { continue };
        // BackupAgent's admin login is the group name.
        let PlannedLogin {
            segments,
            changes,
            unverified,
        } = book.admin(&group.name);
        if chosen.whole[g] {
            plan.admins.push(PlannedAdmin {
                group_id: group.id.clone(),
                tenant_key: group.id.clone(),
                role,
                login: Named::of(segments),
                changes,
                unverified,
                contact: admin.clone(),
            });
        }
    }
}

/// Target names of every group's tenant and direct-users customer, unique among siblings.
struct TenantNames {
    groups: Vec<Option<PlannedName>>,
    direct_users: Vec<Option<PlannedName>>,
}

fn tenant_names(tree: &Tree<'_>, rules: &NameRules) -> TenantNames {
    let n = tree.snapshot.groups.len();
    let mut names = TenantNames {
        groups: vec![None; n],
        direct_users: vec![None; n],
    };
    // Siblings share a parent tenant: the root's children share the workspace's tenant.
    let mut siblings: HashMap<Option<usize>, Siblings> = HashMap::new();
    for &g in &tree.by_id {
        let kind = tree.kind(g);
        if matches!(kind, GroupPlan::Root | GroupPlan::Empty) {
            continue;
        }
        let parent = tree.parent[g].filter(|&p| tree.kind(p) != GroupPlan::Root);
        let name = clean(&tree.snapshot.groups[g].name, rules);
        names.groups[g] = Some(
            siblings
                .entry(parent)
                .or_default()
                .claim(name, rules.max_chars),
        );
    }
    // Direct-users customers come after the subgroups, so a subgroup keeps its own name.
    for &g in &tree.by_id {
        let kind = tree.kind(g);
        if !kind.needs_customer_child(!tree.users_of[g].is_empty()) {
            continue;
        }
        let parent = (kind != GroupPlan::Root).then_some(g);
        let mut name = clean(&tree.snapshot.groups[g].name, rules).segments;
        let room = rules
            .max_chars
            .saturating_sub(DIRECT_USERS_SUFFIX.chars().count());
        name = super::names::fit(&name, room);
        name.added(DIRECT_USERS_SUFFIX);
        let planned = siblings
            .entry(parent)
            .or_default()
            .claim(PlannedName { segments: name }, rules.max_chars);
        names.direct_users[g] = Some(planned);
    }
    names
}

/// The snapshot's hierarchy, indexed.
pub(crate) struct Tree<'a> {
    pub snapshot: &'a Snapshot,
    pub group_index: HashMap<&'a str, usize>,
    pub user_index: HashMap<&'a str, usize>,
    pub parent: Vec<Option<usize>>,
    pub children: Vec<Vec<usize>>,
    pub users_of: Vec<Vec<usize>>,
    pub depth: Vec<usize>,
    /// Every group reachable from the root, parents before children.
    pub parent_first: Vec<usize>,
    /// The same groups in source-id order.
    pub by_id: Vec<usize>,
    pub user_group: Vec<Option<usize>>,
    pub root: Option<usize>,
    reachable: Vec<bool>,
}

impl<'a> Tree<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let groups = &snapshot.groups;
        let group_index: HashMap<&str, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.as_str(), i))
            .collect();
        let user_index = snapshot
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.as_str(), i))
            .collect();
        let parent: Vec<Option<usize>> = groups
            .iter()
            .map(|g| {
                g.parent_id
                    .as_deref()
                    .and_then(|p| group_index.get(p).copied())
            })
            .collect();
        let mut children = vec![Vec::new(); groups.len()];
        let mut roots = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            match parent[g] {
                Some(p) => children[p].push(g),
                None if group.parent_id.is_none() => roots.push(g),
                // An orphan (its parent vanished from the source) is not reachable from the root.
                None => {}
            }
        }
        let mut users_of = vec![Vec::new(); groups.len()];
        let user_group: Vec<Option<usize>> = snapshot
            .users
            .iter()
            .map(|u| group_index.get(u.group_id.as_str()).copied())
            .collect();
        for (u, g) in user_group.iter().enumerate() {
            if let Some(g) = g {
                users_of[*g].push(u);
            }
        }
        let root = roots
            .into_iter()
            .min_by(|a, b| groups[*a].id.cmp(&groups[*b].id));
        let mut depth = vec![0; groups.len()];
        let mut parent_first = Vec::with_capacity(groups.len());
        let mut stack: Vec<usize> = root.into_iter().collect();
        while let Some(g) = stack.pop() {
            parent_first.push(g);
            for &c in children[g].iter().rev() {
                depth[c] = depth[g] + 1;
                stack.push(c);
            }
        }
        let mut by_id = parent_first.clone();
        by_id.sort_by(|a, b| groups[*a].id.cmp(&groups[*b].id));
        let reachable: Vec<bool> = {
            let mut r = vec![false; groups.len()];
            parent_first.iter().for_each(|&g| r[g] = true);
            r
        };
        let user_group = user_group
            .into_iter()
            .map(|g| g.filter(|&g| reachable[g]))
            .collect();
        Self {
            snapshot,
            group_index,
            user_index,
            parent,
            children,
            users_of,
            depth,
            parent_first,
            by_id,
            user_group,
            root,
            reachable,
        }
    }

    pub fn reachable(&self, g: usize) -> bool {
        self.reachable[g]
    }

    pub fn kind(&self, g: usize) -> GroupPlan {
        GroupPlan::of(
            Some(g) == self.root,
            !self.children[g].is_empty(),
            !self.users_of[g].is_empty(),
        )
    }

    /// The customer tenant that holds the group's direct users: the group's own
    /// tenant for a customer, `"{group id}#users"` for the root or a partner with
    /// users; `None` for a group without users.
    pub fn customer_key(&self, g: usize) -> Option<String> {
        let id = &self.snapshot.groups[g].id;
        match self.kind(g) {
            GroupPlan::Customer => Some(id.clone()),
            kind if kind.needs_customer_child(!self.users_of[g].is_empty()) => {
                Some(format!("{id}#users"))
            }
            _ => None,
        }
    }
}
