//! The OpenAPI document's fixed parts: info, servers, tags, security schemes,
//! the reusable error responses that every operation lists, and the rules that
//! hold for every operation ([`complete`]).

use std::collections::BTreeMap;

use actix_web::http::{Method, StatusCode};
use utoipa::openapi::content::Content;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};

use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

use crate::auth::Access;
use crate::error::{FieldError, PROBLEM_JSON, Problem};

#[derive(OpenApi)]
#[openapi(
    servers((url = "/", description = "This service (the document is served at /api-docs/openapi.json)")),
    info(
        title = "Migration Portal API",
        description = "Moves a backup service provider's install base from BackupAgent to the Acronis cloud backup platform. \
Partner endpoints take the cloud's RS256 access token as `Authorization: Bearer <jwt>`; every error is RFC 9457 problem+json. \
Strings in paths, query strings and JSON bodies must not hold control characters (U+0000 to U+001F and U+007F to U+009F; \
tab, line feed and carriage return are allowed in body strings): they are refused with 400 (parameters) or 422 (bodies), \
and every such string declares the matching `pattern`."
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
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Internal, Unavailable, PartnerUnavailable)
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
                    .description(Some("The cloud's RS256 access token for a user or API client with the partner_admin role (every operation) or the readonly_admin role (reads only); each operation's security names the roles it accepts."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token an agent got when it enrolled; it reaches its own machine only.",
                    ))
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

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        Content::new(Some(Ref::from_schema_name("Problem"))),
    )
}

macro_rules! problem_responses {
    ($($name:ident => $description:literal,)*) => {$(
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description).build().into())
            }
        }
    )*};
}

problem_responses! {
    BadRequest => "The request cannot be read: malformed JSON, wrong types, missing or unknown fields, bad path or query parameters.",
    Unauthorized => "No bearer token, or one that is not valid: expired, not yet valid, for another issuer or audience, badly signed, or an agent token that no enrolled machine holds.",
    Forbidden => "The token is valid but grants neither role this operation accepts (a `readonly_admin` token on a write, or no administrator role of the tenant): `WWW-Authenticate: Bearer error=\"insufficient_scope\"`.",
    NotFound => "No such resource for the caller's tenant.",
    Conflict => "The request clashes with the current state: e.g. an Idempotency-Key reused with another body, or a value naming what the workspace does not have (`errors` points at it).",
    PreconditionFailed => "If-Match names a version that is no longer current.",
    PayloadTooLarge => "The request body exceeds the configured limit.",
    UnsupportedMediaType => "The request body is not application/json.",
    Unprocessable => "The request was read, but values break the rules; `errors` lists each with a JSON Pointer.",
    Internal => "An internal error; the cause is logged with the request id.",
}

/// The `Retry-After` header of a refusal: whole seconds.
fn retry_after(description: &str) -> utoipa::openapi::header::Header {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1));
    HeaderBuilder::new()
        .schema(Some(seconds))
        .description(Some(description))
        .build()
}

/// A problem response that tells when to send the request again.
macro_rules! retry_responses {
    ($($(#[$doc:meta])* $name:ident => $description:literal, $header:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let response = problem($description).header("Retry-After", retry_after($header));
                (stringify!($name), response.build().into())
            }
        }
    )*};
}

retry_responses! {
    /// Overloaded (the agent API's in-flight cap), with when to come back.
    TooManyRequests => "Overloaded: more agent requests at once than the service admits (`too_many_requests`); send the request again after `Retry-After` seconds.", "Seconds to wait (drawn at random, so that refused agents come back spread out)";
    /// 503 beside the partner API's: the database, or a dependency of the operation.
    Unavailable => "The service cannot answer now: no database connection came free in time (`overloaded`, with `Retry-After`), or a dependency cannot be reached (the database; the cloud, for an agent's registration token: `unavailable`). Send the request again later, after `Retry-After` seconds when it is given.", "Seconds to wait (drawn at random, so that refused callers come back spread out)";
    /// 503 on the partner API: the database is overloaded, or the token's signing key is
    /// not cached and the issuer's key set cannot be fetched now.
    PartnerUnavailable => "The service cannot answer now; send the request again after `Retry-After` seconds. Either no database connection came free in time (`overloaded`), or the identity provider cannot be reached to fetch the key that signed the token (`issuer_unavailable`; tokens signed with a key already known keep working).", "Seconds to wait before sending the request again";
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
    PartnerErrors { "400" => BadRequest, "401" => Unauthorized, "403" => Forbidden, "500" => Internal, "503" => PartnerUnavailable }
    /// What any agent operation may answer: it is admitted (429), then reaches the database (503).
    AgentErrors { "401" => Unauthorized, "429" => TooManyRequests, "500" => Internal, "503" => Unavailable }
    /// What an operation on what a workspace may not hold yet may answer besides: none
    /// for the caller (404), or not yet (409: no snapshot synced, a pre-check not completed).
    NotReadyErrors { "404" => NotFound, "409" => Conflict }
    /// What a partner operation on one workspace may answer: a partner operation's
    /// errors, and 404 for a workspace the caller's tenant does not have.
    WorkspaceErrors { "400" => BadRequest, "401" => Unauthorized, "403" => Forbidden, "404" => NotFound, "500" => Internal, "503" => PartnerUnavailable }
    /// What an operation with a JSON body may answer besides (400: malformed JSON, unknown fields).
    BodyErrors { "400" => BadRequest, "413" => PayloadTooLarge, "415" => UnsupportedMediaType, "422" => Unprocessable }
}

/// Every operation of the document.
pub fn operations_mut(spec: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    methods_mut(spec).map(|(_, operation)| operation)
}

/// Every operation of the document with its method.
fn methods_mut(
    spec: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (Method, &mut Operation)> {
    spec.paths.paths.values_mut().flat_map(|item| {
        [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::OPTIONS, &mut item.options),
            (Method::HEAD, &mut item.head),
            (Method::PATCH, &mut item.patch),
            (Method::TRACE, &mut item.trace),
        ]
        .into_iter()
        .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
    })
}

/// Rules that hold for every operation, applied once the routes are in the
/// document (an annotation cannot state them once for all): a response written
/// without a description gets its status's reason phrase (OpenAPI requires one);
/// an operation that names no security scheme is public (`security: []`, not
/// "unspecified"); the paging rules ([`crate::api::paging::declare`]); and rules
/// across fields.
pub fn complete(spec: &mut utoipa::openapi::OpenApi) {
    for operation in operations_mut(spec) {
        for (status, response) in &mut operation.responses.responses {
            if let RefOr::T(response) = response
                && response.description.is_empty()
            {
                let reason = StatusCode::from_bytes(status.as_bytes())
                    .ok()
                    .and_then(|s| s.canonical_reason());
                response.description = reason.unwrap_or("Answer").to_string();
            }
        }
        operation.security.get_or_insert_with(Vec::new);
    }
    partner_roles(spec);
    crate::api::paging::declare(spec);
    // Rules across fields, each a validator's: `some_change`, and a migration names a pre-check or a selection.
    at_least_one(
        spec,
        "UpdateWorkspace",
        &[
            ("name", Type::String),
            ("source", Type::Object),
            ("target", Type::Object),
            ("limits", Type::Object),
            ("provisioning", Type::Object),
        ],
    );
    at_least_one(
        spec,
        "CreateMigration",
        &[("precheck_id", Type::String), ("selection", Type::Array)],
    );
    // Tagged enums that deny unknown fields: utoipa closes structs, not their variants.
    for name in ["AgentEvent", "SelectionNode", "QuotaRule"] {
        closed_variants(spec, name);
    }
}

/// The roles each partner operation accepts ([`Access::roles_for`], the rule the
/// guard applies): one security alternative per role, the role named in the
/// bearer scheme's list (OpenAPI 3.1 lets a scheme other than OAuth list the
/// roles an operation needs), and said in the operation's description.
fn partner_roles(spec: &mut utoipa::openapi::OpenApi) {
    for (method, operation) in methods_mut(spec) {
        // The security the route's annotation names (`bearer_auth`), read as the document writes it.
        let partner = serde_json::to_value(&operation.security)
            .ok()
            .and_then(|security| security.get(0)?.get("bearer_auth").cloned())
            .is_some();
        if !partner {
            continue;
        }
        let roles = Access::roles_for(&method);
        operation.security = Some(
            roles
                .iter()
                .map(|role| SecurityRequirement::new("bearer_auth", [*role]))
                .collect(),
        );
        let line = format!("Roles: `{}`.", roles.join("` or `"));
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{line}"),
            _ => line,
        });
    }
}

/// `additionalProperties: false` on each variant of the tagged enum `name`.
fn closed_variants(spec: &mut utoipa::openapi::OpenApi, name: &str) {
    let Some(RefOr::T(Schema::OneOf(one_of))) = spec
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(name))
    else {
        return;
    };
    for variant in &mut one_of.items {
        if let RefOr::T(Schema::Object(object)) = variant {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// `schema` needs at least one of `fields` present and not null: the object as
/// derived, and any of "has this field, of this type".
fn at_least_one(spec: &mut utoipa::openapi::OpenApi, schema: &str, fields: &[(&str, Type)]) {
    let Some(schemas) = spec.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(RefOr::T(Schema::Object(object))) = schemas.get_mut(schema) else {
        return;
    };
    let mut object = std::mem::take(object);
    let description = object.description.take();
    let any = fields
        .iter()
        .fold(AnyOfBuilder::new(), |any, (name, kind)| {
            any.item(
                ObjectBuilder::new()
                    .required(*name)
                    .property(*name, ObjectBuilder::new().schema_type(kind.clone())),
            )
        });
    let combined = AllOfBuilder::new()
        .item(object)
        .item(any)
        .description(description);
    schemas.insert(schema.to_string(), combined.into());
}
