//! What the database benchmarks share: the databases they run on.

use sea_orm::ConnectionTrait;
use uuid::Uuid;

/// A new PostgreSQL database beside `MP_TEST_POSTGRES_URL`'s, when that is set.
pub async fn postgres_database() -> anyhow::Result<Option<String>> {
    let Ok(admin) = std::env::var("MP_TEST_POSTGRES_URL") else {
        return Ok(None);
    };
    let conn = sea_orm::Database::connect(&admin).await?;
    // The figures depend on them: at `large`, with the default 128 MB of shared buffers,
    // the migration's item updates read and wrote evicted pages (about ten times slower).
    let settings = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT string_agg(name || ' ' || setting || coalesce(' ' || unit, ''), ', ' ORDER BY name) AS s FROM pg_settings \
             WHERE name IN ('shared_buffers', 'max_wal_size', 'synchronous_commit', 'max_connections')",
        ))
        .await?
        .and_then(|row| row.try_get::<String>("", "s").ok())
        .unwrap_or_default();
    println!("postgres: the server's settings: {settings}");
    let name = format!("mp_bench_{}", Uuid::new_v4().simple());
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path(&name);
    Ok(Some(url.to_string()))
}

/// SQLite in `sqlite_file`, and PostgreSQL when `MP_TEST_POSTGRES_URL` is set;
/// `MP_BENCH_BACKENDS=sqlite` or `postgres` keeps one.
#[allow(dead_code)] // not every benchmark picks its databases this way
pub async fn backends(
    sqlite_file: &std::path::Path,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut backends = vec![("sqlite", format!("sqlite://{}", sqlite_file.display()))];
    if let Some(url) = postgres_database().await? {
        backends.push(("postgres", url));
    }
    if let Ok(only) = std::env::var("MP_BENCH_BACKENDS") {
        backends.retain(|(b, _)| only.split(',').any(|o| o == *b));
    }
    Ok(backends)
}

/// A field of this process's `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`), 0 when unknown.
#[allow(dead_code)] // not every benchmark reads its memory
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident set to the current one (Linux 4.0+), so a peak is one step's.
#[allow(dead_code)]
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time spent so far, in seconds: this process's (all its threads, user and
/// system) and the whole machine's busy time (every process and the kernel: a
/// database server on the same machine included), from `/proc` (0 when unknown).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub process: f64,
    pub machine: f64,
}

/// The clock ticks `/proc` counts in (`USER_HZ`, 100 on Linux everywhere).
const TICKS_PER_SECOND: f64 = 100.0;

#[allow(dead_code)]
pub fn cpu() -> Cpu {
    let process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<f64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect();
            Some(fields.get(11)? + fields.get(12)?)
        })
        .unwrap_or(0.0);
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            // cpu user nice system idle iowait irq softirq steal ...: all but idle and iowait.
            let fields: Vec<f64> = stat
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0.0))
                .collect();
            Some(fields.iter().take(8).sum::<f64>() - fields.get(3)? - fields.get(4)?)
        })
        .unwrap_or(0.0);
    Cpu {
        process: process / TICKS_PER_SECOND,
        machine: machine / TICKS_PER_SECOND,
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            process: self.process - earlier.process,
            machine: self.machine - earlier.machine,
        }
    }
}
