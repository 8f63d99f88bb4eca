use serde_json::json;

use super::compare::Change;
use super::*;

fn e(key: &str, value: Value) -> Entry {
    Entry { key: key.into(), value }
}

#[test]
fn a_comparison_lists_what_was_added_removed_and_changed() {
    let before = vec![e("a", json!(1)), e("b", json!(2)), e("c", json!(3))];
    let after = vec![e("d", json!(4)), e("c", json!(3)), e("b", json!(20))];
    let changes = compare_entries(before, after, 10);
    assert_eq!((changes.added, changes.removed, changes.changed, changes.truncated), (1, 1, 1, false));
    let listed: Vec<(&str, Change)> = changes.items.iter().map(|c| (c.key.as_str(), c.change)).collect();
    assert_eq!(listed, vec![("a", Change::Removed), ("b", Change::Changed), ("d", Change::Added)]);
    let few = compare_entries(vec![e("a", json!(1)), e("b", json!(2))], vec![], 1);
    assert_eq!((few.removed, few.items.len(), few.truncated), (2, 1, true));
}

#[test]
fn sections_have_stable_names() {
    for section in Section::ALL {
        assert_eq!(Section::parse(section.as_str()), Some(section));
        assert_eq!(serde_json::to_value(section).ok(), Some(json!(section.as_str())));
    }
    assert_eq!(Section::parse("planning"), None);
}
