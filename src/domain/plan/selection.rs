//! A selection: the whole hierarchy, reseller groups, end-user groups or single
//! users, as node ids. A group stands for its whole subtree; overlaps are fine.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Tree;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(
    tag = "kind",
    content = "id",
    rename_all = "snake_case",
    deny_unknown_fields
)]
// `SelectionNode` in the document: the hierarchy's `Node` is another thing.
#[schema(as = SelectionNode)]
pub enum Node {
    #[schema(value_type = NodeId)]
    Group(String),
    #[schema(value_type = NodeId)]
    User(String),
}

/// A group's or a backup user's id in BackupAgent.
#[derive(ToSchema)]
#[schema(max_length = 200)]
pub struct NodeId(#[allow(dead_code)] String);

/// The longest node id a selection may name (a selection is kept with its pre-check and migration).
pub const MAX_NODE_ID_CHARS: usize = 200;

impl validator::Validate for Node {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let (Node::Group(id) | Node::User(id)) = self;
        if id.chars().count() <= MAX_NODE_ID_CHARS {
            return Ok(());
        }
        let mut errors = validator::ValidationErrors::new();
        errors.add(
            "id",
            validator::ValidationError::new("length")
                .with_message(format!("must be at most {MAX_NODE_ID_CHARS} characters").into()),
        );
        Err(errors)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Selection(pub Vec<Node>);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("the selection is empty")]
    Empty,
    #[error("the snapshot has not been taken yet: sync the workspace first")]
    NoSnapshot,
    /// Entries (by position) naming nothing in this workspace's snapshot.
    #[error("the selection names nodes this workspace does not have")]
    Unknown(Vec<(usize, Node)>),
}

/// What a selection covers, by snapshot index.
pub(crate) struct Chosen {
    /// In the plan: inside a selected subtree, or an ancestor of something selected.
    pub groups: Vec<bool>,
    /// Inside a selected subtree (its admin and all its users migrate).
    pub whole: Vec<bool>,
    pub users: Vec<bool>,
    /// The group has a chosen direct user.
    pub direct_users: Vec<bool>,
}

impl Selection {
    pub fn whole(tree_root_id: &str) -> Self {
        Selection(vec![Node::Group(tree_root_id.to_string())])
    }

    pub(crate) fn expand(&self, tree: &Tree<'_>) -> Result<Chosen, SelectionError> {
        if self.0.is_empty() {
            return Err(SelectionError::Empty);
        }
        let Some(_) = tree.root else {
            return Err(SelectionError::NoSnapshot);
        };
        let groups = tree.snapshot.groups.len();
        let users = tree.snapshot.users.len();
        let mut chosen = Chosen {
            groups: vec![false; groups],
            whole: vec![false; groups],
            users: vec![false; users],
            direct_users: vec![false; groups],
        };
        let mut unknown = Vec::new();
        let mut stack = Vec::new();
        for (i, node) in self.0.iter().enumerate() {
            match node {
                Node::Group(id) => match tree
                    .group_index
                    .get(id.as_str())
                    .copied()
                    .filter(|&g| tree.reachable(g))
                {
                    Some(g) if !chosen.whole[g] => stack.push(g),
                    Some(_) => {}
                    None => unknown.push((i, node.clone())),
                },
                Node::User(id) => match tree
                    .user_index
                    .get(id.as_str())
                    .copied()
                    .and_then(|u| tree.user_group[u].map(|g| (u, g)))
                {
                    Some((u, g)) => {
                        chosen.users[u] = true;
                        chosen.direct_users[g] = true;
                        mark_ancestors(tree, &mut chosen.groups, g);
                    }
                    None => unknown.push((i, node.clone())),
                },
            }
        }
        if !unknown.is_empty() {
            return Err(SelectionError::Unknown(unknown));
        }
        while let Some(g) = stack.pop() {
            if chosen.whole[g] {
                continue;
            }
            chosen.whole[g] = true;
            mark_ancestors(tree, &mut chosen.groups, g);
            for &u in &tree.users_of[g] {
                chosen.users[u] = true;
                chosen.direct_users[g] = true;
            }
            stack.extend(tree.children[g].iter().copied());
        }
        Ok(chosen)
    }
}

fn mark_ancestors(tree: &Tree<'_>, groups: &mut [bool], mut g: usize) {
    loop {
        if groups[g] {
            return;
        }
        groups[g] = true;
        match tree.parent[g] {
            Some(p) => g = p,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use validator::Validate;

    use super::*;

    #[test]
    fn node_ids_are_capped_in_characters() {
        let cases = [
            (Node::Group("g".repeat(MAX_NODE_ID_CHARS)), true),
            (Node::User("ü".repeat(MAX_NODE_ID_CHARS)), true),
            (Node::User("u".repeat(MAX_NODE_ID_CHARS + 1)), false),
        ];
        for (node, valid) in cases {
            assert_eq!(node.validate().is_ok(), valid, "{node:?}");
        }
    }
}
