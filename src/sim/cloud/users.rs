//! `/api/2/users`: login checks, creation, look-ups, access policies (roles),
//! activation emails and passwords.
//!
//! Login rule (cloud-api.md): trimmed, at least [`LOGIN_MIN_CHARS`] characters, only
//! ASCII letters, digits and [`LOGIN_SPECIAL_CHARS`]. Logins are unique across all
//! tenants, compared case-insensitively. `GET /users?uuids=` and
//! `GET /tenants/{id}/users` are not in cloud-api.md; they mirror the real API.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Cloud;
use super::auth::Caller;
use super::errors::{CloudError, CloudResult, JsonBody};
use super::state::{AccessPolicy, TenantKind, User, access_policies_json, timestamp};
use super::tenants::{parse_uuids, tenant_id};

pub const LOGIN_MIN_CHARS: usize = 3;
/// The characters a login may hold besides ASCII letters and digits.
pub const LOGIN_SPECIAL_CHARS: &str = ".@_-+:!#$%^*={}'`/?";
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why the cloud refuses `login` (after trimming), if it does.
pub fn login_problem(login: &str) -> Option<String> {
    let login = login.trim();
    if login.chars().count() < LOGIN_MIN_CHARS {
        return Some(format!(
            "login must be at least {LOGIN_MIN_CHARS} characters"
        ));
    }
    if let Some(c) = login
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !LOGIN_SPECIAL_CHARS.contains(*c))
    {
        return Some(format!("login must not contain {c:?}"));
    }
    None
}

/// The tenant kinds each role may be granted on.
pub const ROLES: &[(&str, &[TenantKind])] = &[
    ("partner_admin", &[TenantKind::Partner, TenantKind::Folder]),
    ("company_admin", &[TenantKind::Customer]),
    ("backup_user", &[TenantKind::Customer, TenantKind::Unit]),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/2/users/check_login", web::get().to(check_login))
        .service(
            web::resource("/api/2/users")
                .route(web::post().to(create))
                .route(web::get().to(list)),
        )
        .route("/api/2/users/{id}", web::get().to(get))
        .service(
            web::resource("/api/2/users/{id}/access_policies")
                .route(web::get().to(access_policies))
                .route(web::put().to(set_access_policies)),
        )
        .route(
            "/api/2/users/{id}/send-activation-email",
            web::post().to(send_activation_email),
        )
        .route("/api/2/users/{id}/password", web::post().to(set_password))
        .route("/api/2/tenants/{id}/users", web::get().to(tenant_users));
}

fn user_id(raw: &str) -> CloudResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| CloudError::not_found("User"))
}

#[derive(Deserialize)]
struct CheckLogin {
    username: Option<String>,
}

async fn check_login(
    cloud: web::Data<Cloud>,
    _caller: Caller,
    query: web::Query<CheckLogin>,
) -> CloudResult {
    let login = query
        .username
        .as_deref()
        .ok_or_else(|| CloudError::not_acceptable("username is required"))?;
    if let Some(problem) = login_problem(login) {
        return Err(CloudError::not_acceptable(problem));
    }
    if cloud.store().login_taken(login.trim()) {
        return Err(CloudError::conflict("Login is already taken"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Contact {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    firstname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lastname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    tenant_id: Uuid,
    login: Option<String>,
    contact: Option<Contact>,
    enabled: Option<bool>,
    language: Option<String>,
    business_types: Option<Vec<String>>,
    notifications: Option<Vec<String>>,
    external_id: Option<String>,
    idp_id: Option<Uuid>,
}

async fn create(cloud: web::Data<Cloud>, caller: Caller, new: JsonBody<NewUser>) -> CloudResult {
    let new = new.parse()?;
    let login = new.login.as_deref().map(str::trim).map(str::to_string);
    if let Some(problem) = login.as_deref().and_then(login_problem) {
        return Err(CloudError::invalid(problem));
    }
    if let Some(contact) = &new.contact {
        let email = contact.email.trim();
        if !email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        {
            return Err(CloudError::invalid("contact.email is not an email address"));
        }
    }
    let mut store = cloud.store();
    store.visible_tenant(caller.tenant_id, new.tenant_id)?;
    if login.as_deref().is_some_and(|l| store.login_taken(l)) {
        return Err(CloudError::conflict("Login is already taken"));
    }
    let user = User {
        id: store.new_id(),
        seq: store.next_seq(),
        version: 1,
        tenant_id: new.tenant_id,
        login,
        contact: new.contact.map(|c| json!(c)),
        enabled: new.enabled.unwrap_or(true),
        language: new.language.unwrap_or_else(|| "en".into()),
        business_types: new.business_types.map(|b| json!(b)),
        notifications: new.notifications.map(|n| json!(n)),
        external_id: new.external_id,
        idp_id: new.idp_id,
        personal_tenant_id: store.new_id(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        activated: false,
        activation_emails_sent: 0,
        password_hash: None,
        access_policies: Vec::new(),
    };
    let answer = user.to_json();
    store.insert_user(user);
    // The document answers a created user with 200 (a tenant with 201).
    Ok(HttpResponse::Ok().json(answer))
}

async fn get(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>) -> CloudResult {
    let id = user_id(&path)?;
    let store = cloud.store();
    Ok(HttpResponse::Ok().json(store.visible_user(caller.tenant_id, id)?.to_json()))
}

#[derive(Deserialize)]
struct ListQuery {
    uuids: Option<String>,
}

/// The users named in `uuids` that exist, as a `userBatch`; a foreign one is 403.
async fn list(
    cloud: web::Data<Cloud>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> CloudResult {
    let raw = query
        .uuids
        .as_deref()
        .ok_or_else(|| CloudError::bad_query("uuids is required"))?;
    let ids = parse_uuids(raw)?;
    let store = cloud.store();
    let mut items = Vec::new();
    for id in ids {
        if store.users.contains_key(&id) {
            items.push(store.visible_user(caller.tenant_id, id)?.to_batch_json());
        }
    }
    Ok(HttpResponse::Ok().json(
        json!({ "timestamp": timestamp(Utc::now()), "items": items, "paging": { "cursors": {} } }),
    ))
}

async fn tenant_users(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
) -> CloudResult {
    let id = tenant_id(&path)?;
    let store = cloud.store();
    store.visible_tenant(caller.tenant_id, id)?;
    let mut users: Vec<&User> = store.users.values().filter(|u| u.tenant_id == id).collect();
    users.sort_by_key(|u| u.seq);
    let items: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn access_policies(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
) -> CloudResult {
    let id = user_id(&path)?;
    let store = cloud.store();
    let user = store.visible_user(caller.tenant_id, id)?;
    Ok(HttpResponse::Ok().json(access_policies_json(&user.access_policies)))
}

/// The document's `accessPoliciesList` (its read shape, which the PUT takes too);
/// the read-only fields are accepted and ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyList {
    items: Vec<PolicyItem>,
    #[serde(rename = "timestamp")]
    _timestamp: Option<String>,
    #[serde(rename = "paging")]
    _paging: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyItem {
    id: Option<Uuid>,
    issuer_id: Option<Uuid>,
    role_id: String,
    tenant_id: Uuid,
    trustee_id: Uuid,
    trustee_type: String,
    version: Option<u64>,
    #[serde(rename = "created_at")]
    _created_at: Option<String>,
    #[serde(rename = "updated_at")]
    _updated_at: Option<String>,
    #[serde(rename = "deleted_at")]
    _deleted_at: Option<String>,
    #[serde(rename = "resource_server_id")]
    _resource_server_id: Option<String>,
    #[serde(rename = "resource_namespace")]
    _resource_namespace: Option<String>,
    #[serde(rename = "resource_path")]
    _resource_path: Option<String>,
}

/// Replaces the user's access policies; answers the stored ones with their ids.
async fn set_access_policies(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    list: JsonBody<PolicyList>,
) -> CloudResult {
    let id = user_id(&path)?;
    let list = list.parse()?;
    let mut store = cloud.store();
    store.visible_user(caller.tenant_id, id)?;
    let mut stored = Vec::new();
    for item in list.items {
        if item.trustee_type != "user" || item.trustee_id != id {
            return Err(CloudError::invalid(
                "trustee must be this user (trustee_type \"user\")",
            ));
        }
        let kinds = ROLES
            .iter()
            .find(|(role, _)| *role == item.role_id)
            .map(|(_, kinds)| *kinds)
            .ok_or_else(|| CloudError::invalid(format!("unknown role {:?}", item.role_id)))?;
        let tenant = store.visible_tenant(caller.tenant_id, item.tenant_id)?;
        if !kinds.contains(&tenant.kind) {
            return Err(CloudError::invalid(format!(
                "role {} cannot be granted on a {}",
                item.role_id,
                tenant.kind.as_str()
            )));
        }
        let given = item.id.filter(|i| !i.is_nil());
        let policy_id = match given {
            Some(given) => given,
            None => store.new_id(),
        };
        let previous = store
            .users
            .get(&id)
            .and_then(|u| u.access_policies.iter().find(|p| p.id == policy_id))
            .map(|p| (p.version, p.created_at));
        let now = Utc::now();
        stored.push(AccessPolicy {
            id: policy_id,
            issuer_id: item.issuer_id.unwrap_or_default(),
            role_id: item.role_id,
            tenant_id: item.tenant_id,
            trustee_id: id,
            trustee_type: item.trustee_type,
            version: previous.map(|(v, _)| v).or(item.version).unwrap_or(0) + 1,
            created_at: previous.map_or(now, |(_, at)| at),
            updated_at: now,
        });
    }
    let user = store
        .users
        .get_mut(&id)
        .ok_or_else(|| CloudError::not_found("User"))?;
    user.access_policies = stored.clone();
    user.version += 1;
    user.updated_at = Utc::now();
    Ok(HttpResponse::Ok().json(access_policies_json(&stored)))
}

/// The document declares no body for it: none is read.
async fn send_activation_email(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
) -> CloudResult {
    let id = user_id(&path)?;
    let mut store = cloud.store();
    let user = store.visible_user(caller.tenant_id, id)?;
    if user.tenant_id == caller.tenant_id {
        return Err(CloudError::access_denied()
            .with_details(json!({ "reason": "only users of sub-tenants" })));
    }
    if let Some(user) = store.users.get_mut(&id) {
        user.activation_emails_sent += 1;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn set_password(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    new: JsonBody<NewPassword>,
) -> CloudResult {
    let id = user_id(&path)?;
    let new = new.parse()?;
    let mut store = cloud.store();
    store.visible_user(caller.tenant_id, id)?;
    if new.password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CloudError::invalid(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let salt = store.random_hex(8);
    let digest: String = Sha256::digest(format!("{salt}{}", new.password))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let user = store
        .users
        .get_mut(&id)
        .ok_or_else(|| CloudError::not_found("User"))?;
    user.password_hash = Some(format!("{salt}:{digest}"));
    user.activated = true;
    user.version += 1;
    user.updated_at = Utc::now();
    Ok(HttpResponse::NoContent().finish())
}
