//! Browsing `large` (10,000 groups, 100,000 users, 150,000 machines, ~400,000
//! backup plans) through the HTTP API right after its sync, on SQLite (and
//! PostgreSQL when MP_TEST_POSTGRES_URL is set; MP_BENCH_BACKENDS picks one):
//! answers per second with 16 clients at once for group, user and machine
//! detail, a group's children and search, each over ids drawn from the whole
//! install base; the latency of the root's rollup alone. The floor, from the same
//! run and measured the same way: `GET /healthz` (no database) and a workspace's
//! `GET` (the cheapest authenticated read).
//!
//! MP_BENCH_KEEP_DB=1 leaves the SQLite file behind, to look at query plans.
//!
//! cargo bench --bench browse_large

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use migration_portal::app::{Application, KeyPolicy};
use migration_portal::config::Config;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::SourceClient;
use migration_portal::db;
use migration_portal::jobs::sync;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::idp::{IdentityProvider, generate_key};
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use uuid::Uuid;

const CLIENTS: usize = 16;
const SECONDS: u64 = 5;
const AUDIENCE: &str = "browse-bench";

struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    statuses: BTreeMap<u16, usize>,
}

/// `CLIENTS` loops for `SECONDS`, each asking for the next of `paths` as soon as an answer comes.
async fn load(http: &reqwest::Client, base: &str, token: &str, paths: &[String]) -> Figures {
    let paths = Arc::new(paths.to_vec());
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (http, paths) = (http.clone(), paths.clone());
        let (base, token) = (base.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = client;
            while Instant::now() < deadline {
                let url = format!("{base}{}", paths[i % paths.len()]);
                let started = Instant::now();
                let status = match http.get(url).bearer_auth(&token).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                samples.push((started.elapsed(), status));
                i += CLIENTS;
            }
            samples
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("load task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let mut statuses = BTreeMap::new();
    for (_, status) in &samples {
        *statuses.entry(*status).or_default() += 1;
    }
    Figures {
        rate: samples.len() as f64 / elapsed,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        statuses,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = generate(&GenSpec::sized(Size::Large, 1));
    // Ids drawn from the whole install base, the same ones on each database.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let mut sample = |ids: Vec<&String>| -> Vec<String> {
        (0..2000)
            .map(|_| {
                ids.choose(&mut rng)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let groups = sample(base.groups.iter().map(|g| &g.id).collect());
    let users = sample(base.users.iter().map(|u| &u.id).collect());
    let machines = sample(base.machines.iter().map(|m| &m.id).collect());
    // Searches for a part of a login: three letters from a random place in it.
    let searches: Vec<String> = (0..2000)
        .map(|_| {
            let login: Vec<char> = base.users[rng.random_range(0..base.users.len())]
                .login
                .to_lowercase()
                .chars()
                .collect();
            let from = rng.random_range(0..login.len().saturating_sub(3).max(1));
            let part: String = login[from..(from + 3).min(login.len())].iter().collect();
            percent_encoding::utf8_percent_encode(&part, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        })
        .collect();
    let root = base.truth.root_group_id.clone();
    let sim = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base)?;
    let (login, password) = sim.credentials();
    let source = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from(password),
        HttpPolicy {
            rate_per_sec: None,
            allow_private_networks: true,
            ..HttpPolicy::default()
        },
    )?;
    let idp = IdentityProvider::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        AUDIENCE,
        &generate_key(),
    )?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let dir = tempfile::tempdir()?;
    let dir_path = if std::env::var_os("MP_BENCH_KEEP_DB").is_some() {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    for (backend, url) in common::backends(&dir_path.join("browse.db")).await? {
        // The service as deployed: its default pool and one HTTP worker per core.
        let mut config = Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        config.database.url = url;
        config.auth.issuer = Some(idp.issuer().to_string());
        config.auth.audience = Some(AUDIENCE.into());
        config.http.workers = 2;
        config.log_level = "warn".into();
        let app = Application::build(&config, KeyPolicy::AllowInsecureDevKey).await?;
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let database = db::connect(&config.database).await?;
        let tenant = Uuid::now_v7();
        let token = idp.partner_token(tenant);
        let workspace = Uuid::now_v7();
        let now = chrono::Utc::now();
        let row = entity::workspace::Model {
            id: workspace,
            tenant_id: tenant,
            name: "bench".into(),
            source_url: sim.base_url(),
            source_login: login.clone(),
            source_password: Vec::new(),
            target_url: "https://cloud.example.com".into(),
            target_client_id: "bench".into(),
            target_client_secret: Vec::new(),
            version: 1,
            connection_check: None,
            source_rate_per_sec: 100,
            source_concurrency: 8,
            target_rate_per_sec: 100,
            target_concurrency: 8,
            snapshot_synced_at: None,
            snapshot_source_time: None,
            enrollment_secret_hash: None,
            provisioning: None,
            created_at: now,
            updated_at: now,
        };
        sea_orm::EntityTrait::insert(sea_orm::ActiveModelTrait::reset_all(
            entity::workspace::ActiveModel::from(row),
        ))
        .exec_without_returning(&database)
        .await?;
        let started = Instant::now();
        sync::sync(&database, Uuid::now_v7(), workspace, &source, |_| async {
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "browse_large: {backend}: synced in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let ws = format!("/api/v1/workspaces/{workspace}");
        // The root's rollup alone, first answer included (nothing warmed it up).
        let mut rollup_ms = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let response = http
                .get(format!("{address}{ws}/hierarchy"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 200,
                "hierarchy answered {}",
                response.status()
            );
            response.bytes().await?;
            rollup_ms.push(format!("{:.0}", started.elapsed().as_secs_f64() * 1000.0));
        }
        println!(
            "browse_large: {backend}: root rollup alone {} ms (five in a row)",
            rollup_ms.join(", ")
        );
        let runs: [(&str, Vec<String>); 7] = [
            ("floor: GET /healthz", vec!["/healthz".to_string()]),
            ("floor: GET workspace", vec![ws.clone()]),
            (
                "group detail",
                groups.iter().map(|g| format!("{ws}/groups/{g}")).collect(),
            ),
            (
                "user detail",
                users.iter().map(|u| format!("{ws}/users/{u}")).collect(),
            ),
            (
                "machine detail",
                machines
                    .iter()
                    .map(|m| format!("{ws}/machines/{m}"))
                    .collect(),
            ),
            (
                "a group's children",
                groups
                    .iter()
                    .map(|g| format!("{ws}/groups/{g}/children"))
                    .chain([format!("{ws}/groups/{root}/children")])
                    .collect(),
            ),
            (
                "search (3 letters of a login)",
                searches
                    .iter()
                    .map(|q| format!("{ws}/hierarchy/search?q={q}"))
                    .collect(),
            ),
        ];
        for (what, paths) in runs {
            let f = load(&http, &address, &token, &paths).await;
            println!(
                "browse_large: {backend}: {what}: {:.0} answers/s with {CLIENTS} clients, p50 {:.1} ms, p99 {:.1} ms, statuses {:?}",
                f.rate, f.p50_ms, f.p99_ms, f.statuses
            );
        }
    }
    Ok(())
}
