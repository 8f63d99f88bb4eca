//! The cloud's Account Management API v2, as its published document has it
//! (`openapi/acronis-account-management-v2.json`; `docs/cloud-contract.md` says what
//! the platform does where the document is loose): tenants, users, roles,
//! activation, passwords, registration tokens, protection plans.
//!
//! Answers are read leniently: only what the document requires is required, and
//! every value the document allows is accepted (a `root` tenant, a date without
//! a time zone, a token answer without `expires_on`).
//!
//! Creates are never retried blindly: `ensure_tenant` and `ensure_user` look up
//! by `internal_tag` / `external_id` and login before each create, so a create
//! whose answer was lost (a 503 after the commit) is found, not made twice.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

pub use super::offering::{
    Application, OfferingItem, OfferingItemPut, Pricing, PricingMode, Quota,
};
use super::{ConnectorError, Credentials, Endpoint, HttpPolicy, JsonApi, Replay, Throttle, decode};

const SYSTEM: &str = "cloud";
/// A token is renewed when less than this is left of its life.
const TOKEN_MARGIN: Duration = Duration::from_secs(10 * 60);
/// A token is kept at least this long, whatever the clocks say.
const MIN_TOKEN_LIFE: Duration = Duration::from_secs(60);
/// `GET /users?uuids=` and `GET /tenants?uuids=` take at most this many.
const UUIDS_PER_REQUEST: usize = 100;

/// The document's `tenantKind`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TenantKind {
    /// The platform's own top tenant (an API client of a root admin sees it).
    Root,
    Partner,
    Folder,
    Customer,
    Unit,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Tenant {
    pub id: Uuid,
    pub version: i64,
    pub name: String,
    pub kind: TenantKind,
    /// A string in the document; one that is not a uuid reads as none.
    #[serde(default, deserialize_with = "lenient_uuid")]
    pub parent_id: Option<Uuid>,
    pub internal_tag: Option<String>,
}

fn lenient_uuid<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Uuid>, D::Error> {
    let text: Option<String> = Option::deserialize(deserializer)?;
    Ok(text.and_then(|t| Uuid::parse_str(&t).ok()))
}

/// A date as the document's `item1` pattern allows it: RFC 3339, or without a
/// time zone (then UTC).
pub fn cloud_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc())
}

fn lenient_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    cloud_time(&text).ok_or_else(|| serde::de::Error::custom("a date that is not RFC 3339"))
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NewTenant {
    pub name: String,
    pub parent_id: Uuid,
    pub kind: TenantKind,
    /// Our mapping key: the source group id. Look-ups go by it.
    pub internal_tag: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
pub struct UserContact {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub version: i64,
    pub tenant_id: Uuid,
    pub login: Option<String>,
    #[serde(default)]
    pub activated: bool,
    pub personal_tenant_id: Option<Uuid>,
    pub external_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NewUser {
    pub tenant_id: Uuid,
    pub login: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<UserContact>,
    /// Our mapping key: the source user or group id. Look-ups go by it.
    pub external_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    PartnerAdmin,
    CompanyAdmin,
    BackupUser,
}

impl Role {
    pub fn id(self) -> &'static str {
        match self {
            Role::PartnerAdmin => "partner_admin",
            Role::CompanyAdmin => "company_admin",
            Role::BackupUser => "backup_user",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginStatus {
    Free,
    Taken,
}

/// What the API client's token says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenInfo {
    pub tenant_id: Uuid,
    pub roles: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// An agent registration token (the document's `registrationToken`).
#[derive(Clone, Debug, Deserialize)]
pub struct RegistrationToken {
    /// An integer in the document; kept as its text.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// Reaches only the agent of its machine.
    pub token: SecretString,
    #[serde(deserialize_with = "lenient_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "lenient_time")]
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

/// What the service asks of the cloud.
#[async_trait]
pub trait TargetApi: Send + Sync {
    async fn token_info(&self) -> Result<TokenInfo, ConnectorError>;
    async fn tenant(&self, id: Uuid) -> Result<Tenant, ConnectorError>;
    /// Every child of `parent_id`, all pages.
    async fn children(&self, parent_id: Uuid) -> Result<Vec<Tenant>, ConnectorError>;
    async fn find_tenant_by_tag(
        &self,
        parent_id: Uuid,
        internal_tag: &str,
    ) -> Result<Option<Tenant>, ConnectorError>;
    /// One create attempt; prefer [`TargetApi::ensure_tenant`].
    async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, ConnectorError>;
    /// The tenant tagged `new.internal_tag` under its parent, created if absent.
    async fn ensure_tenant(&self, new: &NewTenant) -> Result<Tenant, ConnectorError>;
    async fn check_login(&self, login: &str) -> Result<LoginStatus, ConnectorError>;
    async fn user(&self, id: Uuid) -> Result<User, ConnectorError>;
    /// The user of `tenant_id` with this `external_id`. (Not by login: a user someone
    /// else made with our planned login is a conflict, never ours to take over.)
    async fn find_user(
        &self,
        tenant_id: Uuid,
        external_id: &str,
    ) -> Result<Option<User>, ConnectorError>;
    /// Every user of a tenant (its own, not its sub-tenants').
    async fn tenant_users(&self, tenant_id: Uuid) -> Result<Vec<User>, ConnectorError>;
    /// One create attempt; prefer [`TargetApi::ensure_user`].
    async fn create_user(&self, new: &NewUser) -> Result<User, ConnectorError>;
    /// The user with `new.external_id` in its tenant, created if absent. A login
    /// taken by any other user is a final 409.
    async fn ensure_user(&self, new: &NewUser) -> Result<User, ConnectorError>;
    /// [`TargetApi::ensure_user`] whose first look-up is `listed`, the tenant's users
    /// listed once for a batch of creates in it (this attempt's own listing). Later
    /// look-ups, after a lost answer or a conflict, ask the target again.
    async fn ensure_user_listed(
        &self,
        new: &NewUser,
        listed: &[User],
    ) -> Result<User, ConnectorError>;
    async fn grant_role(
        &self,
        user: &User,
        role: Role,
        tenant_id: Uuid,
    ) -> Result<(), ConnectorError>;
    async fn send_activation_email(&self, user_id: Uuid) -> Result<(), ConnectorError>;
    async fn set_password(
        &self,
        user_id: Uuid,
        password: &SecretString,
    ) -> Result<(), ConnectorError>;
    /// One create attempt: an error after the request was sent may hide a token made.
    async fn create_registration_token(
        &self,
        tenant_id: Uuid,
        expires_in: Duration,
        scopes: &[String],
    ) -> Result<RegistrationToken, ConnectorError>;
    /// The live registration tokens of a tenant, codes included.
    async fn registration_tokens(
        &self,
        tenant_id: Uuid,
    ) -> Result<Vec<RegistrationToken>, ConnectorError>;
    /// Revokes a registration token; one already gone counts as revoked.
    async fn revoke_registration_token(&self, id: &str) -> Result<(), ConnectorError>;
    async fn create_protection_plan(&self, policy: &Value) -> Result<Value, ConnectorError>;
    async fn applications(&self) -> Result<Vec<Application>, ConnectorError>;
    /// Every edition (edition=*).
    async fn offering_items(&self, tenant_id: Uuid) -> Result<Vec<OfferingItem>, ConnectorError>;
    async fn available_for_child(
        &self,
        parent_id: Uuid,
        kind: TenantKind,
    ) -> Result<Vec<OfferingItem>, ConnectorError>;
    /// PUT; the answer's items.
    async fn set_offering_items(
        &self,
        tenant_id: Uuid,
        items: &[OfferingItemPut],
    ) -> Result<Vec<OfferingItem>, ConnectorError>;
    async fn pricing(&self, tenant_id: Uuid) -> Result<Pricing, ConnectorError>;
    async fn set_pricing(
        &self,
        tenant_id: Uuid,
        mode: PricingMode,
        version: i64,
    ) -> Result<Pricing, ConnectorError>;
}

struct CachedToken {
    value: SecretString,
    renew_at: Instant,
}

pub struct TargetClient {
    endpoint: Endpoint,
    client_id: String,
    client_secret: SecretString,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl TargetClient {
    /// `base` is the datacenter URL; `/api/2` is added.
    pub fn new(
        base: &str,
        client_id: &str,
        client_secret: SecretString,
        policy: HttpPolicy,
    ) -> Result<Self, ConnectorError> {
        let throttle = Throttle::new(&policy);
        Self::throttled(base, client_id, client_secret, policy, throttle)
    }

    /// A client whose pace (`policy`'s rate and concurrency) applies inside `outer`'s.
    pub fn paced_within(
        base: &str,
        client_id: &str,
        client_secret: SecretString,
        policy: HttpPolicy,
        outer: &Throttle,
    ) -> Result<Self, ConnectorError> {
        let throttle = Throttle::new(&policy).within(outer);
        Self::throttled(base, client_id, client_secret, policy, throttle)
    }

    fn throttled(
        base: &str,
        client_id: &str,
        client_secret: SecretString,
        policy: HttpPolicy,
        throttle: Throttle,
    ) -> Result<Self, ConnectorError> {
        Ok(Self {
            endpoint: Endpoint::new(SYSTEM, base, policy, throttle)?,
            client_id: client_id.to_string(),
            client_secret,
            token: tokio::sync::Mutex::new(None),
        })
    }

    pub fn throttle(&self) -> &Throttle {
        &self.endpoint.throttle
    }

    /// A token with at least [`TOKEN_MARGIN`] to live, fetched once for concurrent callers.
    async fn access_token(&self) -> Result<SecretString, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        /// The document's `token`: only `access_token`, `token_type` and `id_token` are required.
        #[derive(Deserialize)]
        struct Answer {
            access_token: SecretString,
            expires_on: Option<i64>,
            expires_in: Option<i64>,
        }
        let url = self.url("/api/2/idp/token");
        let reply = self
            .endpoint
            .send("get_token", Replay::Safe, || {
                self.http()
                    .post(&url)
                    .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                    .form(&[("grant_type", "client_credentials")])
            })
            .await?;
        let answer: Answer = decode(SYSTEM, &reply.body)?;
        let exp = token_claims(&answer.access_token).and_then(|c| c["exp"].as_i64());
        let lifetime = token_lifetime(
            answer.expires_in,
            answer.expires_on,
            exp,
            Utc::now().timestamp(),
        );
        let renew_at = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN).max(lifetime / 2);
        *cached = Some(CachedToken {
            value: answer.access_token.clone(),
            renew_at,
        });
        Ok(answer.access_token)
    }

    /// Drops the cached token if it is still `refused` (another task may have renewed it).
    async fn forget_token(&self, refused: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == refused.expose_secret())
        {
            *cached = None;
        }
    }

    /// One create attempt: POSTed, and sent again only when the cloud surely
    /// did nothing (a lost answer is found by a look-up instead).
    async fn create<T: serde::de::DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        operation: &'static str,
        path: &str,
        body: &B,
    ) -> Result<T, ConnectorError> {
        self.send_json(
            operation,
            Replay::OnlyIfNotProcessed,
            Method::POST,
            path,
            body,
        )
        .await
    }

    async fn users_by_ids(&self, ids: &[Uuid]) -> Result<Vec<User>, ConnectorError> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<User>,
        }
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(UUIDS_PER_REQUEST) {
            let uuids = chunk
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let page: Items = self
                .get_json("get_users", "/api/2/users", &[("uuids", uuids)])
                .await?;
            users.extend(page.items);
        }
        Ok(users)
    }

    /// Looks up, and creates only when the look-up finds nothing. A create that
    /// fails transiently may still have happened, so the next round looks up again.
    async fn look_up_then_create<T, Find, FindFut, Create, CreateFut>(
        &self,
        find: Find,
        create: Create,
    ) -> Result<T, ConnectorError>
    where
        Find: Fn() -> FindFut,
        FindFut: Future<Output = Result<Option<T>, ConnectorError>>,
        Create: Fn() -> CreateFut,
        CreateFut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut delays = self.endpoint.policy.backoff();
        let mut last = None;
        loop {
            if let Some(found) = find().await? {
                return Ok(found);
            }
            match create().await {
                Ok(created) => return Ok(created),
                Err(e) if e.is_transient() => {
                    let Some(delay) = delays.next() else {
                        return Err(last.unwrap_or(e));
                    };
                    tokio::time::sleep(delay).await;
                    last = Some(e);
                }
                // An earlier create of ours may have landed after its look-up (a lost answer,
                // a timed-out request the server finished later): the conflict is ours if
                // the look-up now finds it. Otherwise it is final (a login someone else holds).
                Err(e) if e.is_status(409) => return find().await?.ok_or(e),
                Err(e) => return Err(e),
            }
        }
    }
}

impl JsonApi for TargetClient {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// An access token of the API client, fetched when none is cached or it runs out.
    async fn credentials(&self) -> Result<Credentials<'_>, ConnectorError> {
        Ok(Credentials::Bearer(self.access_token().await?))
    }

    async fn forget(&self, token: &SecretString) {
        self.forget_token(token).await
    }
}

/// How long a token answer's token lives, from the first the answer gives of
/// `expires_in`, `expires_on` and the token's own `exp` (the last two are the
/// issuer's clock: a skewed local clock must not make every call fetch a token).
/// Without any, or with one already past, [`MIN_TOKEN_LIFE`].
fn token_lifetime(
    expires_in: Option<i64>,
    expires_on: Option<i64>,
    exp: Option<i64>,
    now: i64,
) -> Duration {
    let secs = expires_in
        .or_else(|| expires_on.or(exp).map(|at| at - now))
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)).max(MIN_TOKEN_LIFE)
}

/// The user with this `external_id`.
fn matching_user(users: &[User], external_id: &str) -> Option<User> {
    users
        .iter()
        .find(|u| u.external_id.as_deref() == Some(external_id))
        .cloned()
}

/// The claims of our own token, read without verification: it came straight from the issuer.
fn token_claims(token: &SecretString) -> Option<Value> {
    let payload = token.expose_secret().split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[async_trait]
impl TargetApi for TargetClient {
    async fn token_info(&self) -> Result<TokenInfo, ConnectorError> {
        let token = self.access_token().await?;
        let claims = token_claims(&token).ok_or_else(|| {
            ConnectorError::Decode("the access token is not a JWT".into(), SYSTEM)
        })?;
        let scopes = claims["scope"].as_array().cloned().unwrap_or_default();
        let tenant_id = scopes
            .iter()
            .find_map(|s| s["tuid"].as_str().and_then(|t| Uuid::parse_str(t).ok()))
            .ok_or_else(|| {
                ConnectorError::Decode("the access token names no tenant".into(), SYSTEM)
            })?;
        let roles = scopes
            .iter()
            .filter_map(|s| s["role"].as_str().map(str::to_string))
            .collect();
        let expires_at = DateTime::from_timestamp(claims["exp"].as_i64().unwrap_or_default(), 0)
            .unwrap_or_default();
        Ok(TokenInfo {
            tenant_id,
            roles,
            expires_at,
        })
    }

    async fn tenant(&self, id: Uuid) -> Result<Tenant, ConnectorError> {
        self.get_json("get_tenant", &format!("/api/2/tenants/{id}"), &[])
            .await
    }

    async fn children(&self, parent_id: Uuid) -> Result<Vec<Tenant>, ConnectorError> {
        #[derive(Deserialize)]
        struct Page {
            items: Vec<Tenant>,
            #[serde(default)]
            paging: Value,
        }
        let mut tenants = Vec::new();
        let mut after: Option<String> = None;
        loop {
            // The cursor encodes the listing's filter: a next page is asked by `after` alone.
            let query = match &after {
                Some(after) => vec![("after", after.clone())],
                None => vec![("parent_id", parent_id.to_string())],
            };
            let page: Page = self
                .get_json("list_tenants", "/api/2/tenants", &query)
                .await?;
            let empty = page.items.is_empty();
            tenants.extend(page.items);
            match page.paging["cursors"]["after"].as_str() {
                Some(next) if after.as_deref() == Some(next) => {
                    return Err(ConnectorError::Decode(
                        "the same page cursor twice".into(),
                        SYSTEM,
                    ));
                }
                Some(next) if !empty && !next.is_empty() => after = Some(next.to_string()),
                _ => return Ok(tenants),
            }
        }
    }

    async fn find_tenant_by_tag(
        &self,
        parent_id: Uuid,
        internal_tag: &str,
    ) -> Result<Option<Tenant>, ConnectorError> {
        Ok(self
            .children(parent_id)
            .await?
            .into_iter()
            .find(|t| t.internal_tag.as_deref() == Some(internal_tag)))
    }

    async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, ConnectorError> {
        self.create("create_tenant", "/api/2/tenants", new).await
    }

    async fn ensure_tenant(&self, new: &NewTenant) -> Result<Tenant, ConnectorError> {
        self.look_up_then_create(
            || self.find_tenant_by_tag(new.parent_id, &new.internal_tag),
            || self.create_tenant(new),
        )
        .await
    }

    async fn check_login(&self, login: &str) -> Result<LoginStatus, ConnectorError> {
        let url = self.url("/api/2/users/check_login");
        // Only 204 is documented as "free"; what answers "taken" is unconfirmed, so
        // any other success counts as taken (a changed login is safe, a conflict is not).
        match self
            .call("check_login", Replay::Safe, || {
                self.http().get(&url).query(&[("username", login)])
            })
            .await
        {
            Ok(reply) if reply.status == reqwest::StatusCode::NO_CONTENT => Ok(LoginStatus::Free),
            Ok(_) => Ok(LoginStatus::Taken),
            Err(e) if e.is_status(409) => Ok(LoginStatus::Taken),
            Err(e) => Err(e),
        }
    }

    async fn user(&self, id: Uuid) -> Result<User, ConnectorError> {
        self.get_json("get_user", &format!("/api/2/users/{id}"), &[])
            .await
    }

    async fn find_user(
        &self,
        tenant_id: Uuid,
        external_id: &str,
    ) -> Result<Option<User>, ConnectorError> {
        Ok(matching_user(
            &self.tenant_users(tenant_id).await?,
            external_id,
        ))
    }

    async fn tenant_users(&self, tenant_id: Uuid) -> Result<Vec<User>, ConnectorError> {
        #[derive(Deserialize)]
        struct Ids {
            items: Vec<Uuid>,
        }
        let ids: Ids = self
            .get_json(
                "list_tenant_users",
                &format!("/api/2/tenants/{tenant_id}/users"),
                &[],
            )
            .await?;
        self.users_by_ids(&ids.items).await
    }

    async fn create_user(&self, new: &NewUser) -> Result<User, ConnectorError> {
        self.create("create_user", "/api/2/users", new).await
    }

    async fn ensure_user(&self, new: &NewUser) -> Result<User, ConnectorError> {
        // By `external_id` in the tenant, every time: a free login does not prove the user
        // is absent, since an earlier attempt may have created it under another login.
        self.look_up_then_create(
            || self.find_user(new.tenant_id, &new.external_id),
            || self.create_user(new),
        )
        .await
    }

    async fn ensure_user_listed(
        &self,
        new: &NewUser,
        listed: &[User],
    ) -> Result<User, ConnectorError> {
        let first = std::sync::atomic::AtomicBool::new(true);
        let find = || {
            let listed = first
                .swap(false, std::sync::atomic::Ordering::SeqCst)
                .then(|| matching_user(listed, &new.external_id));
            async move {
                match listed {
                    Some(found) => Ok(found),
                    None => self.find_user(new.tenant_id, &new.external_id).await,
                }
            }
        };
        self.look_up_then_create(find, || self.create_user(new))
            .await
    }

    async fn grant_role(
        &self,
        user: &User,
        role: Role,
        tenant_id: Uuid,
    ) -> Result<(), ConnectorError> {
        // PUT replaces the user's policies: read them, add ours if missing, write them all.
        let path = format!("/api/2/users/{}/access_policies", user.id);
        let current: Value = self.get_json("get_access_policies", &path, &[]).await?;
        let mut items = current["items"].as_array().cloned().unwrap_or_default();
        if items
            .iter()
            .any(|p| p["role_id"] == role.id() && p["tenant_id"] == tenant_id.to_string())
        {
            return Ok(());
        }
        let nil = Uuid::nil().to_string();
        // The document's PUT body is its read shape (`accessPoliciesList`): every item
        // with its stamps, and the list's `timestamp`. A new item's stamps are ours.
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        items.push(json!({
            "id": nil, "issuer_id": nil, "role_id": role.id(), "tenant_id": tenant_id.to_string(),
            "trustee_id": user.id.to_string(), "trustee_type": "user", "version": 0,
            "created_at": now, "updated_at": now, "deleted_at": null,
        }));
        let url = self.url(&path);
        let body =
            json!({ "timestamp": current["timestamp"].as_str().unwrap_or(&now), "items": items });
        self.call("set_access_policies", Replay::Safe, || {
            self.http().put(&url).json(&body)
        })
        .await
        .map(drop)
    }

    async fn send_activation_email(&self, user_id: Uuid) -> Result<(), ConnectorError> {
        let url = self.url(&format!("/api/2/users/{user_id}/send-activation-email"));
        // The document declares no body for it.
        self.call("send_activation_email", Replay::OnlyIfNotProcessed, || {
            self.http().post(&url)
        })
        .await
        .map(drop)
    }

    async fn set_password(
        &self,
        user_id: Uuid,
        password: &SecretString,
    ) -> Result<(), ConnectorError> {
        let url = self.url(&format!("/api/2/users/{user_id}/password"));
        // Setting the same password twice is harmless.
        self.call("set_password", Replay::Safe, || {
            self.http()
                .post(&url)
                .json(&json!({"password": password.expose_secret()}))
        })
        .await
        .map(drop)
    }

    async fn create_registration_token(
        &self,
        tenant_id: Uuid,
        expires_in: Duration,
        scopes: &[String],
    ) -> Result<RegistrationToken, ConnectorError> {
        let body = json!({"expires_in": expires_in.as_secs(), "scopes": scopes});
        // A lost answer would leave a live token nobody knows of: never sent twice blindly.
        let path = format!("/api/2/tenants/{tenant_id}/registration_tokens");
        self.create("create_registration_token", &path, &body).await
    }

    async fn registration_tokens(
        &self,
        tenant_id: Uuid,
    ) -> Result<Vec<RegistrationToken>, ConnectorError> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<RegistrationToken>,
        }
        let listed: Items = self
            .get_json(
                "list_registration_tokens",
                &format!("/api/2/tenants/{tenant_id}/registration_tokens"),
                &[],
            )
            .await?;
        Ok(listed.items)
    }

    async fn revoke_registration_token(&self, id: &str) -> Result<(), ConnectorError> {
        let url = self.url(&format!("/api/2/registration_tokens/{id}"));
        // Revoking twice is harmless: retried on any transient failure, and a 404 means it is gone.
        match self
            .call("revoke_registration_token", Replay::Safe, || {
                self.http().delete(&url)
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_status(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_protection_plan(&self, policy: &Value) -> Result<Value, ConnectorError> {
        self.create(
            "create_protection_plan",
            "/api/policy_management/v4/policies",
            policy,
        )
        .await
    }

    async fn applications(&self) -> Result<Vec<Application>, ConnectorError> {
        self.fetch_applications().await
    }

    async fn offering_items(&self, tenant_id: Uuid) -> Result<Vec<OfferingItem>, ConnectorError> {
        self.fetch_offering_items(tenant_id).await
    }

    async fn available_for_child(
        &self,
        parent_id: Uuid,
        kind: TenantKind,
    ) -> Result<Vec<OfferingItem>, ConnectorError> {
        self.fetch_available_for_child(parent_id, kind).await
    }

    async fn set_offering_items(
        &self,
        tenant_id: Uuid,
        items: &[OfferingItemPut],
    ) -> Result<Vec<OfferingItem>, ConnectorError> {
        self.put_offering_items(tenant_id, items).await
    }

    async fn pricing(&self, tenant_id: Uuid) -> Result<Pricing, ConnectorError> {
        self.fetch_pricing(tenant_id).await
    }

    async fn set_pricing(
        &self,
        tenant_id: Uuid,
        mode: PricingMode,
        version: i64,
    ) -> Result<Pricing, ConnectorError> {
        self.put_pricing(tenant_id, mode, version).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lives_as_long_as_the_first_expiry_the_answer_gives() {
        let now = 1_000_000;
        let cases = [
            ((Some(7200), Some(now + 60), None), 7200),
            ((None, Some(now + 3600), Some(now + 60)), 3600),
            ((None, None, Some(now + 1800)), 1800),
            ((None, None, None), MIN_TOKEN_LIFE.as_secs()),
            ((None, Some(now - 10), None), MIN_TOKEN_LIFE.as_secs()),
            ((Some(5), None, None), MIN_TOKEN_LIFE.as_secs()),
        ];
        for ((expires_in, expires_on, exp), secs) in cases {
            assert_eq!(
                token_lifetime(expires_in, expires_on, exp, now),
                Duration::from_secs(secs),
                "{expires_in:?} {expires_on:?} {exp:?}"
            );
        }
    }

    #[test]
    fn dates_are_read_with_or_without_a_time_zone() {
        let utc = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("date")
                .with_timezone(&Utc)
        };
        let cases = [
            ("2022-04-05T18:46:45Z", Some(utc("2022-04-05T18:46:45Z"))),
            ("2022-04-05T18:46:45", Some(utc("2022-04-05T18:46:45Z"))),
            (
                "2022-04-05T18:46:45.250",
                Some(utc("2022-04-05T18:46:45.250Z")),
            ),
            (
                "2022-04-05T20:46:45+02:00",
                Some(utc("2022-04-05T18:46:45Z")),
            ),
            ("05/04/2022", None),
        ];
        for (text, expected) in cases {
            assert_eq!(cloud_time(text), expected, "{text}");
        }
    }

    #[test]
    fn answers_the_document_allows_are_read() {
        // The document's own example of a registration token: an integer id, dates without a zone in other answers.
        let token: RegistrationToken = serde_json::from_value(json!({
            "id": 2, "token": "27F9-5234-41C3", "tenant_id": "11", "tenant_uuid": "4b07e4a1-a49b-4d4e-b8f2-253f1fef98ad",
            "created_at": "2022-04-02T18:46:45", "expires_at": "2022-04-05T18:46:45Z",
            "scopes": ["urn:acronis.com:tenant-id:734fe814-748a-41cb-8a94-60e18fb3c442:backup_agent_admin"],
        }))
        .expect("registration token");
        assert_eq!(
            (token.id.as_str(), token.expires_at - token.created_at),
            ("2", chrono::Duration::days(3))
        );
        let root: Tenant = serde_json::from_value(json!({"id": Uuid::nil(), "version": 3, "name": "Platform", "kind": "root", "parent_id": "", "internal_tag": null}))
            .expect("root tenant");
        assert_eq!((root.kind, root.parent_id), (TenantKind::Root, None));
        let refused = super::super::error::remote_error(
            SYSTEM,
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"error": "access_denied", "error_description": "wrong secret"}"#,
        );
        assert_eq!(
            (
                refused.remote_code(),
                refused.to_string().contains("wrong secret")
            ),
            (Some("access_denied"), true)
        );
    }
}
