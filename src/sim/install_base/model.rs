//! The entities a BackupAgent server holds, as its source API serves them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub parent_id: Option<String>,
    /// BackupAgent's group name is also its admin's login.
    pub name: String,
    pub admin: Option<Admin>,
    /// The storage the group may use, in bytes; `None`: no quota.
    #[serde(default)]
    pub storage_quota_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admin {
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
}

/// A backup user. The password is only served by the password endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub group_id: String,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub auto_update: bool,
    /// The storage the user may use, in bytes; `None`: no quota.
    #[serde(default)]
    pub storage_quota_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub(crate) password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub id: String,
    pub user_id: String,
    pub hostname: String,
    pub os: Os,
    /// `major.minor.patch.build`; `None` when the client never reported.
    pub client_version: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub data_size_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Os {
    pub family: OsFamily,
    pub name: String,
    pub arch: Arch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    Windows,
    Linux,
    Macos,
    Solaris,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86,
    X64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupPlan {
    pub id: String,
    pub machine_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plan_type: PlanType,
    pub sources: Vec<String>,
    pub inclusion_filters: Vec<String>,
    pub exclusion_filters: Vec<String>,
    /// Only for `network_share` plans.
    pub network_share: Option<NetworkShare>,
    pub schedule: Schedule,
    pub retention_days: u32,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanType {
    Files,
    NetworkShare,
    SystemState,
    HypervHost,
    HypervVm,
    SqlServer,
    Exchange,
    Other,
}

impl PlanType {
    pub const ALL: [PlanType; 8] = [
        PlanType::Files,
        PlanType::NetworkShare,
        PlanType::SystemState,
        PlanType::HypervHost,
        PlanType::HypervVm,
        PlanType::SqlServer,
        PlanType::Exchange,
        PlanType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlanType::Files => "files",
            PlanType::NetworkShare => "network_share",
            PlanType::SystemState => "system_state",
            PlanType::HypervHost => "hyperv_host",
            PlanType::HypervVm => "hyperv_vm",
            PlanType::SqlServer => "sql_server",
            PlanType::Exchange => "exchange",
            PlanType::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkShare {
    pub path: String,
    pub username: String,
    pub has_password: bool,
}

/// Times are `HH:MM` in the machine's local time; weekdays are `mon`..`sun`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    Daily {
        times: Vec<String>,
    },
    Weekly {
        weekdays: Vec<String>,
        times: Vec<String>,
    },
    Monthly {
        week_of_month: WeekOfMonth,
        weekday: String,
        times: Vec<String>,
    },
    Once {
        at: DateTime<Utc>,
    },
}

/// `1`..`4`, or `"last"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeekOfMonth {
    Nth(u8),
    Last,
}

impl Serialize for WeekOfMonth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WeekOfMonth::Nth(n) => s.serialize_u8(*n),
            WeekOfMonth::Last => s.serialize_str("last"),
        }
    }
}

impl<'de> Deserialize<'de> for WeekOfMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "last" => Ok(WeekOfMonth::Last),
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(n @ 1..=4) => Ok(WeekOfMonth::Nth(n as u8)),
                _ => Err(serde::de::Error::custom(
                    "week_of_month is 1..4 or \"last\"",
                )),
            },
            _ => Err(serde::de::Error::custom(
                "week_of_month is 1..4 or \"last\"",
            )),
        }
    }
}
