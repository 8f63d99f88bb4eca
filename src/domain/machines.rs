//! A machine's readiness to migrate unattended, with every cause that holds it
//! back: its OS and plan types as the support matrix judges them, its client's
//! version and when it was last seen.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::support::{ClientStatus, PlanSupport, Platform, Readiness, SupportMatrix, plan_support};

/// What the snapshot says of one machine and its user.
#[derive(Clone, Debug)]
pub struct MachineFacts<'a> {
    pub platform: Platform,
    pub os_name: &'a str,
    pub client_version: Option<&'a str>,
    pub auto_update: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The machine's backup plan types (`files`, `sql_server`, …).
    pub plan_types: Vec<&'a str>,
}

/// Why a machine cannot be transferred without someone's hands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionCause {
    /// The OS is not in the support matrix: the machine is not migrated.
    UnsupportedOs,
    /// A SQL Server plan: the agent installs by itself, registration is manual.
    SqlServerRegistration,
    /// An Exchange plan: the agent installs by itself, registration is manual.
    ExchangeRegistration,
    /// A plan type the migration does not transfer: configured by hand afterwards.
    UnsupportedPlanType,
}

impl ActionCause {
    pub const ALL: [ActionCause; 4] = [
        ActionCause::UnsupportedOs,
        ActionCause::SqlServerRegistration,
        ActionCause::ExchangeRegistration,
        ActionCause::UnsupportedPlanType,
    ];

    /// The manual steps, as the report prints them.
    pub fn instructions(self) -> &'static [&'static str] {
        match self {
            ActionCause::UnsupportedOs => &[
                "The operating system is not supported by the unattended migration; the machine is left as it is.",
                "The user's account and backup user are still created in the cloud.",
                "Upgrade the operating system to a supported version and re-run the pre-check, or install the cloud agent by hand.",
                "To install by hand: sign in to the cloud as the backup user, download the agent for this OS, install it and register the machine.",
                "Recreate the backup plans in the cloud console; BackupAgent data stays restorable until its retention runs out.",
            ],
            ActionCause::SqlServerRegistration => &[
                "The cloud agent is installed automatically during the migration.",
                "Registration is manual: sign in to the machine, open the agent and register it with the backup user's credentials.",
                "Create a SQL Server backup plan in the cloud console matching the BackupAgent plan (databases, schedule, retention).",
                "Run the new plan once and confirm it succeeds before switching BackupAgent to restore-only.",
            ],
            ActionCause::ExchangeRegistration => &[
                "The cloud agent is installed automatically during the migration.",
                "Registration is manual: sign in to the Exchange server, open the agent and register it with the backup user's credentials.",
                "Create an Exchange backup plan in the cloud console matching the BackupAgent plan (mailbox databases, schedule, retention).",
                "Run the new plan once and confirm it succeeds before switching BackupAgent to restore-only.",
            ],
            ActionCause::UnsupportedPlanType => &[
                "The machine migrates, but this backup plan type is not transferred.",
                "After the machine shows as migrated, recreate the plan in the cloud console with the same sources, schedule and retention.",
                "Ask Acronis for guidance if the plan type has no equivalent in the cloud.",
            ],
        }
    }
}

/// Why the partner should get in touch with the machine's user.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ContactReason {
    /// The client is older than the migration needs and will not update by itself.
    AutoUpdateOff,
    /// The client never reported a version.
    NeverReported,
    /// The machine has not been seen for longer than the offline threshold.
    Offline,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub readiness: Readiness,
    pub client: ClientStatus,
    pub actions: Vec<ActionCause>,
    pub contact: Vec<ContactReason>,
}

/// A machine unseen for longer than this is offline (its client neither updates nor migrates).
pub const OFFLINE_AFTER_DAYS: i64 = 14;

/// When a machine counts as offline, measured on the source server's clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub offline_after: Duration,
}

impl SupportMatrix {
    /// Worst first: an unsupported OS, then plans needing hands, then a user to contact, then the client.
    pub fn assess(&self, facts: &MachineFacts<'_>, clock: Clock) -> Assessment {
        let os_supported = self.os_supported(facts.platform, facts.os_name);
        let client = self.client_status(facts.platform, facts.client_version, facts.auto_update);
        let mut actions = Vec::new();
        if !os_supported {
            actions.push(ActionCause::UnsupportedOs);
        }
        let mut supports = Vec::with_capacity(facts.plan_types.len());
        for kind in &facts.plan_types {
            let support = plan_support(kind);
            supports.push(support);
            let cause = match (support, *kind) {
                (PlanSupport::Automatic, _) => continue,
                (PlanSupport::ManualRegistration, "exchange") => ActionCause::ExchangeRegistration,
                (PlanSupport::ManualRegistration, _) => ActionCause::SqlServerRegistration,
                (PlanSupport::Manual, _) => ActionCause::UnsupportedPlanType,
            };
            if !actions.contains(&cause) {
                actions.push(cause);
            }
        }
        actions.sort();
        let mut contact = Vec::new();
        match client {
            ClientStatus::AutoUpdateOff => contact.push(ContactReason::AutoUpdateOff),
            ClientStatus::NeverReported => contact.push(ContactReason::NeverReported),
            ClientStatus::Current | ClientStatus::WillAutoUpdate => {}
        }
        if facts
            .last_seen_at
            .is_some_and(|seen| seen < clock.now - clock.offline_after)
        {
            contact.push(ContactReason::Offline);
        }
        let readiness = match self.readiness(os_supported, client, &supports) {
            // An offline client neither updates nor migrates until its user brings it online.
            Readiness::Ready | Readiness::ReadyAfterClientUpgrade if !contact.is_empty() => {
                Readiness::ContactUser
            }
            readiness => readiness,
        };
        Assessment {
            readiness,
            client,
            actions,
            contact,
        }
    }
}

/// Where a machine is in its migration.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Not in a migration.
    Idle,
    /// Released: waiting for its agent's next check-in.
    Pending,
    /// Its agent is installing, registering or transferring plans.
    Migrating,
    /// Plans transferred and restore-only confirmed.
    Migrated,
    /// The agent reported an error; retry returns it to `pending`.
    Failed,
    /// Waiting for someone's hands, with instructions.
    ManualActionRequired,
    /// Taken out of its migration.
    Cancelled,
}

impl MachineState {
    pub const ALL: [MachineState; 7] = [
        MachineState::Idle,
        MachineState::Pending,
        MachineState::Migrating,
        MachineState::Migrated,
        MachineState::Failed,
        MachineState::ManualActionRequired,
        MachineState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Idle => "idle",
            MachineState::Pending => "pending",
            MachineState::Migrating => "migrating",
            MachineState::Migrated => "migrated",
            MachineState::Failed => "failed",
            MachineState::ManualActionRequired => "manual_action_required",
            MachineState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::ActionCause::*;
    use super::ContactReason::*;
    use super::*;
    use crate::domain::support::Readiness::*;

    #[test]
    fn each_machine_gets_the_readiness_and_causes_the_seed_gives() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let clock = Clock {
            now,
            offline_after: Duration::days(14),
        };
        let recent = Some(now - Duration::days(1));
        let old = Some(now - Duration::days(30));
        let win = |os, version, auto_update, seen, plans: Vec<&'static str>| MachineFacts {
            platform: Platform::Windows,
            os_name: os,
            client_version: version,
            auto_update,
            last_seen_at: seen,
            plan_types: plans,
        };
        let current = Some("5.5.0.15908");
        let older = Some("5.4.3.12000");
        let cases: Vec<(
            &str,
            MachineFacts<'_>,
            Readiness,
            Vec<ActionCause>,
            Vec<ContactReason>,
        )> = vec![
            (
                "current client, files",
                win("Windows 10", current, true, recent, vec!["files"]),
                Ready,
                vec![],
                vec![],
            ),
            (
                "every supported plan type",
                win(
                    "Windows Server 2012 R2",
                    current,
                    false,
                    recent,
                    vec![
                        "files",
                        "network_share",
                        "system_state",
                        "hyperv_host",
                        "hyperv_vm",
                    ],
                ),
                Ready,
                vec![],
                vec![],
            ),
            (
                "old client, auto-update on",
                win("Windows 7", older, true, recent, vec!["files"]),
                ReadyAfterClientUpgrade,
                vec![],
                vec![],
            ),
            (
                "old client, auto-update off",
                win("Windows 7", older, false, recent, vec!["files"]),
                ContactUser,
                vec![],
                vec![AutoUpdateOff],
            ),
            (
                "current client, auto-update off",
                win("Windows 7", current, false, recent, vec!["files"]),
                Ready,
                vec![],
                vec![],
            ),
            (
                "never reported",
                win("Windows 7", None, true, None, vec!["files"]),
                ContactUser,
                vec![],
                vec![NeverReported],
            ),
            (
                "offline, current client",
                win("Windows 10", current, true, old, vec!["files"]),
                ContactUser,
                vec![],
                vec![Offline],
            ),
            (
                "offline, old client, auto-update on",
                win("Windows 10", older, true, old, vec![]),
                ContactUser,
                vec![],
                vec![Offline],
            ),
            (
                "offline, old client, auto-update off",
                win("Windows 10", older, false, old, vec![]),
                ContactUser,
                vec![],
                vec![AutoUpdateOff, Offline],
            ),
            (
                "SQL Server",
                win(
                    "Windows Server 2008",
                    current,
                    true,
                    recent,
                    vec!["files", "sql_server"],
                ),
                ManualAction,
                vec![SqlServerRegistration],
                vec![],
            ),
            (
                "Exchange",
                win(
                    "Windows Server 2008",
                    current,
                    true,
                    recent,
                    vec!["exchange"],
                ),
                ManualAction,
                vec![ExchangeRegistration],
                vec![],
            ),
            (
                "other plan type",
                win("Windows 10", current, true, recent, vec!["other", "files"]),
                ManualAction,
                vec![UnsupportedPlanType],
                vec![],
            ),
            (
                "both manual kinds",
                win(
                    "Windows 10",
                    current,
                    true,
                    recent,
                    vec!["other", "exchange", "sql_server"],
                ),
                ManualAction,
                vec![
                    SqlServerRegistration,
                    ExchangeRegistration,
                    UnsupportedPlanType,
                ],
                vec![],
            ),
            (
                "manual action and a user to contact",
                win("Windows 10", older, false, recent, vec!["sql_server"]),
                ManualAction,
                vec![SqlServerRegistration],
                vec![AutoUpdateOff],
            ),
            (
                "unsupported OS",
                win("Windows XP", current, true, recent, vec!["files"]),
                Unsupported,
                vec![UnsupportedOs],
                vec![],
            ),
            (
                "unsupported OS with a SQL plan",
                win("Windows 11", current, true, recent, vec!["sql_server"]),
                Unsupported,
                vec![UnsupportedOs, SqlServerRegistration],
                vec![],
            ),
        ];
        for (case, facts, readiness, actions, contact) in cases {
            let assessed = SupportMatrix::default().assess(&facts, clock);
            assert_eq!(
                (assessed.readiness, assessed.actions, assessed.contact),
                (readiness, actions, contact),
                "{case}"
            );
        }
    }

    #[test]
    fn the_offline_threshold_is_exclusive() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let clock = Clock {
            now,
            offline_after: Duration::days(14),
        };
        for (seen, offline) in [
            (now - Duration::days(14), false),
            (now - Duration::days(14) - Duration::seconds(1), true),
        ] {
            let facts = MachineFacts {
                platform: Platform::Linux,
                os_name: "Ubuntu 22.04",
                client_version: Some("5.5.0.15836"),
                auto_update: true,
                last_seen_at: Some(seen),
                plan_types: vec!["files"],
            };
            let assessed = SupportMatrix::default().assess(&facts, clock);
            assert_eq!(assessed.contact.contains(&Offline), offline, "{seen}");
        }
    }
}
