use uuid::Uuid;

use super::*;

const BACKUP: Uuid = Uuid::from_u128(1);
const FILES: Uuid = Uuid::from_u128(2);

fn key(application: &str, edition: Option<&str>, name: &str) -> ItemKey {
    ItemKey {
        application: application.into(),
        edition: edition.map(Into::into),
        name: name.into(),
    }
}

fn item(
    application: &str,
    edition: Option<&str>,
    name: &str,
    on: bool,
    quota: Option<u64>,
    version: i64,
) -> CloudItem {
    CloudItem {
        key: key(application, edition, name),
        application_id: if application == "backup" {
            BACKUP
        } else {
            FILES
        },
        infra_id: None,
        measurement_unit: if name.ends_with("storage") {
            "bytes".into()
        } else {
            "quantity".into()
        },
        on,
        quota: Some(Quota {
            value: quota,
            overage: None,
        }),
        quota_version: version,
    }
}

fn rule(edition: Option<&str>, name: &str, quota: QuotaRule) -> ItemRule {
    ItemRule {
        application: "backup".into(),
        edition: edition.map(Into::into),
        name: name.into(),
        quota,
    }
}

fn want(name: &str, quota: Option<u64>) -> Want {
    Want {
        item: item("backup", Some("standard"), name, true, None, 0),
        quota: Quota {
            value: quota,
            overage: None,
        },
    }
}

fn write(
    name: &str,
    on: bool,
    quota: Option<(Option<u64>, i64)>,
) -> (String, bool, Option<(Option<u64>, i64)>) {
    (name.to_string(), on, quota)
}

fn summary(writes: &[Write]) -> Vec<(String, bool, Option<(Option<u64>, i64)>)> {
    let mut rows: Vec<_> = writes
        .iter()
        .map(|w| (w.name.clone(), w.on, w.quota.map(|(q, v)| (q.value, v))))
        .collect();
    rows.sort();
    rows
}

#[test]
fn resolve_flags_what_the_parent_does_not_offer_and_source_quotas_not_in_bytes() {
    let offered = vec![
        item("backup", Some("standard"), "workstations", true, None, 0),
        item("backup", Some("standard"), "storage", true, None, 0),
    ];
    let cases = [
        (
            rule(Some("standard"), "workstations", QuotaRule::Unlimited),
            None,
        ),
        (rule(Some("standard"), "storage", QuotaRule::Source), None),
        (
            rule(Some("standard"), "servers", QuotaRule::Unlimited),
            Some(Unavailable::NotOffered),
        ),
        (
            rule(Some("advanced"), "workstations", QuotaRule::Unlimited),
            Some(Unavailable::NotOffered),
        ),
        (
            rule(None, "workstations", QuotaRule::Unlimited),
            Some(Unavailable::NotOffered),
        ),
        (
            rule(Some("standard"), "workstations", QuotaRule::Source),
            Some(Unavailable::SourceQuotaNotInBytes),
        ),
    ];
    for (rule, expected) in cases {
        let (given, flags) = resolve(std::slice::from_ref(&rule), &offered);
        match expected {
            None => assert_eq!((given.len(), flags.len()), (1, 0), "{rule:?}"),
            Some(reason) => {
                assert!(given.is_empty(), "{rule:?}");
                assert_eq!(
                    flags,
                    vec![Flag {
                        item: rule.key(),
                        reason
                    }],
                    "{rule:?}"
                );
            }
        }
    }
}

#[test]
fn quotas_come_from_the_rule_or_the_source() {
    let cases = [
        (QuotaRule::Unlimited, Some(5), Quota::UNLIMITED),
        (
            QuotaRule::Fixed {
                value: 10,
                overage: Some(2),
            },
            Some(5),
            Quota {
                value: Some(10),
                overage: Some(2),
            },
        ),
        (
            QuotaRule::Source,
            Some(5),
            Quota {
                value: Some(5),
                overage: None,
            },
        ),
        (QuotaRule::Source, None, Quota::UNLIMITED),
    ];
    for (rule, source, expected) in cases {
        assert_eq!(quota(rule, source), expected, "{rule:?} {source:?}");
    }
}

#[test]
fn a_created_tenant_gets_exactly_the_wanted_items_and_quotas_sending_each_touched_application_whole()
 {
    let wanted = [want("workstations", None), want("storage", Some(100))];
    let cases: Vec<(&str, Vec<CloudItem>, Vec<_>)> = vec![
        (
            "nothing on: both on, the rest of backup sent as it is, files untouched",
            vec![
                item("backup", Some("standard"), "workstations", false, None, 0),
                item("backup", Some("standard"), "storage", false, None, 0),
                item("backup", Some("standard"), "servers", false, None, 0),
                item("files_cloud", None, "fc_seats", false, None, 0),
            ],
            vec![
                write("servers", false, None),
                write("storage", true, Some((Some(100), 0))),
                write("workstations", true, Some((None, 0))),
            ],
        ),
        (
            "already as wanted: nothing to write (a replay after a lost answer)",
            vec![
                item("backup", Some("standard"), "workstations", true, None, 3),
                item("backup", Some("standard"), "storage", true, Some(100), 4),
            ],
            vec![],
        ),
        (
            "a quota that differs is set, naming the version read",
            vec![
                item("backup", Some("standard"), "workstations", true, None, 3),
                item("backup", Some("standard"), "storage", true, Some(50), 4),
            ],
            vec![
                write("storage", true, Some((Some(100), 4))),
                write("workstations", true, None),
            ],
        ),
        (
            "an item the listing lacks is sent on with its quota",
            vec![item(
                "backup",
                Some("standard"),
                "workstations",
                true,
                None,
                3,
            )],
            vec![
                write("storage", true, Some((Some(100), 0))),
                write("workstations", true, None),
            ],
        ),
        (
            "an item on that the profile does not name stays on",
            vec![
                item("backup", Some("standard"), "workstations", false, None, 0),
                item("backup", Some("standard"), "storage", true, Some(100), 1),
                item("backup", Some("standard"), "mobiles", true, Some(3), 1),
            ],
            vec![
                write("mobiles", true, None),
                write("storage", true, None),
                write("workstations", true, Some((None, 0))),
            ],
        ),
    ];
    for (case, current, expected) in cases {
        let got = writes(
            &current,
            &wanted,
            Origin::Created,
            ExistingCustomers::AddMissing,
        );
        assert_eq!(summary(&got), expected, "{case}");
    }
}

#[test]
fn an_existing_customer_gains_only_what_it_lacks_or_is_left_alone() {
    let wanted = [want("workstations", None), want("storage", Some(100))];
    let current = vec![
        item("backup", Some("standard"), "workstations", true, Some(5), 7),
        item("backup", Some("standard"), "storage", false, None, 0),
        item("backup", Some("standard"), "mobiles", true, Some(2), 1),
        item("files_cloud", None, "fc_seats", true, Some(9), 1),
    ];
    let added = writes(
        &current,
        &wanted,
        Origin::Existing,
        ExistingCustomers::AddMissing,
    );
    assert_eq!(
        summary(&added),
        vec![
            write("mobiles", true, None),
            write("storage", true, Some((Some(100), 0))),
            write("workstations", true, None)
        ],
        "its own workstations quota (5) stays; storage is added; files are not touched"
    );
    assert!(
        writes(
            &current,
            &wanted,
            Origin::Existing,
            ExistingCustomers::Leave
        )
        .is_empty()
    );
    assert_eq!(
        missing(&current, &wanted, Origin::Existing),
        vec![key("backup", Some("standard"), "storage")]
    );
    assert_eq!(
        missing(&current, &wanted, Origin::Created),
        vec![
            key("backup", Some("standard"), "workstations"),
            key("backup", Some("standard"), "storage")
        ]
    );
}

#[test]
fn the_standard_profile_is_valid_and_shape_problems_are_refused() {
    assert!(Profile::standard().validate().is_ok());
    let cases: Vec<(&str, fn(&mut Profile), &str)> = vec![
        (
            "an upper-case name",
            |p| p.partner[1].name = "Servers".into(),
            "partner",
        ),
        (
            "an empty edition",
            |p| p.partner[1].edition = Some(String::new()),
            "partner",
        ),
        (
            "a quota beyond 2^53",
            |p| {
                p.partner[2].quota = QuotaRule::Fixed {
                    value: 1 << 60,
                    overage: None,
                }
            },
            "partner",
        ),
        (
            "65 items",
            |p| {
                p.customer = (0..65)
                    .map(|i| ItemRule {
                        name: format!("item_{i}"),
                        ..p.customer[0].clone()
                    })
                    .collect()
            },
            "customer",
        ),
    ];
    for (case, change, field) in cases {
        let mut profile = Profile::standard();
        change(&mut profile);
        let errors = profile.validate().expect_err(case);
        assert!(errors.errors().contains_key(field), "{case}: {errors:?}");
    }
}

fn planned(
    key: &str,
    parent: Option<&str>,
    kind: TenantKind,
) -> crate::domain::plan::PlannedTenant {
    crate::domain::plan::PlannedTenant {
        key: key.into(),
        group_id: key.trim_end_matches("#users").into(),
        parent_key: parent.map(Into::into),
        kind,
        name: crate::domain::plan::Named {
            source: key.into(),
            target: key.into(),
            segments: vec![],
        },
        direct_users: key.ends_with("#users"),
    }
}

#[test]
fn tenants_below_a_migrated_partner_choose_from_what_the_partner_gets_and_groups_carry_their_quotas()
 {
    let mut profile = Profile::standard();
    // The partner profile lacks vms: its customers cannot get them.
    profile.partner.retain(|r| r.name != "vms");
    let offered = |names: &[&str]| -> Vec<CloudItem> {
        names
            .iter()
            .map(|n| item("backup", Some("standard"), n, true, None, 0))
            .collect()
    };
    let offer = Offer {
        customer: offered(&["workstations", "servers", "vms", "storage"]),
        partner: offered(&["workstations", "servers", "storage"]),
    };
    let tenants = [
        planned("p1", None, TenantKind::Partner),
        planned("c1", Some("p1"), TenantKind::Customer),
        planned("p1#users", Some("p1"), TenantKind::Customer),
        planned("c2", None, TenantKind::Customer),
    ];
    let quotas = |group: &str| match group {
        "p1" => Some(1000),
        "c1" => Some(10),
        _ => None,
    };
    let services = for_tenants(&profile, &offer, &tenants, quotas);
    let view: Vec<(&str, Vec<String>, Option<u64>, Vec<String>)> = services
        .iter()
        .map(|s| {
            let storage = s
                .wants
                .iter()
                .find(|w| w.item.key.name == "storage")
                .and_then(|w| w.quota.value);
            (
                s.key.as_str(),
                s.wants.iter().map(|w| w.item.key.name.clone()).collect(),
                storage,
                s.flags.iter().map(|f| f.item.to_string()).collect(),
            )
        })
        .collect();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        view,
        vec![
            (
                "p1",
                names(&["workstations", "servers", "storage"]),
                Some(1000),
                vec![]
            ),
            (
                "c1",
                names(&["workstations", "servers", "storage"]),
                Some(10),
                vec!["backup/standard/vms".to_string()]
            ),
            (
                "p1#users",
                names(&["workstations", "servers", "storage"]),
                None,
                vec!["backup/standard/vms".to_string()]
            ),
            (
                "c2",
                names(&["workstations", "servers", "vms", "storage"]),
                None,
                vec![]
            ),
        ]
    );
}

#[test]
fn a_customer_without_backup_of_machines_is_flagged_since_its_agents_cannot_register() {
    let offer = Offer::assumed(&Profile::standard());
    let cases: Vec<(&[&str], bool)> = vec![
        (&["workstations", "servers", "vms", "storage"], false),
        (&["servers"], false),
        (&["storage"], true),
        (&[], true),
    ];
    for (names, flagged) in cases {
        let mut profile = Profile::standard();
        profile
            .customer
            .retain(|r| names.contains(&r.name.as_str()));
        let services = for_tenants(
            &profile,
            &offer,
            &[
                planned("c", None, TenantKind::Customer),
                planned("p", None, TenantKind::Partner),
            ],
            |_| None,
        );
        let reasons: Vec<&Unavailable> = services
            .iter()
            .flat_map(|s| &s.flags)
            .map(|f| &f.reason)
            .collect();
        assert_eq!(
            reasons == vec![&Unavailable::NoBackupForMachines],
            flagged,
            "{names:?}: {reasons:?}"
        );
        assert!(
            services[1].flags.is_empty(),
            "a partner's machines are its customers'"
        );
    }
}

#[test]
fn a_quota_is_read_whole_and_only_a_fixed_one_has_numbers() {
    let cases = [
        (r#"{"kind": "unlimited"}"#, Some(QuotaRule::Unlimited)),
        (r#"{"kind": "source"}"#, Some(QuotaRule::Source)),
        (
            r#"{"kind": "fixed", "value": 3}"#,
            Some(QuotaRule::Fixed {
                value: 3,
                overage: None,
            }),
        ),
        (
            r#"{"kind": "fixed", "value": 3, "overage": 1}"#,
            Some(QuotaRule::Fixed {
                value: 3,
                overage: Some(1),
            }),
        ),
        (r#"{"kind": "fixed"}"#, None),
        (r#"{"kind": "unlimited", "value": 5}"#, None),
        (r#"{"kind": "source", "overage": 5}"#, None),
        (r#"{"kind": "unlimited", "extra": 1}"#, None),
        (r#"{"kind": "monthly"}"#, None),
        (r#"{"value": 3}"#, None),
    ];
    for (text, expected) in cases {
        assert_eq!(
            serde_json::from_str::<QuotaRule>(text).ok(),
            expected,
            "{text}"
        );
    }
    let fixed = QuotaRule::Fixed {
        value: 3,
        overage: None,
    };
    assert_eq!(
        serde_json::to_value(fixed).expect("json"),
        serde_json::json!({"kind": "fixed", "value": 3})
    );
}

#[test]
fn an_item_named_twice_counts_once_with_its_last_rule() {
    let offered = vec![item(
        "backup",
        Some("standard"),
        "workstations",
        true,
        None,
        0,
    )];
    let rules = [
        rule(Some("standard"), "workstations", QuotaRule::Unlimited),
        rule(
            Some("standard"),
            "workstations",
            QuotaRule::Fixed {
                value: 7,
                overage: None,
            },
        ),
    ];
    let (given, flags) = resolve(&rules, &offered);
    assert!(flags.is_empty());
    assert_eq!(given.len(), 1);
    assert_eq!(
        given[0].0.quota,
        QuotaRule::Fixed {
            value: 7,
            overage: None
        }
    );
}
