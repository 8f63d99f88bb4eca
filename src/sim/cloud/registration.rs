//! Agent registration tokens: `POST /api/2/tenants/{id}/registration_tokens` and
//! `DELETE /api/2/registration_tokens/{id}`. Scopes are kept as sent (non-empty
//! strings); their meaning is not checked.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::Cloud;
use super::auth::Caller;
use super::errors::{CloudError, CloudResult, json_body};
use super::state::RegistrationToken;

/// One year, the longest a registration token may live.
pub const MAX_EXPIRES_IN_SECS: u64 = 31_536_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/2/tenants/{id}/registration_tokens", web::post().to(create))
        .route("/api/2/registration_tokens/{id}", web::delete().to(revoke));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    expires_in: u64,
    scopes: Vec<String>,
}

async fn create(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>, req: HttpRequest, body: Bytes) -> CloudResult {
    let tenant_id = Uuid::parse_str(&path).map_err(|_| CloudError::tenant_not_found())?;
    let new: NewToken = json_body(&req, &body)?;
    if !(1..=MAX_EXPIRES_IN_SECS).contains(&new.expires_in) {
        return Err(CloudError::invalid(format!("expires_in must be between 1 and {MAX_EXPIRES_IN_SECS}")));
    }
    if new.scopes.iter().any(|s| s.trim().is_empty()) {
        return Err(CloudError::invalid("scopes must be non-empty strings"));
    }
    let mut store = cloud.store();
    store.visible_tenant(caller.tenant_id, tenant_id)?;
    let created_at = Utc::now();
    let token = RegistrationToken {
        id: store.new_id(),
        token: store.registration_code(),
        tenant_id,
        created_at,
        expires_at: created_at + Duration::seconds(new.expires_in as i64),
        scopes: new.scopes,
    };
    let answer = token.to_json();
    store.registration_tokens.insert(token.id, token);
    Ok(HttpResponse::Created().json(answer))
}

async fn revoke(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>) -> CloudResult {
    let not_found = || CloudError::not_found("Registration token");
    let id = Uuid::parse_str(&path).map_err(|_| not_found())?;
    let mut store = cloud.store();
    let tenant_id = store.registration_tokens.get(&id).map(|t| t.tenant_id).ok_or_else(not_found)?;
    if !store.in_subtree(caller.tenant_id, tenant_id) {
        return Err(CloudError::access_denied());
    }
    store.registration_tokens.remove(&id);
    Ok(HttpResponse::NoContent().finish())
}
