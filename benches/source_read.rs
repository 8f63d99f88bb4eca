//! Reads all of `large` from `sim backupagent` through the source client.
//! Prints entities per second, and how much the process grew while reading
//! (the client keeps one page at a time, so that should stay near zero).
//!
//! cargo bench --bench source_read

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::{SourceApi, SourceClient, for_each_page};
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use secrecy::SecretString;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = generate(&GenSpec::sized(Size::Large, 1));
    let sim = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base)?;
    let (login, password) = sim.credentials();
    let policy = HttpPolicy {
        rate_per_sec: None,
        concurrency: 4,
        request_timeout: Duration::from_secs(60),
        allow_private_networks: true,
        ..HttpPolicy::default()
    };
    let source = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from(password),
        policy,
    )?;
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");

    let started = Instant::now();
    let limit = 5000;
    let groups = for_each_page(
        |c| {
            let s = &source;
            async move { s.groups(c.as_deref(), limit).await }
        },
        |_| {},
    )
    .await?;
    let users = for_each_page(
        |c| {
            let s = &source;
            async move { s.users(c.as_deref(), limit).await }
        },
        |_| {},
    )
    .await?;
    let machines = for_each_page(
        |c| {
            let s = &source;
            async move { s.machines(c.as_deref(), limit).await }
        },
        |_| {},
    )
    .await?;
    let plans = for_each_page(
        |c| {
            let s = &source;
            async move { s.plans(c.as_deref(), limit).await }
        },
        |_| {},
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let total = groups + users + machines + plans;

    println!(
        "source_read: large = {groups} groups, {users} users, {machines} machines, {plans} plans ({total} entities)"
    );
    println!(
        "source_read: {elapsed:.2} s sequential, pages of {limit}: {:.0} entities/s",
        total as f64 / elapsed
    );
    println!(
        "source_read: process RSS before reading {} MiB, after {} MiB; peak before {} MiB, after {} MiB (simulator included)",
        rss_before / 1024,
        status_kib("VmRSS:") / 1024,
        hwm_before / 1024,
        status_kib("VmHWM:") / 1024
    );
    sim.stop().await;
    Ok(())
}
