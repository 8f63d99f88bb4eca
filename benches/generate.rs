//! Generates the `large` install base (or the size named on the command line) and
//! prints the time, the peak memory and the entity counts.
//! `cargo bench --bench generate [-- small|medium|large]`

use std::time::Instant;

use migration_portal::sim::install_base::{GenSpec, Size, generate};

fn main() {
    let size = match std::env::args().skip(1).find(|a| !a.starts_with('-')).as_deref() {
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
    println!("generate {size:?} (seed 1): {seconds:.2} s, peak memory {}", peak_memory().unwrap_or_else(|| "unknown".into()));
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
    drop(base);
}

/// `VmHWM` of this process, as `/proc/self/status` reports it.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}
