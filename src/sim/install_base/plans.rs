//! Backup plans: every type (those that need a Windows server on one), with and
//! without inclusion filters, and every schedule kind.

use chrono::Duration;

use super::{
    BackupPlan, Gen, Machine, NetworkShare, OsFamily, PlanType, Schedule, Truth, WeekOfMonth, id,
};

const PLANS_PER_MACHINE: &[(usize, u32)] = &[(0, 1), (1, 15), (2, 29), (3, 33), (4, 15), (5, 7)];
const SERVER_TYPES: &[(PlanType, u32)] = &[
    (PlanType::Files, 35),
    (PlanType::NetworkShare, 10),
    (PlanType::SystemState, 12),
    (PlanType::HypervHost, 8),
    (PlanType::HypervVm, 12),
    (PlanType::SqlServer, 12),
    (PlanType::Exchange, 8),
    (PlanType::Other, 3),
];
const DESKTOP_TYPES: &[(PlanType, u32)] = &[
    (PlanType::Files, 70),
    (PlanType::NetworkShare, 15),
    (PlanType::SystemState, 12),
    (PlanType::Other, 3),
];
const UNIX_TYPES: &[(PlanType, u32)] = &[
    (PlanType::Files, 85),
    (PlanType::NetworkShare, 12),
    (PlanType::Other, 3),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    DailyOne,
    DailyEven,
    DailyUneven,
    Weekly,
    Monthly,
    Once,
}

const KINDS: &[(Kind, u32)] = &[
    (Kind::DailyOne, 42),
    (Kind::DailyEven, 14),
    (Kind::DailyUneven, 6),
    (Kind::Weekly, 25),
    (Kind::Monthly, 8),
    (Kind::Once, 5),
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const RETENTION_DAYS: &[u32] = &[7, 14, 30, 60, 90, 180, 365, 730, 2555];

/// What must appear at least once; taken by the first plan it fits.
struct Needs {
    types: Vec<PlanType>,
    kinds: Vec<Kind>,
    filters: Vec<bool>,
}

pub(super) fn plant(g: &mut Gen, truth: &mut Truth, machines: &[Machine]) -> Vec<BackupPlan> {
    let mut needs = Needs {
        types: PlanType::ALL.to_vec(),
        kinds: KINDS.iter().map(|(k, _)| *k).collect(),
        filters: vec![true, false],
    };
    let mut plans = Vec::with_capacity(machines.len() * 3);
    for machine in machines {
        let count = g
            .weighted(PLANS_PER_MACHINE)
            .max(usize::from(!needs.types.is_empty()));
        for _ in 0..count {
            let serial = plans.len() + 1;
            plans.push(make(g, truth, &mut needs, serial, machine));
        }
    }
    plans
}

/// Plans for a machine added at run time.
pub(super) fn random(
    g: &mut Gen,
    truth: &mut Truth,
    first_serial: usize,
    machine: &Machine,
) -> Vec<BackupPlan> {
    let mut needs = Needs {
        types: Vec::new(),
        kinds: Vec::new(),
        filters: Vec::new(),
    };
    let count = g.weighted(PLANS_PER_MACHINE).max(1);
    (0..count)
        .map(|k| make(g, truth, &mut needs, first_serial + k, machine))
        .collect()
}

fn is_server(machine: &Machine) -> bool {
    machine.os.family == OsFamily::Windows
        && (machine.os.name.contains("Server") || machine.os.name.contains("SBS"))
}

fn fits(plan_type: PlanType, machine: &Machine) -> bool {
    match plan_type {
        PlanType::Files | PlanType::NetworkShare | PlanType::Other => true,
        PlanType::SystemState => machine.os.family == OsFamily::Windows,
        PlanType::HypervHost | PlanType::HypervVm | PlanType::SqlServer | PlanType::Exchange => {
            is_server(machine)
        }
    }
}

fn take<T: Copy>(list: &mut Vec<T>, ok: impl Fn(T) -> bool) -> Option<T> {
    let k = list.iter().position(|&t| ok(t))?;
    Some(list.remove(k))
}

fn make(
    g: &mut Gen,
    truth: &mut Truth,
    needs: &mut Needs,
    serial: usize,
    machine: &Machine,
) -> BackupPlan {
    let pid = id("p", serial);
    let plan_type = take(&mut needs.types, |t| fits(t, machine)).unwrap_or_else(|| {
        let table = match machine.os.family {
            OsFamily::Windows if is_server(machine) => SERVER_TYPES,
            OsFamily::Windows => DESKTOP_TYPES,
            _ => UNIX_TYPES,
        };
        g.weighted(table)
    });
    let windows = machine.os.family == OsFamily::Windows;
    let filterable = matches!(plan_type, PlanType::Files | PlanType::NetworkShare);
    let filtered =
        filterable && take(&mut needs.filters, |_| true).unwrap_or_else(|| g.chance(0.2));
    let inclusion_filters = if filtered {
        let sets: &[&[&str]] = &[
            &["*.docx", "*.xlsx", "*.pdf"],
            &["*.pst"],
            &["*.jpg", "*.png", "*.raw"],
            &["Projects\\*"],
        ];
        g.pick(sets).iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let exclusion_filters = if g.chance(0.5) {
        vec![
            "*.tmp".to_string(),
            "~$*".to_string(),
            "Thumbs.db".to_string(),
        ]
    } else {
        Vec::new()
    };
    let share = format!(
        "\\\\nas{:02}\\{}",
        g.range(1..20),
        g.pick(&["finance", "shared", "scans", "projects", "hr"])
    );
    let (name, sources) = match plan_type {
        PlanType::Files if windows => (
            "Documents",
            vec![
                "C:\\Users\\Public\\Documents".to_string(),
                "D:\\Data".to_string(),
            ],
        ),
        PlanType::Files if machine.os.family == OsFamily::Macos => {
            ("Home folders", vec!["/Users".to_string()])
        }
        PlanType::Files => (
            "Home and config",
            vec!["/home".to_string(), "/etc".to_string()],
        ),
        PlanType::NetworkShare => ("Network share", vec![share.clone()]),
        PlanType::SystemState => ("System state", vec!["SystemState".to_string()]),
        PlanType::HypervHost => ("Hyper-V host", vec!["Hyper-V".to_string()]),
        PlanType::HypervVm => (
            "Virtual machine",
            vec![format!("Hyper-V\\VM-{:03}", g.range(1..100))],
        ),
        PlanType::SqlServer => ("SQL databases", vec!["MSSQL\\SQLEXPRESS".to_string()]),
        PlanType::Exchange => (
            "Mailboxes",
            vec!["Exchange\\Mailbox Database 01".to_string()],
        ),
        PlanType::Other => (
            "Custom backup",
            vec![
                g.pick(&["SharePoint\\Portal", "Lotus Notes\\mail", "Oracle\\ORCL"])
                    .to_string(),
            ],
        ),
    };
    let network_share = (plan_type == PlanType::NetworkShare).then(|| NetworkShare {
        path: share,
        username: format!("CORP\\backup{}", g.range(1..50)),
        has_password: true,
    });
    let kind = take(&mut needs.kinds, |_| true).unwrap_or_else(|| g.weighted(KINDS));
    let schedule = schedule(g, kind);
    let t = &mut truth.plans;
    t.by_type
        .entry(plan_type.as_str().to_string())
        .or_default()
        .push(pid.clone());
    if filtered {
        t.with_inclusion_filters.push(pid.clone());
    }
    match kind {
        Kind::DailyOne => &mut t.daily_one_time,
        Kind::DailyEven => &mut t.daily_even,
        Kind::DailyUneven => &mut t.daily_uneven,
        Kind::Weekly => &mut t.weekly,
        Kind::Monthly => &mut t.monthly,
        Kind::Once => &mut t.once,
    }
    .push(pid.clone());
    BackupPlan {
        id: pid,
        machine_id: machine.id.clone(),
        name: name.to_string(),
        plan_type,
        sources,
        inclusion_filters,
        exclusion_filters,
        network_share,
        schedule,
        retention_days: *g.pick(RETENTION_DAYS),
        updated_at: g.between(machine.created_at, g.as_of),
    }
}

fn hhmm(minutes: u64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn one_time(g: &mut Gen) -> Vec<String> {
    vec![hhmm(g.range(0..24) * 60 + g.range(0..4) * 15)]
}

fn schedule(g: &mut Gen, kind: Kind) -> Schedule {
    match kind {
        Kind::DailyOne => Schedule::Daily { times: one_time(g) },
        Kind::DailyEven => {
            let interval = *g.pick(&[30u64, 60, 120, 180, 240, 360]);
            let count = g.range(3..7).min(1440 / interval);
            let latest_start = 1440 - (count - 1) * interval;
            let start = g.range(0..latest_start / 30) * 30;
            Schedule::Daily {
                times: (0..count).map(|k| hhmm(start + k * interval)).collect(),
            }
        }
        Kind::DailyUneven => {
            let count = g.range(3..5);
            let gaps: Vec<u64> = (1..count).map(|_| g.range(3..11) * 30).collect();
            let mut gaps = gaps;
            if gaps.windows(2).all(|w| w[0] == w[1]) {
                gaps[0] += 30;
            }
            let span: u64 = gaps.iter().sum();
            let start = g.range(0..(1440 - span) / 15) * 15;
            let mut at = start;
            let mut times = vec![hhmm(at)];
            for gap in gaps {
                at += gap;
                times.push(hhmm(at));
            }
            Schedule::Daily { times }
        }
        Kind::Weekly => {
            let mut days: Vec<&str> = WEEKDAYS
                .iter()
                .copied()
                .filter(|_| g.chance(0.35))
                .collect();
            if days.is_empty() {
                days.push(WEEKDAYS[g.below(7)]);
            }
            Schedule::Weekly {
                weekdays: days.into_iter().map(String::from).collect(),
                times: one_time(g),
            }
        }
        Kind::Monthly => {
            let week_of_month = if g.chance(0.2) {
                WeekOfMonth::Last
            } else {
                WeekOfMonth::Nth(g.range(1..5) as u8)
            };
            Schedule::Monthly {
                week_of_month,
                weekday: WEEKDAYS[g.below(7)].to_string(),
                times: one_time(g),
            }
        }
        Kind::Once => {
            let minutes = g.range(0..150 * 24 * 4) * 15;
            Schedule::Once {
                at: g.as_of - Duration::days(90) + Duration::minutes(minutes as i64),
            }
        }
    }
}
