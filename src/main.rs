use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use migration_portal::app::{self, KeyPolicy, Role};
use migration_portal::config::Config;
use migration_portal::{api, db, demo, sim, telemetry};

#[derive(Parser)]
#[command(
    name = "migration-portal",
    version,
    about = "Moves a BackupAgent install base to the Acronis cloud"
)]
struct Cli {
    /// TOML configuration file; `MP_*` environment variables override it.
    #[arg(long, global = true, env = "MP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations, then serve the API.
    Serve {
        /// Seal credentials with a fixed, public key when `secret_key` is not set (development only).
        #[arg(long)]
        insecure_dev_key: bool,
        /// Serve the API only; other processes run the worker.
        #[arg(long, conflicts_with = "worker_only")]
        api_only: bool,
        /// Run the worker only; other processes serve the API.
        #[arg(long)]
        worker_only: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Print a new random `secret_key` (base64 of 32 bytes).
    GenKey,
    /// Run a simulator of an outside system.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Start the identity provider simulator and the service, walk through the API, keep serving.
    Demo {
        /// Port of the service; the cloud and BackupAgent simulators take the next two (0: any free ports).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Stop after the walk-through instead of serving.
        #[arg(long, conflicts_with = "postman_env")]
        exit: bool,
        /// Write a Postman environment for the collection in `postman/` to this file once the demo is ready.
        #[arg(long, value_name = "PATH")]
        postman_env: Option<PathBuf>,
        /// Print every answer's JSON body, not only its request line, status and gist.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// The cloud's identity provider: discovery, JWKS, client-credentials tokens.
    Idp {
        #[arg(long, default_value = "127.0.0.1:8081")]
        bind: std::net::SocketAddr,
        #[arg(long, default_value = "migration-portal")]
        audience: String,
    },
    /// The cloud's Account Management API v2, with its identity provider and fault injection.
    Cloud(sim::cloud::CloudArgs),
    /// A BackupAgent server serving a generated install base.
    Backupagent(sim::backupagent::BackupAgentArgs),
    /// Simulated BackupAgent clients that enroll with a workspace, check in and migrate their machines.
    Fleet {
        /// The service, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        service: String,
        #[arg(long)]
        workspace: uuid::Uuid,
        /// The workspace's enrollment secret (POST /api/v1/workspaces/{id}/enrollment-secret).
        #[arg(long, env = "MP_FLEET_ENROLLMENT_SECRET")]
        enrollment_secret: String,
        /// A file with one machine per line: `id[,client_version[,auto_update]]`
        /// (auto-update `true` when left out).
        #[arg(long)]
        machines: PathBuf,
        /// Between check-ins: stands for the real 30 minutes, and the `Poll-After` and
        /// `Retry-After` the service tells are scaled alike.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Machines in a hundred whose first download fails.
        #[arg(long, default_value_t = 8)]
        download_errors: u32,
        /// Machines in a hundred whose first install fails.
        #[arg(long, default_value_t = 7)]
        install_errors: u32,
        /// Machines in a hundred that miss one to three check-ins first.
        #[arg(long, default_value_t = 10)]
        offline: u32,
        /// Machines in a hundred whose agent never checks in.
        #[arg(long, default_value_t = 5)]
        never_online: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::Openapi | Command::GenKey) {
        // The demo's thousands of agent requests would bury its walk-through: warnings
        // only, unless a level is asked for.
        let quiet = matches!(cli.command, Command::Demo { .. })
            && std::env::var_os("MP_LOG_LEVEL").is_none();
        let level = if quiet {
            "warn"
        } else {
            config.log_level.as_str()
        };
        // Ignore "already set": only one subscriber per process.
        let _ = telemetry::init(config.log_format, level, std::io::stdout);
    }
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "stopped");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            insecure_dev_key,
            api_only,
            worker_only,
        } => {
            let policy = if insecure_dev_key {
                KeyPolicy::AllowInsecureDevKey
            } else {
                KeyPolicy::Required
            };
            let role = match (api_only, worker_only) {
                (true, _) => Role::ApiOnly,
                (_, true) => Role::WorkerOnly,
                _ => Role::ApiAndWorker,
            };
            app::serve(&config, policy, role).await?;
        }
        Command::Migrate => {
            let conn = db::connect(&config.database).await?;
            db::upgrade_schema(&conn).await?;
            tracing::info!("migrations applied");
        }
        Command::Openapi => println!("{}", api::openapi().to_pretty_json()?),
        Command::GenKey => println!("{}", migration_portal::crypto::generate_key()?),
        Command::Sim(SimCommand::Idp { bind, audience }) => {
            let key = sim::idp::generate_key();
            let idp = sim::idp::IdentityProvider::start(bind, &audience, &key)?;
            let client = idp.register_client(uuid::Uuid::new_v4());
            println!("identity provider: {} (audience {audience})", idp.issuer());
            println!(
                "API client for tenant {}: id {} secret {}",
                client.tenant_id, client.client_id, client.client_secret
            );
            println!(
                "token: curl -s -u {}:{} -d grant_type=client_credentials {}/api/2/idp/token",
                client.client_id,
                client.client_secret,
                idp.issuer()
            );
            tokio::signal::ctrl_c().await?;
        }
        Command::Sim(SimCommand::Cloud(args)) => sim::cloud::run(args).await?,
        Command::Sim(SimCommand::Backupagent(args)) => sim::backupagent::run(args).await?,
        Command::Sim(SimCommand::Fleet {
            service,
            workspace,
            enrollment_secret,
            machines,
            interval_ms,
            seed,
            download_errors,
            install_errors,
            offline,
            never_online,
        }) => {
            let mix = sim::fleet::Mix {
                download_error: download_errors,
                install_error: install_errors,
                offline_for_a_while: offline,
                never_online,
            };
            anyhow::ensure!(
                mix.is_valid(),
                "--download-errors, --install-errors, --offline and --never-online are shares of a hundred: together at most 100"
            );
            let machines: Vec<sim::fleet::FleetMachine> = std::fs::read_to_string(&machines)?
                .lines()
                .filter_map(sim::fleet::FleetMachine::parse)
                .collect();
            let count = machines.len();
            let config = sim::fleet::FleetConfig {
                base_url: service,
                workspace_id: workspace,
                enrollment_secret,
                machines,
                interval: std::time::Duration::from_millis(interval_ms),
                seed,
                mix,
            };
            let fleet = sim::fleet::Fleet::start(config);
            println!(
                "{count} simulated agents checking in about every {interval_ms} ms (standing for 30 minutes: the Poll-After and Retry-After they are told are scaled alike); Ctrl-C stops and prints their ground truth"
            );
            tokio::signal::ctrl_c().await?;
            let truth = fleet.truth();
            println!("{}", serde_json::to_string_pretty(&truth)?);
            let throttled: Vec<u32> = truth.values().map(|t| t.observed.throttled).collect();
            println!(
                "told to back off (429 or 503) {} times, {} of {count} agents at least once",
                throttled.iter().map(|&n| u64::from(n)).sum::<u64>(),
                throttled.iter().filter(|&&n| n > 0).count()
            );
            fleet.stop().await;
        }
        Command::Demo {
            port,
            exit,
            postman_env,
            verbose,
        } => {
            demo::run(
                config,
                demo::DemoOptions {
                    port,
                    exit,
                    postman_env,
                    verbose,
                },
            )
            .await?
        }
    }
    Ok(())
}
