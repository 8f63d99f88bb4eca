//! The initial-backup section: per customer tenant of the plan, the data its
//! machines send in their first cloud backup, how long that takes at the
//! pre-check's bandwidth, and whether Physical Data Shipping is advised; and
//! its summary in the planning section.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::initial_backup::{InitialBackupOptions, estimate};
use crate::domain::plan::{Plan, TenantKind};

/// An entry of the section, written as JSON text (the fields in alphabetical
/// order, as a JSON tree writes them).
#[derive(Serialize)]
pub(super) struct Customer<'a> {
    pub data_size_bytes: u64,
    pub duration_days: f64,
    pub duration_seconds: u64,
    group_id: &'a str,
    group_name: &'a str,
    machines: usize,
    pub physical_data_shipping: bool,
    tenant_key: &'a str,
    tenant_name: &'a str,
}

/// One entry per customer tenant, the largest volume first.
pub(super) fn entries<'a>(
    plan: &'a Plan,
    options: &InitialBackupOptions,
    group_name: &dyn Fn(&str) -> &'a str,
) -> Vec<Customer<'a>> {
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
    let mut customers: Vec<Customer<'a>> = plan
        .tenants
        .iter()
        .filter(|t| t.kind == TenantKind::Customer)
        .map(|t| {
            let (machines, bytes) = volume.get(t.key.as_str()).copied().unwrap_or_default();
            let e = estimate(bytes, options);
            Customer {
                data_size_bytes: bytes,
                duration_days: e.duration_days,
                duration_seconds: e.duration_seconds,
                group_id: &t.group_id,
                group_name: group_name(&t.group_id),
                machines,
                physical_data_shipping: e.physical_data_shipping,
                tenant_key: &t.key,
                tenant_name: &t.name.target,
            }
        })
        .collect();
    customers.sort_by(|a, b| {
        b.data_size_bytes
            .cmp(&a.data_size_bytes)
            .then_with(|| a.tenant_key.cmp(b.tenant_key))
    });
    customers
}

impl Customer<'_> {
    pub(super) fn key(&self) -> &str {
        self.tenant_key
    }
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
    pub(super) fn add(&mut self, e: &Customer<'_>) {
        let bytes = e.data_size_bytes;
        self.customers += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if e.physical_data_shipping {
            self.shipped += 1;
            self.shipped_bytes = self.shipped_bytes.saturating_add(bytes);
        }
        // As a JSON tree read it: a duration that is not a number (none here) is left out.
        if e.duration_days.is_finite() {
            self.longest_days = self.longest_days.max(e.duration_days);
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
