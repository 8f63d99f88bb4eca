//! The snapshot's group tree in positions, so that a subtree is a range: each
//! group is numbered in a depth-first walk (`tree_lo`) and knows the last number
//! of its subtree (`tree_hi`); users and machines carry their group's number
//! (`tree_pos`). A sync numbers the tree in its transaction, after the groups and
//! before the users and machines; nothing else writes the tree.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

use super::{execute, query};

/// What a user's or machine's `tree_pos` is in an `UPDATE` of its table: the
/// number of its group (`$1` the workspace), NULL when the group is not in the
/// snapshot.
pub fn position_of_group(group_column: &str) -> String {
    format!(
        "(SELECT g.tree_lo FROM source_groups g WHERE g.workspace_id = $1 AND g.source_id = {group_column})"
    )
}

/// Numbers the workspace's groups as they now are, writing only the positions
/// that changed.
pub async fn renumber(db: &impl ConnectionTrait, workspace: Uuid) -> Result<(), DbErr> {
    let rows = query(
        db,
        "SELECT source_id, parent_source_id, tree_lo, tree_hi FROM source_groups WHERE workspace_id = $1",
        vec![workspace.into()],
    )
    .await?;
    let mut groups = Vec::with_capacity(rows.len());
    let mut stored = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("", "source_id")?;
        let parent: Option<String> = r.try_get("", "parent_source_id")?;
        let lo: Option<i64> = r.try_get("", "tree_lo")?;
        let hi: Option<i64> = r.try_get("", "tree_hi")?;
        stored.insert(id.clone(), lo.zip(hi));
        groups.push((id, parent));
    }
    let changed: Vec<(String, Span)> = positions(&groups)
        .into_iter()
        .filter(|(id, span)| stored.get(id).copied().flatten() != Some(*span))
        .collect();
    for chunk in changed.chunks(1000) {
        let mut values: Vec<Value> = vec![workspace.into()];
        let rows: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, (id, (lo, hi)))| {
                values.extend([id.clone().into(), (*lo).into(), (*hi).into()]);
                let n = 2 + i * 3;
                format!(
                    "(${n}, CAST(${} AS BIGINT), CAST(${} AS BIGINT))",
                    n + 1,
                    n + 2
                )
            })
            .collect();
        let sql = format!(
            "UPDATE source_groups SET tree_lo = v.column2, tree_hi = v.column3 FROM (VALUES {}) AS v \
             WHERE source_groups.workspace_id = $1 AND source_groups.source_id = v.column1",
            rows.join(", ")
        );
        execute(db, &sql, values).await?;
    }
    Ok(())
}

/// A group's number and the last number of its subtree.
pub type Span = (i64, i64);

/// Depth-first positions of the groups `(id, parent)`, from 1, children in id
/// order. A group whose parent is not among them starts a tree of its own, as
/// its subtree is all a walk down from it finds. Groups on a cycle, which no
/// walk from a root reaches, are numbered from the least of them.
pub fn positions(groups: &[(String, Option<String>)]) -> HashMap<String, Span> {
    let ids: HashSet<&str> = groups.iter().map(|(id, _)| id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut starts: Vec<&str> = Vec::new();
    for (id, parent) in groups {
        match parent.as_deref().filter(|p| ids.contains(p)) {
            Some(parent) => children.entry(parent).or_default().push(id),
            None => starts.push(id),
        }
    }
    for list in children.values_mut() {
        list.sort_unstable();
    }
    starts.sort_unstable();
    let mut rest: Vec<&str> = ids.iter().copied().collect();
    rest.sort_unstable();
    let mut spans: HashMap<String, Span> = HashMap::with_capacity(groups.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(groups.len());
    let mut next = 1i64;
    for start in starts.into_iter().chain(rest) {
        if !seen.insert(start) {
            continue;
        }
        // (group, its number, how many of its children were visited)
        let mut stack = vec![(start, next, 0usize)];
        next += 1;
        while let Some(top) = stack.last_mut() {
            let (group, lo) = (top.0, top.1);
            let child = children.get(group).and_then(|c| c.get(top.2)).copied();
            top.2 += 1;
            match child {
                Some(child) if seen.insert(child) => {
                    stack.push((child, next, 0));
                    next += 1;
                }
                Some(_) => {}
                None => {
                    spans.insert(group.to_string(), (lo, next - 1));
                    stack.pop();
                }
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(groups: &[(&str, Option<&str>)]) -> Vec<(String, Span)> {
        let groups: Vec<(String, Option<String>)> = groups
            .iter()
            .map(|(id, parent)| (id.to_string(), parent.map(str::to_string)))
            .collect();
        let mut out: Vec<(String, Span)> = positions(&groups).into_iter().collect();
        out.sort();
        out
    }

    fn expect(rows: &[(&str, i64, i64)]) -> Vec<(String, Span)> {
        rows.iter()
            .map(|(id, lo, hi)| (id.to_string(), (*lo, *hi)))
            .collect()
    }

    #[test]
    fn a_subtree_is_the_range_from_its_group_to_its_last_descendant() {
        let cases: Vec<(&str, Vec<(&str, Option<&str>)>, Vec<(&str, i64, i64)>)> = vec![
            ("nothing", vec![], vec![]),
            ("one root", vec![("r", None)], vec![("r", 1, 1)]),
            (
                "children in id order, whatever the input's",
                vec![("b", Some("r")), ("r", None), ("a", Some("r"))],
                vec![("a", 2, 2), ("b", 3, 3), ("r", 1, 3)],
            ),
            (
                "depth first",
                vec![
                    ("r", None),
                    ("a", Some("r")),
                    ("a1", Some("a")),
                    ("a2", Some("a")),
                    ("b", Some("r")),
                    ("a11", Some("a1")),
                ],
                vec![
                    ("a", 2, 5),
                    ("a1", 3, 4),
                    ("a11", 4, 4),
                    ("a2", 5, 5),
                    ("b", 6, 6),
                    ("r", 1, 6),
                ],
            ),
            (
                "two roots",
                vec![("s", None), ("r", None), ("s1", Some("s"))],
                vec![("r", 1, 1), ("s", 2, 3), ("s1", 3, 3)],
            ),
            (
                "a parent not in the snapshot: a tree of its own",
                vec![("r", None), ("o", Some("gone")), ("o1", Some("o"))],
                vec![("o", 1, 2), ("o1", 2, 2), ("r", 3, 3)],
            ),
            (
                "a cycle: numbered from its least group, after the trees",
                vec![
                    ("r", None),
                    ("y", Some("x")),
                    ("x", Some("y")),
                    ("z", Some("x")),
                ],
                vec![("r", 1, 1), ("x", 2, 4), ("y", 3, 3), ("z", 4, 4)],
            ),
            (
                "its own parent",
                vec![("s", Some("s")), ("t", Some("s"))],
                vec![("s", 1, 2), ("t", 2, 2)],
            ),
        ];
        for (case, groups, expected) in cases {
            assert_eq!(spans(&groups), expect(&expected), "{case}");
        }
    }

    #[test]
    fn every_group_of_a_deep_chain_is_numbered_without_recursion() {
        let groups: Vec<(String, Option<String>)> = (0..100_000)
            .map(|i| {
                (
                    format!("g{i:06}"),
                    (i > 0).then(|| format!("g{:06}", i - 1)),
                )
            })
            .collect();
        let spans = positions(&groups);
        assert_eq!(spans["g000000"], (1, 100_000));
        assert_eq!(spans["g099999"], (100_000, 100_000));
        assert_eq!(spans["g050000"], (50_001, 100_000));
    }
}
