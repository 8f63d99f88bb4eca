//! A machine's migration as its agent reports it, and as the partner steers it
//! (docs/ARCHITECTURE.md, Machine states). Reports carry the agent's sequence number: a
//! repeated or older one changes nothing, so replays and reordering on the way
//! cannot move a machine backwards. Anything the table does not allow is refused
//! (and logged by the caller), never applied.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError, ValidationErrors};

use super::machines::MachineState;

/// Where a migrating machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Downloading,
    Installing,
    Registering,
    TransferringPlans,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Downloading => "downloading",
            Phase::Installing => "installing",
            Phase::Registering => "registering",
            Phase::TransferringPlans => "transferring_plans",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Phase::Downloading,
            Phase::Installing,
            Phase::Registering,
            Phase::TransferringPlans,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// What an agent reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Downloading,
    Installing,
    Registering,
    /// The converted backup plans are applied in the cloud agent.
    PlansTransferred,
    /// The BackupAgent client switched to restore-only: the machine is migrated.
    RestoreOnly,
    /// The cloud agent is installed; registration needs someone's hands (SQL Server, Exchange).
    RegistrationManual {
        message: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

/// The longest error code and message a report may carry: both are kept on the
/// machine and written into its events.
pub const MAX_CODE_CHARS: usize = 100;
pub const MAX_MESSAGE_CHARS: usize = 2000;

impl Validate for Report {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let mut at_most = |field: &'static str, text: &str, max: usize| {
            if text.chars().count() > max {
                errors.add(
                    field,
                    ValidationError::new("length")
                        .with_message(format!("must be at most {max} characters").into()),
                );
            }
        };
        match self {
            Report::Failed { code, message } => {
                at_most("code", code, MAX_CODE_CHARS);
                at_most("message", message, MAX_MESSAGE_CHARS);
            }
            Report::RegistrationManual { message } => {
                at_most("message", message, MAX_MESSAGE_CHARS)
            }
            _ => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl Report {
    pub fn name(&self) -> &'static str {
        match self {
            Report::Downloading => "downloading",
            Report::Installing => "installing",
            Report::Registering => "registering",
            Report::PlansTransferred => "plans_transferred",
            Report::RestoreOnly => "restore_only",
            Report::RegistrationManual { .. } => "registration_manual",
            Report::Failed { .. } => "failed",
        }
    }

    /// The error a report leaves on the machine: a failure's code and message, or
    /// why registration needs someone's hands.
    pub fn error(&self) -> Option<(&str, &str)> {
        match self {
            Report::Failed { code, message } => Some((code.as_str(), message.as_str())),
            Report::RegistrationManual { message } => {
                Some(("registration_manual", message.as_str()))
            }
            _ => None,
        }
    }

    /// The phase a report puts a migrating machine in.
    fn phase(&self) -> Option<Phase> {
        match self {
            Report::Downloading => Some(Phase::Downloading),
            Report::Installing => Some(Phase::Installing),
            Report::Registering => Some(Phase::Registering),
            Report::PlansTransferred => Some(Phase::TransferringPlans),
            _ => None,
        }
    }
}

/// A machine's migration state as kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: MachineState,
    pub phase: Option<Phase>,
    /// The highest report sequence number applied.
    pub last_seq: i64,
}

/// What applying a report or an operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new status (the same state with a later phase counts as a move).
    Moved(Status),
    /// Seen before (same or lower sequence number): nothing changes.
    AlreadySeen,
    /// Not allowed from here: nothing changes; the reason is logged.
    Refused(String),
}

/// Applies an agent's report numbered `seq`.
pub fn report(status: Status, seq: i64, report: &Report) -> Outcome {
    use MachineState::*;
    if seq <= status.last_seq {
        return Outcome::AlreadySeen;
    }
    let moved = |state, phase| {
        Outcome::Moved(Status {
            state,
            phase,
            last_seq: seq,
        })
    };
    match (status.state, report) {
        (Pending | Migrating, Report::RestoreOnly) => moved(Migrated, None),
        (Pending | Migrating, Report::Failed { .. }) => moved(Failed, status.phase),
        (Pending | Migrating, Report::RegistrationManual { .. }) => {
            moved(ManualActionRequired, status.phase)
        }
        (Pending, r) => moved(Migrating, r.phase()),
        // A later phase moves on (a report lost on the way is skipped); an earlier one
        // that arrives late with a higher number is only counted.
        (Migrating, r) => match (status.phase, r.phase()) {
            (Some(now), Some(next)) if next < now => Outcome::Moved(Status {
                last_seq: seq,
                ..status
            }),
            (_, next) => moved(Migrating, next),
        },
        (state, r) => Outcome::Refused(format!(
            "a {} report does not apply to a {} machine",
            r.name(),
            state.as_str()
        )),
    }
}

/// The operations-log line of a move a report made: `pending -> migrating
/// (downloading)`, with the error the report carries.
pub fn moved_message(from: Status, to: Status, error: Option<(&str, &str)>) -> String {
    let moved = match to.phase {
        Some(phase) if to.state == MachineState::Migrating => {
            format!("{} -> migrating ({})", from.state.as_str(), phase.as_str())
        }
        _ => format!("{} -> {}", from.state.as_str(), to.state.as_str()),
    };
    let detail = error
        .map(|(code, text)| format!(": {code}: {text}"))
        .unwrap_or_default();
    format!("{moved}{detail}")
}

/// What the partner (or the engine) does to a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Its user's account exists in the target: the agent may start.
    Release,
    /// After the cause of a failure is fixed: the agent starts again at its next check-in.
    Retry,
    /// The manual steps are done.
    MarkManualDone,
    Cancel,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Release => "release",
            Operation::Retry => "retry",
            Operation::MarkManualDone => "mark_manual_done",
            Operation::Cancel => "cancel",
        }
    }
}

/// Applies an operation; sequence numbers are the agent's and stay as they are.
pub fn operate(status: Status, operation: Operation) -> Outcome {
    use MachineState::*;
    let moved = |state| {
        Outcome::Moved(Status {
            state,
            phase: None,
            last_seq: status.last_seq,
        })
    };
    match (status.state, operation) {
        (Idle | Cancelled, Operation::Release) => moved(Pending),
        (Failed, Operation::Retry) => moved(Pending),
        (ManualActionRequired, Operation::MarkManualDone) => moved(Migrated),
        (Idle | Pending | Migrating | Failed | ManualActionRequired, Operation::Cancel) => {
            moved(Cancelled)
        }
        (state, op) => Outcome::Refused(format!(
            "{} is not possible for a {} machine",
            op.name(),
            state.as_str()
        )),
    }
}

/// A released machine's readiness once its agent reports its client version at
/// check-in. Only the client can have changed since the sync assessed the machine
/// (its OS and plans do not change with it), and a machine whose agent checks in
/// is online: a client recent enough makes a machine that waited for its update,
/// or for its user, ready. Anything else keeps the sync's assessment.
pub fn readiness_on_check_in(readiness: Option<&str>, client_current: bool) -> Option<&str> {
    use super::support::Readiness;
    let waits_for_client = [
        Readiness::ReadyAfterClientUpgrade.as_str(),
        Readiness::ContactUser.as_str(),
    ];
    match readiness {
        Some(r) if client_current && waits_for_client.contains(&r) => {
            Some(Readiness::Ready.as_str())
        }
        other => other,
    }
}

/// How long an agent waits between check-ins; a machine not seen for two of
/// these is flagged.
pub const CHECK_IN_INTERVAL_MINUTES: i64 = 30;

/// What a machine's waiting reason is built from.
#[derive(Clone, Copy, Debug)]
pub struct Waiting<'a> {
    pub state: MachineState,
    /// The planner's readiness (`ready`, `ready_after_client_upgrade`, `contact_user`, ...).
    pub readiness: Option<&'a str>,
    pub client_version: Option<&'a str>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    /// When the machine entered its state (for a pending one: when it was released).
    pub since: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Why a pending or migrating machine waits, and whether it is overdue (not
/// seen for more than two check-in intervals).
pub fn waiting_reason(w: Waiting<'_>) -> (Option<String>, bool) {
    let interval = Duration::minutes(CHECK_IN_INTERVAL_MINUTES);
    if !matches!(w.state, MachineState::Pending | MachineState::Migrating) {
        return (None, false);
    }
    let seen = w.last_check_in_at.or(w.since);
    let overdue = seen.is_some_and(|t| w.now - t > interval * 2);
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let reason = match (w.state, w.readiness, w.last_check_in_at) {
        (MachineState::Migrating, _, Some(t)) if overdue => format!(
            "the agent stopped reporting mid-migration; not seen since {}",
            time(t)
        ),
        (MachineState::Migrating, _, _) => "the agent is migrating the machine".to_string(),
        (_, Some("contact_user"), _) => {
            "automatic updates are off on this client: contact the user to update it".to_string()
        }
        (_, Some("ready_after_client_upgrade"), _) => {
            format!(
                "client {} waits for its automatic update at a next check-in",
                w.client_version.unwrap_or("of unknown version")
            )
        }
        (_, _, Some(t)) if overdue => format!("the agent has not been seen since {}", time(t)),
        (_, _, Some(t)) => format!("next check-in expected by {}", time(t + interval)),
        (_, _, None) if overdue => format!(
            "the agent has not checked in since the machine was released at {}",
            w.since.map(time).unwrap_or_default()
        ),
        (_, _, None) => match w.since {
            Some(t) => format!(
                "waiting for the agent's first check-in, expected by {}",
                time(t + interval)
            ),
            None => "waiting for the agent's first check-in".to_string(),
        },
    };
    (Some(reason), overdue)
}

#[cfg(test)]
mod tests {
    use super::MachineState::*;
    use super::Phase::*;
    use super::*;

    fn at(state: MachineState, phase: Option<Phase>, last_seq: i64) -> Status {
        Status {
            state,
            phase,
            last_seq,
        }
    }

    fn failed() -> Report {
        Report::Failed {
            code: "install_error".into(),
            message: "msiexec exited with 1603".into(),
        }
    }

    #[test]
    fn a_reported_current_client_makes_a_machine_waiting_for_it_ready() {
        // readiness kept by the sync, reported client current, readiness now
        let table = [
            (Some("ready_after_client_upgrade"), true, Some("ready")),
            (
                Some("ready_after_client_upgrade"),
                false,
                Some("ready_after_client_upgrade"),
            ),
            (Some("contact_user"), true, Some("ready")),
            (Some("contact_user"), false, Some("contact_user")),
            (Some("ready"), false, Some("ready")),
            (Some("manual_action"), true, Some("manual_action")),
            (Some("unsupported"), true, Some("unsupported")),
            (None, true, None),
        ];
        for (kept, current, expected) in table {
            assert_eq!(
                readiness_on_check_in(kept, current),
                expected,
                "{kept:?} {current}"
            );
        }
    }

    #[test]
    fn reports_move_a_machine_as_the_table_says() {
        let manual = Report::RegistrationManual {
            message: "SQL Server: register by hand".into(),
        };
        // from, seq, report, expected (None: refused)
        let table: Vec<(Status, i64, Report, Option<(MachineState, Option<Phase>)>)> = vec![
            (
                at(Pending, None, 0),
                1,
                Report::Downloading,
                Some((Migrating, Some(Downloading))),
            ),
            (
                at(Migrating, Some(Downloading), 1),
                2,
                Report::Installing,
                Some((Migrating, Some(Installing))),
            ),
            (
                at(Migrating, Some(Installing), 2),
                3,
                Report::Registering,
                Some((Migrating, Some(Registering))),
            ),
            (
                at(Migrating, Some(Registering), 3),
                4,
                Report::PlansTransferred,
                Some((Migrating, Some(TransferringPlans))),
            ),
            (
                at(Migrating, Some(TransferringPlans), 4),
                5,
                Report::RestoreOnly,
                Some((Migrated, None)),
            ),
            // A lost report is skipped; a late earlier phase does not go back.
            (
                at(Pending, None, 0),
                3,
                Report::Registering,
                Some((Migrating, Some(Registering))),
            ),
            (
                at(Migrating, Some(Registering), 3),
                4,
                Report::Installing,
                Some((Migrating, Some(Registering))),
            ),
            (
                at(Migrating, Some(Downloading), 1),
                9,
                Report::RestoreOnly,
                Some((Migrated, None)),
            ),
            (
                at(Migrating, Some(Installing), 2),
                3,
                failed(),
                Some((Failed, Some(Installing))),
            ),
            (at(Pending, None, 0), 1, failed(), Some((Failed, None))),
            (
                at(Migrating, Some(Installing), 2),
                3,
                manual.clone(),
                Some((ManualActionRequired, Some(Installing))),
            ),
            // Illegal: refused, never applied.
            (at(Idle, None, 0), 1, Report::Downloading, None),
            (at(Migrated, None, 5), 6, Report::Downloading, None),
            (at(Migrated, None, 5), 6, failed(), None),
            (
                at(Failed, Some(Installing), 3),
                4,
                Report::Registering,
                None,
            ),
            (at(Cancelled, None, 2), 3, Report::RestoreOnly, None),
            (
                at(ManualActionRequired, None, 3),
                4,
                Report::RestoreOnly,
                None,
            ),
        ];
        for (from, seq, report_, expected) in table {
            let outcome = report(from, seq, &report_);
            match expected {
                Some((state, phase)) => assert_eq!(
                    outcome,
                    Outcome::Moved(Status {
                        state,
                        phase,
                        last_seq: seq
                    }),
                    "{from:?} + {report_:?}"
                ),
                None => assert!(
                    matches!(outcome, Outcome::Refused(_)),
                    "{from:?} + {report_:?}: {outcome:?}"
                ),
            }
        }
    }

    #[test]
    fn a_move_is_logged_with_its_phase_and_the_error_it_carries() {
        let manual = Report::RegistrationManual {
            message: "SQL Server".into(),
        };
        let cases = [
            (
                at(Pending, None, 0),
                at(Migrating, Some(Downloading), 1),
                Report::Downloading,
                "pending -> migrating (downloading)",
            ),
            (
                at(Migrating, Some(Installing), 2),
                at(Migrating, Some(Registering), 3),
                Report::Registering,
                "migrating -> migrating (registering)",
            ),
            (
                at(Migrating, Some(TransferringPlans), 4),
                at(Migrated, None, 5),
                Report::RestoreOnly,
                "migrating -> migrated",
            ),
            (
                at(Migrating, Some(Installing), 2),
                at(Failed, Some(Installing), 3),
                failed(),
                "migrating -> failed: install_error: msiexec exited with 1603",
            ),
            (
                at(Migrating, Some(Registering), 3),
                at(ManualActionRequired, Some(Registering), 4),
                manual,
                "migrating -> manual_action_required: registration_manual: SQL Server",
            ),
        ];
        for (from, to, report, expected) in cases {
            assert_eq!(moved_message(from, to, report.error()), expected);
        }
    }

    #[test]
    fn a_replayed_or_older_report_changes_nothing() {
        for seq in [3, 2, 0, -1] {
            assert_eq!(
                report(at(Migrating, Some(Registering), 3), seq, &failed()),
                Outcome::AlreadySeen,
                "seq {seq}"
            );
        }
        assert_eq!(
            report(at(Migrated, None, 7), 7, &Report::RestoreOnly),
            Outcome::AlreadySeen
        );
    }

    #[test]
    fn operations_move_a_machine_as_the_table_says() {
        use Operation::*;
        let table: Vec<(MachineState, Operation, Option<MachineState>)> = vec![
            (Idle, Release, Some(Pending)),
            (Cancelled, Release, Some(Pending)),
            (Pending, Release, None),
            (Migrated, Release, None),
            (Failed, Retry, Some(Pending)),
            (Pending, Retry, None),
            (Migrated, Retry, None),
            (ManualActionRequired, MarkManualDone, Some(Migrated)),
            (Failed, MarkManualDone, None),
            (Pending, Cancel, Some(Cancelled)),
            (Migrating, Cancel, Some(Cancelled)),
            (Migrated, Cancel, None),
            (Cancelled, Cancel, None),
        ];
        for (from, op, expected) in table {
            let outcome = operate(at(from, Some(Installing), 4), op);
            match expected {
                Some(state) => assert_eq!(
                    outcome,
                    Outcome::Moved(Status {
                        state,
                        phase: None,
                        last_seq: 4
                    }),
                    "{from:?} {op:?}"
                ),
                None => assert!(
                    matches!(outcome, Outcome::Refused(_)),
                    "{from:?} {op:?}: {outcome:?}"
                ),
            }
        }
    }
    #[test]
    fn a_waiting_machine_says_why_and_is_flagged_after_two_missed_check_ins() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let ago = |minutes: i64| Some(now - Duration::minutes(minutes));
        let w = |state, readiness, last_check_in_at, since| Waiting {
            state,
            readiness,
            client_version: Some("5.4.1"),
            last_check_in_at,
            since,
            now,
        };
        // state, readiness, last check-in, since, reason starts with, flagged
        let table = [
            (
                w(Pending, Some("ready"), ago(10), ago(100)),
                Some("next check-in expected by"),
                false,
            ),
            (
                w(Pending, Some("ready"), ago(61), ago(100)),
                Some("the agent has not been seen since"),
                true,
            ),
            (
                w(Pending, Some("ready"), None, ago(20)),
                Some("waiting for the agent's first check-in"),
                false,
            ),
            (
                w(Pending, Some("ready"), None, ago(90)),
                Some("the agent has not checked in since the machine was released"),
                true,
            ),
            (
                w(
                    Pending,
                    Some("ready_after_client_upgrade"),
                    ago(10),
                    ago(100),
                ),
                Some("client 5.4.1 waits for its automatic update"),
                false,
            ),
            (
                w(Pending, Some("contact_user"), ago(10), ago(100)),
                Some("automatic updates are off"),
                false,
            ),
            (
                w(Migrating, Some("ready"), ago(5), ago(5)),
                Some("the agent is migrating"),
                false,
            ),
            (
                w(Migrating, Some("ready"), ago(70), ago(70)),
                Some("the agent stopped reporting mid-migration"),
                true,
            ),
            (w(Migrated, Some("ready"), ago(500), ago(500)), None, false),
            (w(Idle, Some("ready"), None, None), None, false),
        ];
        for (waiting, reason, flagged) in table {
            let (got, overdue) = waiting_reason(waiting);
            assert_eq!(overdue, flagged, "{waiting:?}");
            match reason {
                Some(prefix) => assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(prefix)),
                    "{waiting:?}: {got:?}"
                ),
                None => assert_eq!(got, None, "{waiting:?}"),
            }
        }
    }

    #[test]
    fn an_error_code_and_message_are_capped_in_characters() {
        use validator::Validate;
        let failed = |code: usize, message: usize| Report::Failed {
            code: "c".repeat(code),
            message: "é".repeat(message),
        };
        let cases = [
            (failed(MAX_CODE_CHARS, MAX_MESSAGE_CHARS), vec![]),
            (failed(MAX_CODE_CHARS + 1, 0), vec!["code"]),
            (failed(1, MAX_MESSAGE_CHARS + 1), vec!["message"]),
            (
                failed(MAX_CODE_CHARS + 1, MAX_MESSAGE_CHARS + 1),
                vec!["code", "message"],
            ),
            (
                Report::RegistrationManual {
                    message: "m".repeat(MAX_MESSAGE_CHARS + 1),
                },
                vec!["message"],
            ),
            (Report::Downloading, vec![]),
        ];
        for (report, fields) in cases {
            let mut refused: Vec<String> = report
                .validate()
                .err()
                .map(|e| e.field_errors().keys().map(ToString::to_string).collect())
                .unwrap_or_default();
            refused.sort();
            assert_eq!(refused, fields, "{}", report.name());
        }
    }
}
