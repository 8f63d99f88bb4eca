use serde_json::json;

use super::compare::Change;
use super::*;

fn e(key: &str, value: Value) -> Entry {
    Entry {
        key: key.into(),
        value,
    }
}

#[test]
fn a_comparison_lists_what_was_added_removed_and_changed() {
    let before = vec![e("a", json!(1)), e("b", json!(2)), e("c", json!(3))];
    let after = vec![e("d", json!(4)), e("c", json!(3)), e("b", json!(20))];
    let changes = compare_entries(before, after, 10);
    assert_eq!(
        (
            changes.added,
            changes.removed,
            changes.changed,
            changes.truncated
        ),
        (1, 1, 1, false)
    );
    let listed: Vec<(&str, Change)> = changes
        .items
        .iter()
        .map(|c| (c.key.as_str(), c.change))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("a", Change::Removed),
            ("b", Change::Changed),
            ("d", Change::Added)
        ]
    );
    let few = compare_entries(vec![e("a", json!(1)), e("b", json!(2))], vec![], 1);
    assert_eq!((few.removed, few.items.len(), few.truncated), (2, 1, true));
}

#[test]
fn sections_have_stable_names() {
    for section in Section::ALL {
        assert_eq!(Section::parse(section.as_str()), Some(section));
        assert_eq!(
            serde_json::to_value(section).ok(),
            Some(json!(section.as_str()))
        );
    }
    assert_eq!(Section::parse("planning"), None);
}

mod initial_backup {
    use super::*;
    use crate::domain::machines::Clock;
    use crate::domain::names::NameRules;
    use crate::domain::plan::examples::{group, host, user};
    use crate::domain::plan::{Node, Selection, Settings, plan};
    use crate::domain::support::SupportMatrix;

    const TB: u64 = 1_000_000_000_000;

    /// The root's direct users (2 TB), a customer of two users (1.5 TB + 0.5 TB + 10 GB), a customer without machines.
    fn report_at(options: &InitialBackupOptions) -> Report {
        let (snapshot, plan) = planned();
        build(&snapshot, &plan, &LoginAnswers::default(), options)
    }

    fn planned() -> (Snapshot, crate::domain::plan::Plan) {
        let snapshot = Snapshot {
            groups: vec![
                group("g0", None),
                group("g1", Some("g0")),
                group("g2", Some("g0")),
            ],
            users: vec![
                user("u0", "g0"),
                user("u1", "g1"),
                user("u2", "g1"),
                user("u3", "g2"),
            ],
            machines: vec![
                host("m0", "u0", 2 * TB),
                host("m1", "u1", 1_500_000_000_000),
                host("m2", "u2", 500_000_000_000),
                host("m3", "u2", 10_000_000_000),
            ],
            plans: vec![],
        };
        let settings = Settings {
            names: NameRules::default(),
            matrix: SupportMatrix::default(),
            clock: Clock {
                now: chrono::Utc::now(),
                offline_after: chrono::Duration::days(14),
            },
        };
        let plan = plan(
            &snapshot,
            &Selection(vec![Node::Group("g0".into())]),
            &settings,
            &|_| Some(false),
        )
        .expect("plan");
        (snapshot, plan)
    }

    /// The stored report is the built one written as text, with the
    /// provisioning view added to each users entry (and the planning section).
    #[test]
    fn the_encoded_report_is_the_built_one_as_text_with_the_provisioning_view() {
        let (snapshot, plan) = planned();
        let options = InitialBackupOptions::default();
        let built = build(&snapshot, &plan, &LoginAnswers::default(), &options);
        let profile = crate::domain::provisioning::Profile::standard();
        let view = ProvisioningView {
            profile: &profile,
            services: &[],
            verified: false,
        };
        let mut without_machines = snapshot.clone();
        without_machines.machines.clear();
        let encoded = encode(
            &without_machines,
            &plan,
            &LoginAnswers::default(),
            &options,
            &view,
        );
        assert_eq!(
            encoded.sections.keys().collect::<Vec<_>>(),
            built.sections.keys().collect::<Vec<_>>()
        );
        for (section, entries) in &built.sections {
            let texts = &encoded.sections[section];
            assert_eq!(texts.len(), entries.len(), "{section:?}");
            for (e, text) in entries.iter().zip(texts) {
                let mut expected = e.value.clone();
                if *section == Section::Users {
                    let data: u64 = snapshot
                        .machines
                        .iter()
                        .filter(|m| m.user_id == e.key)
                        .map(|m| m.data_size_bytes)
                        .sum();
                    expected["storage_quota_bytes"] = Value::Null;
                    expected["data_size_bytes"] = json!(data);
                    expected["data_exceeds_quota"] = json!(false);
                }
                assert_eq!(text.key, e.key);
                assert_eq!(text.value, expected.to_string(), "{section:?} {}", e.key);
            }
        }
        let users = &encoded.sections[&Section::Users];
        assert!(
            users
                .iter()
                .any(|u| u.value.contains("\"data_size_bytes\":2000000000000"))
        );
        let mut planning = encoded.planning.clone();
        let provisioning = planning
            .as_object_mut()
            .and_then(|p| p.remove("provisioning"))
            .expect("a provisioning summary");
        assert_eq!(planning, built.planning);
        assert_eq!(provisioning["verified"], false);
        assert_eq!(provisioning["users_over_quota"], 0);
    }

    /// Streamed, the report is the encoded one cut into chunks: every entry once,
    /// in order, each chunk but a section's last full, the same planning section.
    #[test]
    fn the_streamed_report_is_the_encoded_one_in_chunks() {
        let (snapshot, plan) = planned();
        let options = InitialBackupOptions::default();
        let profile = crate::domain::provisioning::Profile::standard();
        let view = ProvisioningView {
            profile: &profile,
            services: &[],
            verified: false,
        };
        let logins = LoginAnswers::default();
        let encoded = encode(&snapshot, &plan, &logins, &options, &view);
        let chunks = std::sync::Mutex::new(Vec::new());
        let planning = stream(
            &snapshot,
            &plan,
            &logins,
            &options,
            &view,
            3,
            &|section, first, entries| chunks.lock().unwrap().push((section, first, entries)),
        );
        assert_eq!(planning, encoded.planning);
        let mut chunks = chunks.into_inner().unwrap();
        chunks.sort_by_key(|(section, first, _)| (*section, *first));
        let mut streamed: BTreeMap<Section, Vec<EncodedEntry>> = BTreeMap::new();
        for (section, first, entries) in chunks {
            let so_far = streamed.entry(section).or_default();
            assert_eq!(first, so_far.len(), "{section:?}: chunks follow each other");
            assert_eq!(
                first % 3,
                0,
                "{section:?}: every chunk but the last is full"
            );
            assert!(!entries.is_empty() && entries.len() <= 3, "{section:?}");
            so_far.extend(entries);
        }
        for (section, entries) in &encoded.sections {
            let got = streamed.remove(section).unwrap_or_default();
            assert_eq!(&got, entries, "{section:?}");
        }
        assert!(streamed.is_empty(), "no section but the encoded ones");
        assert!(
            encoded.sections.values().any(|e| e.len() > 3),
            "some section spans several chunks"
        );
    }

    #[test]
    fn each_customer_sends_its_machines_data_at_the_bandwidth() {
        let options = InitialBackupOptions {
            bandwidth_mbps: 100.0,
            physical_shipping_after_days: 1.0,
        };
        let report = report_at(&options);
        let rows: Vec<(&str, u64, u64, u64, f64, bool)> = report.sections[&Section::InitialBackup]
            .iter()
            .map(|e| {
                let v = &e.value;
                let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
                (
                    e.key.as_str(),
                    n("machines"),
                    n("data_size_bytes"),
                    n("duration_seconds"),
                    v["duration_days"].as_f64().unwrap_or(-1.0),
                    v["physical_data_shipping"] == true,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                // 2.01e12 B x 8 / 1e8 bit/s = 160,800 s = 1.86 days: over one day.
                ("g1", 3, 2_010_000_000_000, 160_800, 1.86, true),
                // 2e12 B x 8 / 1e8 bit/s = 160,000 s = 1.85 days.
                ("g0#users", 1, 2 * TB, 160_000, 1.85, true),
                ("g2", 0, 0, 0, 0.0, false),
            ]
        );
        assert_eq!(
            report.planning["initial_backup"],
            json!({
                "bandwidth_mbps": 100.0, "physical_shipping_after_days": 1.0, "customers": 3, "data_size_bytes": 4_010_000_000_000u64,
                "longest_duration_days": 1.86, "physical_data_shipping": {"customers": 2, "data_size_bytes": 4_010_000_000_000u64},
            })
        );
        assert_eq!(report.planning["sections"]["initial_backup"], 3);
        let week = report_at(&InitialBackupOptions::default());
        assert_eq!(
            week.planning["initial_backup"]["physical_data_shipping"],
            json!({"customers": 0, "data_size_bytes": 0}),
            "under a week at 100 Mbit/s"
        );
        assert_eq!(
            week.planning["counts"]["data_size_bytes"], 4_010_000_000_000u64,
            "the existing figures stay"
        );
    }
}

/// The report with the provisioning view of the standard profile, every item
/// taken as offered.
fn encode_standard(snapshot: &Snapshot, plan: &crate::domain::plan::Plan) -> EncodedReport {
    let profile = crate::domain::provisioning::Profile::standard();
    let quotas = snapshot.group_quotas();
    let services = crate::domain::provisioning::for_tenants(
        &profile,
        &crate::domain::provisioning::Offer::assumed(&profile),
        &plan.tenants,
        |group| quotas.get(group).copied(),
    );
    let view = ProvisioningView {
        profile: &profile,
        services: &services,
        verified: true,
    };
    encode(
        snapshot,
        plan,
        &LoginAnswers::default(),
        &Default::default(),
        &view,
    )
}

/// The actions entries are written without JSON trees: their text is the one a
/// tree of the same fields writes (what the report stored before, and compares with).
#[test]
fn the_actions_entries_are_the_text_of_the_json_tree_of_their_fields() {
    use crate::domain::plan::tests::{free, settings, snapshot, whole};
    let snapshot = snapshot();
    let plan = crate::domain::plan::plan(&snapshot, &whole(), &settings(), &free).expect("plan");
    let encoded = encode_standard(&snapshot, &plan);
    let users: HashMap<&str, _> = snapshot.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let group_name = |id: &str| {
        snapshot
            .groups
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.name.clone())
            .unwrap_or_default()
    };
    let mut expected = Vec::new();
    for cause in ActionCause::ALL {
        for m in plan.machines.iter().filter(|m| m.actions.contains(&cause)) {
            let user = users.get(m.user_id.as_str());
            let plans: Vec<Value> = m
                .plans
                .iter()
                .filter(|p| concerns(cause, p))
                .map(|p| json!({"plan_id": p.plan_id, "name": p.name, "type": p.kind}))
                .collect();
            let tree = json!({
                "cause": cause, "machine_id": m.machine_id, "hostname": m.hostname, "os_name": m.os_name, "readiness": m.readiness,
                "user_id": m.user_id, "login": user.map(|u| &u.login), "email": user.and_then(|u| u.email.as_ref()),
                "group_id": m.group_id, "group_name": group_name(&m.group_id), "plans": plans,
            });
            expected.push((
                format!("{}/{}", serde_plain(&cause), m.machine_id),
                tree.to_string(),
            ));
        }
    }
    let written: Vec<(String, String)> = encoded.sections[&Section::Actions]
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    assert_eq!(written, expected);
    let causes: Vec<&str> = written
        .iter()
        .map(|(k, _)| k.split('/').next().unwrap_or_default())
        .collect();
    assert!(
        causes.contains(&"unsupported_os") && causes.contains(&"sql_server_registration"),
        "{causes:?}"
    );
    assert!(
        written
            .iter()
            .any(|(_, text)| text.contains("\"type\":\"sql_server\"")),
        "{written:?}"
    );
}

/// Every section's entries are written straight to text (no JSON tree between):
/// each entry's text is the one a JSON tree of it writes (its fields, nested
/// ones too, in alphabetical order), which is what reports stored before hold
/// and are compared with. With the provisioning view, on a base where every
/// section and each kind of nested field has entries.
#[test]
fn every_entry_is_the_text_a_json_tree_of_it_writes() {
    use crate::domain::plan::tests::{free, settings, snapshot, whole};
    let mut snapshot = snapshot();
    // A login with a character substituted (a segment with its original), a
    // machine that never reported and one offline (users to contact), and source
    // quotas below the data (tenants over quota).
    let mut user = snapshot.users[1].clone();
    (user.id, user.login) = ("u6".into(), "first last".into());
    snapshot.users.push(user);
    let mut never = snapshot.machines[0].clone();
    (
        never.id,
        never.user_id,
        never.client_version,
        never.last_seen_at,
    ) = ("m3".into(), "u6".into(), None, None);
    let mut offline = snapshot.machines[0].clone();
    (offline.id, offline.user_id) = ("m4".into(), "u1".into());
    offline.last_seen_at = Some(settings().clock.now - chrono::Duration::days(60));
    snapshot.machines.extend([never, offline]);
    for g in &mut snapshot.groups {
        g.storage_quota_bytes = Some(10);
    }
    let plan = crate::domain::plan::plan(&snapshot, &whole(), &settings(), &free).expect("plan");
    let encoded = encode_standard(&snapshot, &plan);
    for section in Section::ALL {
        let entries = &encoded.sections[&section];
        assert!(!entries.is_empty(), "{section:?} has entries");
        for e in entries {
            let tree: Value = serde_json::from_str(&e.value).expect("an entry is JSON");
            assert_eq!(tree.to_string(), e.value, "{section:?} {}", e.key);
        }
    }
    let text = |section: Section| {
        encoded.sections[&section]
            .iter()
            .map(|e| e.value.as_str())
            .collect::<String>()
    };
    // What the nested fields look like, so that the test sees each kind of them.
    for (section, part, what) in [
        (
            Section::Users,
            "\"original\":\" \"",
            "a substituted segment",
        ),
        (Section::Hierarchy, "\"services\":[{\"item\":", "services"),
        (
            Section::Groups,
            "\"note\":\"no_admin\"",
            "a group without admin",
        ),
        (
            Section::Contacts,
            "\"machines\":[{\"client_version\":",
            "machines",
        ),
    ] {
        assert!(text(section).contains(part), "{section:?}: {what}");
    }
    assert_eq!(
        encoded.planning["provisioning"]["tenants_over_quota"]
            .as_u64()
            .map(|n| n > 0),
        Some(text(Section::Hierarchy).contains("\"data_exceeds_quota\":true")),
        "the planning section counts the tenants over quota the hierarchy shows"
    );
}
