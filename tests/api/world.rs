//! A service with both simulators on loopback and a workspace connected to
//! them: what the sync, hierarchy and pre-check tests start from.

use std::net::SocketAddr;
use std::time::Duration;

use migration_portal::app::job_handlers;
use migration_portal::crypto::SecretBox;
use migration_portal::queue::{Worker, WorkerConfig};
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig};
use migration_portal::sim::install_base::InstallBase;
use sea_orm::{Database, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{AUDIENCE, Backend, TestApp, spawn_app_with, test_keys};

pub struct World {
    pub app: TestApp,
    pub cloud: CloudSim,
    pub source: SourceSim,
    pub token: String,
    pub workspace: Uuid,
    pub db: DatabaseConnection,
}

/// The cloud simulator holds the logins the install base says it does.
pub async fn world(backend: Backend, base: InstallBase) -> World {
    world_with(backend, base, |_| {}).await
}

/// [`world`] with the service's configuration changed by `configure`.
pub async fn world_with(
    backend: Backend,
    base: InstallBase,
    configure: impl FnOnce(&mut migration_portal::config::Config),
) -> World {
    world_with_cloud(backend, base, |_| {}, configure).await
}

/// [`world_with`] whose cloud simulator's configuration is changed by `cloud` too.
pub async fn world_with_cloud(
    backend: Backend,
    base: InstallBase,
    cloud: impl FnOnce(&mut CloudSimConfig),
    configure: impl FnOnce(&mut migration_portal::config::Config),
) -> World {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let existing_logins = base.cloud_existing_logins();
    let mut config = CloudSimConfig {
        bind: loopback,
        audience: AUDIENCE.into(),
        existing_logins,
        ..CloudSimConfig::default()
    };
    cloud(&mut config);
    let cloud = CloudSim::start(config, &test_keys()[0]).expect("cloud");
    let source = SourceSim::start(loopback, base).expect("source");
    let issuer = cloud.base_url();
    let app = spawn_app_with(backend, |c| {
        c.auth.issuer = Some(issuer);
        configure(c);
    })
    .await;
    let partner = cloud.root_client();
    let token = cloud.idp().partner_token(partner.tenant_id);
    let (login, password) = source.credentials();
    let body = json!({
        "name": "Synced",
        "source": {"url": source.base_url(), "login": login, "password": password},
        "target": {"url": cloud.base_url(), "client_id": partner.client_id, "client_secret": partner.client_secret},
    });
    let created = app.create_workspace(&token, &body).await;
    let workspace = Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid");
    let db = Database::connect(&app.database_url).await.expect("connect");
    World {
        app,
        cloud,
        source,
        token,
        workspace,
        db,
    }
}

impl World {
    /// A path under this workspace.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/workspaces/{}{rest}", self.workspace)
    }

    /// The key the app seals secrets with.
    pub fn secrets(&self) -> SecretBox {
        SecretBox::from_base64(&self.app.secret_key).expect("key")
    }

    /// Runs the worker until no job is left.
    pub async fn work(&self) {
        let secrets = self.secrets();
        let config = WorkerConfig {
            min_backoff: Duration::ZERO,
            max_backoff: Duration::from_millis(1),
            ..WorkerConfig::default()
        };
        let metrics = self.app.metrics.clone();
        Worker::new(
            self.db.clone(),
            config,
            job_handlers(secrets, true, Some(metrics.clone())),
        )
        .with_metrics(metrics)
        .run_until_idle()
        .await;
    }

    /// Starts a sync over HTTP, runs the worker until idle, answers the finished operation.
    pub async fn sync(&self) -> Value {
        let response = self
            .app
            .http
            .post(self.app.url(&self.path("/syncs")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("start");
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        self.work().await;
        let operation = self.get(&location).await;
        assert_eq!(operation["done"], true, "{operation}");
        operation
    }

    /// GET that must answer 200; the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        self.get_with(path, &self.token).await
    }

    /// [`World::get`] with another token.
    pub async fn get_with(&self, path: &str, token: &str) -> Value {
        let response = self.app.get(path, token).send().await.expect("get");
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("json")
    }
}
