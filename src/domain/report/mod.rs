//! The pre-check report (the seed's Pre-Check Migration report), built from a
//! plan: a planning summary and six lists of entries, each entry keyed so that
//! two reports can be compared.

mod compare;
mod initial_backup;
mod provisioning;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::initial_backup::InitialBackupOptions;
use super::machines::{ActionCause, ContactReason};
use super::plan::{Plan, PlannedMachine, PlannedTenant, Snapshot, TenantKind};
use super::support::{ClientStatus, Readiness};
use super::tenants::GroupPlan;
pub use compare::{SectionChanges, compare_entries};
pub use provisioning::add_provisioning;

/// The sections that list entries (the planning section is the summary).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Users to contact before the migration, with why and their contacts.
    Contacts,
    /// Machines for which additional actions should be taken, by cause.
    Actions,
    /// The source tree beside the target tree.
    Hierarchy,
    /// Groups mapping: each group's admin, source login -> target login.
    Groups,
    /// Users mapping: each backup user, source login -> target login.
    Users,
    /// Each customer's initial backup: data volume, duration at the bandwidth,
    /// whether Physical Data Shipping is advised.
    InitialBackup,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Contacts,
        Section::Actions,
        Section::Hierarchy,
        Section::Groups,
        Section::Users,
        Section::InitialBackup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Contacts => "contacts",
            Section::Actions => "actions",
            Section::Hierarchy => "hierarchy",
            Section::Groups => "groups",
            Section::Users => "users",
            Section::InitialBackup => "initial_backup",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Section::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One entry of a section: its key (stable across reports) and its JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The planning section.
    pub planning: Value,
    pub sections: BTreeMap<Section, Vec<Entry>>,
}

fn entry(key: String, value: Value) -> Entry {
    Entry { key, value }
}

/// What the report says about the target's answers on logins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct LoginAnswers {
    /// Logins of this plan the target was asked about (now or earlier, still fresh).
    pub known: usize,
    /// Planned logins whose availability the target was not asked about.
    pub unverified: usize,
    pub oldest_answer_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub fn build(
    snapshot: &Snapshot,
    plan: &Plan,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
) -> Report {
    let names: HashMap<&str, &str> = snapshot
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.name.as_str()))
        .collect();
    let group_name = |id: &str| names.get(id).copied().unwrap_or_default().to_string();
    let users: HashMap<&str, &super::plan::input::User> =
        snapshot.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let admins: HashMap<&str, &super::plan::PlannedAdmin> = plan
        .admins
        .iter()
        .map(|a| (a.group_id.as_str(), a))
        .collect();
    let groups = || -> Vec<Entry> {
        plan.groups
            .iter()
            .filter(|g| g.selected && matches!(g.plan, GroupPlan::Partner | GroupPlan::Customer | GroupPlan::PartnerWithCustomer))
            .map(|g| {
                let value = match admins.get(g.group_id.as_str()) {
                    Some(a) => json!({
                        "group_id": g.group_id, "group_name": group_name(&g.group_id), "tenant_key": a.tenant_key, "role": a.role,
                        "source_login": a.contact.login, "target_login": a.login.target, "segments": a.login.segments,
                        "changes": a.changes, "unverified": a.unverified, "activation_required": true,
                        "contact": a.contact,
                    }),
                    None => json!({
                        "group_id": g.group_id, "group_name": group_name(&g.group_id), "tenant_key": g.tenant_key,
                        "source_login": null, "target_login": null, "note": "no_admin",
                    }),
                };
                entry(g.group_id.clone(), value)
            })
            .collect()
    };
    let users_section = || -> Vec<Entry> {
        plan.users
            .iter()
            .map(|u| {
                entry(
                    u.user_id.clone(),
                    json!({
                        "user_id": u.user_id, "group_id": u.group_id, "group_name": group_name(&u.group_id), "tenant_key": u.tenant_key,
                        "source_login": u.login.source, "target_login": u.login.target, "segments": u.login.segments,
                        "changes": u.changes, "unverified": u.unverified, "contact": u.contact,
                    }),
                )
            })
            .collect()
    };
    // The users section is the largest: it is built beside the others, on a second core.
    let (users_entries, others) = std::thread::scope(|scope| {
        let users_entries = scope.spawn(users_section);
        let others = [
            (Section::Contacts, contacts(plan, &users, &group_name)),
            (Section::Actions, actions(plan, &users, &group_name)),
            (Section::Hierarchy, hierarchy(plan, &group_name)),
            (Section::Groups, groups()),
            (
                Section::InitialBackup,
                initial_backup::entries(plan, initial_backup, &group_name),
            ),
        ];
        (
            users_entries.join().expect("building the users section"),
            others,
        )
    });
    let mut sections: BTreeMap<Section, Vec<Entry>> = others.into_iter().collect();
    sections.insert(Section::Users, users_entries);
    let planning = planning(plan, &sections, logins, initial_backup);
    Report { planning, sections }
}

fn contacts(
    plan: &Plan,
    users: &HashMap<&str, &super::plan::input::User>,
    group_name: &dyn Fn(&str) -> String,
) -> Vec<Entry> {
    let mut by_user: BTreeMap<&str, Vec<&PlannedMachine>> = BTreeMap::new();
    for m in plan.machines.iter().filter(|m| !m.contact.is_empty()) {
        by_user.entry(m.user_id.as_str()).or_default().push(m);
    }
    by_user
        .into_iter()
        .filter_map(|(user_id, machines)| {
            let user = users.get(user_id)?;
            let mut reasons: Vec<ContactReason> = machines.iter().flat_map(|m| m.contact.iter().copied()).collect();
            reasons.sort();
            reasons.dedup();
            let machines: Vec<Value> = machines
                .iter()
                .map(|m| json!({"machine_id": m.machine_id, "hostname": m.hostname, "client_version": m.client_version, "last_seen_at": m.last_seen_at, "reasons": m.contact}))
                .collect();
            Some(entry(
                user_id.to_string(),
                json!({
                    "user_id": user_id, "login": user.login, "email": user.email, "first_name": user.first_name, "last_name": user.last_name,
                    "group_id": user.group_id, "group_name": group_name(&user.group_id), "reasons": reasons, "machines": machines,
                }),
            ))
        })
        .collect()
}

fn actions(
    plan: &Plan,
    users: &HashMap<&str, &super::plan::input::User>,
    group_name: &dyn Fn(&str) -> String,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for cause in ActionCause::ALL {
        for m in plan.machines.iter().filter(|m| m.actions.contains(&cause)) {
            let user = users.get(m.user_id.as_str());
            let plans: Vec<Value> = m
                .plans
                .iter()
                .filter(|p| match cause {
                    ActionCause::UnsupportedOs => true,
                    ActionCause::SqlServerRegistration => p.kind == "sql_server",
                    ActionCause::ExchangeRegistration => p.kind == "exchange",
                    ActionCause::UnsupportedPlanType => {
                        p.support == super::support::PlanSupport::Manual
                    }
                })
                .map(|p| json!({"plan_id": p.plan_id, "name": p.name, "type": p.kind}))
                .collect();
            out.push(entry(
                format!("{}/{}", serde_plain(&cause), m.machine_id),
                json!({
                    "cause": cause, "machine_id": m.machine_id, "hostname": m.hostname, "os_name": m.os_name, "readiness": m.readiness,
                    "user_id": m.user_id, "login": user.map(|u| &u.login), "email": user.and_then(|u| u.email.as_ref()),
                    "group_id": m.group_id, "group_name": group_name(&m.group_id), "plans": plans,
                }),
            ));
        }
    }
    out
}

fn serde_plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn hierarchy(plan: &Plan, group_name: &dyn Fn(&str) -> String) -> Vec<Entry> {
    let tenants: HashMap<&str, &PlannedTenant> =
        plan.tenants.iter().map(|t| (t.key.as_str(), t)).collect();
    let tenant = |key: &Option<String>| -> Value {
        match key.as_deref().and_then(|k| tenants.get(k)) {
            Some(t) => {
                json!({"key": t.key, "kind": t.kind, "parent_key": t.parent_key, "name": t.name.target, "segments": t.name.segments})
            }
            None => Value::Null,
        }
    };
    plan.groups
        .iter()
        .map(|g| {
            // A customer's users live in the group's own tenant: no second row.
            let users_tenant = if g.users_tenant_key == g.tenant_key { Value::Null } else { tenant(&g.users_tenant_key) };
            entry(
                g.group_id.clone(),
                json!({
                    "group_id": g.group_id, "parent_id": g.parent_id, "depth": g.depth, "source_name": group_name(&g.group_id),
                    "plan": g.plan, "selected": g.selected, "tenant": tenant(&g.tenant_key), "users_tenant": users_tenant,
                }),
            )
        })
        .collect()
}

fn planning(
    plan: &Plan,
    sections: &BTreeMap<Section, Vec<Entry>>,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
) -> Value {
    let count_tenants = |kind| plan.tenants.iter().filter(|t| t.kind == kind).count();
    let selected = plan
        .groups
        .iter()
        .filter(|g| g.selected && g.plan != GroupPlan::Root);
    let mut readiness: BTreeMap<Readiness, usize> =
        Readiness::ALL.into_iter().map(|r| (r, 0)).collect();
    let mut clients: BTreeMap<String, usize> = BTreeMap::new();
    let mut versions: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut data_size: u64 = 0;
    let mut backup_plans = 0;
    for m in &plan.machines {
        *readiness.entry(m.readiness).or_default() += 1;
        *clients.entry(serde_plain(&m.client)).or_default() += 1;
        *versions
            .entry((
                serde_plain(&m.platform),
                m.client_version.clone().unwrap_or_else(|| "unknown".into()),
            ))
            .or_default() += 1;
        data_size += m.data_size_bytes;
        backup_plans += m.plans.len();
    }
    for status in [
        ClientStatus::Current,
        ClientStatus::WillAutoUpdate,
        ClientStatus::AutoUpdateOff,
        ClientStatus::NeverReported,
    ] {
        clients.entry(serde_plain(&status)).or_default();
    }
    let contacts = &sections[&Section::Contacts];
    let mut to_contact: BTreeMap<String, usize> = ["auto_update_off", "never_reported", "offline"]
        .into_iter()
        .map(|r| (r.to_string(), 0))
        .collect();
    for c in contacts {
        for reason in c.value["reasons"].as_array().into_iter().flatten() {
            *to_contact
                .entry(reason.as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    let actions: Vec<Value> = ActionCause::ALL
        .into_iter()
        .map(|cause| {
            let machines = plan
                .machines
                .iter()
                .filter(|m| m.actions.contains(&cause))
                .count();
            json!({"cause": cause, "machines": machines, "instructions": cause.instructions()})
        })
        .collect();
    let groups: Vec<_> = selected.collect();
    json!({
        "counts": {
            "companies": count_tenants(TenantKind::Customer),
            "partners": count_tenants(TenantKind::Partner),
            "groups": groups.len(),
            "empty_groups": groups.iter().filter(|g| g.plan == GroupPlan::Empty).count(),
            "groups_without_admin": sections[&Section::Groups].iter().filter(|e| e.value["target_login"].is_null()).count(),
            "admins": plan.admins.len(),
            "users": plan.users.len(),
            "machines": plan.machines.len(),
            "backup_plans": backup_plans,
            "data_size_bytes": data_size,
        },
        "machines_by_readiness": readiness,
        "clients": clients,
        "clients_that_will_auto_update": clients.get("will_auto_update").copied().unwrap_or_default(),
        "client_versions": versions.into_iter().map(|((platform, version), machines)| json!({"platform": platform, "version": version, "machines": machines})).collect::<Vec<_>>(),
        "users_to_contact": {"total": contacts.len(), "by_reason": to_contact},
        "actions": actions,
        "logins": logins,
        "initial_backup": initial_backup::summary(&sections[&Section::InitialBackup], initial_backup),
        "sections": Section::ALL.iter().map(|s| (s.as_str().to_string(), json!(sections[s].len()))).collect::<serde_json::Map<_, _>>(),
    })
}
