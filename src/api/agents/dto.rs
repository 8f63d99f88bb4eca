//! What agents and partners send and receive about agents.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::domain::agent::{Phase, Report, Status};
use crate::domain::machines::MachineState;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub workspace_id: Uuid,
    /// The workspace's enrollment secret, as the partner set it.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub enrollment_secret: String,
    /// The machine's id in BackupAgent.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub machine_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub machine_id: String,
    /// The agent's token for every later call (`Authorization: Bearer`). Shown once;
    /// enrolling again replaces it.
    pub token: String,
    /// When to check in first, in seconds (jittered): about a minute for a machine
    /// released to migrate, the regular interval otherwise.
    pub poll_after_secs: u64,
}

/// What the agent is to do now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instructions {
    /// `none` (check in again later), `migrate` (install, register, transfer the plans,
    /// switch to restore-only, reporting each step) or `stop` (the migration is over
    /// for this machine: migrated, failed or waiting for someone).
    pub action: String,
    /// Why a released machine is told to do nothing yet (`update_pending: …`, `update_required: …`,
    /// `registration_pending: …` while its registration with the cloud is prepared: check in again
    /// after `poll_after_secs`, about a minute).
    pub reason: Option<String>,
    pub machine_id: String,
    /// The machine's migration state as the portal sees it.
    pub state: MachineState,
    /// The install for this machine's platform (`migrate` only).
    #[schema(value_type = Option<Object>)]
    pub package: Option<Value>,
    /// The converted backup plans to apply (`migrate` only).
    #[schema(value_type = Option<Vec<Object>>)]
    pub plans: Option<Value>,
    /// Where and how the cloud agent registers (`migrate` only): the cloud's address
    /// and a one-time registration token bound to the machine's user, to pass in a
    /// file or the environment, never on a command line.
    #[schema(value_type = Option<Object>)]
    pub registration: Option<Value>,
    /// The next report's sequence number must be above this.
    pub last_seq: i64,
    /// When to check in again, in seconds (jittered).
    pub poll_after_secs: u64,
}

/// A step report's sequence number: it increases with every report of this agent; a
/// repeated or older one is acknowledged and ignored. At most 2^53 - 1, so that every
/// client reads it exactly.
#[derive(ToSchema)]
#[schema(minimum = 1, maximum = 9007199254740991_i64)]
pub struct Seq(#[allow(dead_code)] i64);

const MAX_SEQ: i64 = (1 << 53) - 1;

/// A step report: its `kind`, its `seq` and what the kind carries, nothing else (an
/// unknown field is refused, as everywhere). The domain's [`Report`] with its number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentEvent {
    Downloading {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    Installing {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    Registering {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    /// The converted backup plans are applied in the cloud agent.
    PlansTransferred {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    /// The BackupAgent client switched to restore-only: the machine is migrated.
    RestoreOnly {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    /// The cloud agent is installed; registration needs someone's hands (SQL Server, Exchange).
    RegistrationManual {
        #[schema(value_type = Seq)]
        seq: i64,
        #[schema(max_length = 2000)]
        message: String,
    },
    Failed {
        #[schema(value_type = Seq)]
        seq: i64,
        #[schema(max_length = 100)]
        code: String,
        #[schema(max_length = 2000)]
        message: String,
    },
}

impl AgentEvent {
    pub fn seq(&self) -> i64 {
        match self {
            Self::Downloading { seq }
            | Self::Installing { seq }
            | Self::Registering { seq }
            | Self::PlansTransferred { seq }
            | Self::RestoreOnly { seq }
            | Self::RegistrationManual { seq, .. }
            | Self::Failed { seq, .. } => *seq,
        }
    }

    pub fn report(&self) -> Report {
        match self {
            Self::Downloading { .. } => Report::Downloading,
            Self::Installing { .. } => Report::Installing,
            Self::Registering { .. } => Report::Registering,
            Self::PlansTransferred { .. } => Report::PlansTransferred,
            Self::RestoreOnly { .. } => Report::RestoreOnly,
            Self::RegistrationManual { message, .. } => Report::RegistrationManual {
                message: message.clone(),
            },
            Self::Failed { code, message, .. } => Report::Failed {
                code: code.clone(),
                message: message.clone(),
            },
        }
    }
}

/// The report's rules (the lengths of its texts) and the number's range.
impl Validate for AgentEvent {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let mut errors = self.report().validate().err().unwrap_or_default();
        if !(1..=MAX_SEQ).contains(&self.seq()) {
            errors.add(
                "seq",
                validator::ValidationError::new("range")
                    .with_message(format!("must be between 1 and {MAX_SEQ}").into()),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reported {
    /// Whether this report changed the machine (false for a repeated or older one).
    pub applied: bool,
    pub state: MachineState,
    pub phase: Option<Phase>,
    pub last_seq: i64,
}

impl Reported {
    pub fn new(applied: bool, status: Status) -> Self {
        Self {
            applied,
            state: status.state,
            phase: status.phase,
            last_seq: status.last_seq,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentSecret {
    pub workspace_id: Uuid,
    /// Give it to the agents (e.g. through the RMM tool). Shown once: only its hash is kept.
    pub enrollment_secret: String,
}

/// The client's log as it wrote it (not empty).
#[derive(ToSchema)]
#[schema(min_length = 1)]
pub struct ClientLog(#[allow(dead_code)] String);

#[derive(Debug, Serialize, ToSchema)]
pub struct LogUploaded {
    pub log_id: Uuid,
    pub size_bytes: usize,
    pub stored_bytes: usize,
}
