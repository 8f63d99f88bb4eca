//! Who may call which routes: [`require_partner`] wraps `/api/v1`,
//! [`require_agent`] every agent route that takes a token, [`admit_agent`] the one
//! that does not (enrollment), [`require_reporting_agent`] the reports of a
//! machine's steps. Agent requests are admitted first, a bounded number at once
//! (`http.agent_max_in_flight`, see [`crate::api::admission`]). Each authenticates
//! before any extractor reads the body and leaves the caller on the request,
//! where handlers take it as [`Partner`] or [`Agent`]; a partner then reaches
//! its own workspaces only ([`partner_workspace`]).

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use entity::workspace;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use crate::api::admission::Request;
use crate::api::state::AppState;
use crate::auth::{Agent, Partner, Rejection, bearer_token};
use crate::db::workspaces;
use crate::error::ApiError;

/// Authenticates every request of the scope it wraps; handlers then take
/// [`Partner`] from the request.
pub async fn require_partner<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let partner = partner(&req).await;
    pass(req, next, partner).await
}

async fn partner(req: &ServiceRequest) -> Result<Partner, ApiError> {
    let state = state_of(req)?;
    let verified = match bearer_token(req.request()) {
        None => Err(Rejection::Missing),
        Some(token) => state.auth.verify(token).await,
    };
    let partner = verified.map_err(|rejection| {
        tracing::info!(reason = %rejection, "partner request refused");
        ApiError::from(rejection)
    })?;
    // Before any extractor reads the body: a read-only token's write is refused
    // whatever it sends.
    if !partner.access.allows(req.method()) {
        tracing::info!(method = %req.method(), "a read-only partner's write refused");
        return Err(ApiError::Forbidden(
            "The token grants read-only access (readonly_admin); this operation needs partner_admin.",
        ));
    }
    Ok(partner)
}

/// The partner's workspace `id`: a partner reaches its own tenant's workspaces
/// only, and another tenant's is not found rather than forbidden.
pub async fn partner_workspace(
    state: &AppState,
    partner: &Partner,
    id: Uuid,
) -> Result<workspace::Model, ApiError> {
    workspaces::find(&state.db, partner.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// What the caller is told of a refused token: why, only where it can act on it.
impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::NoPartnerScope => ApiError::Forbidden(
                "The token grants no partner administrator (partner_admin) or read-only administrator (readonly_admin) access.",
            ),
            Rejection::SeveralPartnerTenants => ApiError::Forbidden(
                "The token grants administrator access on several tenants; use a token for one tenant.",
            ),
            Rejection::Missing => ApiError::Unauthorized {
                credentials_present: false,
            },
            Rejection::IssuerUnavailable { retry_after_secs } => {
                ApiError::IssuerUnavailable { retry_after_secs }
            }
            _ => ApiError::Unauthorized {
                credentials_present: true,
            },
        }
    }
}

/// Admits and authenticates an agent's check-in: it takes a slot among the agent
/// requests handled at once, held until the handler has answered, then finds the
/// token's machine.
pub async fn require_agent<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    agent_request(req, next, Request::Routine).await
}

/// Like [`require_agent`], for a report of a machine's step (an event, a log),
/// which may also take the slots held back for reports.
pub async fn require_reporting_agent<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    agent_request(req, next, Request::Report).await
}

async fn agent_request<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
    request: Request,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (agent, _slot) = match agent(&req, request).await {
        Ok((agent, slot)) => (Ok(agent), Some(slot)),
        Err(refused) => (Err(refused), None),
    };
    pass(req, next, agent).await
}

async fn agent(
    req: &ServiceRequest,
    request: Request,
) -> Result<(Agent, OwnedSemaphorePermit), ApiError> {
    let state = state_of(req)?;
    // Before the token's query: an overloaded service refuses without touching the database.
    let slot = admit(&state, request).await?;
    Ok((authenticate(&state, req.request()).await?, slot))
}

/// Admits an agent request that carries no token yet (enrollment): like
/// [`require_agent`], it holds a slot until the handler has answered.
pub async fn admit_agent<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let slot = match state_of(&req) {
        Ok(state) => admit(&state, Request::Routine).await,
        Err(e) => Err(e),
    };
    match slot {
        Ok(_slot) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(refused) => Ok(req.error_response(refused)),
    }
}

/// The request on to its handler with the authenticated `caller` on it, or the refusal as the answer.
async fn pass<B: MessageBody + 'static, T: 'static>(
    req: ServiceRequest,
    next: Next<B>,
    caller: Result<T, ApiError>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match caller {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(refused) => Ok(req.error_response(refused)),
    }
}

fn state_of(req: &ServiceRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))
}

/// A slot among the agent requests handled at once (see [`crate::api::admission`]),
/// or 429 with a `Retry-After` that grows with the overload.
async fn admit(state: &AppState, request: Request) -> Result<OwnedSemaphorePermit, ApiError> {
    state
        .admission
        .admit(request)
        .await
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })
}

async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Agent, ApiError> {
    let Some(token) = bearer_token(req) else {
        tracing::info!(reason = "no bearer token", "agent request refused");
        return Err(ApiError::Unauthorized {
            credentials_present: false,
        });
    };
    let agent = state.agent_tokens.verify(&state.db, token).await?;
    agent.ok_or_else(|| {
        tracing::info!(reason = "unknown agent token", "agent request refused");
        ApiError::Unauthorized {
            credentials_present: true,
        }
    })
}

impl FromRequest for Partner {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        authenticated(req.extensions().get::<Partner>().cloned())
    }
}

impl FromRequest for Agent {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        authenticated(req.extensions_mut().remove::<Agent>())
    }
}

/// The caller its guard left on the request; absent only on a route the guard
/// does not wrap: refuse, never serve.
fn authenticated<T>(caller: Option<T>) -> Ready<Result<T, ApiError>> {
    ready(caller.ok_or(ApiError::Unauthorized {
        credentials_present: false,
    }))
}
