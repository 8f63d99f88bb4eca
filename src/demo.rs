//! `migration-portal demo`: the cloud and BackupAgent simulators and the service
//! on loopback, a walk through the API over real HTTP (connect, sync, pre-check,
//! migrate), then serving for Swagger UI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{Application, KeyPolicy};
use crate::config::Config;
use crate::sim::backupagent::SourceSim;
use crate::sim::cloud::{CloudSim, CloudSimConfig};
use crate::sim::fleet::{Fleet, FleetConfig, FleetMachine};
use crate::sim::idp::generate_key;
use crate::sim::install_base::{GenSpec, Size, generate};
use crate::sim::partner::{
    all_machines, client_credentials_token, compare_with_truth, progress_bar,
};

const DEMO_DB: &str = "migration-portal-demo.db";
const AUDIENCE: &str = "migration-portal";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How the demo runs.
pub struct DemoOptions {
    /// The service's port; the simulators take the next two. 0: any free ports.
    pub port: u16,
    /// Stop after the walk-through instead of serving.
    pub exit: bool,
    /// Once the walk-through is over, write a Postman environment for `postman/` here.
    pub postman_env: Option<PathBuf>,
    /// Print every answer's JSON body; otherwise one line per request.
    pub verbose: bool,
}

pub async fn run(mut config: Config, options: DemoOptions) -> anyhow::Result<()> {
    let DemoOptions {
        port,
        exit,
        postman_env,
        verbose,
    } = options;
    // Whoever waits for the environment must not find an earlier run's.
    if let Some(path) = &postman_env {
        let _ = std::fs::remove_file(path);
    }
    let (cloud_port, source_port) = if port == 0 {
        (Some(0), Some(0))
    } else {
        (port.checked_add(1), port.checked_add(2))
    };
    let (Some(cloud_port), Some(source_port)) = (cloud_port, source_port) else {
        anyhow::bail!("--port must leave room for the simulators on the next two ports");
    };
    let install_base = generate(&GenSpec::sized(Size::Small, 1));
    let machines = FleetMachine::from_install_base(&install_base);
    let existing_logins = install_base.cloud_existing_logins();
    let source = SourceSim::start(loopback(source_port), install_base)
        .with_context(|| format!("BackupAgent simulator on port {source_port}"))?;
    let cloud_config = CloudSimConfig {
        bind: loopback(cloud_port),
        audience: AUDIENCE.into(),
        existing_logins,
        ..CloudSimConfig::default()
    };
    let cloud = CloudSim::start(cloud_config, &generate_key())
        .with_context(|| format!("cloud simulator on port {cloud_port}"))?;

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{DEMO_DB}{suffix}"));
    }
    config.bind = loopback(port);
    config.database.url = format!("sqlite://{DEMO_DB}");
    config.auth.issuer = Some(cloud.base_url());
    config.auth.audience = Some(AUDIENCE.to_string());
    // The simulators listen on loopback.
    config.connectors.allow_private_networks = true;
    config.worker.poll_interval_ms = 100;
    // Sped up like the agents: a failing webhook delivery is retried once, a second later.
    config.webhooks.retry_schedule_secs = vec![1.0];
    let app = Application::build(&config, KeyPolicy::AllowInsecureDevKey).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(app.worker(&config).run(worker_stopped));
    let server = tokio::spawn(app.run_until_stopped());

    let http = Client::new();
    let partner = cloud.root_client();
    let token = client_credentials_token(
        &http,
        &cloud.base_url(),
        &partner.client_id,
        &partner.client_secret,
    )
    .await?;
    let other_tenant = cloud.idp().partner_token(Uuid::new_v4());
    // The partner's staff who watch: the cloud's read-only administrator role.
    let read_only = cloud.idp().read_only_token(partner.tenant_id);
    let (source_login, source_password) = source.credentials();
    let walk = Walk {
        http,
        base: base.clone(),
        verbose,
    };

    println!("\n== Migration Portal demo ==");
    println!(
        "cloud simulator {} (identity provider too); partner tenant {}",
        cloud.base_url(),
        partner.tenant_id
    );
    println!(
        "BackupAgent simulator {} (top-level group login {source_login})",
        source.base_url()
    );
    if !verbose {
        println!(
            "(one line per request: method, path, status and the gist of the answer; --verbose prints every JSON body)"
        );
    }
    let body = json!({
        "name": "Contoso Backup",
        "source": {"url": source.base_url(), "login": source_login, "password": source_password},
        "target": {"url": cloud.base_url(), "client_id": partner.client_id, "client_secret": partner.client_secret},
    });
    let created = walk
        .post_json("/api/v1/workspaces", &token, &body, Some("demo-1"))
        .await?;
    walk.post_json("/api/v1/workspaces", &token, &body, Some("demo-1"))
        .await?;
    let id = created["id"]
        .as_str()
        .context("the created workspace has an id")?
        .to_string();
    walk.get("/api/v1/workspaces?limit=10", &token).await?;
    walk.patch(
        &format!("/api/v1/workspaces/{id}"),
        &token,
        &json!({"name": "Contoso (EU)"}),
    )
    .await?;
    let bad_password = json!({"source": {"url": source.base_url(), "login": body["source"]["login"], "password": "wrong"}});
    walk.patch(&format!("/api/v1/workspaces/{id}"), &token, &bad_password)
        .await?;
    walk.post(&format!("/api/v1/workspaces/{id}/check"), &token)
        .await?;
    walk.patch(
        &format!("/api/v1/workspaces/{id}"),
        &token,
        &json!({"source": body["source"]}),
    )
    .await?;
    walk.post(&format!("/api/v1/workspaces/{id}/check"), &token)
        .await?;
    let started = walk
        .post(&format!("/api/v1/workspaces/{id}/syncs"), &token)
        .await?;
    let operation = format!(
        "/api/v1/operations/{}",
        started["id"].as_str().context("the sync is an operation")?
    );
    walk.wait_for(&operation, &token).await?;
    // The pre-check of the whole install base is the plan; the migration carries it out.
    let hierarchy = walk
        .get(&format!("/api/v1/workspaces/{id}/hierarchy"), &token)
        .await?;
    let root = hierarchy["root"]["id"]
        .as_str()
        .context("the hierarchy has a root")?
        .to_string();
    let selection = json!({"selection": [{"kind": "group", "id": root}]});
    let precheck = walk
        .post_json(
            &format!("/api/v1/workspaces/{id}/prechecks"),
            &token,
            &selection,
            Some("demo-precheck"),
        )
        .await?;
    walk.wait_for(
        precheck["operation"]
            .as_str()
            .context("the pre-check has an operation")?,
        &token,
    )
    .await?;
    let precheck_id = precheck["id"].as_str().context("the pre-check has an id")?;
    walk.get(
        &format!("/api/v1/workspaces/{id}/prechecks/{precheck_id}/planning"),
        &token,
    )
    .await?;
    walk.get(
        &format!("/api/v1/workspaces/{id}/prechecks/{precheck_id}/sections/users?limit=3"),
        &token,
    )
    .await?;
    let body = json!({"precheck_id": precheck_id});
    let migration = walk
        .post_json(
            &format!("/api/v1/workspaces/{id}/migrations"),
            &token,
            &body,
            Some("demo-migration"),
        )
        .await?;
    walk.wait_for(
        migration["operation"]
            .as_str()
            .context("the migration has an operation")?,
        &token,
    )
    .await?;
    let migration_id = migration["id"]
        .as_str()
        .context("the migration has an id")?;
    walk.get(
        &format!("/api/v1/workspaces/{id}/migrations/{migration_id}"),
        &token,
    )
    .await?;
    walk.get(
        &format!("/api/v1/workspaces/{id}/migrations/{migration_id}/items?kind=admin&limit=2"),
        &token,
    )
    .await?;
    walk.get(
        &format!("/api/v1/workspaces/{id}/events?kind=target.&limit=3"),
        &token,
    )
    .await?;

    // The agents: every machine's simulated client enrolls and checks in (every
    // half second here instead of every 30 minutes) and migrates its machine.
    let secret = walk
        .post(
            &format!("/api/v1/workspaces/{id}/enrollment-secret"),
            &token,
        )
        .await?;
    let workspace_id: Uuid = id.parse()?;
    let fleet = Fleet::start(FleetConfig {
        base_url: base.clone(),
        workspace_id,
        enrollment_secret: secret["enrollment_secret"]
            .as_str()
            .context("an enrollment secret")?
            .to_string(),
        machines: machines.clone(),
        interval: std::time::Duration::from_millis(500),
        seed: 1,
        mix: Default::default(),
    });
    let summary = walk
        .settle(
            &format!("/api/v1/workspaces/{id}/migrations/{migration_id}"),
            &token,
        )
        .await?;
    let failed = walk
        .get(
            &format!("/api/v1/workspaces/{id}/machines?state=failed&limit=500"),
            &token,
        )
        .await?;
    // (The list is printed above; each retry below is not.)
    let mut retried = 0;
    for machine in failed["items"].as_array().into_iter().flatten() {
        let machine_id = machine["machine_id"].as_str().unwrap_or_default();
        let url = format!("{base}/api/v1/workspaces/{id}/machines/{machine_id}/retry");
        retried += usize::from(
            walk.http
                .post(url)
                .bearer_auth(&token)
                .send()
                .await?
                .status()
                .is_success(),
        );
    }
    println!(
        "\nPOST …/machines/{{machine_id}}/retry for each failed machine: {retried} back to pending"
    );
    let summary = if failed["items"].as_array().is_some_and(|f| !f.is_empty()) {
        walk.settle(
            &format!("/api/v1/workspaces/{id}/migrations/{migration_id}"),
            &token,
        )
        .await?
    } else {
        summary
    };
    let truth = fleet.truth();
    fleet.stop().await;
    let shown = all_machines(&walk.http, &base, &id, &token).await?;
    let (checked, mismatched) = compare_with_truth(&shown, &truth);
    println!("\n== Summary: machines of the migration ==");
    for state in [
        "migrated",
        "failed",
        "manual_action_required",
        "pending",
        "migrating",
    ] {
        println!("{state:>24}: {}", summary["machines"][state]);
    }
    println!(
        "(pending: outdated clients waiting for their update, and agents that never came online; manual_action_required: SQL Server or Exchange agents to register by hand)"
    );
    if mismatched.is_empty() {
        println!(
            "all {checked} machines the fleet can tell about show the state its ground truth says"
        );
    } else {
        println!(
            "{} of {checked} machines differ from the fleet's ground truth: {}",
            mismatched.len(),
            mismatched.join("; ")
        );
    }
    let cloud_state = cloud.inspect();
    let migrated: Vec<&Value> = cloud_state["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| !t["parent_id"].is_null())
        .collect();
    let serving = migrated
        .iter()
        .filter(|t| {
            t["offering_items"].as_array().is_some_and(|items| {
                items.iter().any(|i| {
                    i["application"] == "backup"
                        && ["workstations", "servers", "vms"]
                            .contains(&i["name"].as_str().unwrap_or_default())
                })
            })
        })
        .count();
    let production = migrated
        .iter()
        .filter(|t| t["pricing_mode"] == "production")
        .count();
    println!(
        "provisioned in the cloud: {serving} of {} migrated tenants back up machines (the workspace's profile), {production} in production pricing",
        migrated.len()
    );
    walk.get(&format!("/api/v1/workspaces/{id}"), &other_tenant)
        .await?;
    walk.post_json(
        "/api/v1/workspaces",
        &token,
        &json!({"name": "", "source": {}}),
        None,
    )
    .await?;

    if exit {
        let _ = stop_worker.send(true);
        worker.await?;
        server.abort();
        return Ok(());
    }
    if let Some(path) = &postman_env {
        let agent = walk.enroll_tester(&id, &secret, &shown).await?;
        let values = PostmanValues {
            base_url: &base,
            partner_token: &token,
            other_tenant_token: &other_tenant,
            read_only_token: &read_only,
            workspace_id: &id,
            precheck_id,
            migration_id,
            cloud_url: &cloud.base_url(),
            cloud_client_id: &partner.client_id,
            cloud_client_secret: &partner.client_secret,
            source_url: &source.base_url(),
            source_login: &source_login,
            source_password: &source_password,
            spare_agent_token: &agent.token,
            spare_agent_machine_id: &agent.machine_id,
        };
        write_postman_env(path, &values)?;
        println!(
            "\nPostman environment: {} (run postman/ against it)",
            path.display()
        );
    }
    println!(
        "\nSwagger UI: {base}/swagger-ui/   (Authorize with the token below; it lasts 2 hours)"
    );
    println!("token: {token}");
    println!("read-only token (readonly_admin: every GET, no write): {read_only}");
    println!(
        "more tokens: curl -s -u {}:{} -d grant_type=client_credentials {}/api/2/idp/token",
        partner.client_id,
        partner.client_secret,
        cloud.base_url()
    );
    println!("Ctrl-C stops.");
    server.await??;
    let _ = stop_worker.send(true);
    worker.await?;
    Ok(())
}

/// What the Postman collection (`postman/`) needs of a running demo: the service,
/// its tokens, the demo workspace with its pre-check and migration, and the
/// simulators' credentials (made at start-up) to connect a second workspace.
pub struct PostmanValues<'a> {
    pub base_url: &'a str,
    pub partner_token: &'a str,
    pub other_tenant_token: &'a str,
    /// A `readonly_admin` token of the partner's tenant: reads, never writes.
    pub read_only_token: &'a str,
    pub workspace_id: &'a str,
    pub precheck_id: &'a str,
    pub migration_id: &'a str,
    pub cloud_url: &'a str,
    pub cloud_client_id: &'a str,
    pub cloud_client_secret: &'a str,
    pub source_url: &'a str,
    pub source_login: &'a str,
    pub source_password: &'a str,
    /// An enrolled agent of the demo workspace that the collection leaves alone, for
    /// API testers (schemathesis in `.ci/run`).
    pub spare_agent_token: &'a str,
    pub spare_agent_machine_id: &'a str,
}

/// A Postman environment with these values (`postman/migration-portal.postman_environment.json`
/// is the same with the values left empty).
pub fn postman_environment(v: &PostmanValues) -> Value {
    let plain = |key: &str, value: &str| json!({"key": key, "value": value, "type": "default", "enabled": true});
    let secret = |key: &str, value: &str| json!({"key": key, "value": value, "type": "secret", "enabled": true});
    json!({
        "id": Uuid::new_v4(),
        "name": "Migration Portal demo",
        "values": [
            plain("baseUrl", v.base_url),
            secret("partnerToken", v.partner_token),
            secret("otherTenantToken", v.other_tenant_token),
            secret("readOnlyToken", v.read_only_token),
            plain("workspaceId", v.workspace_id),
            plain("demoPrecheckId", v.precheck_id),
            plain("demoMigrationId", v.migration_id),
            plain("cloudUrl", v.cloud_url),
            plain("cloudClientId", v.cloud_client_id),
            secret("cloudClientSecret", v.cloud_client_secret),
            plain("sourceUrl", v.source_url),
            plain("sourceLogin", v.source_login),
            secret("sourcePassword", v.source_password),
            secret("spareAgentToken", v.spare_agent_token),
            plain("spareAgentMachineId", v.spare_agent_machine_id),
        ],
        "_postman_variable_scope": "environment",
    })
}

/// Written whole, then renamed: whoever waits for the file never reads half of it.
fn write_postman_env(path: &Path, values: &PostmanValues) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(
        &partial,
        serde_json::to_string_pretty(&postman_environment(values))?,
    )
    .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// An agent the demo enrolled.
struct Enrolled {
    machine_id: String,
    token: String,
}

struct Walk {
    http: Client,
    base: String,
    verbose: bool,
}

impl Walk {
    /// Polls an operation until it is done (the worker runs in this process), then shows it.
    async fn wait_for(&self, operation: &str, token: &str) -> anyhow::Result<Value> {
        for _ in 0..3000 {
            let value: Value = self
                .http
                .get(format!("{}{operation}", self.base))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if value["done"] == true {
                let outcome = if value["error"].is_object() {
                    gist(&value["error"])
                } else {
                    compact(&value["response"])
                };
                self.show(&format!("GET {operation} -> done: {outcome}"), &value)?;
                return Ok(value);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("{operation} did not finish within five minutes")
    }

    /// Polls the migration until its machine counts stop changing for three seconds,
    /// showing the counts as they move; answers the migration.
    /// Verbose, every change is a line; otherwise a terminal sees one line redrawn,
    /// and a log a line every five seconds at most and the last.
    async fn settle(&self, migration: &str, token: &str) -> anyhow::Result<Value> {
        use std::io::{IsTerminal, Write};
        let redraw = !self.verbose && std::io::stdout().is_terminal();
        let (mut last, mut still_since, mut printed_at) = (
            Value::Null,
            std::time::Instant::now(),
            None::<std::time::Instant>,
        );
        for _ in 0..1200 {
            let value: Value = self
                .http
                .get(format!("{}{migration}", self.base))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if value["machines"] != last {
                let bar = progress_bar(&value["machines"]);
                if redraw {
                    print!("\r{bar}");
                    let _ = std::io::stdout().flush();
                } else if self.verbose
                    || printed_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5))
                {
                    println!("{bar}");
                    printed_at = Some(std::time::Instant::now());
                }
                last = value["machines"].clone();
                still_since = std::time::Instant::now();
            } else if still_since.elapsed() > std::time::Duration::from_secs(3) {
                let shown_last = redraw || printed_at.is_some_and(|t| t >= still_since);
                if redraw {
                    println!();
                } else if !shown_last {
                    println!("{}", progress_bar(&last));
                }
                return Ok(value);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        anyhow::bail!("the machines did not settle within five minutes")
    }

    /// Enrolls, once the fleet has stopped, the agent of a pending machine whose
    /// client has checked in: the collection enrolls one that never did, so the two
    /// tokens do not replace each other. Not printed.
    async fn enroll_tester(
        &self,
        workspace: &str,
        secret: &Value,
        machines: &[Value],
    ) -> anyhow::Result<Enrolled> {
        let pending = |m: &&Value| m["state"] == "pending";
        let machine = machines
            .iter()
            .filter(pending)
            .find(|m| !m["last_check_in_at"].is_null())
            .or_else(|| machines.iter().find(pending))
            .or(machines.first());
        let machine_id = machine
            .and_then(|m| m["machine_id"].as_str())
            .context("the demo workspace has machines")?;
        let body = json!({"workspace_id": workspace, "enrollment_secret": secret["enrollment_secret"], "machine_id": machine_id});
        let answer: Value = self
            .http
            .post(format!("{}/agent/v1/enroll", self.base))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = answer["token"]
            .as_str()
            .context("an enrolled agent has a token")?
            .to_string();
        Ok(Enrolled {
            machine_id: machine_id.to_string(),
            token,
        })
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, token, None, None).await
    }

    /// A POST without a body: an action on what `path` names.
    async fn post(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        self.call(Method::POST, path, token, None, None).await
    }

    async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        key: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.call(Method::POST, path, token, Some(body), key).await
    }

    async fn patch(&self, path: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::PATCH, path, token, Some(body), None)
            .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let value: Value = if status == StatusCode::NO_CONTENT {
            Value::Null
        } else {
            response.json().await.unwrap_or(Value::Null)
        };
        let replayed = if replayed { " (replayed)" } else { "" };
        self.show(
            &format!("{method} {path} -> {status}{replayed}: {}", gist(&value)),
            &value,
        )?;
        Ok(value)
    }

    /// One line, or (verbose) the line and the whole body after a blank line.
    fn show(&self, line: &str, body: &Value) -> anyhow::Result<()> {
        if self.verbose {
            println!("\n{line}\n{}", serde_json::to_string_pretty(body)?);
        } else {
            println!("{}", line.trim_end_matches(": "));
        }
        Ok(())
    }
}

/// What an answer says, in a few words: a problem's code and detail, a page's
/// size, an object's id and state, or the body itself when it is small.
fn gist(value: &Value) -> String {
    let text = |key: &str| value[key].as_str().map(str::to_string);
    if let (Some(code), Some(detail)) = (text("code"), text("detail")) {
        return format!("{code}: {detail}");
    }
    if let Some(checks) = value["checks"].as_array() {
        let each: Vec<String> = checks
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["name"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?")
                )
            })
            .collect();
        return format!("passed: {}; {}", value["passed"], each.join(", "));
    }
    if let Some(items) = value["items"].as_array() {
        let more = if value["next_cursor"].is_string() {
            ", more on the next page"
        } else {
            ""
        };
        return format!("{} items{more}", items.len());
    }
    match (text("id"), text("status").or_else(|| text("state"))) {
        (Some(id), Some(status)) => format!("id {id}, {status}"),
        (Some(id), None) => format!("id {id}"),
        _ => compact(value),
    }
}

/// The body on one line, cut at 120 characters.
fn compact(value: &Value) -> String {
    if value.is_null() {
        return String::new();
    }
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
