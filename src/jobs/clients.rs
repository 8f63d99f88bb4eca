//! One source and one target client per workspace in a process, so that every
//! job of a workspace shares its rate limit, concurrency cap and cloud token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use entity::workspace::Model as Workspace;
use uuid::Uuid;

use super::JobError;
use crate::connectors::source::SourceClient;
use crate::connectors::target::TargetClient;
use crate::connectors::{HttpPolicy, Limit, RequestObserver};
use crate::crypto::SecretBox;
use crate::db::workspaces as store;

#[derive(Clone)]
pub struct Clients {
    pub source: Arc<SourceClient>,
    pub target: Arc<TargetClient>,
}

pub struct ClientPool {
    allow_private_networks: bool,
    /// Told of every request to the cloud (metrics).
    observer: Option<Arc<dyn RequestObserver>>,
    /// By workspace and pace toward the target (a migration may set its own): the
    /// version the clients were built from, and the clients.
    entries: Mutex<HashMap<(Uuid, Option<Limit>), (i32, Clients)>>,
}

impl ClientPool {
    pub fn new(allow_private_networks: bool) -> Self {
        Self {
            allow_private_networks,
            observer: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Requests to the cloud are told to `observer` (the source's are not).
    pub fn observed_by(self, observer: Option<Arc<impl RequestObserver + 'static>>) -> Self {
        Self {
            observer: observer.map(|o| o as Arc<dyn RequestObserver>),
            ..self
        }
    }

    fn target_policy(&self, limit: Limit) -> HttpPolicy {
        HttpPolicy {
            allow_private_networks: self.allow_private_networks,
            observer: self.observer.clone(),
            ..HttpPolicy::limited(limit)
        }
    }

    /// The workspace's clients; built anew when the workspace changed (credentials, URLs, limits).
    pub fn clients(&self, workspace: &Workspace, secrets: &SecretBox) -> Result<Clients, JobError> {
        self.clients_paced(workspace, secrets, None)
    }

    /// The workspace's clients with `target` as a pace toward the target that
    /// applies inside the workspace's own limit (a migration's option): requests
    /// wait for both, so migrations with paces of their own never pass the
    /// workspace's limit together. `None`: the workspace's clients.
    pub fn clients_paced(
        &self,
        workspace: &Workspace,
        secrets: &SecretBox,
        target: Option<Limit>,
    ) -> Result<Clients, JobError> {
        let base = self.cached(workspace, None, || self.build(workspace, secrets))?;
        let Some(pace) = target else { return Ok(base) };
        self.cached(workspace, Some(pace), || {
            let secret = store::target_client_secret(secrets, workspace)
                .map_err(|e| JobError::Fatal(format!("workspace credentials: {e}")))?;
            let target = TargetClient::paced_within(
                &workspace.target_url,
                &workspace.target_client_id,
                secret,
                self.target_policy(pace),
                base.target.throttle(),
            )
            .map_err(|e| JobError::Fatal(e.to_string()))?;
            Ok(Clients {
                source: base.source.clone(),
                target: Arc::new(target),
            })
        })
    }

    fn cached(
        &self,
        workspace: &Workspace,
        pace: Option<Limit>,
        build: impl FnOnce() -> Result<Clients, JobError>,
    ) -> Result<Clients, JobError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, clients)) = entries
            .get(&(workspace.id, pace))
            .filter(|(version, _)| *version == workspace.version)
        {
            return Ok(clients.clone());
        }
        let clients = build()?;
        entries.insert((workspace.id, pace), (workspace.version, clients.clone()));
        Ok(clients)
    }

    fn build(&self, workspace: &Workspace, secrets: &SecretBox) -> Result<Clients, JobError> {
        let sealed =
            |e: crate::crypto::CryptoError| JobError::Fatal(format!("workspace credentials: {e}"));
        let password = store::source_password(secrets, workspace).map_err(sealed)?;
        let secret = store::target_client_secret(secrets, workspace).map_err(sealed)?;
        let source_policy = HttpPolicy {
            allow_private_networks: self.allow_private_networks,
            ..HttpPolicy::limited(store::source_limit(workspace))
        };
        let source = SourceClient::new(
            &workspace.source_url,
            &workspace.source_login,
            password,
            source_policy,
        );
        let target = TargetClient::new(
            &workspace.target_url,
            &workspace.target_client_id,
            secret,
            self.target_policy(store::target_limit(workspace)),
        );
        let refused = |e: crate::connectors::ConnectorError| JobError::Fatal(e.to_string());
        Ok(Clients {
            source: Arc::new(source.map_err(refused)?),
            target: Arc::new(target.map_err(refused)?),
        })
    }
}
