//! `migration-portal demo`: the identity provider simulator and the service on
//! loopback, a walk through the API over real HTTP, then serving for Swagger UI.

use std::net::SocketAddr;

use anyhow::Context;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{Application, KeyPolicy};
use crate::config::Config;
use crate::sim::idp::{IdentityProvider, generate_key};

const DEMO_DB: &str = "migration-portal-demo.db";
const AUDIENCE: &str = "migration-portal";

pub async fn run(mut config: Config, port: u16, exit: bool) -> anyhow::Result<()> {
    let idp_port = port.checked_add(1).context("--port must leave room for the identity provider on the next port")?;
    let idp = IdentityProvider::start(SocketAddr::from(([127, 0, 0, 1], idp_port)), AUDIENCE, &generate_key())
        .with_context(|| format!("identity provider on 127.0.0.1:{idp_port}"))?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{DEMO_DB}{suffix}"));
    }
    config.bind = SocketAddr::from(([127, 0, 0, 1], port));
    config.database.url = format!("sqlite://{DEMO_DB}");
    config.auth.issuer = Some(idp.issuer().to_string());
    config.auth.audience = Some(AUDIENCE.to_string());
    config.connectors.allow_private_networks = true;
    let app = Application::build(&config, KeyPolicy::AllowInsecureDevKey).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());

    let http = Client::new();
    let partner = idp.register_client(Uuid::new_v4());
    let token = client_credentials_token(&http, idp.issuer(), &partner.client_id, &partner.client_secret).await?;
    let other_tenant = idp.partner_token(Uuid::new_v4());
    let walk = Walk { http, base: base.clone() };

    println!("\n== Migration Portal demo ==");
    println!("identity provider {} issued a token for tenant {}", idp.issuer(), partner.tenant_id);
    let body = json!({
        "name": "Contoso Backup",
        "source": {"url": "https://backupagent.contoso.example", "login": "contoso-root", "password": "demo-source-password"},
        "target": {"url": "https://eu2-cloud.example", "client_id": "demo-client", "client_secret": "demo-client-secret"}
    });
    let created = walk.call(Method::POST, "/api/v1/workspaces", &token, Some(&body), Some("demo-1")).await?;
    walk.call(Method::POST, "/api/v1/workspaces", &token, Some(&body), Some("demo-1")).await?;
    let id = created["id"].as_str().context("the created workspace has an id")?.to_string();
    walk.call(Method::GET, "/api/v1/workspaces?limit=10", &token, None, None).await?;
    walk.call(Method::PATCH, &format!("/api/v1/workspaces/{id}"), &token, Some(&json!({"name": "Contoso (EU)"})), None).await?;
    walk.call(Method::GET, &format!("/api/v1/workspaces/{id}"), &other_tenant, None, None).await?;
    walk.call(Method::POST, "/api/v1/workspaces", &token, Some(&json!({"name": "", "source": {}})), None).await?;

    if exit {
        server.abort();
        return Ok(());
    }
    println!("\nSwagger UI: {base}/swagger-ui/   (Authorize with the token below; it lasts 2 hours)");
    println!("token: {token}");
    println!("more tokens: curl -s -u {}:{} -d grant_type=client_credentials {}/api/2/idp/token", partner.client_id, partner.client_secret, idp.issuer());
    println!("Ctrl-C stops.");
    server.await??;
    Ok(())
}

async fn client_credentials_token(http: &Client, issuer: &str, id: &str, secret: &str) -> anyhow::Result<String> {
    let answer: Value = http
        .post(format!("{issuer}/api/2/idp/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["access_token"].as_str().map(str::to_string).context("the token endpoint answered no access_token")
}

struct Walk {
    http: Client,
    base: String,
}

impl Walk {
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<&Value>, key: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let value: Value = if status == StatusCode::NO_CONTENT { Value::Null } else { response.json().await.unwrap_or(Value::Null) };
        println!("\n{method} {path} -> {status}{}", if replayed { " (replayed)" } else { "" });
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(value)
    }
}
