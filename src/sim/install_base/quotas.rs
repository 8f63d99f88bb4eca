//! Storage quotas: some groups and users have one, in the round sizes a provider
//! sells; a few already hold more data than theirs (their machines' data for a
//! user, their own users' data for a group).

use std::collections::HashMap;

use super::{Gen, Group, Machine, Truth, User, planted};

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The sizes a quota comes in, smallest first.
pub const QUOTA_SIZES: [u64; 14] = [
    50 * GIB,
    100 * GIB,
    250 * GIB,
    500 * GIB,
    TIB,
    2 * TIB,
    5 * TIB,
    10 * TIB,
    20 * TIB,
    50 * TIB,
    100 * TIB,
    250 * TIB,
    500 * TIB,
    1024 * TIB,
];

/// Users with a quota, as a share of all users.
pub const USER_SHARE: f64 = 0.30;
/// Non-root groups with a quota, as a share of them.
pub const GROUP_SHARE: f64 = 0.20;
/// Users over their quota, as a share of the users with one.
pub const USERS_OVER_SHARE: f64 = 0.03;
/// Groups over their quota, as a share of the groups with one.
pub const GROUPS_OVER_SHARE: f64 = 0.08;

pub(super) fn plant(
    g: &mut Gen,
    truth: &mut Truth,
    groups: &mut [Group],
    users: &mut [User],
    machines: &[Machine],
) {
    let user_data = data_by_user(machines);
    let data: Vec<u64> = users.iter().map(|u| user_data.of(&u.id)).collect();
    let t = &mut truth.quotas;
    for (i, quota) in choose(g, &data, USER_SHARE, USERS_OVER_SHARE) {
        let user = &mut users[i];
        user.storage_quota_bytes = Some(quota);
        t.users.insert(user.id.clone(), quota);
        if data[i] > quota {
            t.users_over_quota.push(user.id.clone());
        }
    }
    let mut group_data: HashMap<&str, u64> = HashMap::new();
    for (user, bytes) in users.iter().zip(&data) {
        let sum = group_data.entry(user.group_id.as_str()).or_default();
        *sum = sum.saturating_add(*bytes);
    }
    // The top-level group is the provider itself: it gets no quota.
    let data: Vec<u64> = groups
        .iter()
        .skip(1)
        .map(|x| group_data.get(x.id.as_str()).copied().unwrap_or(0))
        .collect();
    for (i, quota) in choose(g, &data, GROUP_SHARE, GROUPS_OVER_SHARE) {
        let group = &mut groups[i + 1];
        group.storage_quota_bytes = Some(quota);
        t.groups.insert(group.id.clone(), quota);
        if data[i] > quota {
            t.groups_over_quota.push(group.id.clone());
        }
    }
    t.users_over_quota.sort_unstable();
    t.groups_over_quota.sort_unstable();
}

/// Which of the holders of `data` get a quota (`share` of them, at least one),
/// and which quota: `over_share` of those (at least one, among holders of more
/// than the smallest size) get one below their data, the others one at or above it.
fn choose(g: &mut Gen, data: &[u64], share: f64, over_share: f64) -> Vec<(usize, u64)> {
    let n = data.len();
    if n == 0 {
        return Vec::new();
    }
    let with = planted(n, share, 1);
    let over = planted(with, over_share, 1);
    let order = g.permutation(n);
    let mut chosen = vec![false; n];
    let mut quotas = Vec::with_capacity(with);
    for &i in order
        .iter()
        .filter(|&&i| data[i] > QUOTA_SIZES[0])
        .take(over)
    {
        chosen[i] = true;
        quotas.push((i, below(g, data[i])));
    }
    for &i in &order {
        if quotas.len() >= with {
            break;
        }
        if !chosen[i] {
            chosen[i] = true;
            quotas.push((i, at_or_above(g, data[i])));
        }
    }
    quotas.sort_unstable();
    quotas
}

/// A size below `data` (the largest, or the one before it); `data` exceeds the smallest.
fn below(g: &mut Gen, data: u64) -> u64 {
    let fitting = QUOTA_SIZES.partition_point(|&s| s < data);
    let step = if fitting >= 2 && g.chance(0.3) { 2 } else { 1 };
    QUOTA_SIZES[fitting.saturating_sub(step)]
}

/// The smallest size that holds `data`, sometimes one or two sizes more for headroom
/// (the largest size when none holds it).
pub(super) fn at_or_above(g: &mut Gen, data: u64) -> u64 {
    let fitting = QUOTA_SIZES.partition_point(|&s| s < data);
    let headroom = g.weighted(&[(0, 6), (1, 3), (2, 1)]);
    QUOTA_SIZES[(fitting + headroom).min(QUOTA_SIZES.len() - 1)]
}

/// Another quota than `current`: none becomes one that holds `data`; a quota
/// goes away a quarter of the time, else to the next size (the previous at the top).
pub(super) fn changed(g: &mut Gen, current: Option<u64>, data: u64) -> Option<u64> {
    let Some(quota) = current else {
        return Some(at_or_above(g, data));
    };
    if g.chance(0.25) {
        return None;
    }
    let i = QUOTA_SIZES.partition_point(|&s| s < quota);
    Some(if i + 1 < QUOTA_SIZES.len() {
        QUOTA_SIZES[i + 1]
    } else {
        QUOTA_SIZES[QUOTA_SIZES.len() - 2]
    })
}

/// A new user's quota, by the rule the generator plants: [`USER_SHARE`] of
/// users have one, [`USERS_OVER_SHARE`] of those below their data.
pub(super) fn for_new_user(g: &mut Gen, data: u64) -> Option<u64> {
    if !g.chance(USER_SHARE) {
        return None;
    }
    Some(if data > QUOTA_SIZES[0] && g.chance(USERS_OVER_SHARE) {
        below(g, data)
    } else {
        at_or_above(g, data)
    })
}

/// Each user's data: the sum of their machines' `data_size_bytes`.
pub(super) struct UserData(HashMap<String, u64>);

impl UserData {
    pub fn of(&self, user: &str) -> u64 {
        self.0.get(user).copied().unwrap_or(0)
    }
}

pub(super) fn data_by_user(machines: &[Machine]) -> UserData {
    let mut data: HashMap<String, u64> = HashMap::new();
    for m in machines {
        let bytes = data.entry(m.user_id.clone()).or_default();
        *bytes = bytes.saturating_add(m.data_size_bytes);
    }
    UserData(data)
}
