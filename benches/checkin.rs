//! Agent check-ins with 150,000 enrolled machines (the machines of `large`,
//! every one released): sustained `GET /agent/v1/instructions` per second with
//! p50/p99 latency, without and with `If-None-Match` (304), and beside it a bare
//! actix JSON endpoint measured the same way in the same run (the framework's
//! floor). The load comes from this process over loopback, 64 connections at
//! once. SQLite, and PostgreSQL when MP_TEST_POSTGRES_URL is set
//! (MP_BENCH_BACKENDS=sqlite or postgres picks one).
//!
//! At 150,000 agents on a 30-minute interval the average load is 83 check-ins
//! per second; the goal is at least 100 times that.
//!
//! cargo bench --bench checkin

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use migration_portal::app::{Application, KeyPolicy};
use migration_portal::auth::digest;
use migration_portal::config::Config;
use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::SourceClient;
use migration_portal::db;
use migration_portal::jobs::sync;
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use rand::Rng;
use secrecy::SecretString;
use uuid::Uuid;

const CONNECTIONS: usize = 64;
const SECONDS: u64 = 10;

struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    statuses: std::collections::BTreeMap<u16, usize>,
}

/// Runs `CONNECTIONS` loops for `SECONDS`, each sending `request(i)` as fast as answers come.
async fn load<F>(request: F) -> Figures
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    let request = Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS {
        let (client, request) = (client.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = worker;
            while Instant::now() < deadline {
                let started = Instant::now();
                let status = match request(&client, i).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                samples.push((started.elapsed(), status));
                i += CONNECTIONS;
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
    let mut statuses = std::collections::BTreeMap::new();
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

fn print(backend: &str, what: &str, f: &Figures) {
    println!(
        "checkin: {backend}: {what}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, statuses {:?}",
        f.rate, f.p50_ms, f.p99_ms, f.statuses
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = generate(&GenSpec::sized(Size::Large, 1));
    let machines: Vec<String> = base.machines.iter().map(|m| m.id.clone()).collect();
    let sim = SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base)?;
    let (login, password) = sim.credentials();
    let policy = HttpPolicy {
        rate_per_sec: None,
        allow_private_networks: true,
        ..HttpPolicy::default()
    };
    let source = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from(password),
        policy,
    )?;
    let dir = tempfile::tempdir()?;
    let targets = common::backends(&dir.path().join("checkin.db")).await?;
    // The framework's floor: the same JSON shape from a bare handler.
    let bare = HttpServer::new(|| {
        App::new().route(
            "/bare",
            web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"action": "none", "machine_id": "m-0000001", "state": "idle", "last_seq": 0, "poll_after_secs": 1800})) }),
        )
    })
    .workers(2)
    .bind(("127.0.0.1", 0))?;
    let bare_port = bare.addrs()[0].port();
    tokio::spawn(bare.run());
    for (backend, url) in targets {
        let mut config = Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        config.database.url = url;
        // The default pool (10). On this 2-core machine a pool of 32 made PostgreSQL
        // slower (5,516 req/s against 7,264): its backends share the cores with the load.
        config.auth.issuer = Some("http://127.0.0.1:9".into());
        config.auth.audience = Some("bench".into());
        config.http.workers = 2;
        config.http.agent_max_in_flight = 4096;
        config.log_level = "warn".into();
        let app = Application::build(&config, KeyPolicy::AllowInsecureDevKey).await?;
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        let database = db::connect(&config.database).await?;
        let workspace = Uuid::now_v7();
        // The workspace the agents belong to (its cloud address goes into the instructions).
        let now = chrono::Utc::now();
        let row = entity::workspace::Model {
            id: workspace,
            tenant_id: Uuid::now_v7(),
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
        sync::sync(&database, Uuid::now_v7(), workspace, &source, |_| async {
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Every machine released and enrolled (tokens made here, stored hashed as enrollment does).
        db::execute(&database, "UPDATE source_machines SET migration_state = 'pending', state_changed_at = $1 WHERE workspace_id = $2", vec![chrono::Utc::now().into(), workspace.into()]).await?;
        let tokens: Vec<String> = machines.iter().map(|m| format!("mpa_bench_{m}")).collect();
        let started = Instant::now();
        for chunk in machines.chunks(500).zip(tokens.chunks(500)) {
            let models =
                chunk
                    .0
                    .iter()
                    .zip(chunk.1)
                    .map(|(machine, token)| entity::agent::ActiveModel {
                        workspace_id: sea_orm::ActiveValue::Set(workspace),
                        machine_id: sea_orm::ActiveValue::Set(machine.clone()),
                        token_hash: sea_orm::ActiveValue::Set(digest(token)),
                        enrolled_at: sea_orm::ActiveValue::Set(chrono::Utc::now()),
                        last_check_in_at: sea_orm::ActiveValue::NotSet,
                    });
            sea_orm::EntityTrait::insert_many(models)
                .exec_without_returning(&database)
                .await?;
        }
        println!(
            "checkin: {backend}: {} machines enrolled in {:.1} s",
            tokens.len(),
            started.elapsed().as_secs_f64()
        );
        // The set-up rewrote every machine's row at once (released them all): PostgreSQL
        // cleans that up before the load, as autovacuum would have long before a real
        // fleet's check-ins, instead of during it.
        if backend == "postgres" {
            let started = Instant::now();
            sea_orm::ConnectionTrait::execute_unprepared(
                &database,
                "VACUUM ANALYZE source_machines, agents, machine_assignments, workspaces",
            )
            .await?;
            println!(
                "checkin: {backend}: vacuumed and analysed in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        let tokens = Arc::new(tokens);
        let base_url = format!("http://127.0.0.1:{port}/agent/v1/instructions");
        // Each request a random machine's check-in.
        let (t, u) = (tokens.clone(), base_url.clone());
        let full = load(move |client, _| {
            let token = &t[rand::rng().random_range(0..t.len())];
            client.get(&u).bearer_auth(token)
        })
        .await;
        print(backend, "instructions (200, full body)", &full);
        // With If-None-Match: the ETag of every pending machine's instructions is the
        // same shape per platform and plans; fetch each sampled machine's first.
        let sample: Vec<usize> = (0..20_000)
            .map(|_| rand::rng().random_range(0..tokens.len()))
            .collect();
        let client = reqwest::Client::new();
        let mut etags = Vec::with_capacity(sample.len());
        for &i in &sample {
            let response = client.get(&base_url).bearer_auth(&tokens[i]).send().await?;
            etags.push((
                i,
                response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        let (t, u, e) = (tokens.clone(), base_url.clone(), Arc::new(etags));
        let cached = load(move |client, n| {
            let (i, etag) = &e[n % e.len()];
            client
                .get(&u)
                .bearer_auth(&t[*i])
                .header("If-None-Match", etag)
        })
        .await;
        print(backend, "instructions (304, If-None-Match)", &cached);
        // Figures of refused check-ins would measure nothing: stop instead.
        anyhow::ensure!(
            full.statuses.keys().all(|s| *s == 200),
            "{backend}: check-ins not answered 200: {:?}",
            full.statuses
        );
        anyhow::ensure!(
            cached.statuses.keys().all(|s| *s == 304),
            "{backend}: check-ins with If-None-Match not answered 304: {:?}",
            cached.statuses
        );
        let bare_url = format!("http://127.0.0.1:{bare_port}/bare");
        let floor = load(move |client, _| client.get(&bare_url)).await;
        print(backend, "bare actix JSON endpoint", &floor);
        println!(
            "checkin: {backend}: pool of {} connections",
            config.database.max_connections
        );
        println!(
            "checkin: {backend}: ratio to the bare endpoint: {:.2} (full), {:.2} (304); {:.0}x and {:.0}x the 83 req/s average of 150,000 agents on a 30-minute interval",
            full.rate / floor.rate,
            cached.rate / floor.rate,
            full.rate / 83.3,
            cached.rate / 83.3
        );
    }
    Ok(())
}
