//! Decommission planning (seed: once backup plans are transferred, BackupAgent
//! data stays restorable until its retention runs out; then the customer's
//! BackupAgent subscription can be switched off). Per customer of the plan:
//! the date after which that is, or why it cannot be said yet.
//!
//! How machines count:
//! - every machine of the customer must have migrated: until then the date is
//!   undetermined and the machines remaining are counted (a failed, cancelled or
//!   manual-action machine has not migrated);
//! - the date is the latest migration among its machines plus the longest
//!   retention among all their backup plans;
//! - a machine without backup plans must migrate too (it runs the BackupAgent
//!   client), but keeps no data: it adds no retention, so a customer whose
//!   machines have no plans at all can go when its last machine migrated;
//! - a plan whose retention the source does not give might keep data for ever:
//!   the date is undetermined until it is known;
//! - a customer without machines has nothing kept in BackupAgent.
//!
//! Retention longer than a threshold is flagged: the seed asks such customers
//! to contact their Acronis representative.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::names::NameRules;
use super::plan::{Snapshot, customers};

pub const DEFAULT_LONG_RETENTION_DAYS: u32 = 365;

/// One machine of a customer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineRetention {
    /// When it migrated; `None` while it has not.
    pub migrated_at: Option<DateTime<Utc>>,
    /// Each backup plan's retention in days (`None`: the source did not give it).
    pub retention_days: Vec<Option<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecommissionStatus {
    /// Some machines have not migrated yet (`machines_remaining`).
    WaitingForMachines,
    /// Every machine migrated, but some plan's retention is unknown (`plans_without_retention`).
    RetentionUnknown,
    /// `decommission_after` is known.
    Scheduled,
    /// No machines: BackupAgent keeps nothing for the customer.
    NoMachines,
}

/// When a customer's BackupAgent can be switched off.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Decommission {
    pub status: DecommissionStatus,
    pub machines: usize,
    pub machines_migrated: usize,
    /// Machines not migrated yet: the date waits for them.
    pub machines_remaining: usize,
    /// Machines without backup plans (they keep no data but must migrate).
    pub machines_without_plans: usize,
    pub backup_plans: usize,
    /// Plans whose retention the source does not give.
    pub plans_without_retention: usize,
    /// The latest migration among the machines migrated so far.
    pub last_migrated_at: Option<DateTime<Utc>>,
    /// The longest known retention among the machines' backup plans.
    pub longest_retention_days: Option<u32>,
    /// BackupAgent can be switched off for the customer after this (once every
    /// machine migrated and every retention is known).
    pub decommission_after: Option<DateTime<Utc>>,
    /// The longest retention exceeds the threshold: the customer should contact
    /// their Acronis representative.
    pub long_retention: bool,
}

/// The rules above for one customer's machines.
pub fn decommission(machines: &[MachineRetention], long_retention_days: u32) -> Decommission {
    let plans = machines.iter().flat_map(|m| &m.retention_days);
    let longest = plans.clone().flatten().copied().max();
    let migrated: Vec<DateTime<Utc>> = machines.iter().filter_map(|m| m.migrated_at).collect();
    let last_migrated_at = migrated.iter().max().copied();
    let remaining = machines.len() - migrated.len();
    let without_retention = plans.clone().filter(|r| r.is_none()).count();
    let status = if machines.is_empty() {
        DecommissionStatus::NoMachines
    } else if remaining > 0 {
        DecommissionStatus::WaitingForMachines
    } else if without_retention > 0 {
        DecommissionStatus::RetentionUnknown
    } else {
        DecommissionStatus::Scheduled
    };
    let decommission_after = match (status, last_migrated_at) {
        (DecommissionStatus::Scheduled, Some(last)) => {
            Some(last + Duration::days(i64::from(longest.unwrap_or(0))))
        }
        _ => None,
    };
    Decommission {
        status,
        machines: machines.len(),
        machines_migrated: migrated.len(),
        machines_remaining: remaining,
        machines_without_plans: machines
            .iter()
            .filter(|m| m.retention_days.is_empty())
            .count(),
        backup_plans: plans.count(),
        plans_without_retention: without_retention,
        last_migrated_at,
        longest_retention_days: longest,
        decommission_after,
        long_retention: longest.is_some_and(|days| days > long_retention_days),
    }
}

/// A customer and when its BackupAgent can be switched off.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CustomerDecommission {
    /// The customer's planned tenant key (as in the pre-check's hierarchy section).
    pub customer_key: String,
    pub group_id: String,
    pub group_name: String,
    /// The customer's tenant name in the target.
    pub tenant_name: String,
    #[serde(flatten)]
    pub decommission: Decommission,
}

/// Every customer of the install base; `migrated_at` holds the migrated
/// machines and when they migrated.
pub fn customers_decommission(
    snapshot: &Snapshot,
    migrated_at: &HashMap<String, DateTime<Utc>>,
    rules: &NameRules,
    long_retention_days: u32,
) -> Vec<CustomerDecommission> {
    let mut retention: HashMap<&str, Vec<Option<u32>>> = HashMap::new();
    for plan in &snapshot.plans {
        retention
            .entry(plan.machine_id.as_str())
            .or_default()
            .push(plan.retention_days);
    }
    let mut machines_of: HashMap<&str, Vec<MachineRetention>> = HashMap::new();
    for machine in &snapshot.machines {
        machines_of
            .entry(machine.user_id.as_str())
            .or_default()
            .push(MachineRetention {
                migrated_at: migrated_at.get(&machine.id).copied(),
                retention_days: retention.remove(machine.id.as_str()).unwrap_or_default(),
            });
    }
    customers(snapshot, rules)
        .into_iter()
        .map(|c| {
            let machines: Vec<MachineRetention> = c
                .user_ids
                .iter()
                .flat_map(|u| machines_of.remove(u.as_str()).unwrap_or_default())
                .collect();
            CustomerDecommission {
                decommission: decommission(&machines, long_retention_days),
                customer_key: c.key,
                group_id: c.group_id,
                group_name: c.group_name,
                tenant_name: c.name,
            }
        })
        .collect()
}

/// The install base at a glance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct DecommissionSummary {
    pub customers: usize,
    pub scheduled: usize,
    pub waiting_for_machines: usize,
    pub retention_unknown: usize,
    pub no_machines: usize,
    /// Customers flagged for long retention.
    pub long_retention: usize,
    /// Machines not migrated yet, over all customers.
    pub machines_remaining: usize,
    /// The BackupAgent server can be decommissioned after this: the latest
    /// customer date, once every customer has one (or has no machines).
    pub server_decommission_after: Option<DateTime<Utc>>,
}

pub fn summary(customers: &[CustomerDecommission]) -> DecommissionSummary {
    let count = |status| {
        customers
            .iter()
            .filter(|c| c.decommission.status == status)
            .count()
    };
    let mut out = DecommissionSummary {
        customers: customers.len(),
        scheduled: count(DecommissionStatus::Scheduled),
        waiting_for_machines: count(DecommissionStatus::WaitingForMachines),
        retention_unknown: count(DecommissionStatus::RetentionUnknown),
        no_machines: count(DecommissionStatus::NoMachines),
        long_retention: customers
            .iter()
            .filter(|c| c.decommission.long_retention)
            .count(),
        machines_remaining: customers
            .iter()
            .map(|c| c.decommission.machines_remaining)
            .sum(),
        server_decommission_after: None,
    };
    if out.waiting_for_machines + out.retention_unknown == 0 {
        out.server_decommission_after = customers
            .iter()
            .filter_map(|c| c.decommission.decommission_after)
            .max();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::DecommissionStatus::*;
    use super::*;
    use crate::domain::plan::examples::{group, host, user};
    use crate::domain::plan::input::BackupPlan;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn machine(migrated_at: Option<&str>, retention_days: &[Option<u32>]) -> MachineRetention {
        MachineRetention {
            migrated_at: migrated_at.map(at),
            retention_days: retention_days.to_vec(),
        }
    }

    const T0: &str = "2026-03-01T00:00:00Z";

    #[test]
    fn a_customer_can_go_once_every_machine_migrated_and_the_longest_retention_ran_out() {
        // (rule, machines, threshold) -> (status, remaining, last migrated, longest, after, long retention)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Vec<MachineRetention>,
            u32,
            (
                DecommissionStatus,
                usize,
                Option<&str>,
                Option<u32>,
                Option<&str>,
                bool,
            ),
        )> = vec![
            (
                "retention 30 days",
                vec![machine(Some(T0), &[Some(30)])],
                365,
                (
                    Scheduled,
                    0,
                    Some(T0),
                    Some(30),
                    Some("2026-03-31T00:00:00Z"),
                    false,
                ),
            ),
            // 2026-03-01 + 10 years is 3,653 days (29 February 2028, 2032, 2036): 3,650 days is 2036-02-27.
            (
                "retention 3650 days, flagged",
                vec![machine(Some(T0), &[Some(3650)])],
                365,
                (
                    Scheduled,
                    0,
                    Some(T0),
                    Some(3650),
                    Some("2036-02-27T00:00:00Z"),
                    true,
                ),
            ),
            (
                "the latest migration plus the longest retention, from different machines",
                vec![
                    machine(Some(T0), &[Some(365), Some(7)]),
                    machine(Some("2026-03-11T08:30:00Z"), &[Some(30)]),
                ],
                365,
                (
                    Scheduled,
                    0,
                    Some("2026-03-11T08:30:00Z"),
                    Some(365),
                    Some("2027-03-11T08:30:00Z"),
                    false,
                ),
            ),
            (
                "partially migrated: waits, says how many remain, flags early",
                vec![
                    machine(Some(T0), &[Some(30)]),
                    machine(None, &[Some(730)]),
                    machine(None, &[]),
                ],
                365,
                (WaitingForMachines, 2, Some(T0), Some(730), None, true),
            ),
            (
                "nothing migrated yet",
                vec![machine(None, &[Some(30)]), machine(None, &[Some(60)])],
                365,
                (WaitingForMachines, 2, None, Some(60), None, false),
            ),
            (
                "no plans: nothing kept, the last migration is the date",
                vec![
                    machine(Some(T0), &[]),
                    machine(Some("2026-03-02T00:00:00Z"), &[]),
                ],
                365,
                (
                    Scheduled,
                    0,
                    Some("2026-03-02T00:00:00Z"),
                    None,
                    Some("2026-03-02T00:00:00Z"),
                    false,
                ),
            ),
            (
                "a machine without plans adds no retention",
                vec![machine(Some(T0), &[]), machine(Some(T0), &[Some(90)])],
                365,
                (
                    Scheduled,
                    0,
                    Some(T0),
                    Some(90),
                    Some("2026-05-30T00:00:00Z"),
                    false,
                ),
            ),
            (
                "a retention the source does not give leaves the date open",
                vec![machine(Some(T0), &[Some(30), None])],
                365,
                (RetentionUnknown, 0, Some(T0), Some(30), None, false),
            ),
            (
                "no machines",
                vec![],
                365,
                (NoMachines, 0, None, None, None, false),
            ),
            (
                "the threshold is configurable",
                vec![machine(Some(T0), &[Some(730)])],
                1000,
                (
                    Scheduled,
                    0,
                    Some(T0),
                    Some(730),
                    Some("2028-02-29T00:00:00Z"),
                    false,
                ),
            ),
            (
                "at the threshold is not over it",
                vec![machine(None, &[Some(365)])],
                365,
                (WaitingForMachines, 1, None, Some(365), None, false),
            ),
        ];
        for (rule, machines, threshold, (status, remaining, last, longest, after, long)) in cases {
            let d = decommission(&machines, threshold);
            assert_eq!(
                (
                    d.status,
                    d.machines_remaining,
                    d.last_migrated_at,
                    d.longest_retention_days,
                    d.decommission_after,
                    d.long_retention
                ),
                (
                    status,
                    remaining,
                    last.map(at),
                    longest,
                    after.map(at),
                    long
                ),
                "{rule}"
            );
            assert_eq!(d.machines, machines.len(), "{rule}");
            assert_eq!(
                d.machines_migrated + d.machines_remaining,
                d.machines,
                "{rule}"
            );
        }
        let counted = decommission(
            &[
                machine(Some(T0), &[]),
                machine(None, &[Some(1), None, Some(2)]),
            ],
            365,
        );
        assert_eq!(
            (
                counted.machines_without_plans,
                counted.backup_plans,
                counted.plans_without_retention
            ),
            (1, 3, 1)
        );
    }

    fn plan(id: &str, machine: &str, retention_days: Option<u32>) -> BackupPlan {
        let schedule = serde_json::json!({"kind": "daily", "times": ["09:00"]}).into();
        BackupPlan {
            id: id.into(),
            machine_id: machine.into(),
            name: id.into(),
            kind: "files".into(),
            inclusion_filters: vec![],
            schedule,
            retention_days,
        }
    }

    /// The root's direct users (one machine, retention not given), a reseller with
    /// a customer of two users (three machines, one without plans) and a customer
    /// without machines.
    fn snapshot(root_retention: Option<u32>) -> Snapshot {
        Snapshot {
            groups: vec![
                group("g0", None),
                group("g1", Some("g0")),
                group("g2", Some("g1")),
                group("g3", Some("g1")),
            ],
            users: vec![
                user("u0", "g0"),
                user("u1", "g2"),
                user("u2", "g2"),
                user("u3", "g3"),
            ],
            machines: vec![
                host("m0", "u0", 0),
                host("m1", "u1", 0),
                host("m2", "u2", 0),
                host("m3", "u2", 0),
            ],
            plans: vec![
                plan("p1", "m1", Some(30)),
                plan("p2", "m2", Some(365)),
                plan("p3", "m2", Some(7)),
                plan("p4", "m0", root_retention),
            ],
        }
    }

    #[test]
    fn customers_are_the_planned_customer_tenants_with_their_users_machines() {
        let mut migrated: HashMap<String, DateTime<Utc>> = [
            ("m1", T0),
            ("m2", "2026-03-03T00:00:00Z"),
            ("m3", "2026-03-02T00:00:00Z"),
        ]
        .into_iter()
        .map(|(m, t)| (m.to_string(), at(t)))
        .collect();
        let rows = customers_decommission(&snapshot(None), &migrated, &NameRules::default(), 365);
        let seen: Vec<(
            &str,
            DecommissionStatus,
            usize,
            usize,
            Option<DateTime<Utc>>,
        )> = rows
            .iter()
            .map(|r| {
                (
                    r.customer_key.as_str(),
                    r.decommission.status,
                    r.decommission.machines,
                    r.decommission.machines_remaining,
                    r.decommission.decommission_after,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("g0#users", WaitingForMachines, 1, 1, None),
                // Latest migration 2026-03-03 (m2) + 365 days (p2).
                ("g2", Scheduled, 3, 0, Some(at("2027-03-03T00:00:00Z"))),
                ("g3", NoMachines, 0, 0, None),
            ]
        );
        let g2 = &rows[1].decommission;
        assert_eq!(
            (
                g2.machines_without_plans,
                g2.backup_plans,
                rows[1].tenant_name.as_str(),
                rows[1].group_name.as_str()
            ),
            (1, 3, "Group g2", "Group g2")
        );
        let totals = summary(&rows);
        assert_eq!(
            (
                totals.customers,
                totals.scheduled,
                totals.waiting_for_machines,
                totals.no_machines,
                totals.machines_remaining
            ),
            (3, 1, 1, 1, 1)
        );
        assert_eq!(
            totals.server_decommission_after, None,
            "the server waits for every customer"
        );

        migrated.insert("m0".into(), at("2026-03-06T00:00:00Z"));
        let rows = customers_decommission(&snapshot(None), &migrated, &NameRules::default(), 365);
        assert_eq!(rows[0].decommission.status, RetentionUnknown);
        assert_eq!(
            summary(&rows).server_decommission_after,
            None,
            "an unknown retention keeps the server too"
        );
        let rows =
            customers_decommission(&snapshot(Some(10)), &migrated, &NameRules::default(), 365);
        assert_eq!(
            rows[0].decommission.decommission_after,
            Some(at("2026-03-16T00:00:00Z"))
        );
        assert_eq!(
            summary(&rows).server_decommission_after,
            Some(at("2027-03-03T00:00:00Z")),
            "the latest customer date"
        );
    }
}
