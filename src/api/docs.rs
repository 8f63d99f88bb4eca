//! The OpenAPI document's fixed parts: info, tags, security schemes and the
//! reusable error responses that every operation lists.

use std::collections::BTreeMap;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};

use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

use crate::error::{FieldError, PROBLEM_JSON, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Migration Portal API",
        description = "Moves a backup service provider's install base from BackupAgent to the Acronis cloud backup platform. \
Partner endpoints take the cloud's RS256 access token as `Authorization: Bearer <jwt>`; every error is RFC 9457 problem+json."
    ),
    tags(
        (name = "workspaces", description = "A BackupAgent install base bound to the caller's cloud tenant"),
        (name = "hierarchy", description = "The synced install base: browse, search, roll up, and see each group, user and machine"),
        (name = "prechecks", description = "The pre-check report of a selection: the migration plan"),
        (name = "migrations", description = "Waves that carry out the plan: tenants, admins and backup users created in the target, machines released to their agents; the operations log"),
        (name = "operations", description = "Long-running work (AIP-151), health, readiness and metrics"),
        (name = "machines", description = "Every machine's migration state, why it waits, retry and manual steps done"),
        (name = "webhooks", description = "Subscriptions to the workspace's events, delivered as Standard Webhooks (HMAC-SHA256 signed), at least once, with a delivery log"),
        (name = "decommission", description = "When each customer's BackupAgent can be switched off: machines migrated and the longest retention run out"),
        (name = "agents", description = "What the BackupAgent clients on end-user machines call: enroll, instructions, step reports (agent token)"),
    ),
    components(
        schemas(Problem, FieldError),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Internal, Unavailable, IssuerUnavailable)
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The cloud's RS256 access token for a user or API client with the partner_admin role."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The token an agent got when it enrolled; it reaches its own machine only."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The token set as `metrics.bearer_token` (MP_METRICS__BEARER_TOKEN); without one, /metrics is open."))
                    .build(),
            ),
        );
    }
}

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new().description(description).content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name("Problem")))).build().into()
}

macro_rules! problem_responses {
    ($($name:ident => $description:literal,)*) => {$(
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description))
            }
        }
    )*};
}

problem_responses! {
    BadRequest => "The request cannot be read: malformed JSON, wrong types, missing or unknown fields, bad path or query parameters.",
    Unauthorized => "No bearer token, or one that is expired, not yet valid, for another issuer or audience, or badly signed.",
    Forbidden => "The token is valid but grants no partner administrator access (`WWW-Authenticate: Bearer error=\"insufficient_scope\"`).",
    NotFound => "No such resource for the caller's tenant.",
    Conflict => "The request clashes with the current state, e.g. an Idempotency-Key reused with another body.",
    PreconditionFailed => "If-Match names a version that is no longer current.",
    PayloadTooLarge => "The request body exceeds the configured limit.",
    UnsupportedMediaType => "The request body is not application/json.",
    Unprocessable => "The request was read, but values break the rules; `errors` lists each with a JSON Pointer.",
    Internal => "An internal error; the cause is logged with the request id.",
    Unavailable => "A dependency (the database) is not reachable.",
}

/// 503 on the partner API: the token's signing key is not cached and the
/// issuer's key set cannot be fetched now.
pub struct IssuerUnavailable;

impl<'r> ToResponse<'r> for IssuerUnavailable {
    fn response() -> (&'r str, RefOr<Response>) {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
        let retry_after = HeaderBuilder::new().schema(Some(seconds)).description(Some("Seconds to wait before sending the request again")).build();
        let response = ResponseBuilder::new()
            .description("The identity provider cannot be reached to fetch the key that signed the token (tokens signed with a key already known keep working); send the request again after `Retry-After` seconds.")
            .content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name("Problem"))))
            .header("Retry-After", retry_after)
            .build();
        ("IssuerUnavailable", response.into())
    }
}

/// A set of the responses above, listed by status, for `responses(...)` of a path.
macro_rules! response_sets {
    ($($(#[$doc:meta])* $set:ident { $($status:literal => $response:ident),* $(,)? })*) => {$(
        $(#[$doc])*
        pub struct $set;
        impl IntoResponses for $set {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(($status.to_string(), RefOr::Ref(Ref::from_response_name(stringify!($response))))),*])
            }
        }
    )*};
}

response_sets! {
    /// What any partner operation may answer.
    PartnerErrors { "400" => BadRequest, "401" => Unauthorized, "403" => Forbidden, "500" => Internal, "503" => IssuerUnavailable }
    /// What an operation with a JSON body may answer besides.
    BodyErrors { "413" => PayloadTooLarge, "415" => UnsupportedMediaType, "422" => Unprocessable }
}
