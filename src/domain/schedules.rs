//! Backup schedules, BackupAgent -> cloud: weekly and monthly ones carry over;
//! daily times become one daily run or an even interval; a one-time backup is
//! run by hand after the migration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TimeOfDay {
    fn minutes(self) -> u32 {
        u32::from(self.hour) * 60 + u32::from(self.minute)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// 1 to 4, or the last of the month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WeekOfMonth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSchedule {
    Daily {
        times: Vec<TimeOfDay>,
    },
    Weekly {
        days: Vec<Weekday>,
        time: TimeOfDay,
    },
    Monthly {
        week: WeekOfMonth,
        day: Weekday,
        time: TimeOfDay,
    },
    Once {
        at: chrono::DateTime<chrono::Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSchedule {
    Daily {
        time: TimeOfDay,
    },
    /// Every `every_minutes` from `from` to `to`, each day.
    Hourly {
        every_minutes: u32,
        from: TimeOfDay,
        to: TimeOfDay,
    },
    Weekly {
        days: Vec<Weekday>,
        time: TimeOfDay,
    },
    Monthly {
        week: WeekOfMonth,
        day: Weekday,
        time: TimeOfDay,
    },
    /// No active schedule: the plan is run by hand after the migration.
    Manual,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ScheduleWarning {
    /// Uneven times became an even interval: `target_runs` a day instead of `source_runs`.
    RunsMoreOften {
        source_runs: usize,
        target_runs: usize,
    },
    /// A one-time backup becomes a plan to run by hand after the migration.
    RunByHand,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertedSchedule {
    pub schedule: TargetSchedule,
    pub warnings: Vec<ScheduleWarning>,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

pub fn convert(source: &SourceSchedule) -> ConvertedSchedule {
    let plain = |schedule| ConvertedSchedule {
        schedule,
        warnings: Vec::new(),
    };
    match source {
        SourceSchedule::Daily { times } => {
            let mut times = times.clone();
            times.sort();
            times.dedup();
            match times.as_slice() {
                [] => ConvertedSchedule {
                    schedule: TargetSchedule::Manual,
                    warnings: vec![ScheduleWarning::RunByHand],
                },
                [time] => plain(TargetSchedule::Daily { time: *time }),
                [first, .., last] => {
                    let gaps: Vec<u32> = times
                        .windows(2)
                        .map(|w| w[1].minutes() - w[0].minutes())
                        .collect();
                    let every = gaps.iter().copied().fold(0, gcd);
                    let target_runs = ((last.minutes() - first.minutes()) / every) as usize + 1;
                    let warnings = if target_runs > times.len() {
                        vec![ScheduleWarning::RunsMoreOften {
                            source_runs: times.len(),
                            target_runs,
                        }]
                    } else {
                        Vec::new()
                    };
                    ConvertedSchedule {
                        schedule: TargetSchedule::Hourly {
                            every_minutes: every,
                            from: *first,
                            to: *last,
                        },
                        warnings,
                    }
                }
            }
        }
        SourceSchedule::Weekly { days, time } => plain(TargetSchedule::Weekly {
            days: days.clone(),
            time: *time,
        }),
        SourceSchedule::Monthly { week, day, time } => plain(TargetSchedule::Monthly {
            week: *week,
            day: *day,
            time: *time,
        }),
        SourceSchedule::Once { .. } => ConvertedSchedule {
            schedule: TargetSchedule::Manual,
            warnings: vec![ScheduleWarning::RunByHand],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hour: u8, minute: u8) -> TimeOfDay {
        TimeOfDay { hour, minute }
    }

    #[test]
    fn each_schedule_kind_converts_as_the_table_says() {
        use ScheduleWarning::*;
        use TargetSchedule::*;
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let cases: Vec<(&str, SourceSchedule, TargetSchedule, Vec<ScheduleWarning>)> = vec![
            (
                "daily, one time",
                SourceSchedule::Daily {
                    times: vec![t(22, 30)],
                },
                Daily { time: t(22, 30) },
                vec![],
            ),
            (
                "daily, one time twice",
                SourceSchedule::Daily {
                    times: vec![t(9, 0), t(9, 0)],
                },
                Daily { time: t(9, 0) },
                vec![],
            ),
            (
                "daily, every 2 hours",
                SourceSchedule::Daily {
                    times: vec![t(8, 0), t(10, 0), t(12, 0), t(14, 0)],
                },
                Hourly {
                    every_minutes: 120,
                    from: t(8, 0),
                    to: t(14, 0),
                },
                vec![],
            ),
            (
                "daily, unsorted even",
                SourceSchedule::Daily {
                    times: vec![t(12, 0), t(9, 0)],
                },
                Hourly {
                    every_minutes: 180,
                    from: t(9, 0),
                    to: t(12, 0),
                },
                vec![],
            ),
            (
                "daily, every 30 minutes",
                SourceSchedule::Daily {
                    times: vec![t(9, 0), t(9, 30), t(10, 0)],
                },
                Hourly {
                    every_minutes: 30,
                    from: t(9, 0),
                    to: t(10, 0),
                },
                vec![],
            ),
            (
                "daily, uneven",
                SourceSchedule::Daily {
                    times: vec![t(8, 0), t(12, 0), t(18, 0)],
                },
                Hourly {
                    every_minutes: 120,
                    from: t(8, 0),
                    to: t(18, 0),
                },
                vec![RunsMoreOften {
                    source_runs: 3,
                    target_runs: 6,
                }],
            ),
            (
                "daily, coprime gaps",
                SourceSchedule::Daily {
                    times: vec![t(9, 0), t(9, 7), t(9, 20)],
                },
                Hourly {
                    every_minutes: 1,
                    from: t(9, 0),
                    to: t(9, 20),
                },
                vec![RunsMoreOften {
                    source_runs: 3,
                    target_runs: 21,
                }],
            ),
            (
                "weekly",
                SourceSchedule::Weekly {
                    days: vec![Weekday::Mon, Weekday::Thu],
                    time: t(1, 15),
                },
                Weekly {
                    days: vec![Weekday::Mon, Weekday::Thu],
                    time: t(1, 15),
                },
                vec![],
            ),
            (
                "monthly",
                SourceSchedule::Monthly {
                    week: WeekOfMonth::Last,
                    day: Weekday::Fri,
                    time: t(23, 0),
                },
                Monthly {
                    week: WeekOfMonth::Last,
                    day: Weekday::Fri,
                    time: t(23, 0),
                },
                vec![],
            ),
            ("once", SourceSchedule::Once { at }, Manual, vec![RunByHand]),
        ];
        for (case, source, schedule, warnings) in cases {
            assert_eq!(
                convert(&source),
                ConvertedSchedule { schedule, warnings },
                "{case}"
            );
        }
    }
}
