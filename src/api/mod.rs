//! HTTP resources under `/api/v1`, the operations endpoints, and the OpenAPI
//! document that is generated from the same route list.

pub mod admission;
mod agents;
mod decommission;
pub mod docs;
pub mod extract;
pub mod guard;
mod health;
mod hierarchy;
pub mod idempotency;
pub mod input;
mod machines;
mod metrics;
mod migrations;
pub mod operations;
pub mod paging;
pub(crate) mod prechecks;
mod registration;
pub mod state;
mod webhooks;
mod workspaces;

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, web};
use utoipa::OpenApi;
use utoipa::openapi::PathItem;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{AppExt, scope};

use crate::api::guard::require_partner;
use crate::error::ApiError;

/// Every documented route; the app and the spec are both built from this.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics)
        .service(scope("/agent/v1").configure(agents::routes))
        .service(
            scope("/api/v1")
                .wrap(from_fn(require_partner))
                .configure(workspaces::routes)
                .configure(hierarchy::routes)
                .configure(prechecks::routes)
                .configure(migrations::routes)
                .configure(agents::partner_routes)
                .configure(machines::routes)
                .configure(webhooks::routes)
                .configure(decommission::routes)
                .configure(operations::routes),
        );
}

/// The OpenAPI document, without starting a server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut spec) = App::new()
        .into_utoipa_app()
        .openapi(docs::ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    docs::complete(&mut spec);
    input::declare::declare_input_rules(&mut spec);
    spec
}

/// Every documented path pattern with each method it answers.
pub fn documented_routes(spec: &utoipa::openapi::OpenApi) -> Vec<(String, Method)> {
    spec.paths
        .paths
        .iter()
        .flat_map(|(path, item)| methods(item).into_iter().map(move |m| (path.clone(), m)))
        .collect()
}

/// Which methods each documented path answers, for 405 + `Allow`.
pub struct RouteTable(Vec<(ResourceDef, Vec<Method>)>);

impl RouteTable {
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        Self(
            spec.paths
                .paths
                .iter()
                .map(|(path, item)| (ResourceDef::new(path.as_str()), methods(item)))
                .collect(),
        )
    }

    /// The name of the parameter in segment `index` of `path`, by the documented route it matches.
    pub fn parameter_at(&self, path: &str, index: usize) -> Option<&str> {
        let (route, _) = self.0.iter().find(|(route, _)| route.is_match(path))?;
        route
            .pattern()?
            .split('/')
            .nth(index)?
            .strip_prefix('{')?
            .strip_suffix('}')
    }

    fn allowed(&self, path: &str) -> Vec<Method> {
        let mut allowed: Vec<Method> = self
            .0
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .flat_map(|(_, m)| m.iter().cloned())
            .collect();
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allowed.dedup();
        allowed
    }
}

fn methods(item: &PathItem) -> Vec<Method> {
    [
        (&item.get, Method::GET),
        (&item.put, Method::PUT),
        (&item.post, Method::POST),
        (&item.delete, Method::DELETE),
        (&item.patch, Method::PATCH),
        (&item.head, Method::HEAD),
        (&item.options, Method::OPTIONS),
    ]
    .into_iter()
    .filter(|(op, _)| op.is_some())
    .map(|(_, m)| m)
    .collect()
}

/// No route matched: 405 with `Allow` when the path exists under another method, else 404.
pub async fn fallback(
    req: HttpRequest,
    table: web::Data<RouteTable>,
) -> Result<HttpResponse, ApiError> {
    let allowed = table.allowed(req.path());
    Err(if allowed.is_empty() {
        ApiError::NotFound
    } else {
        ApiError::MethodNotAllowed(allowed)
    })
}
