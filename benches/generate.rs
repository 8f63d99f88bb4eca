//! Generates the `large` install base (or the size named on the command line) and
//! prints the time, the peak memory and the entity counts; then serves it with
//! `sim backupagent` and pages through every listing over loopback HTTP.
//! `cargo bench --bench generate [-- small|medium|large]`

use std::net::SocketAddr;
use std::time::Instant;

use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, InstallBase, Size, generate};
use serde::Deserialize;

fn main() {
    let size = match std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .as_deref()
    {
        Some("small") => Size::Small,
        Some("medium") => Size::Medium,
        _ => Size::Large,
    };
    let spec = GenSpec::sized(size, 1);
    let started = Instant::now();
    let base = generate(&spec);
    let seconds = started.elapsed().as_secs_f64();
    let counts = base.counts();
    let truth = &base.truth;
    println!(
        "generate {size:?} (seed 1): {seconds:.2} s, peak memory {}",
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    println!(
        "groups {} users {} machines {} plans {} cloud_existing_logins {}",
        counts.groups,
        counts.users,
        counts.machines,
        counts.plans,
        truth.cloud_existing_logins.len()
    );
    let g = &truth.groups;
    println!(
        "groups: resellers {} customers {} mixed {} empty {} deep_chain {} whitespace {} refused {} control {} long {} duplicate_sets {}",
        g.resellers.len(),
        g.customers.len(),
        g.mixed.len(),
        g.empty.len(),
        g.deep_chain.len(),
        g.whitespace_names.len(),
        g.refused_character_names.len(),
        g.control_character_names.len(),
        g.long_names.len(),
        g.duplicate_sibling_names.len()
    );
    let m = &truth.machines;
    println!(
        "machines: supported {} unsupported {} old {} below {} at_or_above {} never {}",
        m.supported_os.len(),
        m.unsupported_os.len(),
        m.client_old.len(),
        m.client_below_threshold.len(),
        m.client_at_or_above_threshold.len(),
        m.client_never_reported.len()
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(read_all(base));
    println!(
        "peak memory with the server: {}",
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
}

#[derive(Deserialize)]
struct Page {
    items: Vec<serde::de::IgnoredAny>,
    next_cursor: Option<String>,
}

/// Pages through every listing at the maximum limit, one request at a time.
async fn read_all(base: InstallBase) {
    let sim = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base).expect("simulator");
    let (login, password) = sim.credentials();
    let http = reqwest::Client::new();
    for listing in ["groups", "users", "machines", "plans"] {
        let started = Instant::now();
        let (mut entities, mut requests, mut cursor) = (0usize, 0usize, None::<String>);
        loop {
            let mut url = format!("{}/api/source/v1/{listing}?limit=5000", sim.base_url());
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let response = http
                .get(url)
                .basic_auth(&login, Some(&password))
                .send()
                .await
                .expect("request");
            let page: Page = response.json().await.expect("page");
            entities += page.items.len();
            requests += 1;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "read {listing}: {entities} in {requests} pages of 5000, {seconds:.2} s, {:.0} entities/s",
            entities as f64 / seconds
        );
    }
    sim.stop().await;
}

/// `VmHWM` of this process, as `/proc/self/status` reports it.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}
