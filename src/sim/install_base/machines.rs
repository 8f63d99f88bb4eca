//! Machines: every OS of the support matrix and unsupported ones, client versions
//! on both sides of each platform's build threshold, sizes from MB to TB.

use super::users::PlantedUsers;
use chrono::Duration;

use super::{Arch, Gen, Machine, Os, OsFamily, Truth, User, id};

/// The generator's own table (not the service's support matrix).
struct OsEntry {
    name: &'static str,
    family: OsFamily,
    supported: bool,
    x64_only: bool,
    weight: u32,
}

const fn os(
    name: &'static str,
    family: OsFamily,
    supported: bool,
    x64_only: bool,
    weight: u32,
) -> OsEntry {
    OsEntry {
        name,
        family,
        supported,
        x64_only,
        weight,
    }
}

const OS_TABLE: &[OsEntry] = &[
    os("Windows Vista", OsFamily::Windows, true, false, 1),
    os("Windows 7", OsFamily::Windows, true, false, 14),
    os("Windows 8", OsFamily::Windows, true, false, 1),
    os("Windows 8.1", OsFamily::Windows, true, false, 4),
    os("Windows 10", OsFamily::Windows, true, false, 30),
    os("Windows Server 2008", OsFamily::Windows, true, false, 2),
    os("Windows Server 2008 R2", OsFamily::Windows, true, true, 7),
    os("Windows SBS 2011", OsFamily::Windows, true, true, 2),
    os("Windows Server 2012", OsFamily::Windows, true, true, 3),
    os("Windows Server 2012 R2", OsFamily::Windows, true, true, 7),
    os("Ubuntu 22.04", OsFamily::Linux, true, false, 2),
    os("CentOS 7", OsFamily::Linux, true, true, 2),
    os("Debian 11", OsFamily::Linux, true, false, 1),
    os("Red Hat Enterprise Linux 8", OsFamily::Linux, true, true, 1),
    os("macOS 12", OsFamily::Macos, true, true, 2),
    os("macOS 13", OsFamily::Macos, true, true, 1),
    os("OS X 10.11", OsFamily::Macos, true, true, 1),
    os("Windows XP", OsFamily::Windows, false, false, 2),
    os("Windows Server 2003", OsFamily::Windows, false, false, 1),
    os("Solaris 11", OsFamily::Solaris, false, true, 1),
    os("Windows 11", OsFamily::Windows, false, true, 4),
    os("Windows Server 2019", OsFamily::Windows, false, true, 2),
];

pub(super) const WINDOWS_THRESHOLD: u64 = 15908;
pub(super) const OTHER_THRESHOLD: u64 = 15836;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Old,
    Below,
    /// Windows only: at or above the other platforms' threshold, below Windows'.
    BelowWindowsOnly,
    Exact,
    Above,
    Never,
}

const CLIENT_WEIGHTS: &[(Client, u32)] = &[
    (Client::Above, 50),
    (Client::Exact, 3),
    (Client::Below, 11),
    (Client::BelowWindowsOnly, 4),
    (Client::Old, 20),
    (Client::Never, 12),
];
const OFFLINE_CLIENT_WEIGHTS: &[(Client, u32)] =
    &[(Client::Old, 50), (Client::Below, 25), (Client::Above, 25)];

pub(super) fn plant(
    g: &mut Gen,
    truth: &mut Truth,
    planted: &PlantedUsers,
    total: usize,
) -> Vec<Machine> {
    let users = planted.users.len();
    if users == 0 {
        return Vec::new();
    }
    let mut owners: Vec<usize> = if total >= users {
        let mut owners: Vec<usize> = (0..users).collect();
        let order = g.permutation(users);
        for _ in users..total {
            let r = g.unit();
            owners.push(order[((r * r * r * users as f64) as usize).min(users - 1)]);
        }
        owners
    } else {
        g.permutation(users).into_iter().take(total).collect()
    };
    g.shuffle(&mut owners);
    let mut needs: Vec<(Option<OsFamily>, Client)> = vec![
        (None, Client::Never),
        (Some(OsFamily::Windows), Client::BelowWindowsOnly),
    ];
    for family in [OsFamily::Windows, OsFamily::Linux, OsFamily::Macos] {
        needs.extend(
            [Client::Old, Client::Below, Client::Exact, Client::Above].map(|c| (Some(family), c)),
        );
    }
    let mut sizes = vec![7.0, 12.3];
    owners
        .into_iter()
        .enumerate()
        .map(|(i, owner)| {
            let os = if i < OS_TABLE.len() {
                &OS_TABLE[i]
            } else {
                pick_os(g)
            };
            let offline = planted.offline[owner];
            let forced = needs.iter().position(|(family, client)| {
                family.is_none_or(|f| f == os.family) && !(offline && *client == Client::Never)
            });
            let client = match forced {
                Some(k) => needs.remove(k).1,
                None if offline => g.weighted(OFFLINE_CLIENT_WEIGHTS),
                None => g.weighted(CLIENT_WEIGHTS),
            };
            let size = sizes.pop().unwrap_or_else(|| 6.7 + g.unit() * 5.9);
            make(
                g,
                truth,
                i + 1,
                &planted.users[owner],
                os,
                client,
                offline,
                size,
            )
        })
        .collect()
}

/// A machine for a user added at run time.
pub(super) fn random(g: &mut Gen, truth: &mut Truth, serial: usize, user: &User) -> Machine {
    let os = pick_os(g);
    let client = g.weighted(CLIENT_WEIGHTS);
    let size = 6.7 + g.unit() * 5.9;
    make(g, truth, serial, user, os, client, false, size)
}

/// A client version at or above the threshold of the machine's platform.
pub(super) fn upgraded_version(g: &mut Gen, machine: &Machine) -> String {
    format!(
        "5.5.1.{}",
        threshold(machine.os.family) + 400 + g.range(0..200)
    )
}

fn threshold(family: OsFamily) -> u64 {
    if family == OsFamily::Windows {
        WINDOWS_THRESHOLD
    } else {
        OTHER_THRESHOLD
    }
}

fn pick_os(g: &mut Gen) -> &'static OsEntry {
    let weights: Vec<(usize, u32)> = OS_TABLE
        .iter()
        .enumerate()
        .map(|(i, e)| (i, e.weight))
        .collect();
    &OS_TABLE[g.weighted(&weights)]
}

#[allow(clippy::too_many_arguments)]
fn make(
    g: &mut Gen,
    truth: &mut Truth,
    serial: usize,
    user: &User,
    os: &OsEntry,
    client: Client,
    offline: bool,
    size_exponent: f64,
) -> Machine {
    let mid = id("m", serial);
    let t = threshold(os.family);
    let client = if client == Client::BelowWindowsOnly && os.family != OsFamily::Windows {
        Client::Below
    } else {
        client
    };
    let version = match client {
        Client::Old => {
            let release = g.pick(&["5.4.3", "5.4.0", "5.3.2", "5.2.1", "5.0.4", "4.3.1"]);
            Some(format!("{release}.{}", g.range(9000..16000)))
        }
        Client::Below if os.family == OsFamily::Windows => {
            Some(format!("5.5.0.{}", g.range(15300..OTHER_THRESHOLD)))
        }
        Client::Below => Some(format!("5.5.0.{}", g.range(t - 500..t))),
        Client::BelowWindowsOnly => Some(format!(
            "5.5.0.{}",
            g.range(OTHER_THRESHOLD..WINDOWS_THRESHOLD)
        )),
        Client::Exact => Some(format!("5.5.0.{t}")),
        Client::Above if g.chance(0.15) => Some(format!("5.5.1.{}", t + 200 + g.range(0..400))),
        Client::Above => Some(format!("5.5.0.{}", t + 1 + g.range(0..400))),
        Client::Never => None,
    };
    let m = &mut truth.machines;
    match client {
        Client::Old => m.client_old.push(mid.clone()),
        Client::Below => m.client_below_threshold.push(mid.clone()),
        Client::BelowWindowsOnly => {
            m.client_below_threshold.push(mid.clone());
            m.client_below_windows_threshold_only.push(mid.clone());
        }
        Client::Exact => {
            m.client_at_or_above_threshold.push(mid.clone());
            m.client_exactly_at_threshold.push(mid.clone());
        }
        Client::Above => m.client_at_or_above_threshold.push(mid.clone()),
        Client::Never => m.client_never_reported.push(mid.clone()),
    }
    m.by_os
        .entry(os.name.to_string())
        .or_default()
        .push(mid.clone());
    if os.supported {
        &mut m.supported_os
    } else {
        &mut m.unsupported_os
    }
    .push(mid.clone());
    let data_size_bytes = 10f64.powf(size_exponent) as u64;
    if data_size_bytes < 100_000_000 {
        m.data_under_100_mb.push(mid.clone());
    } else if data_size_bytes > 1_000_000_000_000 {
        m.data_over_1_tb.push(mid.clone());
    }
    // Users are created 30 days or more before `as_of`, their machines after them.
    let created_at = g.between(user.created_at, g.as_of - Duration::days(25));
    let last_seen_at = match (client, offline) {
        (Client::Never, _) => None,
        (_, true) => Some(g.between(
            created_at.max(g.as_of - Duration::days(200)),
            g.as_of - Duration::days(21),
        )),
        (_, false) => Some(g.days_ago(0, 3)),
    };
    let updated_at = g.between(created_at, last_seen_at.unwrap_or(g.as_of));
    let arch = if os.x64_only || g.chance(0.6) {
        Arch::X64
    } else {
        Arch::X86
    };
    Machine {
        id: mid,
        user_id: user.id.clone(),
        hostname: hostname(g, os, serial),
        os: Os {
            family: os.family,
            name: os.name.to_string(),
            arch,
        },
        client_version: version,
        last_seen_at,
        data_size_bytes,
        created_at,
        updated_at,
    }
}

fn hostname(g: &mut Gen, os: &OsEntry, serial: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    match os.family {
        OsFamily::Windows if os.name.contains("Server") || os.name.contains("SBS") => {
            format!("SRV-{serial:05}")
        }
        OsFamily::Windows => {
            let tail: String = (0..7)
                .map(|_| ALNUM[g.below(ALNUM.len())] as char)
                .collect();
            format!("DESKTOP-{tail}")
        }
        OsFamily::Macos => format!("macbook-{serial}"),
        OsFamily::Linux => format!("linux-{serial}"),
        OsFamily::Solaris => format!("sol-{serial}"),
    }
}
