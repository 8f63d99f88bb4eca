//! The source contract's handlers. Lists are keyset-paged on id: a page is a
//! binary search plus `limit` items, and stays exact while the data changes.

use actix_web::http::StatusCode;
use actix_web::http::header::WWW_AUTHENTICATE;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{SERVER_VERSION, SourceState};
use crate::sim::install_base::{BackupPlan, Group, InstallBase, Machine, Mutations, User};

pub const ACCOUNT: &str = "/api/source/v1/account";
pub const GROUPS: &str = "/api/source/v1/groups";
pub const USERS: &str = "/api/source/v1/users";
pub const MACHINES: &str = "/api/source/v1/machines";
pub const PLANS: &str = "/api/source/v1/plans";
pub const PASSWORD: &str = "/api/source/v1/users/{id}/password";
pub const MUTATIONS: &str = "/sim/backupagent/mutations";
pub const TRUTH: &str = "/sim/backupagent/truth";
pub const STATS: &str = "/sim/backupagent/stats";

/// Every path served, as the OpenAPI document must list them.
pub const PATHS: [&str; 9] = [
    ACCOUNT, GROUPS, USERS, MACHINES, PLANS, PASSWORD, MUTATIONS, TRUTH, STATS,
];

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 5000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(ACCOUNT, web::get().to(account))
        .route(GROUPS, web::get().to(groups))
        .route(USERS, web::get().to(users))
        .route(MACHINES, web::get().to(machines))
        .route(PLANS, web::get().to(plans))
        .route(PASSWORD, web::get().to(password))
        .route(MUTATIONS, web::post().to(mutations))
        .route(TRUTH, web::get().to(truth))
        .route(STATS, web::get().to(stats))
        .default_service(web::to(|| async {
            error(StatusCode::NOT_FOUND, "not_found", "no such resource")
        }));
}

fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}

/// 200 with `value` as JSON, or a 500 when it cannot be written.
fn json_ok(value: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// The 401 answer, unless the request carries the top-level group's credentials.
fn unauthorized(req: &HttpRequest, state: &SourceState) -> Option<HttpResponse> {
    match crate::sim::basic_credentials(req) {
        Some((login, password)) if login == state.login && password == state.password => None,
        _ => {
            state.requests.count(&state.requests.unauthorized);
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "login and password of the top-level group required",
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Basic realm=\"BackupAgent\""),
            );
            Some(response)
        }
    }
}

async fn account(req: HttpRequest, state: web::Data<SourceState>) -> HttpResponse {
    if let Some(response) = unauthorized(&req, &state) {
        return response;
    }
    state.requests.count(&state.requests.account);
    let base = state.read();
    let root = base.root();
    HttpResponse::Ok().json(json!({
        "group_id": root.id,
        "name": root.name,
        "login": base.login,
        "server_version": SERVER_VERSION,
        // The install base's own clock: its last-seen times count back from `as_of`.
        "server_time": base.clock.max(base.spec.as_of),
    }))
}

#[derive(Deserialize)]
struct PageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct Page<'a, T> {
    items: &'a [T],
    next_cursor: Option<String>,
}

/// Limit and the id to start after, or why the parameters are refused.
fn page_params(req: &HttpRequest, listing: &str) -> Result<(usize, Option<String>), String> {
    let params =
        web::Query::<PageParams>::from_query(req.query_string()).map_err(|e| e.to_string())?;
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n @ 1..=MAX_LIMIT) => n,
            _ => return Err("limit must be an integer from 1 to 5000".to_string()),
        },
    };
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => {
            let decoded = URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((kind, id)) if kind == listing => Some(id.to_string()),
                _ => return Err("cursor is not one this listing returned".to_string()),
            }
        }
    };
    Ok((limit, after))
}

fn page<T: Serialize>(
    req: &HttpRequest,
    state: &SourceState,
    listing: &str,
    select: fn(&InstallBase) -> &[T],
    key: fn(&T) -> &str,
) -> HttpResponse {
    let (limit, after) = match page_params(req, listing) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", &message),
    };
    let base = state.read();
    let items = select(&base);
    let start = after.map_or(0, |after| {
        items.partition_point(|item| key(item) <= after.as_str())
    });
    let end = (start + limit).min(items.len());
    let next_cursor = (end < items.len())
        .then(|| URL_SAFE_NO_PAD.encode(format!("{listing}:{}", key(&items[end - 1]))));
    json_ok(&Page {
        items: &items[start..end],
        next_cursor,
    })
}

async fn groups(req: HttpRequest, state: web::Data<SourceState>) -> HttpResponse {
    if let Some(response) = unauthorized(&req, &state) {
        return response;
    }
    state.requests.count(&state.requests.groups);
    page(&req, &state, "groups", |b| &b.groups, |g: &Group| &g.id)
}

async fn users(req: HttpRequest, state: web::Data<SourceState>) -> HttpResponse {
    if let Some(response) = unauthorized(&req, &state) {
        return response;
    }
    state.requests.count(&state.requests.users);
    page(&req, &state, "users", |b| &b.users, |u: &User| &u.id)
}

async fn machines(req: HttpRequest, state: web::Data<SourceState>) -> HttpResponse {
    if let Some(response) = unauthorized(&req, &state) {
        return response;
    }
    state.requests.count(&state.requests.machines);
    page(
        &req,
        &state,
        "machines",
        |b| &b.machines,
        |m: &Machine| &m.id,
    )
}

async fn plans(req: HttpRequest, state: web::Data<SourceState>) -> HttpResponse {
    if let Some(response) = unauthorized(&req, &state) {
        return response;
    }
    state.requests.count(&state.requests.plans);
    page(&req, &state, "plans", |b| &b.plans, |p: &BackupPlan| &p.id)
}

async fn password(
    req: HttpRequest,
    state: web::Data<SourceState>,
    id: web::Path<String>,
) -> HttpResponse {
    if let Some(response) = unauthorized(&req, &state) {
        return response;
    }
    state.requests.count(&state.requests.passwords);
    match state.read().password(&id) {
        Some(password) => HttpResponse::Ok().json(json!({ "password": password })),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no backup user with this id",
        ),
    }
}

async fn mutations(state: web::Data<SourceState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<Mutations>(&body) {
        Ok(m) => HttpResponse::Ok().json(state.write().mutate(&m)),
        Err(e) => error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
    }
}

async fn truth(state: web::Data<SourceState>) -> HttpResponse {
    json_ok(&state.read().truth)
}

async fn stats(state: web::Data<SourceState>) -> HttpResponse {
    let counts = state.read().counts();
    HttpResponse::Ok().json(json!({ "counts": counts, "requests": &state.requests }))
}
