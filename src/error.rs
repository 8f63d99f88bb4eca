//! The one application error, rendered as RFC 9457 `application/problem+json`.
//!
//! Which constructor to use:
//! - [`ApiError::bad_request`]: the request cannot be read (syntax, types, path, query, cursor).
//! - [`ApiError::Validation`]: it was read but a value breaks a rule; one entry per field.
//! - [`ApiError::NotFound`]: missing, or belonging to another tenant (never say which).
//! - [`ApiError::conflict`]: the request clashes with the current state, e.g. it names
//!   something the workspace does not have (now); [`ApiError::conflict_at`] points at it.
//! - `?` on a database or `anyhow` error: a plain 500; the cause is logged, never shown.
//!   Except overload: no pool connection came free in time, or SQLite stayed busy past
//!   its `busy_timeout` ([`is_overload`]): 503 `overloaded` with a jittered `Retry-After`,
//!   logged as a warning.

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use rand::Rng;
use sea_orm::{DbErr, RuntimeErr};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds an overloaded service tells a caller to wait, drawn anew for each answer
/// so that a herd refused together comes back spread out.
pub fn retry_after_secs() -> u64 {
    rand::rng().random_range(30..=90)
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "urn:migration-portal:problem:validation_failed")]
    pub type_: String,
    #[schema(example = "Unprocessable Content")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "The request body breaks 1 rule.")]
    pub detail: String,
    /// Stable machine-readable code; `type` ends with it.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// One entry per offending value, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Clone, Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the value in the request body.
    #[schema(example = "/source/url")]
    pub pointer: String,
    #[schema(example = "must be an http or https URL")]
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request ({code}): {detail}")]
    BadRequest {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized")]
    Unauthorized { credentials_present: bool },
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(Vec<Method>),
    #[error("conflict ({code}): {detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("precondition required")]
    PreconditionRequired,
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// The issuer's keys cannot be fetched and the token's is not cached: come back after this many seconds.
    #[error("identity provider unavailable")]
    IssuerUnavailable { retry_after_secs: u64 },
    /// Overloaded: come back after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// No database connection in time (see [`is_overload`]): come back after this many seconds.
    #[error("overloaded: {cause}")]
    Overloaded { retry_after_secs: u64, cause: DbErr },
    /// Any other database error (`?` on an overload gives [`ApiError::Overloaded`]).
    #[error("database: {0}")]
    Database(DbErr),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        if is_overload(&e) {
            Self::Overloaded {
                retry_after_secs: retry_after_secs(),
                cause: e,
            }
        } else {
            Self::Database(e)
        }
    }
}

/// An overload anywhere in the error's chain is still an overload.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        let overload = e
            .chain()
            .filter_map(|cause| cause.downcast_ref::<DbErr>())
            .find(|db| is_overload(db))
            .cloned();
        match overload {
            Some(cause) => cause.into(),
            None => Self::Internal(e),
        }
    }
}

/// Whether the database could not take the request now, rather than failed it: no
/// pooled connection came free within the acquire timeout (or the pool is closing),
/// SQLite stayed busy or locked past `busy_timeout`, or PostgreSQL refuses new
/// connections (too many, or starting up or shutting down).
pub fn is_overload(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => {
            runtime_overload(runtime)
        }
        _ => false,
    }
}

fn runtime_overload(runtime: &RuntimeErr) -> bool {
    use sea_orm::sqlx::Error;
    let RuntimeErr::SqlxError(e) = runtime else {
        return false;
    };
    match e.as_ref() {
        Error::PoolTimedOut | Error::PoolClosed => true,
        Error::Database(db) => {
            if db.try_downcast_ref::<sea_orm::SqlxSqliteError>().is_some() {
                // The primary result code is the low byte of the extended one.
                const SQLITE_BUSY: i32 = 5;
                const SQLITE_LOCKED: i32 = 6;
                let code = db.code().and_then(|c| c.parse::<i32>().ok());
                code.is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
            } else {
                // too_many_connections, cannot_connect_now
                db.code().is_some_and(|c| matches!(&*c, "53300" | "57P03"))
            }
        }
        _ => false,
    }
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A conflict caused by the values at these JSON Pointers of the body.
    pub fn conflict_at(
        code: &'static str,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
            errors,
        }
    }

    pub fn invalid_field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        }])
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::Conflict { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PreconditionFailed => "precondition_failed",
            Self::PreconditionRequired => "precondition_required",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Overloaded { .. } => "overloaded",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. } | Self::Conflict { detail, .. } => detail.clone(),
            Self::Validation(errors) => match errors.len() {
                1 => "The request breaks 1 rule.".into(),
                n => format!("The request breaks {n} rules."),
            },
            Self::Unauthorized {
                credentials_present: false,
            } => "A bearer access token is required.".into(),
            Self::Unauthorized {
                credentials_present: true,
            } => "The access token is invalid or expired.".into(),
            Self::Forbidden(why) => (*why).into(),
            Self::NotFound => "No such resource.".into(),
            Self::MethodNotAllowed(allowed) => {
                format!("Allowed methods: {}.", join_methods(allowed))
            }
            Self::PreconditionFailed => {
                "The resource has changed since the version named in If-Match.".into()
            }
            Self::PreconditionRequired => "This operation needs an If-Match header.".into(),
            Self::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes.")
            }
            Self::UnsupportedMediaType => "The request body must be application/json.".into(),
            Self::Unavailable(why) => (*why).into(),
            Self::IssuerUnavailable { retry_after_secs } => {
                format!(
                    "The identity provider cannot be reached to check the token's signing key: try again in {retry_after_secs} seconds."
                )
            }
            Self::TooManyRequests { retry_after_secs } => {
                format!("The service is busy: try again in {retry_after_secs} seconds.")
            }
            Self::Overloaded {
                retry_after_secs, ..
            } => format!(
                "The service is overloaded: no database connection came free in time. Send the request again in {retry_after_secs} seconds."
            ),
            Self::Database(_) | Self::Internal(_) => {
                "An internal error occurred; it has been logged.".into()
            }
        }
    }
}

fn join_methods(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) | Self::IssuerUnavailable { .. } | Self::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self, Self::Database(_) | Self::Internal(_)) {
            // Inside the request span, so the line carries the request id.
            tracing::error!(error = %format!("{self:#}"), "internal error");
        }
        if let Self::Overloaded { cause, .. } = self {
            tracing::warn!(error = %cause, "overloaded: answered 503");
        }
        let status = self.status_code();
        let errors = match self {
            Self::Validation(errors)
            | Self::BadRequest { errors, .. }
            | Self::Conflict { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let mut response = problem_response(status, self.code(), self.detail(), errors);
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized {
                credentials_present,
            } => {
                let value = if *credentials_present {
                    r#"Bearer realm="migration-portal", error="invalid_token""#
                } else {
                    r#"Bearer realm="migration-portal""#
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            // RFC 6750 §3.1: a valid token that lacks the access asked for.
            Self::Forbidden(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="migration-portal", error="insufficient_scope""#,
                    ),
                );
            }
            Self::MethodNotAllowed(allowed) => {
                if let Ok(value) = HeaderValue::from_str(&join_methods(allowed)) {
                    headers.insert(header::ALLOW, value);
                }
            }
            Self::TooManyRequests { retry_after_secs }
            | Self::IssuerUnavailable { retry_after_secs }
            | Self::Overloaded {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> HttpResponse {
    let problem = Problem {
        type_: format!("urn:migration-portal:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        code: code.to_string(),
        errors,
    };
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(problem)
}

/// Last line of defence: any error response that is not yet problem+json
/// (actix's own 404s, 405s, 413s, …) is rewritten into one, keeping its headers.
pub fn problem_safety_net<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let already_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if already_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, old) = res.into_parts();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace([' ', '-'], "_");
    let detail = match status {
        StatusCode::INTERNAL_SERVER_ERROR => {
            "An internal error occurred; it has been logged.".to_string()
        }
        _ => format!("{}.", status.canonical_reason().unwrap_or("Error")),
    };
    let mut new = problem_response(status, &code, detail, Vec::new());
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::body::to_bytes;
    use sea_orm::ConnAcquireErr;

    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, Option<u64>, serde_json::Value) {
        let response = error.error_response();
        let status = response.status();
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            Some(PROBLEM_JSON.as_bytes())
        );
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let body = to_bytes(response.into_body()).await.expect("body");
        (
            status,
            retry_after,
            serde_json::from_slice(&body).expect("json"),
        )
    }

    #[tokio::test]
    async fn no_connection_in_time_is_503_overloaded_with_a_jittered_retry_after() {
        let overloads = [
            // What sea-orm answers when the pool's acquire timeout runs out (seen under a herd).
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(
                sea_orm::sqlx::Error::PoolTimedOut,
            ))),
        ];
        for cause in overloads {
            let mut told = std::collections::BTreeSet::new();
            for _ in 0..50 {
                let (status, retry_after, body) = answer(cause.clone().into()).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{cause}");
                assert_eq!(body["code"], "overloaded");
                assert_eq!(body["status"], 503);
                let retry_after = retry_after.expect("Retry-After");
                assert!((30..=90).contains(&retry_after), "{retry_after}");
                assert!(
                    body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(&format!("again in {retry_after} seconds"))),
                    "{body}"
                );
                told.insert(retry_after);
            }
            assert!(told.len() > 1, "jittered: {told:?}");
        }
        // Wrapped on its way up, it is still an overload.
        let wrapped = anyhow::Error::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
            .context("scheduling the deliveries");
        assert_eq!(
            answer(wrapped.into()).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn other_database_errors_stay_internal_errors() {
        for cause in [
            DbErr::Custom("boom".into()),
            DbErr::RecordNotFound("gone".into()),
            DbErr::Query(RuntimeErr::Internal("syntax".into())),
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(
                sea_orm::sqlx::Error::RowNotFound,
            ))),
        ] {
            let (status, retry_after, body) = answer(cause.into()).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!((retry_after, &body["code"]), (None, &"internal".into()));
        }
        let (status, _, _) = answer(anyhow::anyhow!("not a database error").into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
