//! What changed between two reports, entry by entry.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{EncodedEntry, Entry};

#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct SectionChanges {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// The first changes, in key order.
    pub items: Vec<EntryChange>,
    /// More changes than `items` holds.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct EntryChange {
    pub key: String,
    pub change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// Compares a section of an earlier report with the same section of a later one.
pub fn compare_entries(before: Vec<Entry>, after: Vec<Entry>, max_items: usize) -> SectionChanges {
    compare(
        before.into_iter().map(|e| (e.key, e.value)),
        after.into_iter().map(|e| (e.key, e.value)),
        max_items,
        Some,
    )
}

/// [`compare_entries`] on entries as JSON text: equal trees are equal text, as
/// `serde_json` writes a tree one way; only the changes listed are read back.
pub fn compare_encoded(
    before: Vec<EncodedEntry>,
    after: Vec<EncodedEntry>,
    max_items: usize,
) -> SectionChanges {
    compare(
        before.into_iter().map(|e| (e.key, e.value)),
        after.into_iter().map(|e| (e.key, e.value)),
        max_items,
        |text| serde_json::from_str(&text).ok(),
    )
}

fn compare<V: PartialEq>(
    before: impl Iterator<Item = (String, V)>,
    after: impl Iterator<Item = (String, V)>,
    max_items: usize,
    read: impl Fn(V) -> Option<Value>,
) -> SectionChanges {
    let mut earlier: HashMap<String, V> = before.collect();
    let mut changes: Vec<(String, Change, Option<V>, Option<V>)> = Vec::new();
    let mut out = SectionChanges::default();
    for (key, value) in after {
        match earlier.remove(&key) {
            None => {
                out.added += 1;
                changes.push((key, Change::Added, None, Some(value)));
            }
            Some(old) if old != value => {
                out.changed += 1;
                changes.push((key, Change::Changed, Some(old), Some(value)));
            }
            Some(_) => {}
        }
    }
    for (key, value) in earlier {
        out.removed += 1;
        changes.push((key, Change::Removed, Some(value), None));
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    out.truncated = changes.len() > max_items;
    changes.truncate(max_items);
    out.items = changes
        .into_iter()
        .map(|(key, change, before, after)| EntryChange {
            key,
            change,
            before: before.and_then(&read),
            after: after.and_then(&read),
        })
        .collect();
    out
}
