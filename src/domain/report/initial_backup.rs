//! The initial-backup section: per customer tenant of the plan, the data its
//! machines send in their first cloud backup, how long that takes at the
//! pre-check's bandwidth, and whether Physical Data Shipping is advised; and
//! its summary in the planning section.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Entry, entry};
use crate::domain::initial_backup::{InitialBackupOptions, estimate};
use crate::domain::plan::{Plan, TenantKind};

/// One entry per customer tenant, the largest volume first.
pub(super) fn entries(
    plan: &Plan,
    options: &InitialBackupOptions,
    group_name: &dyn Fn(&str) -> String,
) -> Vec<Entry> {
    let customer_of: HashMap<&str, &str> = plan
        .users
        .iter()
        .map(|u| (u.user_id.as_str(), u.tenant_key.as_str()))
        .collect();
    let mut volume: HashMap<&str, (usize, u64)> = HashMap::new();
    for m in &plan.machines {
        if let Some(key) = customer_of.get(m.user_id.as_str()) {
            let v = volume.entry(key).or_default();
            v.0 += 1;
            // Sizes are the source's figures: a sum past u64 stays at its maximum rather than wrap.
            v.1 = v.1.saturating_add(m.data_size_bytes);
        }
    }
    let mut customers: Vec<(u64, &str, Value)> = plan
        .tenants
        .iter()
        .filter(|t| t.kind == TenantKind::Customer)
        .map(|t| {
            let (machines, bytes) = volume.get(t.key.as_str()).copied().unwrap_or_default();
            let e = estimate(bytes, options);
            let value = json!({
                "tenant_key": t.key, "tenant_name": t.name.target, "group_id": t.group_id, "group_name": group_name(&t.group_id),
                "machines": machines, "data_size_bytes": bytes, "duration_seconds": e.duration_seconds, "duration_days": e.duration_days,
                "physical_data_shipping": e.physical_data_shipping,
            });
            (bytes, t.key.as_str(), value)
        })
        .collect();
    customers.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    customers
        .into_iter()
        .map(|(_, key, value)| entry(key.to_string(), value))
        .collect()
}

/// The section's totals, added up entry by entry.
#[derive(Default)]
pub(super) struct Totals {
    customers: usize,
    bytes: u64,
    shipped: usize,
    shipped_bytes: u64,
    longest_days: f64,
}

impl Totals {
    pub(super) fn add(&mut self, e: &Entry) {
        let bytes = e.value["data_size_bytes"].as_u64().unwrap_or_default();
        self.customers += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if e.value["physical_data_shipping"] == true {
            self.shipped += 1;
            self.shipped_bytes = self.shipped_bytes.saturating_add(bytes);
        }
        if let Some(days) = e.value["duration_days"].as_f64() {
            self.longest_days = self.longest_days.max(days);
        }
    }

    /// The options it was computed with and its totals.
    pub(super) fn summary(&self, options: &InitialBackupOptions) -> Value {
        json!({
            "bandwidth_mbps": options.bandwidth_mbps,
            "physical_shipping_after_days": options.physical_shipping_after_days,
            "customers": self.customers,
            "data_size_bytes": self.bytes,
            "longest_duration_days": self.longest_days,
            "physical_data_shipping": {"customers": self.shipped, "data_size_bytes": self.shipped_bytes},
        })
    }
}
