//! What the planner reads: the snapshot of a source install base, in the shape
//! the BackupAgent contract gives it (so rows parse straight into these).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::schedules::{SourceSchedule, TimeOfDay, WeekOfMonth, Weekday};

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub machines: Vec<Machine>,
    pub plans: Vec<BackupPlan>,
}

impl Snapshot {
    /// The groups' storage quotas in the source, in bytes, by group id.
    pub fn group_quotas(&self) -> std::collections::HashMap<&str, u64> {
        self.groups
            .iter()
            .filter_map(|g| Some((g.id.as_str(), g.storage_quota_bytes?)))
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Group {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub admin: Option<Contact>,
    /// In bytes; `None`: no quota (or a server that does not send quotas).
    #[serde(default)]
    pub storage_quota_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub login: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub id: String,
    pub group_id: String,
    pub login: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub auto_update: bool,
    /// In bytes; `None`: no quota (or a server that does not send quotas).
    #[serde(default)]
    pub storage_quota_bytes: Option<u64>,
}

impl User {
    pub fn contact(&self) -> Contact {
        Contact {
            login: self.login.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            phone: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Machine {
    pub id: String,
    pub user_id: String,
    pub hostname: String,
    pub os: Os,
    pub client_version: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub data_size_bytes: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Os {
    pub family: String,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct BackupPlan {
    pub id: String,
    pub machine_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub inclusion_filters: Vec<String>,
    pub schedule: Schedule,
    pub retention_days: Option<u32>,
}

/// A backup plan's schedule, read when the row is parsed: the planner needs only
/// what [`source_schedule`] makes of it, and a large install base's hundreds of
/// thousands of schedules kept as JSON trees took most of the snapshot's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule(pub Option<(SourceSchedule, usize)>);

impl From<serde_json::Value> for Schedule {
    fn from(value: serde_json::Value) -> Self {
        Self(source_schedule(&value))
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Self::from)
    }
}

/// The source's schedule (`{"kind": "daily", "times": ["09:00"]}` and so on) in the
/// domain's terms, with the times it had to leave out; `None` if unreadable.
pub fn source_schedule(value: &serde_json::Value) -> Option<(SourceSchedule, usize)> {
    let times = || -> Option<Vec<TimeOfDay>> {
        value
            .get("times")?
            .as_array()?
            .iter()
            .map(|t| time(t.as_str()?))
            .collect()
    };
    match value.get("kind")?.as_str()? {
        "daily" => Some((SourceSchedule::Daily { times: times()? }, 0)),
        "weekly" => {
            let days = value
                .get("weekdays")?
                .as_array()?
                .iter()
                .map(|d| weekday(d.as_str()?))
                .collect::<Option<Vec<_>>>()?;
            let times = times()?;
            let first = *times.iter().min()?;
            Some((
                SourceSchedule::Weekly { days, time: first },
                times.len() - 1,
            ))
        }
        "monthly" => {
            let week = match value.get("week_of_month")? {
                serde_json::Value::String(s) if s == "last" => WeekOfMonth::Last,
                n => match n.as_u64()? {
                    1 => WeekOfMonth::First,
                    2 => WeekOfMonth::Second,
                    3 => WeekOfMonth::Third,
                    4 => WeekOfMonth::Fourth,
                    _ => return None,
                },
            };
            let day = weekday(value.get("weekday")?.as_str()?)?;
            let times = times()?;
            let first = *times.iter().min()?;
            Some((
                SourceSchedule::Monthly {
                    week,
                    day,
                    time: first,
                },
                times.len() - 1,
            ))
        }
        "once" => {
            let at = DateTime::parse_from_rfc3339(value.get("at")?.as_str()?)
                .ok()?
                .with_timezone(&Utc);
            Some((SourceSchedule::Once { at }, 0))
        }
        _ => None,
    }
}

fn time(text: &str) -> Option<TimeOfDay> {
    let (h, m) = text.split_once(':')?;
    let (hour, minute) = (h.parse().ok()?, m.parse().ok()?);
    (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
}

fn weekday(text: &str) -> Option<Weekday> {
    Some(match text.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn source_schedules_read_as_the_contract_writes_them() {
        let t = |hour, minute| TimeOfDay { hour, minute };
        let cases = [
            (
                json!({"kind": "daily", "times": ["09:00", "17:30"]}),
                Some((
                    SourceSchedule::Daily {
                        times: vec![t(9, 0), t(17, 30)],
                    },
                    0,
                )),
            ),
            (
                json!({"kind": "weekly", "weekdays": ["mon", "fri"], "times": ["22:00"]}),
                Some((
                    SourceSchedule::Weekly {
                        days: vec![Weekday::Mon, Weekday::Fri],
                        time: t(22, 0),
                    },
                    0,
                )),
            ),
            (
                json!({"kind": "weekly", "weekdays": ["sun"], "times": ["23:00", "01:00"]}),
                Some((
                    SourceSchedule::Weekly {
                        days: vec![Weekday::Sun],
                        time: t(1, 0),
                    },
                    1,
                )),
            ),
            (
                json!({"kind": "monthly", "week_of_month": "last", "weekday": "fri", "times": ["20:00"]}),
                Some((
                    SourceSchedule::Monthly {
                        week: WeekOfMonth::Last,
                        day: Weekday::Fri,
                        time: t(20, 0),
                    },
                    0,
                )),
            ),
            (
                json!({"kind": "monthly", "week_of_month": 2, "weekday": "tue", "times": ["20:00"]}),
                Some((
                    SourceSchedule::Monthly {
                        week: WeekOfMonth::Second,
                        day: Weekday::Tue,
                        time: t(20, 0),
                    },
                    0,
                )),
            ),
            (
                json!({"kind": "monthly", "week_of_month": 5, "weekday": "tue", "times": ["20:00"]}),
                None,
            ),
            (json!({"kind": "daily", "times": ["25:00"]}), None),
            (json!({"kind": "hourly"}), None),
            (json!("daily"), None),
        ];
        for (value, expected) in cases {
            assert_eq!(source_schedule(&value), expected, "{value}");
        }
        let once = source_schedule(&json!({"kind": "once", "at": "2026-01-01T10:00:00Z"}));
        assert!(matches!(once, Some((SourceSchedule::Once { .. }, 0))));
    }
}
