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
fn the_standard_profile_is_valid_and_shape_problems_point_at_their_values() {
    assert!(Profile::standard().problems().is_empty());
    let mut profile = Profile::standard();
    profile.customer.push(profile.customer[0].clone());
    profile.partner[1].name = "Servers".into();
    profile.partner[2].quota = QuotaRule::Fixed {
        value: 1 << 60,
        overage: None,
    };
    let problems: Vec<String> = profile.problems().into_iter().map(|(at, _)| at).collect();
    assert_eq!(
        problems,
        vec!["/customer/4/name", "/partner/1/name", "/partner/2/quota"]
    );
}
