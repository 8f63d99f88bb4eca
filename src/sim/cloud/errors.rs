//! The cloud's error answer: `{"error":{"code","message","details","context","domain"}}`.
//!
//! Codes 1001, 1002, 1004 and 1005 are the documented ones; the others are our
//! choice (the real numbers are unknown), kept here in one list:
//!
//! | code | status | when |
//! |---|---|---|
//! | 1000 | 401 | no, or an invalid, bearer token |
//! | 1001 | 409 | the `version` sent is not the current one |
//! | 1002 | 403 | the object lies outside the caller's subtree |
//! | 1003 | 409 | the object exists already (taken login, policy id) or the tenant still has children |
//! | 1004 | 409 | a sibling tenant has that name |
//! | 1005 | 404 | no such tenant |
//! | 1006 | 422 | the body breaks the API's rules |
//! | 1006 | 400 | a listing's query breaks them, or an offering-items write cannot be done (the document declares 400 there) |
//! | 1006 | 406 | `check_login` got a login the rules refuse (the document's "not acceptable") |
//! | 1007 | 404 | no such user, registration token, policy or route |
//! | 1008 | 415 | a JSON route got another content type |
//! | 1009 | 429 | rate limit exceeded (with `Retry-After`) |
//! | 1010 | 503 | injected unavailability |
//! | 1011 | 403 | a change the platform forbids to everyone (a tenant's pricing back to trial once in production) |
//! | 1012 | 401 | an agent's registration token is unknown or expired (the simulator's registration route) |
//! | 1013 | 403 | an agent's registration is refused: its tenant has no Backup service for machines |
//!
//! Errors the web framework answers itself (405, 413, ...) are rewritten into this
//! shape too ([`rewrite_foreign`]), with code 1007 for a 404 and 1006 otherwise.

use std::marker::PhantomData;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const UNAUTHORIZED: u32 = 1000;
pub const VERSION_MISMATCH: u32 = 1001;
pub const ACCESS_DENIED: u32 = 1002;
pub const CONFLICT: u32 = 1003;
pub const NAME_CONFLICT: u32 = 1004;
pub const TENANT_NOT_FOUND: u32 = 1005;
pub const VALIDATION: u32 = 1006;
pub const NOT_FOUND: u32 = 1007;
pub const UNSUPPORTED_MEDIA_TYPE: u32 = 1008;
pub const TOO_MANY_REQUESTS: u32 = 1009;
pub const UNAVAILABLE: u32 = 1010;
pub const FORBIDDEN_CHANGE: u32 = 1011;
pub const UNKNOWN_REGISTRATION_TOKEN: u32 = 1012;
pub const REGISTRATION_REFUSED: u32 = 1013;

#[derive(Debug)]
pub struct CloudError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    pub details: Value,
}

impl CloudError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
            "Access token is missing or invalid",
        )
    }

    pub fn version_mismatch(current: u64) -> Self {
        Self::new(StatusCode::CONFLICT, VERSION_MISMATCH, "Version mismatch")
            .with_details(json!({ "current_version": current }))
    }

    pub fn access_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, ACCESS_DENIED, "Access denied")
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, CONFLICT, message)
    }

    pub fn name_conflict(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            NAME_CONFLICT,
            format!("A tenant named {name:?} exists under this parent"),
        )
    }

    pub fn tenant_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, TENANT_NOT_FOUND, "Tenant not found")
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, VALIDATION, message)
    }

    /// A listing's query the API refuses: the document declares 400 for those.
    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, VALIDATION, message)
    }

    /// Arguments the API cannot accept where the document declares 406 (`check_login`).
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, VALIDATION, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!("{what} not found"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
    }

    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            TOO_MANY_REQUESTS,
            "Too many requests",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "Service temporarily unavailable",
        )
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "context": {},
            "domain": "PlatformAccountServer",
        }})
    }
}

impl std::fmt::Display for CloudError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for CloudError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body())
    }
}

pub type CloudResult<T = HttpResponse> = Result<T, CloudError>;

/// A route's JSON body, read with the request and checked by [`JsonBody::parse`]: a
/// route checks its path's id first, so a bad id is answered before a bad body.
pub struct JsonBody<T> {
    req: HttpRequest,
    body: Bytes,
    into: PhantomData<T>,
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// 415 unless the content type is JSON, 422 when the JSON is malformed or does
    /// not fit `T` (unknown fields, wrong types, missing ones).
    pub fn parse(&self) -> CloudResult<T> {
        json_body(&self.req, &self.body)
    }
}

impl<T: 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = Bytes::from_request(&req, payload);
        Box::pin(async move {
            Ok(JsonBody {
                req,
                body: body.await?,
                into: PhantomData,
            })
        })
    }
}

fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> CloudResult<T> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(CloudError::unsupported_media_type());
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        CloudError::invalid(format!("Invalid request body: {}", e.inner()))
            .with_details(json!({ "path": path }))
    })
}

/// Query strings that do not parse are 400 (as the document's listings declare), in the cloud's error shape.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    CloudError::bad_query(format!("Invalid query: {err}")).into()
}

/// Rewrites an error answer that is not JSON (one the framework made) into the cloud's shape.
pub fn rewrite_foreign<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.contains("json") {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let message = status.canonical_reason().unwrap_or("Request refused");
    let code = if status == StatusCode::NOT_FOUND {
        NOT_FOUND
    } else {
        VALIDATION
    };
    let (req, _) = response.into_parts();
    let answer = CloudError::new(status, code, message).error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, answer).map_into_right_body(),
    ))
}
