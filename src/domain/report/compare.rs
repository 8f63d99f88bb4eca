//! What changed between two reports, entry by entry.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Entry;

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
    let mut earlier: HashMap<String, Value> =
        before.into_iter().map(|e| (e.key, e.value)).collect();
    let mut changes = Vec::new();
    let mut out = SectionChanges::default();
    for Entry { key, value } in after {
        match earlier.remove(&key) {
            None => {
                out.added += 1;
                changes.push(EntryChange {
                    key,
                    change: Change::Added,
                    before: None,
                    after: Some(value),
                });
            }
            Some(old) if old != value => {
                out.changed += 1;
                changes.push(EntryChange {
                    key,
                    change: Change::Changed,
                    before: Some(old),
                    after: Some(value),
                });
            }
            Some(_) => {}
        }
    }
    for (key, value) in earlier {
        out.removed += 1;
        changes.push(EntryChange {
            key,
            change: Change::Removed,
            before: Some(value),
            after: None,
        });
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    out.truncated = changes.len() > max_items;
    changes.truncate(max_items);
    out.items = changes;
    out
}
