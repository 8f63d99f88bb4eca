//! The one application error, rendered as RFC 9457 `application/problem+json`.
//!
//! Which constructor to use:
//! - [`ApiError::bad_request`]: the request cannot be read (syntax, types, path, query, cursor).
//! - [`ApiError::Validation`]: it was read but a value breaks a rule; one entry per field.
//! - [`ApiError::NotFound`]: missing, or belonging to another tenant (never say which).
//! - [`ApiError::conflict`]: the request clashes with the current state, e.g. it names
//!   something the workspace does not have (now); [`ApiError::conflict_at`] points at it.
//! - `?` on a database or `anyhow` error: a plain 500; the cause is logged, never shown.

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

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
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
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
            Self::Unavailable(_) | Self::IssuerUnavailable { .. } => {
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
            | Self::IssuerUnavailable { retry_after_secs } => {
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
