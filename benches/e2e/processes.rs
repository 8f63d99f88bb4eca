//! The service as separate OS processes of the built binary (`serve`,
//! `serve --api-only`, `serve --worker-only`), each watched for its peak memory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The service's binary, as built with this bench.
pub const BINARY: &str = env!("CARGO_BIN_EXE_migration-portal");

/// Settings the bench passes on to every process as `MP_<REST>` when set as
/// `MP_E2E_SERVICE_<REST>` (e.g. `MP_E2E_SERVICE_WORKER__CONCURRENCY=8`).
const PASSED_ON: &str = "MP_E2E_SERVICE_";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    ApiAndWorker,
    Api,
    Worker,
}

impl Role {
    fn args(self) -> &'static [&'static str] {
        match self {
            Role::ApiAndWorker => &["serve", "--insecure-dev-key"],
            Role::Api => &["serve", "--insecure-dev-key", "--api-only"],
            Role::Worker => &["serve", "--insecure-dev-key", "--worker-only"],
        }
    }
}

/// What every process of one run shares.
pub struct Settings {
    /// A copy of [`BINARY`] made at start, so that a rebuild meanwhile changes no process.
    pub binary: PathBuf,
    pub database_url: String,
    pub issuer: String,
    pub audience: String,
    /// Where each process's output goes, a file per process.
    pub log_dir: PathBuf,
}

/// One running process of the service.
pub struct Process {
    pub name: String,
    child: Child,
    /// Where an API serves, `http://127.0.0.1:PORT`.
    pub base_url: Option<String>,
    log: PathBuf,
    /// The largest VmHWM (KiB) read from /proc while it ran.
    peak_kib: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
}

/// A port free on loopback now (the process binds it a moment later).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmHWM` of a process in KiB (`self` for this one), if it can be read.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl Process {
    pub fn spawn(name: &str, role: Role, settings: &Settings) -> anyhow::Result<Process> {
        let port = free_port()?;
        let log = settings.log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(&settings.binary);
        command.args(role.args());
        // The bench's own MP_* settings are not the service's (it refuses unknown ones).
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MP_")) {
            command.env_remove(key);
        }
        command
            .env("MP_BIND", format!("127.0.0.1:{port}"))
            .env("MP_DATABASE__URL", &settings.database_url)
            .env("MP_AUTH__ISSUER", &settings.issuer)
            .env("MP_AUTH__AUDIENCE", &settings.audience)
            .env("MP_CONNECTORS__ALLOW_PRIVATE_NETWORKS", "true")
            .env("MP_LOG_LEVEL", "warn");
        for (key, value) in std::env::vars() {
            if let Some(rest) = key.strip_prefix(PASSED_ON) {
                command.env(format!("MP_{rest}"), value);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", settings.binary.display()))?;
        let peak_kib = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let (pid, peak, on) = (child.id().to_string(), peak_kib.clone(), sampling.clone());
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                if let Some(kib) = peak_rss_kib(&pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Ok(Process {
            name: name.to_string(),
            child,
            base_url: (role != Role::Worker).then(|| format!("http://127.0.0.1:{port}")),
            log,
            peak_kib,
            sampling,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has stopped, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until an API answers `/readyz` (a worker: until it has run a second).
    pub async fn ready(&mut self, http: &reqwest::Client, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.exited() {
                anyhow::bail!(
                    "{} stopped at start ({status}): {}",
                    self.name,
                    self.log_tail(20)
                );
            }
            match &self.base_url {
                Some(base) => {
                    let ready = http.get(format!("{base}/readyz")).send().await;
                    if ready.is_ok_and(|r| r.status().is_success()) {
                        return Ok(());
                    }
                }
                None if started.elapsed() >= Duration::from_secs(1) => return Ok(()),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "{} not ready within {within:?}: {}",
            self.name,
            self.log_tail(20)
        )
    }

    /// The peak resident memory in KiB: read now, or the largest seen while it ran.
    pub fn peak_kib(&self) -> u64 {
        if let Some(kib) = peak_rss_kib(&self.pid().to_string()) {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
        self.peak_kib.load(Ordering::Relaxed)
    }

    /// Starts a phase: the kernel's high-water mark of its memory is set back to
    /// what it holds now (the peak over the whole run is kept by the sampler).
    fn start_phase(&self) {
        let _ = self.peak_kib();
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// SIGKILL, as a crash would; answers its peak memory (KiB) as sampled.
    pub fn kill(mut self) -> anyhow::Result<u64> {
        let peak = self.peak_kib();
        self.sampling.store(false, Ordering::Relaxed);
        self.child.kill()?;
        self.child.wait()?;
        Ok(peak)
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`; answers its peak
    /// memory (KiB), read before the signal.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<u64> {
        let peak = self.peak_kib();
        self.sampling.store(false, Ordering::Relaxed);
        if self.exited().is_none() {
            Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status()?;
            let started = Instant::now();
            while self.exited().is_none() && started.elapsed() < grace {
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.exited().is_none() {
                println!(
                    "e2e_large: {} did not stop within {grace:?}: killed",
                    self.name
                );
                self.child.kill()?;
                self.child.wait()?;
            }
        }
        Ok(peak)
    }

    /// The last `lines` of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::Relaxed);
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The service's processes of one run: on PostgreSQL two API instances and two
/// workers on one database, on SQLite one process doing both.
pub struct Service {
    pub apis: Vec<Process>,
    pub workers: Vec<Process>,
    /// The peak memory (KiB) of processes already gone.
    gone: Vec<(String, u64)>,
    settings: Settings,
}

impl Service {
    pub fn start(several: bool, settings: Settings) -> anyhow::Result<Service> {
        let (apis, workers) = if several {
            let apis = ["api-1", "api-2"].map(|n| Process::spawn(n, Role::Api, &settings));
            let workers =
                ["worker-1", "worker-2"].map(|n| Process::spawn(n, Role::Worker, &settings));
            (
                apis.into_iter().collect::<anyhow::Result<Vec<_>>>()?,
                workers.into_iter().collect::<anyhow::Result<Vec<_>>>()?,
            )
        } else {
            (
                vec![Process::spawn("serve", Role::ApiAndWorker, &settings)?],
                Vec::new(),
            )
        };
        Ok(Service {
            apis,
            workers,
            gone: Vec::new(),
            settings,
        })
    }

    pub async fn ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        for process in self.apis.iter_mut().chain(self.workers.iter_mut()) {
            process.ready(http, Duration::from_secs(120)).await?;
        }
        Ok(())
    }

    pub fn bases(&self) -> Vec<String> {
        self.apis
            .iter()
            .filter_map(|p| p.base_url.clone())
            .collect()
    }

    /// How many processes run jobs.
    pub fn worker_count(&self) -> usize {
        self.workers.len().max(1)
    }

    /// SIGKILLs the first worker and starts another in its place; answers what happened.
    pub fn crash_and_restart_worker(&mut self) -> anyhow::Result<String> {
        let killed = self.workers.remove(0);
        let (name, pid) = (killed.name.clone(), killed.pid());
        let peak = killed.kill()?;
        self.gone.push((format!("{name} (SIGKILLed)"), peak));
        let again = Process::spawn(&format!("{name}-restarted"), Role::Worker, &self.settings)?;
        let line = format!(
            "{name} (pid {pid}) SIGKILLed; {} (pid {}) started",
            again.name,
            again.pid()
        );
        self.workers.insert(0, again);
        Ok(line)
    }

    /// Starts a phase: each process's peak memory from now on is the phase's.
    pub fn start_phase(&self) {
        for process in self.apis.iter().chain(&self.workers) {
            process.start_phase();
        }
    }

    /// Each running process's peak memory (MiB) since the phase started.
    pub fn phase_peaks_mib(&self) -> Vec<(String, u64)> {
        self.apis
            .iter()
            .chain(&self.workers)
            .filter_map(|p| Some((p.name.clone(), peak_rss_kib(&p.pid().to_string())? / 1024)))
            .collect()
    }

    /// The processes that stopped on their own, with the end of their output.
    pub fn stopped_on_their_own(&mut self) -> Vec<String> {
        self.apis
            .iter_mut()
            .chain(self.workers.iter_mut())
            .filter_map(|p| {
                let status = p.exited()?;
                Some(format!(
                    "{} stopped ({status}):\n{}",
                    p.name,
                    p.log_tail(30)
                ))
            })
            .collect()
    }

    /// Stops every process; answers each one's peak memory (KiB), read before it stopped.
    pub fn stop(self) -> Vec<(String, u64)> {
        let mut peaks = self.gone;
        for process in self.apis.into_iter().chain(self.workers) {
            let name = process.name.clone();
            match process.stop(Duration::from_secs(30)) {
                Ok(peak) => peaks.push((name, peak)),
                Err(e) => println!("e2e_large: stopping {name}: {e}"),
            }
        }
        peaks
    }
}
