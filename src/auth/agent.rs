//! Agents: each enrolled machine's agent holds a random token (kept hashed) that
//! reaches its own machine only. [`require_agent`] wraps every agent route that
//! takes one: it admits the request among those handled at once, then finds the
//! token's machine in one query, before any extractor reads the body. Handlers
//! take the machine as [`Agent`].

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use rand::Rng;
use tokio::sync::OwnedSemaphorePermit;

use super::bearer_token;
use crate::api::state::AppState;
use crate::db::agents::{self as store, MachineRow};
use crate::error::ApiError;

/// The machine the request's agent token reaches, with its status as read when
/// the token was checked.
pub struct Agent(pub MachineRow);

/// Admits and authenticates an agent request; the slot is held until the handler has answered.
pub async fn require_agent<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(ApiError::Internal(anyhow::anyhow!(
            "application state missing"
        ))));
    };
    // Before the token's query: an overloaded service refuses without touching the database.
    let _slot = match admit(&state) {
        Ok(slot) => slot,
        Err(busy) => return Ok(req.error_response(busy)),
    };
    match authenticate(&state, req.request()).await {
        Ok(machine) => {
            req.extensions_mut().insert(Agent(machine));
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(error) => Ok(req.error_response(error)),
    }
}

/// A slot among the agent requests handled at once, or 429 with a jittered `Retry-After`.
fn admit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    state
        .agent_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyRequests {
            retry_after_secs: rand::rng().random_range(30..=90),
        })
}

/// The token's machine and its status, in one query (the check-in's only one when nothing changes).
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<MachineRow, ApiError> {
    let Some(token) = bearer_token(req) else {
        tracing::info!(reason = "no bearer token", "agent request refused");
        return Err(ApiError::Unauthorized {
            credentials_present: false,
        });
    };
    let machine = store::machine_of_token(&state.db, &store::digest(token)).await?;
    machine.ok_or_else(|| {
        tracing::info!(reason = "unknown agent token", "agent request refused");
        ApiError::Unauthorized {
            credentials_present: true,
        }
    })
}

impl FromRequest for Agent {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only on a route without `require_agent`: refuse, never serve.
        ready(
            req.extensions_mut()
                .remove::<Agent>()
                .ok_or(ApiError::Unauthorized {
                    credentials_present: false,
                }),
        )
    }
}
