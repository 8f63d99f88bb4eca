//! Liveness and readiness, for load balancers and orchestrators; no authentication.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::state::AppState;
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// What a probe can get wrong: nothing of its own, only HTTP itself.
const UNREADABLE: &str =
    "The HTTP request cannot be parsed (answered by the HTTP layer before the probe runs)";

/// The process is alive.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = Health), (status = 400, description = UNREADABLE)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The database answers.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 400, description = UNREADABLE),
    (status = 503, response = crate::api::docs::Unavailable),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await.map_err(|error| {
        tracing::warn!(%error, "readiness check: database unreachable");
        ApiError::Unavailable("The database is not reachable.")
    })?;
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}
