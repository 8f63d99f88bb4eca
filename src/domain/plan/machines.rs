//! Per machine: readiness with its causes, and its backup plans converted by
//! the schedule table, with warnings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::input::{BackupPlan, Machine};
use super::selection::Chosen;
use super::{Settings, Tree};
use crate::domain::machines::{ActionCause, ContactReason, MachineFacts};
use crate::domain::schedules::{ScheduleWarning, TargetSchedule, convert};
use crate::domain::support::{ClientStatus, PlanSupport, Platform, Readiness, plan_support};

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PlanWarning {
    /// From the schedule table.
    Schedule { warning: ScheduleWarning },
    /// Weekly and monthly schedules take one time: the others are left out.
    ExtraTimesLeftOut { times: usize },
    /// The schedule could not be read: the plan is run by hand until one is set.
    UnreadableSchedule,
    /// Inclusion filters need the 5.5 client the machine does not have yet.
    InclusionFiltersNeedCurrentClient,
    /// A one-time schedule needs the 5.5 client the machine does not have yet.
    OneTimeScheduleNeedsCurrentClient,
    /// SQL Server or Exchange: the agent installs, registration is manual.
    ManualRegistration,
    /// Not transferred: to be configured by hand after the migration.
    NotTransferred,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PlannedBackupPlan {
    pub plan_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub support: PlanSupport,
    pub schedule: TargetSchedule,
    pub retention_days: Option<u32>,
    pub warnings: Vec<PlanWarning>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedMachine {
    pub machine_id: String,
    pub user_id: String,
    pub group_id: String,
    pub hostname: String,
    pub platform: Platform,
    pub os_name: String,
    pub client_version: Option<String>,
    pub client: ClientStatus,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub data_size_bytes: u64,
    pub readiness: Readiness,
    pub actions: Vec<ActionCause>,
    pub contact: Vec<ContactReason>,
    pub plans: Vec<PlannedBackupPlan>,
}

pub(crate) fn plan_machines(
    tree: &Tree<'_>,
    chosen: &Chosen,
    settings: &Settings,
    machines: Vec<Machine>,
    plans: Vec<BackupPlan>,
) -> Vec<PlannedMachine> {
    let snapshot = tree.snapshot;
    let mut plans_of: HashMap<String, Vec<BackupPlan>> = HashMap::new();
    for mut plan in plans {
        plans_of
            .entry(std::mem::take(&mut plan.machine_id))
            .or_default()
            .push(plan);
    }
    let mut out = Vec::new();
    for machine in machines {
        let Some(u) = tree
            .user_index
            .get(machine.user_id.as_str())
            .copied()
            .filter(|&u| chosen.users[u])
        else {
            continue;
        };
        let user = &snapshot.users[u];
        let plans = plans_of.remove(machine.id.as_str()).unwrap_or_default();
        let platform = Platform::from_family(&machine.os.family);
        let facts = MachineFacts {
            platform,
            os_name: &machine.os.name,
            client_version: machine.client_version.as_deref(),
            auto_update: user.auto_update,
            last_seen_at: machine.last_seen_at,
            plan_types: plans.iter().map(|p| p.kind.as_str()).collect(),
        };
        let assessed = settings.matrix.assess(&facts, settings.clock);
        let current = assessed.client == ClientStatus::Current;
        // The machine's texts move into the plan: the snapshot's machines are not kept.
        out.push(PlannedMachine {
            machine_id: machine.id,
            user_id: user.id.clone(),
            group_id: user.group_id.clone(),
            hostname: machine.hostname,
            platform,
            os_name: machine.os.name,
            client_version: machine.client_version,
            client: assessed.client,
            last_seen_at: machine.last_seen_at,
            data_size_bytes: machine.data_size_bytes,
            readiness: assessed.readiness,
            actions: assessed.actions,
            contact: assessed.contact,
            plans: plans
                .into_iter()
                .map(|p| planned_backup_plan(p, current))
                .collect(),
        });
    }
    out
}

/// One backup plan in cloud terms. `current`: the machine runs the 5.5 client.
pub fn backup_plan(plan: &BackupPlan, current: bool) -> PlannedBackupPlan {
    planned_backup_plan(plan.clone(), current)
}

fn planned_backup_plan(plan: BackupPlan, current: bool) -> PlannedBackupPlan {
    let support = plan_support(&plan.kind);
    let mut warnings = Vec::new();
    let schedule = match plan.schedule.0 {
        Some((source, left_out)) => {
            let one_time = matches!(
                source,
                crate::domain::schedules::SourceSchedule::Once { .. }
            );
            let converted = convert(&source);
            warnings.extend(
                converted
                    .warnings
                    .into_iter()
                    .map(|warning| PlanWarning::Schedule { warning }),
            );
            if left_out > 0 {
                warnings.push(PlanWarning::ExtraTimesLeftOut { times: left_out });
            }
            if one_time && !current {
                warnings.push(PlanWarning::OneTimeScheduleNeedsCurrentClient);
            }
            converted.schedule
        }
        None => {
            warnings.push(PlanWarning::UnreadableSchedule);
            TargetSchedule::Manual
        }
    };
    if !plan.inclusion_filters.is_empty() && !current {
        warnings.push(PlanWarning::InclusionFiltersNeedCurrentClient);
    }
    match support {
        PlanSupport::Automatic => {}
        PlanSupport::ManualRegistration => warnings.push(PlanWarning::ManualRegistration),
        PlanSupport::Manual => warnings.push(PlanWarning::NotTransferred),
    }
    PlannedBackupPlan {
        plan_id: plan.id,
        name: plan.name,
        kind: plan.kind,
        support,
        schedule,
        retention_days: plan.retention_days,
        warnings,
    }
}
