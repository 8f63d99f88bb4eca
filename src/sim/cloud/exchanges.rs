//! The exchange log: while recording, every request `sim cloud` serves outside
//! `/sim/*` (the cloud's API, its identity provider, policy management) with the
//! answer it got, injected faults included, for a contract test to hold against
//! the vendor's published document. Read with `GET /sim/cloud/exchanges` or
//! [`super::CloudSim::exchanges`].
//!
//! Secrets are masked before they are kept (passwords, access, ID and refresh
//! tokens, registration codes, client secrets): each letter becomes `X` or `x`
//! and each digit `0`, so the value keeps its length, type and character
//! classes and still validates as the real one would.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::Cloud;

/// Fields whose values are secrets, in JSON and form bodies alike.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "client_secret",
];
/// Bodies larger than this are kept cut short (and say so).
const MAX_KEPT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct Exchanges {
    recording: AtomicBool,
    log: Mutex<Vec<Value>>,
}

impl Exchanges {
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::SeqCst);
    }

    pub fn recording(&self) -> bool {
        self.recording.load(Ordering::SeqCst)
    }

    /// Every exchange kept so far, oldest first.
    pub fn all(&self) -> Vec<Value> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, exchange: Value) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(exchange);
    }
}

/// Letters to `X`/`x`, digits to `0`, everything else kept.
fn mask(secret: &str) -> String {
    secret
        .chars()
        .map(|c| match c {
            'A'..='Z' => 'X',
            'a'..='z' => 'x',
            '0'..='9' => '0',
            other => other,
        })
        .collect()
}

/// Masks the string values of [`SECRET_FIELDS`] anywhere in a JSON value.
fn mask_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(s) if SECRET_FIELDS.contains(&key.as_str()) => *s = mask(s),
                    other => mask_json(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// A body as kept: JSON and forms with their secrets masked, other text as it is.
fn kept_body(content_type: Option<&str>, body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    let cut = &body[..body.len().min(MAX_KEPT_BYTES)];
    if let Ok(mut json) = serde_json::from_slice::<Value>(cut) {
        mask_json(&mut json);
        return json!(json.to_string());
    }
    if content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")) {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(cut)
            .map(|(k, v)| {
                let v = if SECRET_FIELDS.contains(&k.as_ref()) {
                    mask(&v)
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        return json!(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        );
    }
    json!(String::from_utf8_lossy(cut))
}

fn header(headers: &HeaderMap, name: impl actix_web::http::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The middleware (`actix_web::middleware::from_fn`): outermost, so it sees what the faults answer.
pub async fn record(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let cloud = req.app_data::<web::Data<Cloud>>().cloned();
    let Some(cloud) = cloud.filter(|c| c.exchanges.recording() && !req.path().starts_with("/sim/"))
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let (http_request, mut payload) = req.into_parts();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        body.extend_from_slice(&chunk?);
    }
    let body = body.freeze();
    let request_type = header(http_request.headers(), CONTENT_TYPE);
    // Only the scheme of the credentials (`Basic`, `Bearer`): never the credentials.
    let auth = header(http_request.headers(), AUTHORIZATION)
        .and_then(|v| v.split_whitespace().next().map(str::to_string));
    let mut exchange = json!({
        "method": http_request.method().as_str(),
        "path": http_request.path(),
        "query": http_request.query_string(),
        "auth": auth,
        "request_content_type": request_type,
        "request_body": kept_body(request_type.as_deref(), &body),
    });
    let response = next
        .call(ServiceRequest::from_parts(
            http_request,
            Payload::from(body),
        ))
        .await?;
    let (http_request, response) = response.into_parts();
    let (response, answer) = response.into_parts();
    let answer: Bytes = actix_web::body::to_bytes(answer).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        actix_web::error::ErrorInternalServerError(e.to_string())
    })?;
    let answer_type = header(response.headers(), CONTENT_TYPE);
    exchange["status"] = json!(response.status().as_u16());
    exchange["response_content_type"] = json!(answer_type);
    exchange["response_body"] = kept_body(answer_type.as_deref(), &answer);
    exchange["retry_after"] = json!(header(response.headers(), RETRY_AFTER));
    cloud.exchanges.push(exchange);
    Ok(ServiceResponse::new(
        http_request,
        response.set_body(BoxBody::new(answer)),
    ))
}
