//! `Idempotency-Key` on creating POSTs: the same key with the same body replays
//! the first answer; the same key with another body is a conflict. The answer is
//! recorded in the transaction that creates the resource, and a concurrent
//! duplicate loses on the primary key instead of a racy pre-check.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use uuid::Uuid;

use crate::crypto::SecretBox;
use crate::db::idempotency::{self, Answer};
use crate::db::is_unique_violation;
use crate::error::ApiError;

pub const HEADER: &str = "Idempotency-Key";
const MAX_KEY_LEN: usize = 255;

/// The optional `Idempotency-Key` header; a malformed one is a 400.
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = req.headers().get(HEADER) else {
            return ready(Ok(Self(None)));
        };
        let key = value.to_str().ok().filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        });
        ready(key.map(|k| Self(Some(k.to_string()))).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!("{HEADER} must be 1 to {MAX_KEY_LEN} visible ASCII characters."),
            )
        }))
    }
}

/// How the header is documented on each creating POST (`params(IdempotencyKey)`).
impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_KEY_LEN))
            .pattern(Some("^[!-~]+$"));
        vec![
            ParameterBuilder::new()
                .name(HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Retry key, 1 to {MAX_KEY_LEN} visible ASCII characters, remembered 24 hours"
                )))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// What a creating POST answers: status, `Location`, JSON body.
pub struct Created {
    pub location: String,
    pub body: serde_json::Value,
    /// 201 for a resource made at once, 202 for one whose work has started.
    pub status: StatusCode,
}

impl Created {
    fn answer(&self) -> Answer {
        Answer {
            status_code: self.status.as_u16(),
            location: Some(self.location.clone()),
            body: self.body.to_string(),
        }
    }
}

fn respond(answer: &Answer, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status_code).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if let Some(location) = &answer.location {
        response.insert_header((header::LOCATION, location.as_str()));
    }
    if replayed {
        response.insert_header(("Idempotent-Replayed", HeaderValue::from_static("true")));
    }
    response.body(answer.body.clone())
}

/// A creating POST: who asks, for what operation, with which key and body.
pub struct CreateRequest<'a> {
    pub tenant_id: Uuid,
    /// Method and route template, e.g. `POST /api/v1/workspaces`.
    pub operation: &'a str,
    pub key: IdempotencyKey,
    /// The body as received; its fingerprint is keyed, so the stored one reveals nothing.
    pub body: &'a [u8],
}

/// The outcome of [`start`]: the first answer again, or a go-ahead to create.
pub enum Start {
    Replayed(HttpResponse),
    Proceed(Pending),
}

/// A creating request that has not been answered before.
pub struct Pending {
    tenant_id: Uuid,
    operation: String,
    /// The key and the keyed fingerprint of the body, when a key was sent.
    key: Option<(String, String)>,
}

/// Replays the first answer when this key was used with this body; refuses the
/// key with another body. Work that need not run on a replay (network calls)
/// goes between this and [`Pending::create`], outside any transaction.
pub async fn start(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    request: CreateRequest<'_>,
) -> Result<Start, ApiError> {
    let CreateRequest {
        tenant_id,
        operation,
        key,
        body,
    } = request;
    let Some(key) = key.0 else {
        return Ok(Start::Proceed(Pending {
            tenant_id,
            operation: operation.to_string(),
            key: None,
        }));
    };
    let parsed: serde_json::Value = serde_json::from_slice(body).map_err(anyhow::Error::from)?;
    let fingerprint = secrets.fingerprint(canonical_json(&parsed).as_bytes());
    match replay(db, tenant_id, operation, &key, &fingerprint).await? {
        Some(response) => Ok(Start::Replayed(response)),
        None => Ok(Start::Proceed(Pending {
            tenant_id,
            operation: operation.to_string(),
            key: Some((key, fingerprint)),
        })),
    }
}

/// A create under one of the tenant's workspaces, `POST
/// /api/v1/workspaces/{id}/{collection}`: the workspace (404 when it is not the
/// tenant's) and the go-ahead, or the first answer again.
pub async fn start_in_workspace(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    tenant_id: Uuid,
    workspace_id: Uuid,
    collection: &str,
    key: IdempotencyKey,
    body: &[u8],
) -> Result<Result<(entity::workspace::Model, Pending), HttpResponse>, ApiError> {
    let workspace = crate::db::workspaces::find(db, tenant_id, workspace_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let operation = format!("POST /api/v1/workspaces/{}/{collection}", workspace.id);
    let create = CreateRequest {
        tenant_id,
        operation: &operation,
        key,
        body,
    };
    Ok(match start(db, secrets, create).await? {
        Start::Replayed(response) => Err(response),
        Start::Proceed(pending) => Ok((workspace, pending)),
    })
}

impl Pending {
    /// Runs `create` in a transaction that also records the answer under the key.
    pub async fn create<F>(
        self,
        db: &DatabaseConnection,
        create: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: AsyncFnOnce(&DatabaseTransaction) -> Result<Created, ApiError>,
    {
        let txn = db.begin().await?;
        let answer = create(&txn).await?.answer();
        let Some((key, fingerprint)) = &self.key else {
            txn.commit().await?;
            return Ok(respond(&answer, false));
        };
        match idempotency::insert(
            &txn,
            self.tenant_id,
            &self.operation,
            key,
            fingerprint,
            &answer,
        )
        .await
        {
            Ok(()) => {
                txn.commit().await?;
                Ok(respond(&answer, false))
            }
            Err(e) if is_unique_violation(&e) => {
                // A concurrent request with this key committed first: answer as it did.
                txn.rollback().await?;
                replay(db, self.tenant_id, &self.operation, key, fingerprint)
                    .await?
                    .ok_or_else(|| {
                        ApiError::Internal(anyhow::anyhow!(
                            "idempotency record vanished after a key conflict"
                        ))
                    })
            }
            Err(e) => Err(e.into()),
        }
    }
}

async fn replay(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    operation: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Option<HttpResponse>, ApiError> {
    let Some(record) = idempotency::find(db, tenant_id, operation, key).await? else {
        return Ok(None);
    };
    if record.request_hash != fingerprint {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            format!("This {HEADER} was used with a different request body."),
        ));
    }
    let answer = Answer {
        status_code: u16::try_from(record.status_code).unwrap_or(200),
        location: record.location,
        body: record.response_body,
    };
    Ok(Some(respond(&answer, true)))
}

/// The canonical text of a JSON body: object keys sorted, no insignificant spaces,
/// so that a retry that reorders keys is still the same request.
fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String((*k).clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_ignores_key_order_and_spacing_but_not_values() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_ne!(
            canonical_json(&json!({"a": [1, 2]})),
            canonical_json(&json!({"a": [2, 1]}))
        );
    }
}
