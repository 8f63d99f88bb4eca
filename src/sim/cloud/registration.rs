//! Agent registration tokens as the document has them: `POST` and `GET
//! /api/2/tenants/{id}/registration_tokens` (create answers 200; the listing holds
//! the tenant's live tokens, codes included), `GET /api/2/registration_tokens` (every
//! live token in the caller's subtree) and `DELETE /api/2/registration_tokens/{id}`.
//! Ids are integers and `tenant_id` is the owner's numeric id, as the document's
//! `registrationToken` says. A token is gone once it expires. Scopes are kept as
//! sent (non-empty strings); their meaning is not checked.

use actix_web::{HttpResponse, web};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Cloud;
use super::auth::Caller;
use super::errors::{CloudError, CloudResult, JsonBody};
use super::state::RegistrationToken;
use super::tenants;

/// One year, the longest a registration token may live.
pub const MAX_EXPIRES_IN_SECS: u64 = 31_536_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/2/tenants/{id}/registration_tokens")
            .route(web::post().to(create))
            .route(web::get().to(list_of_tenant)),
    )
    .route("/api/2/registration_tokens", web::get().to(list_all))
    .route("/api/2/registration_tokens/{id}", web::delete().to(revoke));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    expires_in: u64,
    scopes: Vec<String>,
}

async fn create(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    new: JsonBody<NewToken>,
) -> CloudResult {
    let tenant_id = tenants::tenant_id(&path)?;
    let new = new.parse()?;
    if !(1..=MAX_EXPIRES_IN_SECS).contains(&new.expires_in) {
        return Err(CloudError::invalid(format!(
            "expires_in must be between 1 and {MAX_EXPIRES_IN_SECS}"
        )));
    }
    if new.scopes.iter().any(|s| s.trim().is_empty()) {
        return Err(CloudError::invalid("scopes must be non-empty strings"));
    }
    let mut store = cloud.store();
    let tenant_number = store.visible_tenant(caller.tenant_id, tenant_id)?.seq;
    let created_at = Utc::now();
    store.drop_expired_tokens(created_at);
    let token = RegistrationToken {
        id: store.next_token_id(),
        token: store.registration_code(),
        tenant_id,
        tenant_number,
        created_at,
        expires_at: created_at + Duration::seconds(new.expires_in as i64),
        scopes: new.scopes,
    };
    let answer = token.to_json();
    store.registration_tokens.insert(token);
    Ok(HttpResponse::Ok().json(answer))
}

/// A `registrationTokensList` of `tokens` (live, oldest first).
fn listing<'a>(tokens: impl Iterator<Item = &'a RegistrationToken>) -> HttpResponse {
    let items: Vec<Value> = tokens.map(RegistrationToken::to_json).collect();
    HttpResponse::Ok().json(json!({ "items": items }))
}

async fn list_of_tenant(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
) -> CloudResult {
    // The document declares no 404 here: an unknown tenant is one the caller may not see.
    let tenant_id = Uuid::parse_str(&path).map_err(|_| CloudError::access_denied())?;
    let mut store = cloud.store();
    if !store.tenants.contains_key(&tenant_id) || !store.in_subtree(caller.tenant_id, tenant_id) {
        return Err(CloudError::access_denied());
    }
    store.drop_expired_tokens(Utc::now());
    Ok(listing(store.registration_tokens.of_tenant(tenant_id)))
}

async fn list_all(cloud: web::Data<Cloud>, caller: Caller) -> CloudResult {
    let mut store = cloud.store();
    store.drop_expired_tokens(Utc::now());
    Ok(listing(store.registration_tokens.all().filter(|t| {
        store.in_subtree(caller.tenant_id, t.tenant_id)
    })))
}

async fn revoke(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>) -> CloudResult {
    let not_found = || CloudError::not_found("Registration token");
    let id: u64 = path.parse().map_err(|_| not_found())?;
    let mut store = cloud.store();
    store.drop_expired_tokens(Utc::now());
    let tenant_id = store
        .registration_tokens
        .get(id)
        .map(|t| t.tenant_id)
        .ok_or_else(not_found)?;
    if !store.in_subtree(caller.tenant_id, tenant_id) {
        return Err(CloudError::access_denied());
    }
    store.registration_tokens.remove(id);
    Ok(HttpResponse::NoContent().finish())
}
