//! The cloud's objects, in memory behind one lock: tenants, users with their
//! access policies, agent registration tokens and protection plans.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::agents::RegisteredAgent;
use super::errors::{CloudError, CloudResult};
use super::offering::Offerings;
use super::pricing::Pricing;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantKind {
    Partner,
    Folder,
    Customer,
    Unit,
}

impl TenantKind {
    /// The hierarchy: partners under partners; folders and customers under partners or
    /// folders; units under customers or units.
    pub fn may_be_child_of(self, parent: TenantKind) -> bool {
        use TenantKind::*;
        match self {
            Partner => parent == Partner,
            Folder | Customer => matches!(parent, Partner | Folder),
            Unit => matches!(parent, Customer | Unit),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TenantKind::Partner => "partner",
            TenantKind::Folder => "folder",
            TenantKind::Customer => "customer",
            TenantKind::Unit => "unit",
        }
    }
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub struct Tenant {
    pub id: Uuid,
    /// Creation order: the listing order and the paging cursor.
    pub seq: u64,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub kind: TenantKind,
    pub parent_id: Option<Uuid>,
    pub contact: Value,
    /// The id of its primary contact object.
    pub contact_id: Uuid,
    pub enabled: bool,
    pub customer_id: Option<String>,
    pub internal_tag: Option<String>,
    pub language: String,
    /// The other optional fields the API accepts, echoed as sent.
    pub extra: Map<String, Value>,
}

impl Tenant {
    /// The document's `tenant` object, which also satisfies the full variant of a
    /// `tenantBatch` item (lod=full): every field either requires is present.
    pub fn to_json(&self, has_children: bool, platform: &Platform) -> Value {
        let contact = self.contact.as_object().cloned().unwrap_or_default();
        let text = |key: &str| contact.get(key).cloned().unwrap_or(Value::Null);
        let mut full_contact = contact.clone();
        full_contact.insert("id".into(), json!(self.contact_id));
        full_contact.insert("created_at".into(), json!(timestamp(self.created_at)));
        full_contact.insert("updated_at".into(), json!(timestamp(self.updated_at)));
        full_contact.insert(
            "types".into(),
            contact.get("types").cloned().unwrap_or_else(|| json!([])),
        );
        full_contact.insert(
            "email".into(),
            contact.get("email").cloned().unwrap_or_else(|| json!("")),
        );
        full_contact.insert("firstname".into(), text("firstname"));
        full_contact.insert("lastname".into(), text("lastname"));
        let mut object = json!({
            "id": self.id,
            "version": self.version,
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "deleted_at": null,
            "name": self.name,
            "kind": self.kind,
            // The top-level partners' parent is the platform's root tenant.
            "parent_id": self.parent_id.unwrap_or(platform.root_tenant_id),
            "contact": full_contact,
            "contacts": [],
            "offering_items": [],
            "enabled": self.enabled,
            "customer_type": "default",
            "customer_id": self.customer_id,
            "brand_id": null,
            "brand_uuid": platform.brand_uuid,
            "brand_enabled": false,
            "barrier": 0,
            "internal_tag": self.internal_tag,
            "language": self.language,
            "has_children": has_children,
            "default_idp_id": platform.default_idp_id,
            "update_lock": {"enabled": false, "owner_id": null},
            "ancestral_access": true,
            "mfa_status": "disabled",
            "pricing_mode": "production",
        });
        if let Some(map) = object.as_object_mut() {
            for (key, value) in &self.extra {
                match (key.as_str(), value) {
                    // Sent as `{enabled}`; answered with its owner too.
                    ("update_lock", Value::Object(lock)) => {
                        map.insert(key.clone(), json!({"enabled": lock.get("enabled").cloned().unwrap_or(json!(false)), "owner_id": null}));
                    }
                    _ => {
                        map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        object
    }
}

/// What every tenant answer names but the simulator does not model: the platform's
/// root tenant (parent of the top-level partners), its default brand and identity provider.
pub struct Platform {
    pub root_tenant_id: Uuid,
    pub brand_uuid: Uuid,
    pub default_idp_id: Uuid,
}

#[derive(Clone)]
pub struct AccessPolicy {
    pub id: Uuid,
    pub issuer_id: Uuid,
    pub role_id: String,
    pub tenant_id: Uuid,
    pub trustee_id: Uuid,
    pub trustee_type: String,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AccessPolicy {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "version": self.version,
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "deleted_at": null,
            "trustee_id": self.trustee_id,
            "trustee_type": self.trustee_type,
            "issuer_id": self.issuer_id,
            "tenant_id": self.tenant_id,
            "role_id": self.role_id,
        })
    }
}

/// The document's `accessPoliciesList`.
pub fn access_policies_json(policies: &[AccessPolicy]) -> Value {
    json!({ "timestamp": timestamp(Utc::now()), "items": policies.iter().map(AccessPolicy::to_json).collect::<Vec<_>>() })
}

pub struct User {
    pub id: Uuid,
    pub seq: u64,
    pub version: u64,
    pub tenant_id: Uuid,
    pub login: Option<String>,
    pub contact: Option<Value>,
    pub enabled: bool,
    pub language: String,
    pub business_types: Option<Value>,
    pub notifications: Option<Value>,
    pub external_id: Option<String>,
    pub idp_id: Option<Uuid>,
    pub personal_tenant_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub activated: bool,
    pub activation_emails_sent: u32,
    /// `salt:sha256(salt + password)` in hex; the password itself is never kept.
    pub password_hash: Option<String>,
    pub access_policies: Vec<AccessPolicy>,
}

impl User {
    /// The document's `user` object (a single user's answer).
    pub fn to_json(&self) -> Value {
        let mut object = json!({
            "id": self.id,
            "version": self.version,
            "tenant_id": self.tenant_id,
            // A user created without a login gets one made up (the document requires one in every answer).
            "login": self.login.clone().unwrap_or_else(|| format!("user-{}", self.id.simple())),
            "contact": self.contact.clone().unwrap_or_else(|| json!({})),
            "activated": self.activated,
            "enabled": self.enabled,
            "language": self.language,
            "business_types": self.business_types.clone().unwrap_or_else(|| json!([])),
            "notifications": self.notifications.clone().unwrap_or_else(|| json!([])),
            "personal_tenant_id": self.personal_tenant_id,
            "access_policies": self.access_policies.iter().map(AccessPolicy::to_json).collect::<Vec<_>>(),
            "mfa_status": "disabled",
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "deleted_at": null,
        });
        // Optional fields without a null: left out when unset.
        if let Some(map) = object.as_object_mut() {
            if let Some(external_id) = &self.external_id {
                map.insert("external_id".into(), json!(external_id));
            }
            if let Some(idp_id) = self.idp_id {
                map.insert("idp_id".into(), json!(idp_id));
            }
        }
        object
    }

    /// The full variant of a `userBatch` item (lod=full): the `user` object with the
    /// origin fields it requires (null here; a single user's answer leaves them out,
    /// since there they may not be null).
    pub fn to_batch_json(&self) -> Value {
        let mut object = self.to_json();
        if let Some(map) = object.as_object_mut() {
            for key in ["origin_id", "origin_external_id", "disable_after"] {
                map.insert(key.into(), Value::Null);
            }
        }
        object
    }
}

pub struct RegistrationToken {
    /// The document's ids are integers.
    pub id: u64,
    pub token: String,
    pub tenant_id: Uuid,
    /// The owner tenant's numeric id.
    pub tenant_number: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub scopes: Vec<String>,
}

impl RegistrationToken {
    /// The document's `registrationToken`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "token": self.token,
            "tenant_id": self.tenant_number.to_string(),
            "tenant_uuid": self.tenant_id,
            "created_at": timestamp(self.created_at),
            "expires_at": timestamp(self.expires_at),
            "scopes": self.scopes,
        })
    }
}

/// The live registration tokens, by id (creation order), owner tenant and code.
/// Each operation of the routes is a look-up: scanned whole, 133,000 tokens at
/// `large` made each create, listing and agent registration cost milliseconds of
/// the simulator, which ran in the bench's process beside the fleet.
#[derive(Default)]
pub struct RegistrationTokens {
    by_id: BTreeMap<u64, RegistrationToken>,
    by_tenant: HashMap<Uuid, BTreeSet<u64>>,
    by_code: HashMap<String, u64>,
    /// No token expires before this (`None`: there is none).
    earliest_expiry: Option<DateTime<Utc>>,
}

impl RegistrationTokens {
    pub fn insert(&mut self, token: RegistrationToken) {
        self.remove(token.id);
        self.earliest_expiry = Some(
            self.earliest_expiry
                .map_or(token.expires_at, |e| e.min(token.expires_at)),
        );
        self.by_tenant
            .entry(token.tenant_id)
            .or_default()
            .insert(token.id);
        self.by_code.insert(token.token.clone(), token.id);
        self.by_id.insert(token.id, token);
    }

    pub fn remove(&mut self, id: u64) -> Option<RegistrationToken> {
        let token = self.by_id.remove(&id)?;
        if let Some(ids) = self.by_tenant.get_mut(&token.tenant_id) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_tenant.remove(&token.tenant_id);
            }
        }
        if self.by_code.get(&token.token) == Some(&id) {
            self.by_code.remove(&token.token);
        }
        Some(token)
    }

    pub fn get(&self, id: u64) -> Option<&RegistrationToken> {
        self.by_id.get(&id)
    }

    /// The token whose code is `code`.
    pub fn by_code(&self, code: &str) -> Option<&RegistrationToken> {
        self.by_code.get(code).and_then(|id| self.by_id.get(id))
    }

    /// Every token, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &RegistrationToken> {
        self.by_id.values()
    }

    /// The tokens of `tenant_id`, oldest first.
    pub fn of_tenant(&self, tenant_id: Uuid) -> impl Iterator<Item = &RegistrationToken> {
        self.by_tenant
            .get(&tenant_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }

    /// Drops the tokens expired at `now` (a look at one time when none is).
    pub fn drop_expired(&mut self, now: DateTime<Utc>) {
        if self.earliest_expiry.is_none_or(|e| e > now) {
            return;
        }
        let expired: Vec<u64> = self
            .by_id
            .values()
            .filter(|t| t.expires_at <= now)
            .map(|t| t.id)
            .collect();
        for id in expired {
            self.remove(id);
        }
        self.earliest_expiry = self.by_id.values().map(|t| t.expires_at).min();
    }

    /// Drops the tokens of `tenant_id` (a deleted tenant).
    pub fn drop_tenant(&mut self, tenant_id: Uuid) {
        let ids: Vec<u64> = self.of_tenant(tenant_id).map(|t| t.id).collect();
        for id in ids {
            self.remove(id);
        }
    }
}

pub struct ProtectionPlan {
    pub id: Uuid,
    pub seq: u64,
    /// The tenant of the caller that created it.
    pub tenant_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub policy: Value,
}

impl ProtectionPlan {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "tenant_id": self.tenant_id,
            "created_at": timestamp(self.created_at),
            "subject": {"policy": self.policy},
        })
    }
}

pub struct Store {
    pub tenants: HashMap<Uuid, Tenant>,
    /// Children of each tenant, in creation order.
    pub children: HashMap<Uuid, Vec<Uuid>>,
    pub users: HashMap<Uuid, User>,
    /// Lower-cased login -> user.
    pub logins: HashMap<String, Uuid>,
    /// Live registration tokens by id (expired ones are dropped, see [`Store::drop_expired_tokens`]).
    pub registration_tokens: RegistrationTokens,
    pub policies: HashMap<Uuid, ProtectionPlan>,
    /// Offering item settings of tenants and personal tenants (see [`super::offering`]).
    pub offering: Offerings,
    /// Pricing of the tenants whose pricing was set (see [`super::pricing`]).
    pub pricing: HashMap<Uuid, Pricing>,
    /// Personal tenant -> its user.
    pub personal_tenants: HashMap<Uuid, Uuid>,
    /// Registered agents by machine id (see [`super::agents`]).
    pub agents: HashMap<String, RegisteredAgent>,
    pub platform: Platform,
    next_seq: u64,
    next_token_id: u64,
    rng: ChaCha8Rng,
}

impl Store {
    pub fn new(seed: u64) -> Self {
        let mut store = Self {
            tenants: HashMap::new(),
            children: HashMap::new(),
            users: HashMap::new(),
            logins: HashMap::new(),
            registration_tokens: RegistrationTokens::default(),
            policies: HashMap::new(),
            offering: HashMap::new(),
            pricing: HashMap::new(),
            personal_tenants: HashMap::new(),
            agents: HashMap::new(),
            platform: Platform {
                root_tenant_id: Uuid::nil(),
                brand_uuid: Uuid::nil(),
                default_idp_id: Uuid::nil(),
            },
            next_seq: 1,
            next_token_id: 1,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        store.platform = Platform {
            root_tenant_id: store.new_id(),
            brand_uuid: store.new_id(),
            default_idp_id: store.new_id(),
        };
        store
    }

    pub fn next_token_id(&mut self) -> u64 {
        let id = self.next_token_id;
        self.next_token_id += 1;
        id
    }

    /// Registration tokens live until they expire; then they are gone.
    pub fn drop_expired_tokens(&mut self, now: DateTime<Utc>) {
        self.registration_tokens.drop_expired(now);
    }

    /// A v4 uuid from the seeded generator, so a run is reproducible.
    pub fn new_id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }

    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// `XXXX-XXXX-XXXX` of upper-case letters and digits.
    pub fn registration_code(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let groups: Vec<String> = (0..3)
            .map(|_| {
                (0..4)
                    .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
                    .collect()
            })
            .collect();
        groups.join("-")
    }

    pub fn random_hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.rng.random::<u8>()))
            .collect()
    }

    pub fn has_children(&self, id: Uuid) -> bool {
        self.children.get(&id).is_some_and(|c| !c.is_empty())
    }

    pub fn tenant_json(&self, tenant: &Tenant) -> Value {
        let mut object = tenant.to_json(self.has_children(tenant.id), &self.platform);
        object["pricing_mode"] = json!(self.pricing_of(tenant).mode);
        object
    }

    /// Whether `id` is `root` or one of its descendants.
    pub fn in_subtree(&self, root: Uuid, id: Uuid) -> bool {
        let mut current = Some(id);
        while let Some(at) = current {
            if at == root {
                return true;
            }
            current = self.tenants.get(&at).and_then(|t| t.parent_id);
        }
        false
    }

    /// The tenant `id` when the caller (a partner admin of `caller`) may see it.
    pub fn visible_tenant(&self, caller: Uuid, id: Uuid) -> CloudResult<&Tenant> {
        let tenant = self
            .tenants
            .get(&id)
            .ok_or_else(CloudError::tenant_not_found)?;
        if self.in_subtree(caller, id) {
            Ok(tenant)
        } else {
            Err(CloudError::access_denied())
        }
    }

    pub fn visible_user(&self, caller: Uuid, id: Uuid) -> CloudResult<&User> {
        let user = self
            .users
            .get(&id)
            .ok_or_else(|| CloudError::not_found("User"))?;
        if self.in_subtree(caller, user.tenant_id) {
            Ok(user)
        } else {
            Err(CloudError::access_denied())
        }
    }

    /// A sibling under `parent` (other than `except`) with this name, compared trimmed
    /// and case-insensitively.
    pub fn sibling_named(&self, parent: Option<Uuid>, name: &str, except: Option<Uuid>) -> bool {
        let wanted = name.trim().to_lowercase();
        let same = |t: &Tenant| Some(t.id) != except && t.name.trim().to_lowercase() == wanted;
        match parent {
            Some(parent) => self
                .children
                .get(&parent)
                .is_some_and(|ids| ids.iter().filter_map(|id| self.tenants.get(id)).any(same)),
            None => self
                .tenants
                .values()
                .filter(|t| t.parent_id.is_none())
                .any(same),
        }
    }

    pub fn insert_tenant(&mut self, tenant: Tenant) {
        if let Some(parent) = tenant.parent_id {
            self.children.entry(parent).or_default().push(tenant.id);
        }
        self.tenants.insert(tenant.id, tenant);
    }

    /// Removes a tenant without children, with its users and registration tokens.
    pub fn remove_tenant(&mut self, id: Uuid) {
        let Some(tenant) = self.tenants.remove(&id) else {
            return;
        };
        if let Some(parent) = tenant.parent_id
            && let Some(siblings) = self.children.get_mut(&parent)
        {
            siblings.retain(|c| *c != id);
        }
        self.children.remove(&id);
        let users: Vec<Uuid> = self
            .users
            .values()
            .filter(|u| u.tenant_id == id)
            .map(|u| u.id)
            .collect();
        for user in users {
            if let Some(removed) = self.users.remove(&user) {
                self.personal_tenants.remove(&removed.personal_tenant_id);
                self.offering.remove(&removed.personal_tenant_id);
                if let Some(login) = removed.login {
                    self.logins.remove(&login.to_lowercase());
                }
            }
        }
        self.offering.remove(&id);
        self.pricing.remove(&id);
        self.agents.retain(|_, a| a.tenant_id != id);
        self.registration_tokens.drop_tenant(id);
    }

    /// `root` and its descendants, in creation order.
    pub fn subtree(&self, root: Uuid) -> Vec<&Tenant> {
        let mut found = Vec::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if let Some(tenant) = self.tenants.get(&id) {
                found.push(tenant);
            }
            if let Some(children) = self.children.get(&id) {
                stack.extend(children.iter().copied());
            }
        }
        found.sort_by_key(|t| t.seq);
        found
    }

    pub fn login_taken(&self, login: &str) -> bool {
        self.logins.contains_key(&login.to_lowercase())
    }

    pub fn insert_user(&mut self, user: User) {
        if let Some(login) = &user.login {
            self.logins.insert(login.to_lowercase(), user.id);
        }
        self.personal_tenants
            .insert(user.personal_tenant_id, user.id);
        self.users.insert(user.id, user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: u64, tenant_id: Uuid, code: &str, expires_at: DateTime<Utc>) -> RegistrationToken {
        RegistrationToken {
            id,
            token: code.into(),
            tenant_id,
            tenant_number: 1,
            created_at: expires_at - chrono::Duration::days(7),
            expires_at,
            scopes: vec![],
        }
    }

    #[test]
    fn registration_tokens_are_found_by_tenant_and_code_and_dropped_when_expired_or_revoked() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let mut tokens = RegistrationTokens::default();
        tokens.insert(token(3, a, "CODE-3", now + chrono::Duration::days(7)));
        tokens.insert(token(1, a, "CODE-1", now + chrono::Duration::seconds(5)));
        tokens.insert(token(2, b, "CODE-2", now + chrono::Duration::days(7)));
        let ids = |it: &RegistrationTokens, t| it.of_tenant(t).map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(&tokens, a), [1, 3]);
        assert_eq!(tokens.all().map(|t| t.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(tokens.by_code("CODE-2").map(|t| t.id), Some(2));

        tokens.drop_expired(now);
        assert_eq!(ids(&tokens, a), [1, 3], "none expired yet");
        tokens.drop_expired(now + chrono::Duration::seconds(6));
        assert_eq!(ids(&tokens, a), [3]);
        assert!(tokens.by_code("CODE-1").is_none());

        assert_eq!(tokens.remove(2).map(|t| t.id), Some(2));
        assert!(tokens.by_code("CODE-2").is_none());
        assert!(ids(&tokens, b).is_empty());
        tokens.drop_tenant(a);
        assert_eq!(tokens.all().count(), 0);
    }
}
