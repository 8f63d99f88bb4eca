//! What the generator planted, written as it plants: entity ids per oddity.
//! Nothing here is recomputed from the data, so a rule's bug cannot hide on both
//! sides of a test.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::mutations::MutationReport;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub root_group_id: String,
    pub groups: GroupTruth,
    pub users: UserTruth,
    pub machines: MachineTruth,
    pub plans: PlanTruth,
    pub quotas: QuotaTruth,
    /// Logins the cloud already holds (to pre-seed the cloud simulator).
    pub cloud_existing_logins: Vec<String>,
    /// Every mutation applied since generation, in order. The lists above describe
    /// the install base as generated.
    pub mutations: Vec<MutationReport>,
}

/// Every non-root group is exactly one of reseller, customer, mixed or empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupTruth {
    /// Subgroups and no users.
    pub resellers: Vec<String>,
    /// Users and no subgroups.
    pub customers: Vec<String>,
    /// Both subgroups and users.
    pub mixed: Vec<String>,
    /// Neither.
    pub empty: Vec<String>,
    /// Reseller groups, each the parent of the next, the first a child of the root.
    pub deep_chain: Vec<String>,
    pub without_admin: Vec<String>,
    /// Leading, trailing or doubled spaces.
    pub whitespace_names: Vec<String>,
    /// One of `< > " \ / | ;`.
    pub refused_character_names: Vec<String>,
    pub control_character_names: Vec<String>,
    /// Over 128 characters.
    pub long_names: Vec<String>,
    /// Sets of sibling groups whose names are equal ignoring case.
    pub duplicate_sibling_names: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserTruth {
    /// Logins holding `$`, `#` or a space.
    pub bad_character_logins: Vec<String>,
    /// Logins shorter than 3 characters.
    pub short_logins: Vec<String>,
    /// Sets of users whose logins are equal ignoring case (across groups).
    pub case_colliding_logins: Vec<Vec<String>>,
    /// Users whose login the cloud holds exactly.
    pub cloud_existing_logins: Vec<String>,
    /// Users whose login the cloud holds in another case only.
    pub cloud_existing_logins_other_case: Vec<String>,
    pub auto_update_off: Vec<String>,
    /// Users all of whose machines were last seen three weeks or more before `as_of`.
    pub offline: Vec<String>,
}

/// Client version categories use the thresholds build 15908 (Windows) and 15836
/// (every other platform) of version 5.5.0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineTruth {
    /// OS name -> machine ids.
    pub by_os: BTreeMap<String, Vec<String>>,
    pub supported_os: Vec<String>,
    pub unsupported_os: Vec<String>,
    /// Older than 5.5.
    pub client_old: Vec<String>,
    /// 5.5 below the platform's build threshold.
    pub client_below_threshold: Vec<String>,
    /// Windows machines whose build is at or above the macOS/Linux threshold but below Windows'.
    pub client_below_windows_threshold_only: Vec<String>,
    /// 5.5 at or above the platform's build threshold.
    pub client_at_or_above_threshold: Vec<String>,
    /// Exactly at the threshold (a subset of the above).
    pub client_exactly_at_threshold: Vec<String>,
    pub client_never_reported: Vec<String>,
    pub data_under_100_mb: Vec<String>,
    pub data_over_1_tb: Vec<String>,
}

/// Storage quotas as generated; a mutation's changes are in its report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaTruth {
    /// Group id -> its quota in bytes; a group without one is absent.
    pub groups: BTreeMap<String, u64>,
    /// User id -> its quota in bytes; a user without one is absent.
    pub users: BTreeMap<String, u64>,
    /// Users whose machines hold more data than their quota.
    pub users_over_quota: Vec<String>,
    /// Groups whose own users' machines hold more data than the group's quota.
    pub groups_over_quota: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanTruth {
    /// Plan type -> plan ids.
    pub by_type: BTreeMap<String, Vec<String>>,
    pub with_inclusion_filters: Vec<String>,
    pub daily_one_time: Vec<String>,
    pub daily_even: Vec<String>,
    pub daily_uneven: Vec<String>,
    pub weekly: Vec<String>,
    pub monthly: Vec<String>,
    pub once: Vec<String>,
}
