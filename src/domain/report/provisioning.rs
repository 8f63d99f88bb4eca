//! The pre-check's view of provisioning: per tenant to create or adopt, the
//! services and quotas it will get and the profile's items its parent cannot
//! give; per user whose source quota becomes its quota in the cloud, whether its
//! data already exceeds it; and a summary in the planning section.

use std::collections::HashMap;

use serde_json::json;

use super::{Report, Section};
use crate::domain::plan::Snapshot;
use crate::domain::provisioning::{Profile, QuotaRule, TenantServices, flag_summary};

/// Adds the provisioning view to `report`; `verified`: the cloud was asked what
/// the workspace's tenant offers (else every item is taken as offered).
pub fn add_provisioning(
    report: &mut Report,
    snapshot: &Snapshot,
    profile: &Profile,
    services: &[TenantServices],
    verified: bool,
) {
    let mut data_by_user: HashMap<&str, u64> = HashMap::new();
    for machine in &snapshot.machines {
        *data_by_user.entry(machine.user_id.as_str()).or_default() += machine.data_size_bytes;
    }
    let mut data_by_tenant: HashMap<&str, u64> = HashMap::new();
    if let Some(users) = report.sections.get(&Section::Users) {
        for entry in users {
            if let (Some(tenant), Some(user)) = (
                entry.value["tenant_key"].as_str(),
                entry.value["user_id"].as_str(),
            ) {
                let data = data_by_user.get(user).copied().unwrap_or_default();
                *data_by_tenant.entry(tenant).or_default() += data;
            }
        }
    }
    let data_by_tenant: HashMap<String, u64> = data_by_tenant
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let by_key: HashMap<&str, &TenantServices> =
        services.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut tenants_over_quota = 0usize;
    if let Some(entries) = report.sections.get_mut(&Section::Hierarchy) {
        for entry in entries {
            for field in ["tenant", "users_tenant"] {
                let Some(key) = entry.value[field]["key"].as_str().map(str::to_string) else {
                    continue;
                };
                let Some(tenant) = by_key.get(key.as_str()) else {
                    continue;
                };
                let storage = tenant
                    .wants
                    .iter()
                    .filter(|w| w.item.measurement_unit == "bytes")
                    .filter_map(|w| w.quota.value)
                    .min();
                let data = data_by_tenant.get(&key).copied().unwrap_or_default();
                let over = storage.is_some_and(|quota| data > quota);
                tenants_over_quota += usize::from(over);
                let value = &mut entry.value[field];
                value["services"] = json!(
                    tenant
                        .wants
                        .iter()
                        .map(|w| json!({"item": w.item.key.to_string(), "quota": w.quota}))
                        .collect::<Vec<_>>()
                );
                value["unavailable"] = json!(
                    tenant
                        .flags
                        .iter()
                        .map(|f| json!({"item": f.item.to_string(), "reason": f.reason}))
                        .collect::<Vec<_>>()
                );
                value["data_size_bytes"] = json!(data);
                value["data_exceeds_quota"] = json!(over);
            }
        }
    }
    // A user's personal quota in the cloud is its source quota when the customer
    // profile carries source quotas into storage.
    let carried = profile
        .customer
        .iter()
        .any(|r| r.quota == QuotaRule::Source);
    let quotas: HashMap<&str, u64> = snapshot
        .users
        .iter()
        .filter_map(|u| Some((u.id.as_str(), u.storage_quota_bytes?)))
        .collect();
    let mut users_over_quota = 0usize;
    if let Some(entries) = report.sections.get_mut(&Section::Users) {
        for entry in entries {
            let Some(user) = entry.value["user_id"].as_str().map(str::to_string) else {
                continue;
            };
            let quota = quotas.get(user.as_str()).copied().filter(|_| carried);
            let data = data_by_user.get(user.as_str()).copied().unwrap_or_default();
            let over = quota.is_some_and(|q| data > q);
            users_over_quota += usize::from(over);
            entry.value["storage_quota_bytes"] = json!(quota);
            entry.value["data_size_bytes"] = json!(data);
            entry.value["data_exceeds_quota"] = json!(over);
        }
    }
    let flagged = services.iter().filter(|s| !s.flags.is_empty()).count();
    report.planning["provisioning"] = json!({
        "profile": profile,
        "verified": verified,
        "unavailable": flag_summary(services),
        "tenants_with_unavailable_items": flagged,
        "tenants_over_quota": tenants_over_quota,
        "users_over_quota": users_over_quota,
    });
}
