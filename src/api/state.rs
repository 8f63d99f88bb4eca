//! What every handler reaches through `web::Data<AppState>`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::auth::agent::AgentTokens;
use crate::crypto::SecretBox;
use crate::db::check_ins::CheckIns;
use crate::jobs::clients::ClientPool;
use crate::jobs::webhook::Sender;
use crate::metrics::Metrics;

pub struct AppState {
    pub db: DatabaseConnection,
    pub secrets: SecretBox,
    pub auth: Authenticator,
    /// `connectors.allow_private_networks`.
    pub allow_private_networks: bool,
    /// Agent requests in flight (`http.agent_max_in_flight`): past it, 429.
    pub admission: Arc<crate::api::admission::Admission>,
    /// `http.agent_max_log_bytes`.
    pub agent_max_log_bytes: usize,
    /// Agent token look-ups, made together for requests arriving together.
    pub agent_tokens: Arc<AgentTokens>,
    /// Agents' check-in times, written once a second.
    pub check_ins: Arc<CheckIns>,
    /// Clients toward the workspaces' cloud (registration tokens for agents).
    pub clients: Arc<ClientPool>,
    /// Sends test webhook deliveries (the worker sends the others).
    pub webhooks: Arc<Sender>,
    /// What this process counts, served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `metrics.bearer_token`: `/metrics` requires it when set.
    pub metrics_token: Option<secrecy::SecretString>,
}
