//! The BackupAgent server: our JSON contract, `openapi/backupagent-source.json`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ConnectorError, Credentials, Endpoint, HttpPolicy, JsonApi, Throttle};

const SYSTEM: &str = "BackupAgent server";
pub const MAX_PAGE: u32 = 5000;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourceAccount {
    pub group_id: String,
    pub name: String,
    pub login: String,
    #[serde(default)]
    pub server_version: Option<String>,
    /// The server's clock: clients' last-seen times are measured against it.
    #[serde(default)]
    pub server_time: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Contact {
    pub login: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourceGroup {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub admin: Option<Contact>,
    /// In bytes; absent (a server before contract 1.1.0) or null: no quota. Left out
    /// of the stored copy when none, so a snapshot taken before quotas reads the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_quota_bytes: Option<u64>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourceUser {
    pub id: String,
    pub group_id: String,
    pub login: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub auto_update: bool,
    /// As on [`SourceGroup`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_quota_bytes: Option<u64>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourceOs {
    pub family: String,
    pub name: String,
    pub arch: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourceMachine {
    pub id: String,
    pub user_id: String,
    pub hostname: String,
    pub os: SourceOs,
    pub client_version: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub data_size_bytes: u64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A backup plan; fields the service does not interpret yet are kept as they came.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourcePlan {
    pub id: String,
    pub machine_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub inclusion_filters: Vec<String>,
    pub schedule: serde_json::Value,
    pub retention_days: Option<u32>,
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SourcePage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What the service asks of a BackupAgent server.
#[async_trait]
pub trait SourceApi: Send + Sync {
    /// The top-level group the credentials belong to: proves the login works.
    async fn account(&self) -> Result<SourceAccount, ConnectorError>;
    async fn groups(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourceGroup>, ConnectorError>;
    async fn users(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourceUser>, ConnectorError>;
    async fn machines(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourceMachine>, ConnectorError>;
    async fn plans(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourcePlan>, ConnectorError>;
    /// A backup user's password, read at migration time and never stored.
    async fn user_password(&self, user_id: &str) -> Result<SecretString, ConnectorError>;
}

pub struct SourceClient {
    endpoint: Endpoint,
    login: String,
    password: SecretString,
}

impl SourceClient {
    pub fn new(
        base: &str,
        login: &str,
        password: SecretString,
        policy: HttpPolicy,
    ) -> Result<Self, ConnectorError> {
        let throttle = Throttle::new(&policy);
        Ok(Self {
            endpoint: Endpoint::new(SYSTEM, base, policy, throttle)?,
            login: login.to_string(),
            password,
        })
    }

    async fn page<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<T>, ConnectorError> {
        let mut query = vec![("limit", limit.clamp(1, MAX_PAGE).to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_string()));
        }
        self.get_json(kind, &format!("/api/source/v1/{kind}"), &query)
            .await
    }
}

impl JsonApi for SourceClient {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The partner's login (HTTP Basic).
    async fn credentials(&self) -> Result<Credentials<'_>, ConnectorError> {
        Ok(Credentials::Basic(&self.login, &self.password))
    }
}

#[async_trait]
impl SourceApi for SourceClient {
    async fn account(&self) -> Result<SourceAccount, ConnectorError> {
        self.get_json("account", "/api/source/v1/account", &[])
            .await
    }

    async fn groups(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourceGroup>, ConnectorError> {
        self.page("groups", cursor, limit).await
    }

    async fn users(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourceUser>, ConnectorError> {
        self.page("users", cursor, limit).await
    }

    async fn machines(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourceMachine>, ConnectorError> {
        self.page("machines", cursor, limit).await
    }

    async fn plans(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SourcePage<SourcePlan>, ConnectorError> {
        self.page("plans", cursor, limit).await
    }

    async fn user_password(&self, user_id: &str) -> Result<SecretString, ConnectorError> {
        #[derive(Deserialize)]
        struct Answer {
            password: SecretString,
        }
        let path = format!("/api/source/v1/users/{}/password", urlencode(user_id));
        let answer: Answer = self.get_json("user_password", &path, &[]).await?;
        Ok(answer.password)
    }
}

fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Walks every page of one kind, handing each page to `visit` and dropping it
/// before the next is fetched: memory stays one page whatever the install base.
pub async fn for_each_page<T, F, Fut>(
    fetch: F,
    mut visit: impl FnMut(Vec<T>),
) -> Result<u64, ConnectorError>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<SourcePage<T>, ConnectorError>>,
{
    let mut cursor: Option<String> = None;
    let mut seen = 0u64;
    loop {
        let page = fetch(cursor.clone()).await?;
        seen += page.items.len() as u64;
        visit(page.items);
        match page.next_cursor {
            // A server that hands back the same cursor would keep us here forever.
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(ConnectorError::Decode(
                    "the same page cursor twice".into(),
                    SYSTEM,
                ));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(seen),
        }
    }
}
