//! Changes to a live install base between syncs: users added (with machines and
//! plans), moved to another group, removed (with theirs), clients upgraded,
//! storage quotas changed.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::words::Person;
use super::{Gen, InstallBase, Truth, machines, plans, quotas, users};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mutations {
    pub seed: u64,
    pub add_users: usize,
    pub move_users: usize,
    pub remove_users: usize,
    pub upgrade_clients: usize,
    /// Users whose storage quota changes (gained, resized or dropped).
    pub change_user_quotas: usize,
    /// Groups (not the top-level one) whose storage quota changes.
    pub change_group_quotas: usize,
}

/// The ids each mutation touched; every changed entity has `updated_at == at`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MutationReport {
    pub at: DateTime<Utc>,
    pub added_users: Vec<String>,
    pub added_machines: Vec<String>,
    pub added_plans: Vec<String>,
    pub moved_users: Vec<String>,
    pub removed_users: Vec<String>,
    pub removed_machines: Vec<String>,
    pub removed_plans: Vec<String>,
    pub upgraded_machines: Vec<String>,
    pub quota_changed_users: Vec<String>,
    pub quota_changed_groups: Vec<String>,
    /// The quota of every user and group this mutation added with one or changed
    /// (`None`: it has none now); added users without a quota are not listed.
    pub quotas: BTreeMap<String, Option<u64>>,
}

impl InstallBase {
    /// Applies `m`; the same mutations on the same install base give the same result.
    pub fn mutate(&mut self, m: &Mutations) -> MutationReport {
        let at = self.clock + Duration::minutes(1);
        self.clock = at;
        let mut g = Gen::new(m.seed, at);
        let mut report = MutationReport {
            at,
            ..MutationReport::default()
        };
        self.remove_users(&mut g, m.remove_users, &mut report);
        self.move_users(&mut g, m.move_users, &mut report);
        self.upgrade_clients(&mut g, m.upgrade_clients, &mut report);
        self.add_users(&mut g, m.add_users, &mut report);
        self.change_user_quotas(&mut g, m.change_user_quotas, &mut report);
        self.change_group_quotas(&mut g, m.change_group_quotas, &mut report);
        self.truth.mutations.push(report.clone());
        report
    }

    fn remove_users(&mut self, g: &mut Gen, count: usize, report: &mut MutationReport) {
        let gone: HashSet<String> = g
            .permutation(self.users.len())
            .into_iter()
            .take(count)
            .map(|i| self.users[i].id.clone())
            .collect();
        self.users.retain(|u| !gone.contains(&u.id));
        let (kept, removed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.machines)
            .into_iter()
            .partition(|m| !gone.contains(&m.user_id));
        self.machines = kept;
        let machines: HashSet<String> = removed.into_iter().map(|m| m.id).collect();
        let (kept, removed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.plans)
            .into_iter()
            .partition(|p| !machines.contains(&p.machine_id));
        self.plans = kept;
        report.removed_plans = removed.into_iter().map(|p| p.id).collect();
        report.removed_users = sorted(gone);
        report.removed_machines = sorted(machines);
    }

    fn move_users(&mut self, g: &mut Gen, count: usize, report: &mut MutationReport) {
        let homes = self.homes();
        if homes.len() < 2 {
            return;
        }
        let mut moved: Vec<usize> = g
            .permutation(self.users.len())
            .into_iter()
            .take(count)
            .collect();
        moved.sort_unstable();
        for i in moved {
            let user = &mut self.users[i];
            let target = loop {
                let target = g.pick(&homes);
                if *target != user.group_id {
                    break target.clone();
                }
            };
            user.group_id = target;
            user.updated_at = report.at;
            report.moved_users.push(user.id.clone());
        }
    }

    fn upgrade_clients(&mut self, g: &mut Gen, count: usize, report: &mut MutationReport) {
        let t = &self.truth.machines;
        let outdated: HashSet<&str> = t
            .client_old
            .iter()
            .chain(&t.client_below_threshold)
            .map(String::as_str)
            .collect();
        let done: HashSet<&str> = self
            .truth
            .mutations
            .iter()
            .flat_map(|r| &r.upgraded_machines)
            .map(String::as_str)
            .collect();
        let mut candidates: Vec<usize> = (0..self.machines.len())
            .filter(|&i| {
                self.machines[i].client_version.is_some()
                    && !done.contains(self.machines[i].id.as_str())
            })
            .collect();
        g.shuffle(&mut candidates);
        // Outdated clients first: those are the ones an upgrade matters for.
        candidates.sort_by_key(|&i| !outdated.contains(self.machines[i].id.as_str()));
        candidates.truncate(count);
        candidates.sort_unstable();
        for i in candidates {
            let version = machines::upgraded_version(g, &self.machines[i]);
            let machine = &mut self.machines[i];
            machine.client_version = Some(version);
            machine.last_seen_at = Some(report.at);
            machine.updated_at = report.at;
            report.upgraded_machines.push(machine.id.clone());
        }
    }

    fn change_user_quotas(&mut self, g: &mut Gen, count: usize, report: &mut MutationReport) {
        let data = quotas::data_by_user(&self.machines);
        let mut picked: Vec<usize> = g
            .permutation(self.users.len())
            .into_iter()
            .take(count)
            .collect();
        picked.sort_unstable();
        for i in picked {
            let user = &mut self.users[i];
            user.storage_quota_bytes =
                quotas::changed(g, user.storage_quota_bytes, data.of(&user.id));
            user.updated_at = report.at;
            report.quota_changed_users.push(user.id.clone());
            report
                .quotas
                .insert(user.id.clone(), user.storage_quota_bytes);
        }
    }

    fn change_group_quotas(&mut self, g: &mut Gen, count: usize, report: &mut MutationReport) {
        let data = quotas::data_by_user(&self.machines);
        let mut own = vec![0u64; self.groups.len()];
        for user in &self.users {
            if let Ok(i) = self.groups.binary_search_by(|x| x.id.cmp(&user.group_id)) {
                own[i] = own[i].saturating_add(data.of(&user.id));
            }
        }
        let mut picked: Vec<usize> = g
            .permutation(self.groups.len().saturating_sub(1))
            .into_iter()
            .take(count)
            .map(|i| i + 1)
            .collect();
        picked.sort_unstable();
        for i in picked {
            let group = &mut self.groups[i];
            group.storage_quota_bytes = quotas::changed(g, group.storage_quota_bytes, own[i]);
            group.updated_at = report.at;
            report.quota_changed_groups.push(group.id.clone());
            report
                .quotas
                .insert(group.id.clone(), group.storage_quota_bytes);
        }
    }

    fn add_users(&mut self, g: &mut Gen, count: usize, report: &mut MutationReport) {
        let homes = self.homes();
        let homes = if homes.is_empty() {
            vec![self.root().id.clone()]
        } else {
            homes
        };
        let mut taken: HashSet<String> =
            self.users.iter().map(|u| u.login.to_lowercase()).collect();
        let mut scratch = Truth::default();
        for _ in 0..count {
            let serial = self.serials.user;
            self.serials.user += 1;
            let person = Person::random(g);
            let login = users::ordinary_login(g, &person, serial, &mut taken);
            let home = g.pick(&homes);
            let group = self
                .groups
                .binary_search_by(|x| x.id.cmp(home))
                .map_or(0, |i| i);
            let mut user = users::make(g, &person, serial, &self.groups[group], login, true);
            (user.created_at, user.updated_at) = (report.at, report.at);
            report.added_users.push(user.id.clone());
            let mut data = 0u64;
            for _ in 0..g.range(1..3) {
                let mut machine = machines::random(g, &mut scratch, self.serials.machine, &user);
                self.serials.machine += 1;
                (machine.created_at, machine.updated_at) = (report.at, report.at);
                machine.last_seen_at = machine.last_seen_at.map(|_| report.at);
                for mut plan in plans::random(g, &mut scratch, self.serials.plan, &machine) {
                    self.serials.plan += 1;
                    plan.updated_at = report.at;
                    report.added_plans.push(plan.id.clone());
                    self.plans.push(plan);
                }
                report.added_machines.push(machine.id.clone());
                data = data.saturating_add(machine.data_size_bytes);
                self.machines.push(machine);
            }
            user.storage_quota_bytes = quotas::for_new_user(g, data);
            if let Some(quota) = user.storage_quota_bytes {
                report.quotas.insert(user.id.clone(), Some(quota));
            }
            self.users.push(user);
        }
    }

    /// Ids of the groups that hold users now, sorted.
    fn homes(&self) -> Vec<String> {
        let set: HashSet<&str> = self.users.iter().map(|u| u.group_id.as_str()).collect();
        sorted(set.into_iter().map(String::from))
    }
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort_unstable();
    ids
}
