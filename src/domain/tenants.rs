//! The target tenant kind of a source group: a group with subgroups becomes a
//! partner, one with backup users a customer, one with both a partner with a
//! customer child for its users.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupPlan {
    /// The workspace root: the caller's own tenant, not created.
    Root,
    /// Has subgroups: a reseller-level partner; its admin a partner admin.
    Partner,
    /// Has backup users and no subgroups: a customer; its admin a company admin.
    Customer,
    /// Has both: a partner, plus a customer child for its direct users.
    PartnerWithCustomer,
    /// Neither: reported, nothing created.
    Empty,
}

impl GroupPlan {
    pub fn of(is_root: bool, has_subgroups: bool, has_users: bool) -> Self {
        match (is_root, has_subgroups, has_users) {
            (true, ..) => GroupPlan::Root,
            (false, true, true) => GroupPlan::PartnerWithCustomer,
            (false, true, false) => GroupPlan::Partner,
            (false, false, true) => GroupPlan::Customer,
            (false, false, false) => GroupPlan::Empty,
        }
    }

    /// Whether the group's direct users need a customer tenant of their own
    /// (the root's users too: the caller's tenant is a partner, not a customer).
    pub fn needs_customer_child(self, has_users: bool) -> bool {
        has_users && matches!(self, GroupPlan::Root | GroupPlan::PartnerWithCustomer)
    }
}

#[cfg(test)]
mod tests {
    use super::GroupPlan::*;
    use super::*;

    #[test]
    fn a_group_becomes_what_its_contents_say() {
        let cases = [
            ((true, true, true), Root, true),
            ((true, true, false), Root, false),
            ((false, true, false), Partner, false),
            ((false, false, true), Customer, false),
            ((false, true, true), PartnerWithCustomer, true),
            ((false, false, false), Empty, false),
        ];
        for ((root, subgroups, users), plan, child) in cases {
            let planned = GroupPlan::of(root, subgroups, users);
            assert_eq!(planned, plan, "{root} {subgroups} {users}");
            assert_eq!(planned.needs_customer_child(users), child, "{plan:?}");
        }
    }
}
