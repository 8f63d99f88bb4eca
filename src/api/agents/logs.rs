//! Client logs: an agent uploads its BackupAgent client's log, kept compressed.

use std::io::Write;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, post, web};
use futures_util::StreamExt;

use super::dto::{ClientLog, LogUploaded};
use crate::api::docs;
use crate::api::guard::require_reporting_agent;
use crate::api::state::AppState;
use crate::auth::Agent;
use crate::db::agent_reports;
use crate::error::ApiError;

/// Upload the client log (plain text, up to `http.agent_max_log_bytes`, 1 MiB by
/// default); it is stored compressed and listed on the machine. An empty log is
/// refused (422).
#[utoipa::path(
    tag = "agents",
    request_body(content = ClientLog, content_type = "text/plain"),
    responses(
        (status = 201, description = "Stored", body = LogUploaded),
        (status = 400, response = docs::BadRequest),
        (status = 413, response = docs::PayloadTooLarge),
        (status = 422, response = docs::Unprocessable),
        docs::AgentErrors,
    ),
    security(("agent_token" = []))
)]
#[post("/logs", wrap = "from_fn(require_reporting_agent)")]
pub async fn upload_log(
    state: web::Data<AppState>,
    Agent(machine): Agent,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.agent_max_log_bytes;
    let mut size = 0usize;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_body", format!("The log could not be read: {e}"))
        })?;
        size += chunk.len();
        if size > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        gzip.write_all(&chunk)
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    if size == 0 {
        return Err(ApiError::invalid_field("", "the log is empty"));
    }
    let data = gzip.finish().map_err(|e| ApiError::Internal(e.into()))?;
    let stored = data.len();
    let log_id = agent_reports::store_log(&state.db, &machine, size, data).await?;
    Ok(HttpResponse::Created().json(LogUploaded {
        log_id,
        size_bytes: size,
        stored_bytes: stored,
    }))
}
