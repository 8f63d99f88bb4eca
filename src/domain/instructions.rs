//! What a checking-in agent is told: whether to migrate now, wait or stop, the
//! installer for its platform, and when to check in again.

use rand::Rng;

use super::agent::{CHECK_IN_INTERVAL_MINUTES, readiness_on_check_in};
use super::machines::MachineState;
use super::support::{ClientStatus, ClientVersion, Platform, SupportMatrix};

/// Agents check in about every 30 minutes; each is told when, with jitter so
/// that a fleet started together spreads out.
const POLL_SECS: u64 = CHECK_IN_INTERVAL_MINUTES as u64 * 60;
const JITTER_SECS: u64 = 5 * 60;

/// Seconds until the next check-in: the interval, jittered.
pub fn poll_after() -> u64 {
    POLL_SECS - JITTER_SECS + rand::rng().random_range(0..=2 * JITTER_SECS)
}

/// Why a machine told to migrate waits instead: its registration token is being made.
pub const REGISTRATION_PENDING: &str = "registration_pending: the machine's registration with the cloud is being prepared; check in again soon";

/// Seconds until a check-in that waits for something about to happen (a
/// registration token being made): a minute or so, jittered.
pub fn poll_soon() -> u64 {
    rand::rng().random_range(30..=90)
}

/// What the agent is to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Check in again later.
    None,
    /// Install, register, transfer the plans, switch to restore-only, reporting each step.
    Migrate,
    /// The migration is over for this machine: migrated, failed or waiting for someone.
    Stop,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Migrate => "migrate",
            Action::Stop => "stop",
        }
    }
}

/// The action for a machine in `state` with the sync's `readiness`, and why a
/// released machine does nothing yet.
pub fn instruction(state: MachineState, readiness: Option<&str>) -> (Action, Option<&'static str>) {
    // A released client too old to migrate unattended waits for its update (the next
    // sync sees the new version and makes it ready); one that does not update itself
    // waits for the partner to reach its user.
    let waits_for_update = match readiness {
        Some("ready_after_client_upgrade") => Some(
            "update_pending: the client updates itself at a next check-in; it migrates once updated",
        ),
        Some("contact_user") => Some(
            "update_required: automatic updates are off; the client migrates once its user updates it",
        ),
        _ => None,
    };
    match state {
        MachineState::Pending if waits_for_update.is_some() => (Action::None, waits_for_update),
        MachineState::Pending | MachineState::Migrating => (Action::Migrate, None),
        MachineState::Idle | MachineState::Cancelled => (Action::None, None),
        MachineState::Migrated | MachineState::Failed | MachineState::ManualActionRequired => {
            (Action::Stop, None)
        }
    }
}

/// The silent install for a platform: no password on a command line; the agent
/// registers with a one-time token it receives separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installer {
    pub platform: &'static str,
    pub file: &'static str,
    pub command: &'static str,
}

/// The installer for the machine's OS family (Linux for any but Windows and macOS).
pub fn installer(os_family: &str) -> Installer {
    match os_family {
        "windows" => Installer {
            platform: "windows",
            file: "AcronisCyberProtect_AgentForWindows_web.exe",
            command: "msiexec /i AB.msi /qn /l*v install.log",
        },
        "macos" => Installer {
            platform: "macos",
            file: "AcronisCyberProtect_AgentForMac.dmg",
            command: "installer -pkg AcronisAgent.pkg -target /",
        },
        _ => Installer {
            platform: "linux",
            file: "Backup_Agent_for_Linux_x86_64.bin",
            command: "./Backup_Agent_for_Linux_x86_64.bin -a --skip-registration",
        },
    }
}

/// The client version an agent states (`X-Client-Version`), when it is one: at
/// most 64 characters, `major.minor.patch.build`; anything else is ignored.
pub fn stated_client_version(header: &str) -> Option<&str> {
    let version = header.trim();
    (version.len() <= 64 && ClientVersion::parse(version).is_some()).then_some(version)
}

/// The machine's readiness once its agent reports client `version` (see
/// [`readiness_on_check_in`]): whether that version migrates unattended is the
/// support matrix's call.
pub fn readiness_with_client<'a>(
    os_family: &str,
    version: &str,
    kept: Option<&'a str>,
) -> Option<&'a str> {
    static MATRIX: std::sync::LazyLock<SupportMatrix> =
        std::sync::LazyLock::new(SupportMatrix::default);
    let platform = Platform::from_family(os_family);
    let current = MATRIX.client_status(platform, Some(version), true) == ClientStatus::Current;
    readiness_on_check_in(kept, current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_is_told_to_migrate_wait_or_stop_as_its_state_says() {
        use MachineState::*;
        let update_pending = Some(
            "update_pending: the client updates itself at a next check-in; it migrates once updated",
        );
        let update_required = Some(
            "update_required: automatic updates are off; the client migrates once its user updates it",
        );
        let cases = [
            (Pending, Some("ready"), (Action::Migrate, None)),
            (Pending, None, (Action::Migrate, None)),
            (
                Pending,
                Some("ready_after_client_upgrade"),
                (Action::None, update_pending),
            ),
            (
                Pending,
                Some("contact_user"),
                (Action::None, update_required),
            ),
            (
                Migrating,
                Some("ready_after_client_upgrade"),
                (Action::Migrate, None),
            ),
            (Migrating, Some("contact_user"), (Action::Migrate, None)),
            (Idle, Some("ready"), (Action::None, None)),
            (Idle, Some("contact_user"), (Action::None, None)),
            (Cancelled, None, (Action::None, None)),
            (Migrated, None, (Action::Stop, None)),
            (Failed, Some("ready"), (Action::Stop, None)),
            (ManualActionRequired, None, (Action::Stop, None)),
        ];
        for (state, readiness, expected) in cases {
            assert_eq!(
                instruction(state, readiness),
                expected,
                "{state:?} {readiness:?}"
            );
        }
    }

    #[test]
    fn each_platform_gets_its_installer_and_any_other_the_linux_one() {
        let cases = [
            ("windows", "windows", ".exe"),
            ("macos", "macos", ".dmg"),
            ("linux", "linux", ".bin"),
            ("", "linux", ".bin"),
            ("solaris", "linux", ".bin"),
        ];
        for (family, platform, extension) in cases {
            let installer = installer(family);
            assert_eq!(installer.platform, platform, "{family}");
            assert!(installer.file.ends_with(extension), "{family}");
            assert!(!installer.command.contains("password"), "{family}");
        }
    }

    #[test]
    fn only_a_well_formed_client_version_is_taken() {
        let long = format!("5.5.0.{}", "1".repeat(60));
        let cases = [
            ("5.5.0.15908", Some("5.5.0.15908")),
            ("  5.5.0.15908 ", Some("5.5.0.15908")),
            ("5.5", None),
            ("latest", None),
            ("", None),
            (long.as_str(), None),
        ];
        for (header, expected) in cases {
            assert_eq!(stated_client_version(header), expected, "{header}");
        }
    }

    #[test]
    fn a_reported_client_recent_enough_makes_a_waiting_machine_ready() {
        let cases = [
            (
                "windows",
                "5.5.0.15908",
                Some("ready_after_client_upgrade"),
                Some("ready"),
            ),
            (
                "windows",
                "5.5.0.15908",
                Some("contact_user"),
                Some("ready"),
            ),
            (
                "windows",
                "5.4.0.10000",
                Some("ready_after_client_upgrade"),
                Some("ready_after_client_upgrade"),
            ),
            ("linux", "5.5.0.15836", Some("contact_user"), Some("ready")),
            (
                "windows",
                "5.5.0.15908",
                Some("not_supported_os"),
                Some("not_supported_os"),
            ),
            ("windows", "5.5.0.15908", None, None),
        ];
        for (family, version, kept, expected) in cases {
            assert_eq!(
                readiness_with_client(family, version, kept),
                expected,
                "{family} {version} {kept:?}"
            );
        }
    }

    #[test]
    fn the_next_check_in_is_within_five_minutes_of_half_an_hour() {
        for _ in 0..100 {
            assert!((25 * 60..=35 * 60).contains(&poll_after()));
        }
    }
}
