//! Backup users, with the login oddities planted: bad characters, short logins,
//! case collisions across the install base, and logins the cloud already holds.

use std::collections::HashSet;

use chrono::Duration;

use super::words::{Person, capitalize};
use super::{Gen, Group, Truth, User, id, planted};

const MAIL_PROVIDERS: &[&str] = &["example.com", "example.net", "example.org", "mail.example"];

pub(super) struct PlantedUsers {
    pub users: Vec<User>,
    /// Users planted offline: their machines were last seen weeks ago.
    pub offline: Vec<bool>,
}

pub(super) fn plant(
    g: &mut Gen,
    truth: &mut Truth,
    groups: &[Group],
    homes: &[usize],
) -> PlantedUsers {
    let n = homes.len();
    let people: Vec<Person> = (0..n).map(|_| Person::random(g)).collect();
    let mut logins: Vec<Option<String>> = vec![None; n];
    let mut taken = HashSet::new();
    let mut order = g.permutation(n).into_iter();
    let uid = |i: usize| id("u", i + 1);

    for k in 0..planted(n, 0.008, 3) {
        let Some(i) = order.next() else { break };
        let (f, l, s) = (people[i].first, people[i].last, i + 1);
        let login = match k % 3 {
            0 => format!("{f}${s}"),
            1 => format!("#{f}{l}{s}"),
            _ => format!("{} {} {s}", capitalize(f), capitalize(l)),
        };
        taken.insert(login.to_lowercase());
        logins[i] = Some(login);
        truth.users.bad_character_logins.push(uid(i));
    }
    let mut short: Vec<String> = ('a'..='z').chain('0'..='9').map(String::from).collect();
    short.extend(
        ('a'..='z').flat_map(|a| ('a'..='z').chain('0'..='9').map(move |b| format!("{a}{b}"))),
    );
    g.shuffle(&mut short);
    for login in short.into_iter().take(planted(n, 0.002, 2)) {
        let Some(i) = order.next() else { break };
        taken.insert(login.clone());
        logins[i] = Some(login);
        truth.users.short_logins.push(uid(i));
    }
    for k in 0..planted(n, 0.003, 2) {
        let size = if k == 0 && n >= 100 { 3 } else { 2 };
        let members: Vec<usize> = order.by_ref().take(size).collect();
        if members.len() < 2 {
            break;
        }
        let (f, l, s) = (
            people[members[0]].first,
            people[members[0]].last,
            members[0] + 1,
        );
        let base = format!("{f}.{l}{s}");
        taken.insert(base.clone());
        for (m, &i) in members.iter().enumerate() {
            logins[i] = Some(match m {
                0 => base.clone(),
                1 => format!("{}.{}{s}", capitalize(f), capitalize(l)),
                _ => base.to_uppercase(),
            });
        }
        truth
            .users
            .case_colliding_logins
            .push(members.iter().map(|&i| uid(i)).collect());
    }
    for _ in 0..planted(n, 0.01, 2) {
        let Some(i) = order.next() else { break };
        let login = ordinary_login(g, &people[i], i + 1, &mut taken);
        truth.cloud_existing_logins.push(login.clone());
        logins[i] = Some(login);
        truth.users.cloud_existing_logins.push(uid(i));
    }
    for k in 0..planted(n, 0.005, 2) {
        let Some(i) = order.next() else { break };
        let (f, l, s) = (people[i].first, people[i].last, i + 1);
        let (login, in_cloud) = if k % 2 == 0 {
            (
                format!("{}{}{s}", capitalize(f), capitalize(l)),
                format!("{f}{l}{s}"),
            )
        } else {
            (
                format!("{f}.{l}{s}"),
                format!("{}.{}{s}", f.to_uppercase(), l.to_uppercase()),
            )
        };
        taken.insert(login.to_lowercase());
        truth.cloud_existing_logins.push(in_cloud);
        logins[i] = Some(login);
        truth.users.cloud_existing_logins_other_case.push(uid(i));
    }
    // Cloud logins that match no user.
    for k in 0..planted(n, 0.002, 2) {
        truth
            .cloud_existing_logins
            .push(format!("cloud-only-{}", k + 1));
    }

    let auto_update_off = flags(g, n, planted(n, 0.12, 1));
    let offline = flags(g, n, planted(n, 0.06, 1));
    let users = (0..n)
        .map(|i| {
            let login = logins[i]
                .take()
                .unwrap_or_else(|| ordinary_login(g, &people[i], i + 1, &mut taken));
            if auto_update_off[i] {
                truth.users.auto_update_off.push(uid(i));
            }
            if offline[i] {
                truth.users.offline.push(uid(i));
            }
            let home = &groups[homes[i]];
            make(g, &people[i], i + 1, home, login, !auto_update_off[i])
        })
        .collect();
    PlantedUsers { users, offline }
}

/// Exactly `count` of `n` flags set, at random.
fn flags(g: &mut Gen, n: usize, count: usize) -> Vec<bool> {
    let mut flags = vec![false; n];
    for i in g.permutation(n).into_iter().take(count) {
        flags[i] = true;
    }
    flags
}

/// A login of letters, digits and `. _ - @`, unique ignoring case among `taken`.
pub(super) fn ordinary_login(
    g: &mut Gen,
    person: &Person,
    serial: usize,
    taken: &mut HashSet<String>,
) -> String {
    let (f, l, s) = (person.first, person.last, serial);
    let mut login = match g.below(6) {
        0 => format!("{f}.{l}{s}"),
        1 => format!("{f}{s}"),
        2 => format!("{}{l}{s}", &f[..1]),
        3 => format!("{f}.{l}.{s}@{}", g.pick(MAIL_PROVIDERS)),
        4 => format!("{f}_{l}{s}"),
        _ => format!("{f}-{l}-{s}"),
    };
    while !taken.insert(login.to_lowercase()) {
        login.insert(0, 'x');
    }
    login
}

pub(super) fn make(
    g: &mut Gen,
    person: &Person,
    serial: usize,
    group: &Group,
    login: String,
    auto_update: bool,
) -> User {
    let created_at = g.between(
        group.created_at.max(g.as_of - Duration::days(2900)),
        g.as_of - Duration::days(30),
    );
    let updated_at = g.between(created_at, g.as_of);
    User {
        id: id("u", serial),
        group_id: group.id.clone(),
        login,
        email: format!(
            "{}.{}.{serial}@{}",
            person.first,
            person.last,
            g.pick(MAIL_PROVIDERS)
        ),
        first_name: person.first_name(),
        last_name: person.last_name(),
        auto_update,
        storage_quota_bytes: None,
        created_at,
        updated_at,
        password: g.password(),
    }
}
