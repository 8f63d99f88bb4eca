//! `/api/v1/operations/{id}`: long work in the AIP-151 shape, backed by the job queue.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::error::ApiError;
use crate::queue::store as queue;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_operation);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    /// `operations/{id}`.
    pub name: String,
    pub id: Uuid,
    /// What the operation does, e.g. `sync`.
    pub kind: String,
    /// True once it succeeded, failed for good or was cancelled.
    pub done: bool,
    pub metadata: OperationMetadata,
    /// Set when it failed for good or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// The result, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationMetadata {
    /// `queued`, `running`, `succeeded`, `discarded` or `cancelled`.
    pub status: String,
    /// Runs so far; a failed run is retried with backoff.
    pub attempt: i32,
    pub max_attempts: i32,
    /// What the latest run reported, e.g. counts done and to do.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    /// The error of the latest failed run, kept while it is retried.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationError {
    /// `failed` (attempts exhausted or a final error) or `cancelled`.
    pub code: String,
    pub message: String,
}

fn json(text: Option<&str>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

impl From<entity::job::Model> for Operation {
    fn from(job: entity::job::Model) -> Self {
        let error = match job.status.as_str() {
            queue::DISCARDED => Some(OperationError {
                code: "failed".into(),
                message: job.last_error.clone().unwrap_or_default(),
            }),
            queue::CANCELLED => Some(OperationError {
                code: "cancelled".into(),
                message: "The operation was cancelled.".into(),
            }),
            _ => None,
        };
        let done = matches!(
            job.status.as_str(),
            queue::SUCCEEDED | queue::DISCARDED | queue::CANCELLED
        );
        Self {
            name: format!("operations/{}", job.id),
            id: job.id,
            kind: job.kind.clone(),
            done,
            response: if job.status == queue::SUCCEEDED {
                json(job.result.as_deref())
            } else {
                None
            },
            error,
            metadata: OperationMetadata {
                status: job.status,
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                progress: json(job.progress.as_deref()),
                last_error: job.last_error,
                created_at: job.created_at,
                updated_at: job.updated_at,
                finished_at: job.finished_at,
            },
        }
    }
}

/// Get a long-running operation: poll until `done`.
#[utoipa::path(
    tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id, from the `Location` of the 202 that started it")),
    responses(
        (status = 200, body = Operation),
        (status = 404, response = docs::NotFound),
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[get("/operations/{id}")]
async fn get_operation(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Operation>, ApiError> {
    let job = queue::get(&state.db, *id)
        .await?
        .filter(|job| job.tenant_id == Some(partner.tenant_id))
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(Operation::from(job)))
}
