//! What a migration creates, item by item, and the states an item goes through.
//!
//! A plan becomes items: its tenants parent first, then the admins, then the
//! backup users. Each item waits for the tenant it goes into; the key of an item
//! is also the key of its source -> target mapping, kept across waves.

mod planned;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::plan::{Plan, PlannedMachine, TenantKind};
use super::support::Readiness;
pub use planned::{Planned, PlannedAdmin, PlannedTenant, PlannedUser, UserMachine};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Tenant,
    Admin,
    User,
}

impl ItemKind {
    pub const ALL: [ItemKind; 3] = [ItemKind::Tenant, ItemKind::Admin, ItemKind::User];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Tenant => "tenant",
            ItemKind::Admin => "admin",
            ItemKind::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Its tenant is not created yet.
    Waiting,
    /// In a transfer job's batch.
    Queued,
    /// Created (or found) in the target and mapped.
    Done,
    /// The target refused it for good; the remote's code and message are kept.
    Failed,
    /// Its tenant failed: it waits for a retry of that tenant.
    Blocked,
    Cancelled,
}

impl ItemState {
    pub const ALL: [ItemState; 6] = [
        ItemState::Waiting,
        ItemState::Queued,
        ItemState::Done,
        ItemState::Failed,
        ItemState::Blocked,
        ItemState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Waiting => "waiting",
            ItemState::Queued => "queued",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
            ItemState::Blocked => "blocked",
            ItemState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Still to be worked on: the migration is not over while any item is.
    pub fn is_open(self) -> bool {
        matches!(self, ItemState::Waiting | ItemState::Queued)
    }

    /// The states an item may come from to reach `self`. `Done` is never left:
    /// retrying touches failed items only.
    pub fn reachable_from(self) -> &'static [ItemState] {
        match self {
            ItemState::Waiting => &[ItemState::Blocked],
            ItemState::Queued => &[ItemState::Waiting, ItemState::Failed],
            // A create in flight when the migration was cancelled still lands: it is recorded.
            ItemState::Done => &[ItemState::Queued, ItemState::Cancelled],
            ItemState::Failed => &[ItemState::Queued],
            ItemState::Blocked => &[ItemState::Waiting],
            ItemState::Cancelled => &[ItemState::Waiting, ItemState::Queued, ItemState::Blocked],
        }
    }

    pub fn can_become(self, to: ItemState) -> bool {
        to.reachable_from().contains(&self)
    }
}

/// Items still waiting or queued, from counts by kind and state.
pub fn open_items(
    counts: &std::collections::BTreeMap<ItemKind, std::collections::BTreeMap<ItemState, u64>>,
) -> u64 {
    counts
        .values()
        .flat_map(|by_state| {
            by_state
                .iter()
                .filter(|(s, _)| s.is_open())
                .map(|(_, n)| *n)
        })
        .sum()
}

/// One thing to create, as the plan says.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSpec {
    pub key: String,
    pub seq: i32,
    pub source_id: String,
    /// The tenant item this one goes into; `None`: the workspace's own tenant.
    pub parent_key: Option<String>,
    /// Says the item's kind too.
    pub planned: Planned,
}

pub fn tenant_key(key: &str) -> String {
    format!("tenant:{key}")
}

/// The items of a plan: tenants parent first, then admins, then users.
/// Machines that cannot migrate at all (unsupported) are not released to agents.
/// Made one by one as they are taken: a user's item holds its machines' plans,
/// and at `large` all of them at once are hundreds of megabytes.
pub fn items(plan: &Plan) -> impl Iterator<Item = ItemSpec> + Send + '_ {
    let tenants = plan.tenants.iter().map(|tenant| ItemSpec {
        key: tenant_key(&tenant.key),
        seq: 0,
        source_id: tenant.group_id.clone(),
        parent_key: tenant.parent_key.as_deref().map(tenant_key),
        planned: Planned::Tenant(PlannedTenant {
            tenant_key: tenant.key.clone(),
            name: tenant.name.target.clone(),
            kind: tenant.kind,
            direct_users: tenant.direct_users,
            // Set by `add_services`.
            services: Vec::new(),
            pricing_mode: None,
            existing_customers: Default::default(),
        }),
    });
    let admins = plan.admins.iter().map(|admin| ItemSpec {
        key: format!("admin:{}", admin.group_id),
        seq: 0,
        source_id: admin.group_id.clone(),
        parent_key: Some(tenant_key(&admin.tenant_key)),
        planned: Planned::Admin(PlannedAdmin {
            login: admin.login.target.clone(),
            role: admin.role,
            contact: admin.contact.clone(),
        }),
    });
    let mut machines: std::collections::HashMap<&str, Vec<&PlannedMachine>> =
        std::collections::HashMap::new();
    for machine in plan
        .machines
        .iter()
        .filter(|m| m.readiness != Readiness::Unsupported)
    {
        machines
            .entry(machine.user_id.as_str())
            .or_default()
            .push(machine);
    }
    let users = plan.users.iter().map(move |user| {
        let machines = machines
            .remove(user.user_id.as_str())
            .unwrap_or_default()
            .into_iter()
            .map(|machine| UserMachine {
                machine_id: machine.machine_id.clone(),
                readiness: machine.readiness,
                plans: machine.plans.iter().map(|plan| json!(plan)).collect(),
            })
            .collect();
        ItemSpec {
            key: format!("user:{}", user.user_id),
            seq: 0,
            source_id: user.user_id.clone(),
            parent_key: Some(tenant_key(&user.tenant_key)),
            planned: Planned::User(PlannedUser {
                login: user.login.target.clone(),
                contact: user.contact.clone(),
                machines,
                // Set by `add_services`.
                personal_quota: None,
            }),
        }
    });
    tenants
        .chain(admins)
        .chain(users)
        .zip(1..)
        .map(|(spec, seq)| ItemSpec { seq, ..spec })
}

/// Adds to each tenant item the services it gets (`services`, by tenant key) and
/// the profile's pricing mode and policy toward existing customers; and to each
/// user whose source quota the profile carries (`user_quotas`, bytes by user id)
/// the storage item of its tenant that its personal tenant gets with that quota.
pub fn add_services(
    specs: &mut [ItemSpec],
    services: &[super::provisioning::TenantServices],
    profile: &super::provisioning::Profile,
    user_quotas: &std::collections::HashMap<&str, u64>,
) {
    use super::provisioning::{Quota, QuotaRule, Want};
    let by_key: std::collections::HashMap<String, &super::provisioning::TenantServices> =
        services.iter().map(|s| (tenant_key(&s.key), s)).collect();
    let carried: Vec<super::provisioning::ItemKey> = profile
        .customer
        .iter()
        .filter(|r| r.quota == QuotaRule::Source)
        .map(|r| r.key())
        .collect();
    for spec in specs.iter_mut() {
        match &mut spec.planned {
            Planned::Tenant(tenant) => {
                tenant.services = by_key
                    .get(&spec.key)
                    .map(|s| s.wants.clone())
                    .unwrap_or_default();
                tenant.pricing_mode = Some(profile.pricing_mode);
                tenant.existing_customers = profile.existing_customers;
            }
            Planned::User(planned) => {
                let Some(bytes) = user_quotas.get(spec.source_id.as_str()) else {
                    continue;
                };
                let tenant = spec.parent_key.as_ref().and_then(|k| by_key.get(k));
                let storage = tenant
                    .filter(|t| t.kind == TenantKind::Customer)
                    .and_then(|t| t.wants.iter().find(|w| carried.contains(&w.item.key)));
                if let Some(storage) = storage {
                    let want = Want {
                        item: storage.item.clone(),
                        quota: Quota {
                            value: Some(*bytes),
                            overage: None,
                        },
                    };
                    planned.personal_quota = Some(Box::new(want));
                }
            }
            Planned::Admin(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ItemState::{self, *};

    #[test]
    fn item_transitions_follow_the_table() {
        // from, to, allowed
        let table: &[(ItemState, ItemState, bool)] = &[
            (Waiting, Queued, true),
            (Waiting, Blocked, true),
            (Waiting, Cancelled, true),
            (Waiting, Done, false),
            (Queued, Done, true),
            (Queued, Failed, true),
            (Queued, Cancelled, true),
            (Queued, Waiting, false),
            (Failed, Queued, true),
            (Failed, Done, false),
            (Failed, Cancelled, false),
            (Blocked, Waiting, true),
            (Blocked, Cancelled, true),
            (Blocked, Queued, false),
            (Done, Queued, false),
            (Done, Failed, false),
            (Done, Cancelled, false),
            (Cancelled, Queued, false),
            (Cancelled, Done, true),
        ];
        for (from, to, allowed) in table {
            assert_eq!(from.can_become(*to), *allowed, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn open_states_are_waiting_and_queued() {
        let open: Vec<_> = ItemState::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(open, vec![Waiting, Queued]);
        for state in ItemState::ALL {
            assert_eq!(ItemState::parse(state.as_str()), Some(state));
        }
    }
}
