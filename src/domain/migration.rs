//! A migration's status and the moves between them (docs/ARCHITECTURE.md,
//! Migration states). Every write names the statuses it may come from, and
//! only moves this table allows are ever written.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// The status of a migration as a whole; its items have states of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    /// The plan is being made and the items written.
    Planning,
    Running,
    Paused,
    Cancelled,
    Completed,
    /// Over, with items failed or blocked: they can be retried.
    CompletedWithFailures,
    /// Planning failed (see `error`).
    Failed,
}

impl MigrationStatus {
    pub const ALL: [MigrationStatus; 7] = [
        MigrationStatus::Planning,
        MigrationStatus::Running,
        MigrationStatus::Paused,
        MigrationStatus::Cancelled,
        MigrationStatus::Completed,
        MigrationStatus::CompletedWithFailures,
        MigrationStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Planning => "planning",
            MigrationStatus::Running => "running",
            MigrationStatus::Paused => "paused",
            MigrationStatus::Cancelled => "cancelled",
            MigrationStatus::Completed => "completed",
            MigrationStatus::CompletedWithFailures => "completed_with_failures",
            MigrationStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more happens unless the partner retries (completed with failures).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MigrationStatus::Cancelled
                | MigrationStatus::Completed
                | MigrationStatus::CompletedWithFailures
                | MigrationStatus::Failed
        )
    }

    /// The statuses a migration may come from to reach `self`.
    pub fn reachable_from(self) -> &'static [MigrationStatus] {
        use MigrationStatus::*;
        match self {
            Planning => &[],
            // Planned; resumed; retried after it completed with failures.
            Running => &[Planning, Paused, CompletedWithFailures],
            Paused => &[Running],
            Cancelled => &[Planning, Running, Paused],
            Completed | CompletedWithFailures => &[Running],
            Failed => &[Planning],
        }
    }

    pub fn can_become(self, to: MigrationStatus) -> bool {
        to.reachable_from().contains(&self)
    }
}

/// What a partner asks of a migration, and from where it may be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Cancel,
}

impl Command {
    /// The statuses the command applies to, and the one it leads to.
    pub fn moves(self) -> (&'static [MigrationStatus], MigrationStatus) {
        use MigrationStatus::*;
        match self {
            Command::Pause => (&[Running], Paused),
            Command::Resume => (&[Paused], Running),
            Command::Cancel => (&[Planning, Running, Paused], Cancelled),
        }
    }

    /// Why the command was refused, after "The migration is {status}: ".
    pub fn refusal(self) -> &'static str {
        match self {
            Command::Pause => "only a running migration can be paused.",
            Command::Resume => "only a paused migration can be resumed.",
            Command::Cancel => "it is over already.",
        }
    }
}

impl std::fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Command;
    use super::MigrationStatus::{self, *};

    #[test]
    fn a_partner_command_applies_where_the_table_allows_it() {
        // status, command, what it becomes (None: refused)
        let table: &[(MigrationStatus, Command, Option<MigrationStatus>)] = &[
            (Running, Command::Pause, Some(Paused)),
            (Paused, Command::Pause, None),
            (Planning, Command::Pause, None),
            (Paused, Command::Resume, Some(Running)),
            (Running, Command::Resume, None),
            (Planning, Command::Resume, None),
            (CompletedWithFailures, Command::Resume, None),
            (Planning, Command::Cancel, Some(Cancelled)),
            (Running, Command::Cancel, Some(Cancelled)),
            (Paused, Command::Cancel, Some(Cancelled)),
            (Completed, Command::Cancel, None),
            (CompletedWithFailures, Command::Cancel, None),
            (Failed, Command::Cancel, None),
            (Cancelled, Command::Cancel, None),
        ];
        for (status, command, expected) in table {
            let (from, to) = command.moves();
            let applies = from.contains(status);
            assert_eq!(applies.then_some(to), *expected, "{status} {command:?}");
            assert!(
                !applies || status.can_become(to),
                "{status} -> {to} is in the table"
            );
        }
    }

    #[test]
    fn migration_moves_follow_the_table() {
        // from, to, allowed: every pair is listed.
        let allowed: &[(MigrationStatus, MigrationStatus)] = &[
            (Planning, Running),
            (Planning, Cancelled),
            (Planning, Failed),
            (Running, Paused),
            (Running, Cancelled),
            (Running, Completed),
            (Running, CompletedWithFailures),
            (Paused, Running),
            (Paused, Cancelled),
            (CompletedWithFailures, Running),
        ];
        for from in MigrationStatus::ALL {
            for to in MigrationStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn final_statuses_are_left_only_by_a_retry() {
        for status in MigrationStatus::ALL {
            let leaves: Vec<_> = MigrationStatus::ALL
                .into_iter()
                .filter(|to| status.can_become(*to))
                .collect();
            match status {
                CompletedWithFailures => assert_eq!(leaves, vec![Running]),
                s if s.is_final() => assert!(leaves.is_empty(), "{s}"),
                s => assert!(!leaves.is_empty(), "{s} must lead somewhere"),
            }
            assert_eq!(MigrationStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MigrationStatus::parse("Running"), None);
    }
}
