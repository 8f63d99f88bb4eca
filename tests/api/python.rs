//! Tools from PyPI that check our output with code independent of ours, installed
//! by pip into the target directory on first use, at pinned versions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Python packages installed from a list of requirements (`name==version` lines).
pub struct PythonPackages {
    dir: PathBuf,
}

impl PythonPackages {
    /// Installs `requirements` (blank lines and `#` comments ignored) once per
    /// version of the list: a changed pin installs afresh beside the old one.
    pub fn install(requirements: &str) -> Self {
        // Tests run in parallel; pip into one directory at a time.
        static PIP: Mutex<()> = Mutex::new(());
        let _one_at_a_time = PIP.lock().unwrap_or_else(|e| e.into_inner());
        let pins: Vec<&str> = requirements.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let digest = Sha256::digest(pins.join("\n").as_bytes());
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pydeps").join(name);
        if !dir.exists() {
            // Installed aside, then renamed: an interrupted install is never taken for a complete one.
            let partial = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&partial);
            let installed = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
                .arg(&partial)
                .args(&pins)
                .output()
                .expect("pip runs");
            assert!(installed.status.success(), "pip install {pins:?}: {}", String::from_utf8_lossy(&installed.stderr));
            std::fs::rename(&partial, &dir).expect("the installed packages move in place");
        }
        Self { dir }
    }

    /// `python3 ARGS` with these packages importable.
    pub fn python(&self, args: &[&str]) -> Output {
        Command::new("python3").env("PYTHONPATH", &self.dir).args(args).output().expect("python3 runs")
    }
}
