//! Request extractors that answer problem+json for every way a request can be
//! malformed: body syntax, types, missing fields, size, content type, path and
//! query parameters, and `validator` rules.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, mime};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Number, Value};
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::api::input::json::control_character_in_json;
use crate::error::{ApiError, FieldError};

/// The largest accepted body, as configured (`http.max_body_bytes`).
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// A JSON body that parsed and passed its `validator` rules.
pub struct ValidJson<T> {
    pub value: T,
    /// The body as received, for idempotency fingerprints.
    pub raw: Bytes,
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json_content = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
            });
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json_content {
                return Err(ApiError::UnsupportedMediaType);
            }
            let raw = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit },
                    _ => ApiError::bad_request(
                        "unreadable_body",
                        "The request body could not be read.",
                    ),
                })?;
            if let Some(problem) = control_character_in_json(&raw) {
                return Err(problem);
            }
            let value = parse_json::<T>(&raw)?;
            value
                .validate()
                .map_err(|errors| ApiError::Validation(field_errors(&errors)))?;
            Ok(Self { value, raw })
        })
    }
}

fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let mut json = Value::deserialize(&mut de).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid JSON for this operation: {e}."),
        )
    })?;
    de.end().map_err(|_| {
        ApiError::bad_request("malformed_json", "Trailing characters after the JSON body.")
    })?;
    integral_numbers_as_integers(&mut json);
    serde_path_to_error::deserialize::<_, T>(json).map_err(|e| {
        let pointer = json_pointer(e.path());
        let inner = e.into_inner();
        // serde's messages quote the offending value ("invalid type: string \"…\"");
        // keep only what was expected, so a secret sent in the wrong place is not echoed.
        let message = inner.to_string();
        let message = match inner.classify() {
            serde_json::error::Category::Data => match message.split_once(", expected ") {
                // "invalid type: string \"…\"" and "unknown variant `…`" quote the value: keep the kind only.
                // An unknown field's name is the caller's key, not a value: it stays.
                Some((kind, expected)) if kind.starts_with("unknown field") => {
                    format!("{kind}, expected {expected}")
                }
                Some((kind, expected)) => {
                    let kind = kind.split([':', '`']).next().unwrap_or(kind).trim_end();
                    format!("{kind}, expected {expected}")
                }
                None => message,
            },
            _ => message,
        };
        let detail = format!("The request body is not valid JSON for this operation: {message}.");
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::BadRequest {
                code: "invalid_body",
                detail,
                errors: vec![FieldError {
                    pointer,
                    detail: message,
                }],
            },
            _ => ApiError::bad_request("malformed_json", detail),
        }
    })
}

/// JSON (and JSON Schema, which the document's `integer` means) counts `5.0` as
/// the integer 5; serde would refuse it for an integer field. Floats keep their
/// value either way.
fn integral_numbers_as_integers(value: &mut Value) {
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    match value {
        Value::Number(number) => {
            if let Some(f) = number
                .as_f64()
                .filter(|f| number.is_f64() && f.fract() == 0.0)
            {
                if (-I64_END..I64_END).contains(&f) {
                    *number = Number::from(f as i64);
                } else if (0.0..U64_END).contains(&f) {
                    *number = Number::from(f as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            }
            Segment::Enum { variant } => pointer.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    pointer
}

/// `validator`'s nested errors as a flat list of JSON Pointers, sorted.
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    fn walk(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
        for (field, kind) in errors.errors() {
            // Struct-level rules are reported by validator under `__all__`: they concern the object itself.
            let pointer = if *field == "__all__" {
                prefix.to_string()
            } else {
                format!("{prefix}/{field}")
            };
            match kind {
                ValidationErrorsKind::Field(list) => out.extend(list.iter().map(|e| {
                    FieldError {
                        pointer: pointer.clone(),
                        detail: e
                            .message
                            .as_ref()
                            .map_or_else(|| e.code.to_string(), ToString::to_string),
                    }
                })),
                ValidationErrorsKind::Struct(inner) => walk(&pointer, inner, out),
                ValidationErrorsKind::List(items) => {
                    for (index, inner) in items {
                        walk(&format!("{pointer}/{index}"), inner, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", errors, &mut out);
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer).then(a.detail.cmp(&b.detail)));
    out
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        ApiError::bad_request(
            "invalid_path_parameter",
            format!("A path parameter is malformed: {err}."),
        )
        .into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request(
            "invalid_query",
            format!("The query string is malformed: {err}."),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Body {
        n: u32,
        #[allow(dead_code)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, Validate)]
    struct Inner {
        #[allow(dead_code)]
        secret: String,
        #[allow(dead_code)]
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        #[allow(dead_code)]
        Partner,
    }

    fn problem(raw: &str) -> (String, Vec<FieldError>, String) {
        match parse_json::<Body>(raw.as_bytes()) {
            Err(ApiError::BadRequest {
                code,
                detail,
                errors,
            }) => (code.to_string(), errors, detail),
            other => panic!("{raw}: expected bad request, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn json_errors_name_the_pointer_and_never_echo_the_value() {
        let (code, errors, detail) = problem(r#"{"n": 1, "inner": {"secret": 12345678}}"#);
        assert_eq!(code, "invalid_body");
        assert_eq!(errors[0].pointer, "/inner/secret");
        assert!(!detail.contains("12345678"), "{detail}");
        let (_, errors, detail) = problem(r#"{"n": "topsecretvalue"}"#);
        assert_eq!(errors[0].pointer, "/n");
        assert!(!detail.contains("topsecretvalue"), "{detail}");
        let (_, errors, detail) =
            problem(r#"{"n": 1, "inner": {"secret": "x", "kind": "hunter2secret"}}"#);
        assert_eq!(errors[0].pointer, "/inner/kind");
        assert!(
            !detail.contains("hunter2secret") && detail.contains("unknown variant"),
            "{detail}"
        );
    }

    #[test]
    fn syntax_errors_missing_and_unknown_fields_are_bad_requests() {
        assert_eq!(problem("{\"n\": ").0, "malformed_json");
        assert_eq!(problem("{} trailing").0, "malformed_json");
        assert!(problem("{}").2.contains("missing field `n`"));
        assert!(
            problem(r#"{"n": 1, "x": 2}"#)
                .2
                .contains("unknown field `x`")
        );
        assert_eq!(problem(r#"{"n": 1} {"#).0, "malformed_json");
    }

    #[test]
    fn an_integral_number_is_an_integer_however_it_is_written() {
        for (raw, n) in [
            (r#"{"n": 5.0}"#, 5),
            (r#"{"n": 1e3}"#, 1000),
            (r#"{"n": 4294967295.0}"#, u32::MAX),
        ] {
            assert_eq!(
                parse_json::<Body>(raw.as_bytes()).map(|b| b.n).ok(),
                Some(n),
                "{raw}"
            );
        }
        for raw in [
            r#"{"n": 5.5}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296.0}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert_eq!(problem(raw).1[0].pointer, "/n", "{raw}");
        }
    }
}
