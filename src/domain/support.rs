//! The support matrix: which machines can migrate unattended, and
//! why the others cannot. Data with defaults from the product description;
//! configuration may override it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Windows,
    Macos,
    Linux,
    Other,
}

impl Platform {
    pub fn from_family(family: &str) -> Self {
        match family.to_ascii_lowercase().as_str() {
            "windows" => Platform::Windows,
            "macos" | "mac" | "osx" | "os x" => Platform::Macos,
            "linux" => Platform::Linux,
            _ => Platform::Other,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportMatrix {
    /// Windows versions that migrate, matched as a prefix of the OS name (so
    /// "Windows 7 Professional" and "Windows 8.1" match "Windows 7" and "Windows 8").
    pub windows: Vec<String>,
    /// Any Linux distribution except these (matched anywhere in the name).
    pub linux_excluded: Vec<String>,
    pub macos: bool,
    /// The client that migrates unattended: 5.5.0 and at least this build.
    pub client_min: [u32; 3],
    pub windows_min_build: u32,
    pub unix_min_build: u32,
}

impl Default for SupportMatrix {
    fn default() -> Self {
        let windows = [
            "Windows Vista",
            "Windows 7",
            "Windows 8",
            "Windows 10",
            "Windows Server 2008",
            "Windows SBS 2011",
            "Windows Small Business Server 2011",
            "Windows Server 2012",
        ];
        Self {
            windows: windows.map(str::to_string).to_vec(),
            linux_excluded: vec!["Solaris".into()],
            macos: true,
            client_min: [5, 5, 0],
            windows_min_build: 15908,
            unix_min_build: 15836,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientVersion {
    pub parts: [u32; 3],
    pub build: u32,
}

impl ClientVersion {
    /// `5.5.0.15908`; anything else is not a version the product understands.
    pub fn parse(text: &str) -> Option<Self> {
        let numbers: Vec<u32> = text
            .trim()
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        match numbers.as_slice() {
            [a, b, c, build] => Some(Self {
                parts: [*a, *b, *c],
                build: *build,
            }),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanSupport {
    /// Transferred with the machine.
    Automatic,
    /// SQL Server and Exchange: the agent installs by itself, registration is manual.
    ManualRegistration,
    /// To be configured by hand after the migration.
    Manual,
}

pub fn plan_support(kind: &str) -> PlanSupport {
    match kind {
        "files" | "network_share" | "system_state" | "hyperv_host" | "hyperv_vm" => {
            PlanSupport::Automatic
        }
        "sql_server" | "exchange" => PlanSupport::ManualRegistration,
        _ => PlanSupport::Manual,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    /// Recent enough to migrate unattended.
    Current,
    /// Older, auto-update on: upgrades at its next check-in.
    WillAutoUpdate,
    /// Older, auto-update off: the partner must contact the user.
    AutoUpdateOff,
    /// The client never reported a version.
    NeverReported,
}

/// Whether a machine can migrate unattended, and if not, what must happen first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    ReadyAfterClientUpgrade,
    ContactUser,
    ManualAction,
    Unsupported,
}

impl Readiness {
    pub const ALL: [Readiness; 5] = [
        Readiness::Ready,
        Readiness::ReadyAfterClientUpgrade,
        Readiness::ContactUser,
        Readiness::ManualAction,
        Readiness::Unsupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::ReadyAfterClientUpgrade => "ready_after_client_upgrade",
            Readiness::ContactUser => "contact_user",
            Readiness::ManualAction => "manual_action",
            Readiness::Unsupported => "unsupported",
        }
    }
}

impl SupportMatrix {
    pub fn os_supported(&self, platform: Platform, os_name: &str) -> bool {
        let name = os_name.trim();
        match platform {
            Platform::Windows => self.windows.iter().any(|w| {
                name.len() >= w.len()
                    && name[..w.len()].eq_ignore_ascii_case(w)
                    // "Windows 10" must not match "Windows 100"; "Windows 8" matches "Windows 8.1".
                    && !name[w.len()..].starts_with(|c: char| c.is_ascii_digit())
            }),
            Platform::Linux => !self
                .linux_excluded
                .iter()
                .any(|x| name.to_lowercase().contains(&x.to_lowercase())),
            Platform::Macos => self.macos,
            Platform::Other => false,
        }
    }

    pub fn client_status(
        &self,
        platform: Platform,
        version: Option<&str>,
        auto_update: bool,
    ) -> ClientStatus {
        let Some(version) = version.and_then(ClientVersion::parse) else {
            return ClientStatus::NeverReported;
        };
        let min_build = if platform == Platform::Windows {
            self.windows_min_build
        } else {
            self.unix_min_build
        };
        let current = version.parts > self.client_min
            || (version.parts == self.client_min && version.build >= min_build);
        match (current, auto_update) {
            (true, _) => ClientStatus::Current,
            (false, true) => ClientStatus::WillAutoUpdate,
            (false, false) => ClientStatus::AutoUpdateOff,
        }
    }

    /// Worst first: an unsupported OS, then plans needing hands, then the client.
    pub fn readiness(
        &self,
        os_supported: bool,
        client: ClientStatus,
        plans: &[PlanSupport],
    ) -> Readiness {
        if !os_supported {
            return Readiness::Unsupported;
        }
        if plans.iter().any(|p| *p != PlanSupport::Automatic) {
            return Readiness::ManualAction;
        }
        match client {
            ClientStatus::Current => Readiness::Ready,
            ClientStatus::WillAutoUpdate => Readiness::ReadyAfterClientUpgrade,
            ClientStatus::AutoUpdateOff | ClientStatus::NeverReported => Readiness::ContactUser,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operating_systems_follow_the_supported_list() {
        let m = SupportMatrix::default();
        let cases = [
            ("windows", "Windows Vista Business", true),
            ("windows", "Windows 7 Professional", true),
            ("windows", "Windows 8", true),
            ("windows", "Windows 8.1 Pro", true),
            ("windows", "Windows 10 Enterprise", true),
            ("windows", "Windows Server 2008", true),
            ("windows", "Windows Server 2008 R2", true),
            ("windows", "Windows SBS 2011", true),
            ("windows", "Windows Small Business Server 2011", true),
            ("windows", "Windows Server 2012", true),
            ("windows", "Windows Server 2012 R2", true),
            ("windows", "Windows XP", false),
            ("windows", "Windows Server 2003", false),
            ("windows", "Windows 11", false),
            ("windows", "Windows Server 2019", false),
            ("windows", "Windows 100", false),
            ("linux", "Ubuntu 22.04", true),
            ("linux", "CentOS 7", true),
            ("macos", "macOS 12", true),
            ("solaris", "Solaris 11", false),
            ("linux", "Oracle Solaris 11", false),
            ("freebsd", "FreeBSD 13", false),
        ];
        for (family, name, supported) in cases {
            assert_eq!(
                m.os_supported(Platform::from_family(family), name),
                supported,
                "{name}"
            );
        }
    }

    #[test]
    fn client_versions_are_judged_per_platform() {
        use ClientStatus::*;
        let m = SupportMatrix::default();
        let cases = [
            (Platform::Windows, Some("5.5.0.15908"), true, Current),
            (Platform::Windows, Some("5.5.0.15907"), true, WillAutoUpdate),
            (Platform::Windows, Some("5.5.0.15907"), false, AutoUpdateOff),
            (Platform::Windows, Some("5.4.2.16000"), true, WillAutoUpdate),
            (Platform::Windows, Some("5.6.0.100"), false, Current),
            (Platform::Macos, Some("5.5.0.15836"), false, Current),
            (Platform::Linux, Some("5.5.0.15835"), false, AutoUpdateOff),
            (Platform::Linux, Some("5.5.0.15900"), true, Current),
            (Platform::Windows, None, true, NeverReported),
            (Platform::Windows, Some("garbage"), true, NeverReported),
        ];
        for (platform, version, auto_update, status) in cases {
            assert_eq!(
                m.client_status(platform, version, auto_update),
                status,
                "{platform:?} {version:?} {auto_update}"
            );
        }
    }

    #[test]
    fn readiness_names_are_its_json_names() {
        for readiness in Readiness::ALL {
            assert_eq!(
                serde_json::to_value(readiness).ok(),
                Some(serde_json::Value::from(readiness.as_str()))
            );
        }
    }

    #[test]
    fn plan_types_and_readiness() {
        use PlanSupport::*;
        use Readiness::*;
        for (kind, support) in [
            ("files", Automatic),
            ("network_share", Automatic),
            ("system_state", Automatic),
            ("hyperv_host", Automatic),
            ("hyperv_vm", Automatic),
            ("sql_server", ManualRegistration),
            ("exchange", ManualRegistration),
            ("other", Manual),
        ] {
            assert_eq!(plan_support(kind), support, "{kind}");
        }
        let m = SupportMatrix::default();
        let cases = [
            (true, ClientStatus::Current, vec![Automatic], Ready),
            (
                true,
                ClientStatus::WillAutoUpdate,
                vec![Automatic],
                ReadyAfterClientUpgrade,
            ),
            (true, ClientStatus::AutoUpdateOff, vec![], ContactUser),
            (
                true,
                ClientStatus::NeverReported,
                vec![Automatic],
                ContactUser,
            ),
            (
                true,
                ClientStatus::Current,
                vec![Automatic, ManualRegistration],
                ManualAction,
            ),
            (
                true,
                ClientStatus::AutoUpdateOff,
                vec![Manual],
                ManualAction,
            ),
            (false, ClientStatus::Current, vec![Automatic], Unsupported),
        ];
        for (os, client, plans, readiness) in cases {
            assert_eq!(
                m.readiness(os, client, &plans),
                readiness,
                "{os} {client:?} {plans:?}"
            );
        }
    }
}
