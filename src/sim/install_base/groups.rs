//! The group hierarchy: a chain of resellers six deep, other resellers, mixed
//! groups, customers and empty groups, with the name oddities planted.

use std::collections::HashSet;

use chrono::Duration;

use super::words::{Person, capitalize, company, domain, phone};
use super::{Admin, Gen, Group, Truth, id, planted};

pub(super) struct Hierarchy {
    pub groups: Vec<Group>,
    /// The group index of each user, in the order the users are to be created.
    pub user_homes: Vec<usize>,
}

const CHAIN_DEPTH: usize = 6;
const REFUSED: [char; 7] = ['<', '>', '"', '\\', '/', '|', ';'];
const CONTROL: [char; 5] = ['\u{1}', '\u{7}', '\u{8}', '\u{1b}', '\u{7f}'];
const LONG_FILLER: &str = "Regional Branch Office and Managed Data Protection Services ";

pub(super) fn plant(
    g: &mut Gen,
    truth: &mut Truth,
    total_groups: usize,
    total_users: usize,
) -> Hierarchy {
    let shape = Shape::plant(g, total_groups.max(1));
    let users_per_group = distribute_users(g, &shape, total_users);
    record_kinds(truth, &shape, &users_per_group);
    let names = Names::plant(g, truth, &shape);
    let groups = build(g, truth, &shape, names);
    let mut user_homes: Vec<usize> = users_per_group
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| std::iter::repeat_n(i, n))
        .collect();
    g.shuffle(&mut user_homes);
    Hierarchy { groups, user_homes }
}

/// The tree before names: parent of each group index (0 is the root).
struct Shape {
    parent: Vec<Option<usize>>,
    children: Vec<usize>,
    chain: Vec<usize>,
    /// Resellers that also hold users.
    mixed: Vec<usize>,
    /// Leaves meant to hold users.
    customers: Vec<usize>,
}

impl Shape {
    fn plant(g: &mut Gen, n: usize) -> Self {
        let mut shape = Shape {
            parent: vec![None],
            children: vec![0],
            chain: Vec::new(),
            mixed: Vec::new(),
            customers: Vec::new(),
        };
        let mut depth = vec![0usize];
        let mut resellers = Vec::new();
        // The chain needs one leaf below its last reseller.
        for _ in 0..CHAIN_DEPTH.min(n.saturating_sub(2)) {
            let parent = shape.chain.last().copied().unwrap_or(0);
            let i = shape.add(parent);
            depth.push(depth[parent] + 1);
            shape.chain.push(i);
            resellers.push(i);
        }
        let remaining = n - shape.parent.len();
        let extra = planted(n, 0.06, 2).min(remaining.saturating_sub(1) / 2);
        let mut extras = Vec::new();
        for _ in 0..extra {
            let candidates: Vec<usize> = std::iter::once(0)
                .chain(resellers.iter().copied().filter(|&r| depth[r] < 4))
                .collect();
            let parent = *g.pick(&candidates);
            let i = shape.add(parent);
            depth.push(depth[parent] + 1);
            resellers.push(i);
            extras.push(i);
        }
        let mut leaves = Vec::new();
        for &r in &resellers {
            if shape.children[r] == 0 && shape.parent.len() < n {
                leaves.push(shape.add(r));
            }
        }
        while shape.parent.len() < n {
            let parent = if resellers.is_empty() || g.chance(0.1) {
                0
            } else {
                *g.pick(&resellers)
            };
            leaves.push(shape.add(parent));
        }
        g.shuffle(&mut extras);
        shape.mixed = extras.into_iter().take(planted(n, 0.02, 2)).collect();
        g.shuffle(&mut leaves);
        let empty = planted(n, 0.03, 2).min(leaves.len());
        shape.customers = leaves.split_off(empty);
        shape.customers.sort_unstable();
        shape
    }

    fn add(&mut self, parent: usize) -> usize {
        self.parent.push(Some(parent));
        self.children.push(0);
        self.children[parent] += 1;
        self.parent.len() - 1
    }
}

/// One user for each home while they last, the rest skewed toward a few large customers.
fn distribute_users(g: &mut Gen, shape: &Shape, total: usize) -> Vec<usize> {
    let mut counts = vec![0usize; shape.parent.len()];
    let mut homes: Vec<usize> = shape
        .mixed
        .iter()
        .chain(&shape.customers)
        .copied()
        .collect();
    if homes.is_empty() {
        // Too few groups for customers: the top-level group holds the users.
        counts[0] = total;
        return counts;
    }
    g.shuffle(&mut homes);
    for &home in homes.iter().take(total) {
        counts[home] += 1;
    }
    for _ in homes.len().min(total)..total {
        let r = g.unit();
        let index = ((r * r * homes.len() as f64) as usize).min(homes.len() - 1);
        counts[homes[index]] += 1;
    }
    counts
}

fn record_kinds(truth: &mut Truth, shape: &Shape, users: &[usize]) {
    truth.root_group_id = id("g", 1);
    truth.groups.deep_chain = shape.chain.iter().map(|&i| id("g", i + 1)).collect();
    for (i, users) in users.iter().enumerate().skip(1) {
        let list = match (shape.children[i] > 0, *users > 0) {
            (true, false) => &mut truth.groups.resellers,
            (false, true) => &mut truth.groups.customers,
            (true, true) => &mut truth.groups.mixed,
            (false, false) => &mut truth.groups.empty,
        };
        list.push(id("g", i + 1));
    }
}

/// Each group's name and the company words it came from.
struct Names {
    names: Vec<String>,
    words: Vec<(&'static str, &'static str)>,
}

impl Names {
    fn plant(g: &mut Gen, truth: &mut Truth, shape: &Shape) -> Self {
        let n = shape.parent.len();
        let words: Vec<_> = (0..n).map(|_| company(g)).collect();
        let mut names: Vec<Option<String>> = vec![None; n];
        let (a, b) = words[0];
        names[0] = Some(format!("{a}-{b}-provider"));
        let spaced = |i: usize| {
            format!(
                "{} {} {}",
                capitalize(words[i].0),
                capitalize(words[i].1),
                i + 1
            )
        };

        // Case-insensitive sibling duplicates: two children of one parent.
        let mut siblings: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, p) in shape.parent.iter().enumerate() {
            if let Some(p) = p {
                siblings[*p].push(i);
            }
        }
        let mut parents: Vec<usize> = (0..n).filter(|&p| siblings[p].len() >= 2).collect();
        g.shuffle(&mut parents);
        for &p in parents.iter().take(planted(n, 0.004, 2)) {
            let (x, y) = (siblings[p][0], siblings[p][1]);
            let name = spaced(x);
            names[y] = Some(name.to_uppercase());
            names[x] = Some(name);
            truth
                .groups
                .duplicate_sibling_names
                .push(vec![id("g", x + 1), id("g", y + 1)]);
        }

        let free: Vec<usize> = g
            .permutation(n)
            .into_iter()
            .filter(|&i| names[i].is_none())
            .collect();
        let mut free = free.into_iter();
        for k in 0..planted(n, 0.01, 4) {
            let Some(i) = free.next() else { break };
            let (a, b) = (capitalize(words[i].0), capitalize(words[i].1));
            names[i] = Some(match k % 4 {
                0 => format!(" {a} {b} {}", i + 1),
                1 => format!("{a} {b} {} ", i + 1),
                2 => format!("{a}  {b} {}", i + 1),
                _ => format!("  {a}   {b}  {} ", i + 1),
            });
            truth.groups.whitespace_names.push(id("g", i + 1));
        }
        for k in 0..planted(n, 0.007, REFUSED.len()) {
            let Some(i) = free.next() else { break };
            let (a, b) = (capitalize(words[i].0), capitalize(words[i].1));
            names[i] = Some(match REFUSED[k % REFUSED.len()] {
                '<' => format!("{a} <{b}> {}", i + 1),
                c => format!("{a} {c} {b} {}", i + 1),
            });
            truth.groups.refused_character_names.push(id("g", i + 1));
        }
        for k in 0..planted(n, 0.002, 2) {
            let Some(i) = free.next() else { break };
            let (a, b) = (capitalize(words[i].0), capitalize(words[i].1));
            names[i] = Some(format!("{a}{}{b} {}", CONTROL[k % CONTROL.len()], i + 1));
            truth.groups.control_character_names.push(id("g", i + 1));
        }
        for _ in 0..planted(n, 0.003, 2) {
            let Some(i) = free.next() else { break };
            let target = g.range(135..221) as usize;
            let mut name = format!("{} ", spaced(i));
            while name.len() < target {
                name.push_str(LONG_FILLER);
            }
            name.truncate(target);
            names[i] = Some(name.trim_end().to_string());
            truth.groups.long_names.push(id("g", i + 1));
        }

        let mut seen = HashSet::new();
        let names = names
            .into_iter()
            .enumerate()
            .map(|(i, planted)| {
                planted.unwrap_or_else(|| {
                    let (a, b) = words[i];
                    let mut name = match g.below(5) {
                        0 => format!("{a}-{b}-{}", i + 1),
                        1 => format!("{}{}{}", capitalize(a), capitalize(b), i + 1),
                        2 => spaced(i),
                        3 => format!("{a}.{b}{}", i + 1),
                        _ => format!("{a}_{b}_{}", i + 1),
                    };
                    while !seen.insert(name.to_lowercase()) {
                        name.push('x');
                    }
                    name
                })
            })
            .collect();
        Names { names, words }
    }
}

fn build(g: &mut Gen, truth: &mut Truth, shape: &Shape, names: Names) -> Vec<Group> {
    let as_of = g.as_of;
    let mut created = Vec::with_capacity(shape.parent.len());
    names
        .names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let admin = if i == 0 || g.chance(0.92) {
                let person = Person::random(g);
                let (a, b) = names.words[i];
                Some(Admin {
                    login: name.clone(),
                    email: person.email(&domain(a, b, i + 1)),
                    first_name: person.first_name(),
                    last_name: person.last_name(),
                    phone: phone(g),
                })
            } else {
                truth.groups.without_admin.push(id("g", i + 1));
                None
            };
            // A group is created after its parent.
            let oldest = shape.parent[i].map_or(as_of - Duration::days(3000), |p| created[p]);
            let created_at = g.between(oldest, as_of - Duration::days(60));
            created.push(created_at);
            let updated_at = g.between(created_at, as_of);
            Group {
                id: id("g", i + 1),
                parent_id: shape.parent[i].map(|p| id("g", p + 1)),
                name,
                admin,
                storage_quota_bytes: None,
                created_at,
                updated_at,
            }
        })
        .collect()
}
