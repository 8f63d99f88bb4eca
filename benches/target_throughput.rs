//! Target client throughput against `sim cloud` with 20 ms latency and a
//! 200 req/s limit: `check_login` calls (the pre-check's network-bound part),
//! as a share of the limit.
//!
//! cargo bench --bench target_throughput

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::target::{TargetApi, TargetClient};
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig, Faults};
use migration_portal::sim::idp::generate_key;
use secrecy::SecretString;

const LIMIT: u32 = 200;
const CALLS: usize = 3000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let faults = Faults {
        latency_ms: 20,
        rate_limit_per_sec: Some(LIMIT),
        ..Faults::default()
    };
    let config = CloudSimConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        faults,
        ..CloudSimConfig::default()
    };
    let sim = CloudSim::start(config, &generate_key())?;
    let client = sim.root_client();
    for concurrency in [8, 16, 32] {
        let policy = HttpPolicy {
            rate_per_sec: Some(LIMIT),
            concurrency,
            allow_private_networks: true,
            ..HttpPolicy::default()
        };
        let target = TargetClient::new(
            &sim.base_url(),
            &client.client_id,
            SecretString::from(client.client_secret.clone()),
            policy,
        )?;
        target.token_info().await?;
        // Let the simulator's bucket refill between runs.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = sim.inspect();
        let started = Instant::now();
        let ok = futures_util::stream::iter(0..CALLS)
            .map(|i| {
                let target = &target;
                async move {
                    target
                        .check_login(&format!("bench-login-{concurrency}-{i}"))
                        .await
                        .is_ok()
                }
            })
            .buffer_unordered(concurrency * 2)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let after = sim.inspect();
        let limited = after["counters"]["rate_limited"].as_u64().unwrap_or(0)
            - before["counters"]["rate_limited"].as_u64().unwrap_or(0);
        let rate = ok as f64 / elapsed;
        println!(
            "target_throughput: concurrency {concurrency}: {ok}/{CALLS} check_login in {elapsed:.2} s = {rate:.1} req/s = {:.1}% of the {LIMIT} req/s limit; {limited} answered 429",
            100.0 * rate / f64::from(LIMIT)
        );
    }
    sim.stop().await;
    Ok(())
}
