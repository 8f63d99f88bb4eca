use chrono::{DateTime, Duration};
use serde_json::json;

use super::input::{BackupPlan, Contact, Group, Machine, Os, User};
use super::*;
use crate::domain::logins::LoginChange::*;
use crate::domain::machines::{ActionCause, ContactReason};
use crate::domain::segments::SegmentKind::{self, *};
use crate::domain::support::Readiness;

fn now() -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

pub(crate) fn settings() -> Settings {
    Settings {
        names: NameRules::default(),
        matrix: SupportMatrix::default(),
        clock: Clock {
            now: now(),
            offline_after: Duration::days(14),
        },
    }
}

fn group(id: &str, parent: Option<&str>, name: &str, admin: bool) -> Group {
    let admin = admin.then(|| Contact {
        login: name.into(),
        email: Some(format!("{id}@example.com")),
        ..Contact::default()
    });
    Group {
        id: id.into(),
        parent_id: parent.map(str::to_string),
        name: name.into(),
        admin,
        storage_quota_bytes: None,
    }
}

fn user(id: &str, group: &str, login: &str) -> User {
    User {
        id: id.into(),
        group_id: group.into(),
        login: login.into(),
        email: Some(format!("{id}@example.com")),
        first_name: None,
        last_name: None,
        auto_update: true,
        storage_quota_bytes: None,
    }
}

fn machine(id: &str, user: &str, os: &str, version: Option<&str>) -> Machine {
    let family = if os.starts_with("Windows") {
        "windows"
    } else {
        "linux"
    };
    Machine {
        id: id.into(),
        user_id: user.into(),
        hostname: format!("host-{id}"),
        os: Os {
            family: family.into(),
            name: os.into(),
        },
        client_version: version.map(str::to_string),
        last_seen_at: Some(now() - Duration::hours(3)),
        data_size_bytes: 1_000,
    }
}

fn backup(id: &str, machine: &str, kind: &str, schedule: serde_json::Value) -> BackupPlan {
    BackupPlan {
        id: id.into(),
        machine_id: machine.into(),
        name: format!("plan {id}"),
        kind: kind.into(),
        inclusion_filters: vec![],
        schedule: schedule.into(),
        retention_days: Some(30),
    }
}

/// Root with direct users; a reseller with two customers whose names collide
/// once cleaned, and an empty group; a mixed group with a customer below it.
pub(crate) fn snapshot() -> Snapshot {
    Snapshot {
        groups: vec![
            group("g0", None, "Root", true),
            group("g1", Some("g0"), "Reseller  One", true),
            group("g2", Some("g1"), "Acme/Corp", true),
            group("g3", Some("g1"), "acme-corp", false),
            group("g4", Some("g1"), "Nobody", true),
            group("g5", Some("g0"), "Mixed", true),
            group("g6", Some("g5"), "Mixed (users)", true),
        ],
        users: vec![
            user("u1", "g0", "root.user"),
            user("u2", "g2", "alice"),
            user("u3", "g3", "ALICE"),
            user("u4", "g5", "pay$roll"),
            user("u5", "g6", "mixed"),
        ],
        machines: vec![
            machine("m1", "u2", "Windows 10", Some("5.5.0.15908")),
            machine("m2", "u4", "Windows XP", Some("5.5.0.15908")),
        ],
        plans: vec![
            backup(
                "p1",
                "m1",
                "files",
                json!({"kind": "daily", "times": ["08:00", "12:00", "18:00"]}),
            ),
            backup(
                "p2",
                "m1",
                "sql_server",
                json!({"kind": "once", "at": "2026-01-01T10:00:00Z"}),
            ),
        ],
    }
}

pub(crate) fn whole() -> Selection {
    Selection(vec![Node::Group("g0".into())])
}

pub(crate) fn free(_: &str) -> Option<bool> {
    Some(false)
}

#[test]
fn each_group_becomes_the_tenant_its_contents_say() {
    let plan = plan(&snapshot(), &whole(), &settings(), &free).expect("plan");
    let tenants: Vec<(&str, Option<&str>, TenantKind, &str)> = plan
        .tenants
        .iter()
        .map(|t| {
            (
                t.key.as_str(),
                t.parent_key.as_deref(),
                t.kind,
                t.name.target.as_str(),
            )
        })
        .collect();
    assert_eq!(
        tenants,
        vec![
            ("g0#users", None, TenantKind::Customer, "Root (users)"),
            ("g1", None, TenantKind::Partner, "Reseller One"),
            ("g2", Some("g1"), TenantKind::Customer, "Acme-Corp"),
            ("g3", Some("g1"), TenantKind::Customer, "acme-corp (2)"),
            ("g5", None, TenantKind::Partner, "Mixed"),
            (
                "g5#users",
                Some("g5"),
                TenantKind::Customer,
                "Mixed (users) (2)"
            ),
            ("g6", Some("g5"), TenantKind::Customer, "Mixed (users)"),
        ]
    );
    let kinds: Vec<(&str, GroupPlan)> = plan
        .groups
        .iter()
        .map(|g| (g.group_id.as_str(), g.plan))
        .collect();
    use GroupPlan::*;
    assert_eq!(
        kinds,
        vec![
            ("g0", Root),
            ("g1", Partner),
            ("g2", Customer),
            ("g3", Customer),
            ("g4", Empty),
            ("g5", PartnerWithCustomer),
            ("g6", Customer)
        ]
    );
    let empty = plan
        .groups
        .iter()
        .find(|g| g.group_id == "g4")
        .expect("reported");
    assert_eq!(
        (
            empty.tenant_key.as_deref(),
            empty.users_tenant_key.as_deref()
        ),
        (None, None),
        "an empty group creates nothing"
    );
}

#[test]
fn names_show_every_change_as_segments() {
    let plan = plan(&snapshot(), &whole(), &settings(), &free).expect("plan");
    let segments = |key: &str| -> Vec<(SegmentKind, String)> {
        let t = plan.tenants.iter().find(|t| t.key == key).expect("tenant");
        t.name
            .segments
            .iter()
            .map(|s| (s.kind, s.text.clone()))
            .collect()
    };
    let cases: Vec<(&str, Vec<(SegmentKind, &str)>)> = vec![
        (
            "g1",
            vec![(Kept, "Reseller "), (Removed, " "), (Kept, "One")],
        ),
        (
            "g2",
            vec![(Kept, "Acme"), (Substituted, "-"), (Kept, "Corp")],
        ),
        ("g3", vec![(Kept, "acme-corp"), (Added, " (2)")]),
        ("g0#users", vec![(Kept, "Root"), (Added, " (users)")]),
        ("g5#users", vec![(Kept, "Mixed"), (Added, " (users) (2)")]),
    ];
    for (key, expected) in cases {
        let expected: Vec<(SegmentKind, String)> = expected
            .into_iter()
            .map(|(k, t)| (k, t.to_string()))
            .collect();
        assert_eq!(segments(key), expected, "{key}");
    }
}

#[test]
fn logins_are_kept_where_they_can_be_and_admins_come_from_group_names() {
    let taken = |login: &str| Some(login.eq_ignore_ascii_case("root.user"));
    let plan = plan(&snapshot(), &whole(), &settings(), &taken).expect("plan");
    let users: Vec<(&str, &str, &[crate::domain::logins::LoginChange], &str)> = plan
        .users
        .iter()
        .map(|u| {
            (
                u.user_id.as_str(),
                u.login.target.as_str(),
                u.changes.as_slice(),
                u.tenant_key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        users,
        vec![
            ("u1", "root.user-2", &[TakenInTarget][..], "g0#users"),
            ("u2", "alice", &[][..], "g2"),
            ("u3", "ALICE-2", &[TakenInPlan][..], "g3"),
            ("u4", "payroll", &[Characters][..], "g5#users"),
            ("u5", "mixed", &[][..], "g6"),
        ]
    );
    // g3 has no admin; g4 is empty; the root's admin is the partner's own account.
    let admins: Vec<(&str, &str, AdminRole, &[crate::domain::logins::LoginChange])> = plan
        .admins
        .iter()
        .map(|a| {
            (
                a.group_id.as_str(),
                a.login.target.as_str(),
                a.role,
                a.changes.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        admins,
        vec![
            (
                "g1",
                "Reseller__One",
                AdminRole::PartnerAdmin,
                &[Characters][..]
            ),
            ("g2", "AcmeCorp", AdminRole::CompanyAdmin, &[Characters][..]),
            // A backup user already holds "mixed": users claim first.
            ("g5", "Mixed-2", AdminRole::PartnerAdmin, &[TakenInPlan][..]),
            (
                "g6",
                "Mixed_users",
                AdminRole::CompanyAdmin,
                &[Characters][..]
            ),
        ]
    );
    assert!(plan.users.iter().all(|u| !u.unverified) && plan.admins.iter().all(|a| !a.unverified));
    let unasked = |_: &str| None;
    let unverified = super::plan(&snapshot(), &whole(), &settings(), &unasked).expect("plan");
    assert!(
        unverified.users.iter().all(|u| u.unverified)
            && unverified.admins.iter().all(|a| a.unverified)
    );
}

#[test]
fn a_selection_covers_subtrees_and_brings_ancestors_as_structure() {
    let cases: Vec<(&str, Vec<Node>, Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>)> = vec![
        // (case, selection, groups in plan, selected groups, users, admins)
        (
            "one user",
            vec![Node::User("u2".into())],
            vec!["g0", "g1", "g2"],
            vec![],
            vec!["u2"],
            vec![],
        ),
        (
            "a customer group",
            vec![Node::Group("g2".into())],
            vec!["g0", "g1", "g2"],
            vec!["g2"],
            vec!["u2"],
            vec!["g2"],
        ),
        (
            "a reseller",
            vec![Node::Group("g1".into())],
            vec!["g0", "g1", "g2", "g3", "g4"],
            vec!["g1", "g2", "g3", "g4"],
            vec!["u2", "u3"],
            vec!["g1", "g2"],
        ),
        (
            "overlapping",
            vec![
                Node::Group("g1".into()),
                Node::Group("g2".into()),
                Node::User("u3".into()),
                Node::User("u5".into()),
            ],
            vec!["g0", "g1", "g2", "g3", "g4", "g5", "g6"],
            vec!["g1", "g2", "g3", "g4"],
            vec!["u2", "u3", "u5"],
            vec!["g1", "g2"],
        ),
        (
            "the root's own user",
            vec![Node::User("u1".into())],
            vec!["g0"],
            vec![],
            vec!["u1"],
            vec![],
        ),
    ];
    for (case, nodes, groups, selected, users, admins) in cases {
        let plan = plan(&snapshot(), &Selection(nodes), &settings(), &free).expect(case);
        let ids = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            plan.groups
                .iter()
                .map(|g| g.group_id.clone())
                .collect::<Vec<_>>(),
            ids(groups),
            "{case}: groups"
        );
        assert_eq!(
            plan.groups
                .iter()
                .filter(|g| g.selected)
                .map(|g| g.group_id.clone())
                .collect::<Vec<_>>(),
            ids(selected),
            "{case}: selected"
        );
        assert_eq!(
            plan.users
                .iter()
                .map(|u| u.user_id.clone())
                .collect::<Vec<_>>(),
            ids(users),
            "{case}: users"
        );
        assert_eq!(
            plan.admins
                .iter()
                .map(|a| a.group_id.clone())
                .collect::<Vec<_>>(),
            ids(admins),
            "{case}: admins"
        );
    }
    let full = plan(&snapshot(), &whole(), &settings(), &free).expect("plan");
    let one = plan(
        &snapshot(),
        &Selection(vec![Node::User("u3".into())]),
        &settings(),
        &free,
    )
    .expect("plan");
    assert_eq!(
        one.users[0], full.users[2],
        "a user is planned the same whichever wave it is in"
    );
}

#[test]
fn bad_selections_are_refused() {
    let cases = [
        (vec![], SelectionError::Empty),
        (
            vec![Node::Group("g0".into()), Node::Group("nope".into())],
            SelectionError::Unknown(vec![(1, Node::Group("nope".into()))]),
        ),
        (
            vec![Node::User("g1".into())],
            SelectionError::Unknown(vec![(0, Node::User("g1".into()))]),
        ),
    ];
    for (nodes, error) in cases {
        assert_eq!(
            plan(&snapshot(), &Selection(nodes.clone()), &settings(), &free),
            Err(error),
            "{nodes:?}"
        );
    }
    assert_eq!(
        plan(&Snapshot::default(), &whole(), &settings(), &free),
        Err(SelectionError::NoSnapshot)
    );
}

#[test]
fn machines_carry_readiness_and_converted_plans() {
    let plan = plan(&snapshot(), &whole(), &settings(), &free).expect("plan");
    let machines: Vec<(&str, Readiness, &[ActionCause], &[ContactReason])> = plan
        .machines
        .iter()
        .map(|m| {
            (
                m.machine_id.as_str(),
                m.readiness,
                m.actions.as_slice(),
                m.contact.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        machines,
        vec![
            (
                "m1",
                Readiness::ManualAction,
                &[ActionCause::SqlServerRegistration][..],
                &[][..]
            ),
            (
                "m2",
                Readiness::Unsupported,
                &[ActionCause::UnsupportedOs][..],
                &[][..]
            ),
        ]
    );
    let plans = &plan.machines[0].plans;
    assert_eq!(
        serde_json::to_value(&plans[0].schedule).ok(),
        Some(
            json!({"kind": "hourly", "every_minutes": 120, "from": {"hour": 8, "minute": 0}, "to": {"hour": 18, "minute": 0}})
        )
    );
    assert_eq!(
        serde_json::to_value(&plans[0].warnings).ok(),
        Some(
            json!([{"code": "schedule", "warning": {"code": "runs_more_often", "source_runs": 3, "target_runs": 6}}])
        )
    );
    assert_eq!(
        serde_json::to_value(&plans[1].warnings).ok(),
        Some(
            json!([{"code": "schedule", "warning": {"code": "run_by_hand"}}, {"code": "manual_registration"}])
        )
    );
}

#[test]
fn plans_need_the_current_client_for_filters_and_one_time_schedules() {
    let mut plan = backup(
        "p",
        "m",
        "files",
        json!({"kind": "once", "at": "2026-01-01T10:00:00Z"}),
    );
    plan.inclusion_filters = vec!["*.docx".into()];
    let cases = [
        (true, vec![]),
        (
            false,
            vec![
                PlanWarning::OneTimeScheduleNeedsCurrentClient,
                PlanWarning::InclusionFiltersNeedCurrentClient,
            ],
        ),
    ];
    for (current, extra) in cases {
        let planned = super::machines::backup_plan(&plan, current);
        let mut expected = vec![PlanWarning::Schedule {
            warning: crate::domain::schedules::ScheduleWarning::RunByHand,
        }];
        expected.extend(extra);
        assert_eq!(planned.warnings, expected, "current client: {current}");
    }
}

#[test]
fn transfer_items_are_tenants_parent_first_then_admins_then_users_each_waiting_for_its_tenant() {
    use crate::domain::transfer::{ItemKind, Planned, items};
    let plan = plan(&snapshot(), &whole(), &settings(), &free).expect("plan");
    let items: Vec<_> = items(&plan).collect();
    let position = |key: &str| {
        items
            .iter()
            .position(|i| i.key == key)
            .unwrap_or_else(|| panic!("{key}"))
    };
    let kinds: Vec<ItemKind> = items.iter().map(|i| i.planned.kind()).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted, "tenants, then admins, then users");
    for item in &items {
        if let Some(parent) = &item.parent_key {
            assert!(
                position(parent) < position(&item.key),
                "{} after its tenant {parent}",
                item.key
            );
            assert!(parent.starts_with("tenant:"));
        }
    }
    let parent_of = |key: &str| items[position(key)].parent_key.clone();
    let cases: &[(&str, Option<&str>)] = &[
        ("tenant:g1", None),
        ("tenant:g2", Some("tenant:g1")),
        ("tenant:g5#users", Some("tenant:g5")),
        ("admin:g1", Some("tenant:g1")),
        ("admin:g2", Some("tenant:g2")),
        ("user:u1", Some("tenant:g0#users")),
        ("user:u4", Some("tenant:g5#users")),
        ("user:u5", Some("tenant:g6")),
    ];
    for (key, parent) in cases {
        assert_eq!(parent_of(key).as_deref(), *parent, "{key}");
    }
    assert!(
        !items
            .iter()
            .any(|i| i.key == "admin:g3" || i.key == "admin:g0" || i.key.contains("g4")),
        "no admin without one, none for the root, nothing for an empty group"
    );
    let machines = |key: &str| match &items[position(key)].planned {
        Planned::User(user) => user.machines.clone(),
        other => panic!("{key}: {other:?}"),
    };
    let ids = |key: &str| {
        machines(key)
            .into_iter()
            .map(|m| m.machine_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("user:u2"), ["m1"], "released with its converted plans");
    assert_eq!(
        ids("user:u4"),
        Vec::<String>::new(),
        "an unsupported machine is not released to an agent"
    );
    assert_eq!(machines("user:u2")[0].plans.len(), 2);
    let role = |key: &str| match &items[position(key)].planned {
        Planned::Admin(admin) => admin.role,
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(role("admin:g2"), AdminRole::CompanyAdmin);
    assert_eq!(role("admin:g1"), AdminRole::PartnerAdmin);
}

#[test]
fn the_customers_of_the_install_base_are_the_customer_tenants_a_whole_plan_makes() {
    let snapshot = snapshot();
    let plan = plan(&snapshot, &whole(), &settings(), &free).expect("plan");
    let mut planned: Vec<(String, String, String)> = plan
        .tenants
        .iter()
        .filter(|t| t.kind == TenantKind::Customer)
        .map(|t| (t.key.clone(), t.group_id.clone(), t.name.target.clone()))
        .collect();
    planned.sort();
    let customers = customers(&snapshot, &NameRules::default());
    let listed: Vec<(String, String, String)> = customers
        .iter()
        .map(|c| (c.key.clone(), c.group_id.clone(), c.name.clone()))
        .collect();
    assert_eq!(listed, planned);
    for user in &plan.users {
        let holder: Vec<&str> = customers
            .iter()
            .filter(|c| c.user_ids.contains(&user.user_id))
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(
            holder,
            vec![user.tenant_key.as_str()],
            "{}: in its planned customer, and only there",
            user.user_id
        );
    }
    let g5 = customers
        .iter()
        .find(|c| c.key == "g5#users")
        .expect("the mixed group's users");
    assert_eq!(
        (g5.group_name.as_str(), g5.user_ids.as_slice()),
        ("Mixed", ["u4".to_string()].as_slice())
    );
}
