//! The install-base generator: a BackupAgent install base, deterministic from a
//! seed, with every oddity the pre-check must find planted and recorded in
//! [`Truth`] as it is planted.

mod groups;
mod machines;
pub mod model;
mod mutations;
mod plans;
pub mod quotas;
pub mod truth;
mod users;
mod words;

use std::ops::Range;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use model::*;
pub use mutations::{MutationReport, Mutations};
pub use truth::*;

/// The preset sizes; plans come at about 2.7 per machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    /// Groups, users, machines.
    pub fn counts(self) -> (usize, usize, usize) {
        match self {
            Size::Small => (60, 300, 450),
            Size::Medium => (1_000, 10_000, 15_000),
            Size::Large => (10_000, 100_000, 150_000),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenSpec {
    pub seed: u64,
    /// Including the top-level group.
    pub groups: usize,
    pub users: usize,
    pub machines: usize,
    /// The moment the install base is observed: last-seen times and ages count back from it.
    pub as_of: DateTime<Utc>,
}

impl GenSpec {
    pub fn sized(size: Size, seed: u64) -> Self {
        let (groups, users, machines) = size.counts();
        Self::custom(groups, users, machines, seed)
    }

    pub fn custom(groups: usize, users: usize, machines: usize, seed: u64) -> Self {
        Self {
            seed,
            groups: groups.max(1),
            users,
            machines,
            as_of: default_as_of(),
        }
    }

    pub fn as_of(mut self, as_of: DateTime<Utc>) -> Self {
        self.as_of = as_of;
        self
    }
}

/// A fixed instant, so that a seed alone fixes the output.
pub fn default_as_of() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub groups: usize,
    pub users: usize,
    pub machines: usize,
    pub plans: usize,
}

/// Next serial numbers, so that ids made by mutations sort after every existing one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Serials {
    pub user: usize,
    pub machine: usize,
    pub plan: usize,
}

/// One BackupAgent server's data. Every list is sorted by id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstallBase {
    pub spec: GenSpec,
    /// The top-level group's login (its name) and password.
    pub login: String,
    password: String,
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub machines: Vec<Machine>,
    pub plans: Vec<BackupPlan>,
    pub truth: Truth,
    /// The latest `updated_at` handed out; mutations stamp later times.
    pub clock: DateTime<Utc>,
    serials: Serials,
}

impl InstallBase {
    /// Login and password of the top-level group.
    pub fn credentials(&self) -> (String, String) {
        (self.login.clone(), self.password.clone())
    }

    /// Logins the cloud already holds: some equal users' logins, some only ignoring case.
    pub fn cloud_existing_logins(&self) -> Vec<String> {
        self.truth.cloud_existing_logins.clone()
    }

    pub fn root(&self) -> &Group {
        &self.groups[0]
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users
            .binary_search_by(|u| u.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.users[i])
    }

    /// A backup user's password.
    pub fn password(&self, user_id: &str) -> Option<&str> {
        self.user(user_id).map(|u| u.password.as_str())
    }

    pub fn counts(&self) -> Counts {
        Counts {
            groups: self.groups.len(),
            users: self.users.len(),
            machines: self.machines.len(),
            plans: self.plans.len(),
        }
    }
}

/// Generates the install base `spec` describes; the same spec gives the same bytes.
pub fn generate(spec: &GenSpec) -> InstallBase {
    let mut g = Gen::new(spec.seed, spec.as_of);
    let mut truth = Truth::default();
    let password = g.password();
    let mut hierarchy = groups::plant(&mut g, &mut truth, spec.groups, spec.users);
    let mut planted = users::plant(&mut g, &mut truth, &hierarchy.groups, &hierarchy.user_homes);
    let machines = machines::plant(&mut g, &mut truth, &planted, spec.machines);
    let plans = plans::plant(&mut g, &mut truth, &machines);
    // Last, so that everything drawn before is what it was before quotas existed.
    quotas::plant(
        &mut g,
        &mut truth,
        &mut hierarchy.groups,
        &mut planted.users,
        &machines,
    );
    let serials = Serials {
        user: planted.users.len() + 1,
        machine: machines.len() + 1,
        plan: plans.len() + 1,
    };
    let login = hierarchy.groups[0].name.clone();
    InstallBase {
        spec: spec.clone(),
        login,
        password,
        groups: hierarchy.groups,
        users: planted.users,
        machines,
        plans,
        truth,
        clock: spec.as_of,
        serials,
    }
}

pub(crate) fn id(prefix: &str, serial: usize) -> String {
    format!("{prefix}-{serial:07}")
}

/// How many of `total` to plant: `share` of them, at least `min`, at most `total`.
pub(crate) fn planted(total: usize, share: f64, min: usize) -> usize {
    ((total as f64 * share).round() as usize)
        .max(min)
        .min(total)
}

/// The generator's random source and clock.
pub(crate) struct Gen {
    rng: ChaCha8Rng,
    pub as_of: DateTime<Utc>,
}

impl Gen {
    pub fn new(seed: u64, as_of: DateTime<Utc>) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            as_of,
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    pub fn range(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            r.start
        } else {
            self.rng.random_range(r)
        }
    }

    pub fn unit(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        items
            .choose(&mut self.rng)
            .expect("picking from a non-empty list")
    }

    pub fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total.max(1));
        for (item, weight) in items {
            if roll < *weight {
                return *item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.rng);
    }

    /// `0..n` in random order.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.shuffle(&mut order);
        order
    }

    /// A whole second between `min_days` and `max_days` before `as_of`.
    pub fn days_ago(&mut self, min_days: u64, max_days: u64) -> DateTime<Utc> {
        let secs = self.range(min_days * 86_400..max_days * 86_400 + 1);
        self.as_of - Duration::seconds(secs as i64)
    }

    /// A whole second in `from..=to`.
    pub fn between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
        let span = (to - from).num_seconds().max(0) as u64;
        from + Duration::seconds(self.range(0..span + 1) as i64)
    }

    pub fn password(&mut self) -> String {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#%&*-_";
        let len = self.range(12..17) as usize;
        (0..len)
            .map(|_| CHARS[self.below(CHARS.len())] as char)
            .collect()
    }
}
