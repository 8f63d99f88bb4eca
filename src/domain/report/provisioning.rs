//! The pre-check's view of provisioning: per tenant to create or adopt, the
//! services and quotas it will get and the profile's items its parent cannot
//! give; per user whose source quota becomes its quota in the cloud, whether its
//! data already exceeds it; and a summary in the planning section.

use std::collections::HashMap;

use serde_json::{Value, json};

use serde::Serialize;

use super::ProvisioningView;
use crate::domain::plan::{Plan, Snapshot};
use crate::domain::provisioning::{Flag, QuotaRule, TenantServices, flag_summary};

/// What the provisioning view adds to a users entry.
#[derive(Clone, Copy, Debug)]
pub(super) struct UserQuota {
    pub data_exceeds_quota: bool,
    pub data_size_bytes: u64,
    pub storage_quota_bytes: Option<u64>,
}

/// What the provisioning view adds to a tenant of the hierarchy section.
pub(super) struct TenantQuota<'a> {
    pub data_exceeds_quota: bool,
    pub data_size_bytes: u64,
    pub services: Vec<Service>,
    pub unavailable: Vec<Unavailable<'a>>,
}

/// One of a tenant's services, as the hierarchy section writes it (the fields in
/// alphabetical order, as a JSON tree writes them).
#[derive(Serialize)]
pub(super) struct Service {
    item: String,
    quota: SortedQuota,
}

#[derive(Serialize)]
struct SortedQuota {
    overage: Option<u64>,
    value: Option<u64>,
}

/// An item a tenant cannot have, as the hierarchy section writes it.
#[derive(Serialize)]
pub(super) struct Unavailable<'a> {
    item: String,
    reason: &'a crate::domain::provisioning::Unavailable,
}

impl<'a> From<&'a Flag> for Unavailable<'a> {
    fn from(flag: &'a Flag) -> Self {
        Self {
            item: flag.item.to_string(),
            reason: &flag.reason,
        }
    }
}

/// What the provisioning view adds to entries, read once from the plan.
pub(super) struct Provisioning<'a> {
    view: &'a ProvisioningView<'a>,
    data_by_user: HashMap<&'a str, u64>,
    data_by_tenant: HashMap<&'a str, u64>,
    by_key: HashMap<&'a str, &'a TenantServices>,
    /// Users' source quotas, when the customer profile carries them.
    quotas: HashMap<&'a str, u64>,
}

impl<'a> Provisioning<'a> {
    /// The data of a user's machines is the plan's: the users the report lists
    /// are the selection's, whose machines the plan holds, every one.
    pub(super) fn new(
        view: &'a ProvisioningView<'a>,
        snapshot: &'a Snapshot,
        plan: &'a Plan,
    ) -> Self {
        let mut data_by_user: HashMap<&str, u64> = HashMap::new();
        for machine in &plan.machines {
            *data_by_user.entry(machine.user_id.as_str()).or_default() += machine.data_size_bytes;
        }
        let mut data_by_tenant: HashMap<&str, u64> = HashMap::new();
        for user in &plan.users {
            let data = data_by_user
                .get(user.user_id.as_str())
                .copied()
                .unwrap_or_default();
            *data_by_tenant.entry(user.tenant_key.as_str()).or_default() += data;
        }
        // A user's personal quota in the cloud is its source quota when the customer
        // profile carries source quotas into storage.
        let carried = view
            .profile
            .customer
            .iter()
            .any(|r| r.quota == QuotaRule::Source);
        let quotas = snapshot
            .users
            .iter()
            .filter(|_| carried)
            .filter_map(|u| Some((u.id.as_str(), u.storage_quota_bytes?)))
            .collect();
        Self {
            view,
            data_by_user,
            data_by_tenant,
            by_key: view.services.iter().map(|s| (s.key.as_str(), s)).collect(),
            quotas,
        }
    }

    /// What a tenant of the hierarchy section shows: its services, the items it
    /// cannot have, its data and whether that exceeds its storage quota (`None`
    /// for a tenant the view has no services for).
    pub(super) fn tenant(&self, key: &str) -> Option<TenantQuota<'a>> {
        let tenant = self.by_key.get(key)?;
        let storage = tenant
            .wants
            .iter()
            .filter(|w| w.item.measurement_unit == "bytes")
            .filter_map(|w| w.quota.value)
            .min();
        let data = self.data_by_tenant.get(key).copied().unwrap_or_default();
        Some(TenantQuota {
            data_exceeds_quota: storage.is_some_and(|quota| data > quota),
            data_size_bytes: data,
            services: tenant
                .wants
                .iter()
                .map(|w| Service {
                    item: w.item.key.to_string(),
                    quota: SortedQuota {
                        overage: w.quota.overage,
                        value: w.quota.value,
                    },
                })
                .collect(),
            unavailable: tenant.flags.iter().map(Unavailable::from).collect(),
        })
    }

    /// A user's quota in the cloud, its data and whether that exceeds it.
    pub(super) fn user(&self, user_id: &str) -> UserQuota {
        let quota = self.quotas.get(user_id).copied();
        let data = self.data_by_user.get(user_id).copied().unwrap_or_default();
        UserQuota {
            storage_quota_bytes: quota,
            data_size_bytes: data,
            data_exceeds_quota: quota.is_some_and(|q| data > q),
        }
    }

    /// The planning section's summary.
    pub(super) fn summary(&self, tenants_over_quota: usize, users_over_quota: usize) -> Value {
        let services = self.view.services;
        let flagged = services.iter().filter(|s| !s.flags.is_empty()).count();
        json!({
            "profile": self.view.profile,
            "verified": self.view.verified,
            "unavailable": flag_summary(services),
            "tenants_with_unavailable_items": flagged,
            "tenants_over_quota": tenants_over_quota,
            "users_over_quota": users_over_quota,
        })
    }
}
