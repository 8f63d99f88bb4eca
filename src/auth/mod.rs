//! Who is calling: partner admins with the cloud's RS256 JWT, and agents with
//! the token their machine enrolled for ([`agent`]). Verification only: the
//! middlewares that apply it to routes are the API's (`api::guard`).

pub mod agent;
mod jwks;
mod token;

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;
use uuid::Uuid;

pub use agent::Agent;
pub use jwks::{JwksCache, MissingKey};
pub use token::{constant_time_eq, digest, random_secret};

/// The role that lets a cloud user or API client drive migrations for its tenant.
pub const PARTNER_ROLE: &str = "partner_admin";

/// The cloud's read-only administrator role (`userRole` in its Account Management
/// API): sees every migration of its tenant, changes nothing.
pub const READ_ONLY_ROLE: &str = "readonly_admin";

/// What a partner's token lets it do on its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// `readonly_admin`: every read (GET, HEAD), no write.
    ReadOnly,
    /// `partner_admin`: everything.
    Administer,
}

impl Access {
    /// The roles that may call an operation of `method`, the one rule the guard
    /// applies and the OpenAPI document states: a read either role, anything else
    /// the partner administrator's only.
    pub fn roles_for(method: &Method) -> &'static [&'static str] {
        if Access::is_read(method) {
            &[PARTNER_ROLE, READ_ONLY_ROLE]
        } else {
            &[PARTNER_ROLE]
        }
    }

    /// Whether this access may call an operation of `method`.
    pub fn allows(self, method: &Method) -> bool {
        self == Access::Administer || Access::is_read(method)
    }

    fn is_read(method: &Method) -> bool {
        matches!(*method, Method::GET | Method::HEAD)
    }

    fn of_role(role: &str) -> Option<Access> {
        match role {
            PARTNER_ROLE => Some(Access::Administer),
            READ_ONLY_ROLE => Some(Access::ReadOnly),
            _ => None,
        }
    }
}

/// An authenticated partner administrator (or read-only administrator, by its
/// `access`); every query is scoped by `tenant_id`.
#[derive(Clone, Debug)]
pub struct Partner {
    pub tenant_id: Uuid,
    pub subject: String,
    pub access: Access,
}

pub struct Authenticator {
    keys: JwksCache,
    validation: Validation,
}

/// Why a token was refused: logged, never shown to the caller.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Rejection {
    #[error("no bearer token")]
    Missing,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("algorithm {0:?} is not RS256")]
    Algorithm(String),
    #[error("token header has no kid")]
    NoKeyId,
    #[error("no issuer key with this kid")]
    UnknownKey,
    #[error("the kid is not cached and the issuer's key set cannot be fetched now")]
    IssuerUnavailable { retry_after_secs: u64 },
    #[error("token refused: {0}")]
    Invalid(String),
    #[error("token grants neither partner_admin nor readonly_admin")]
    NoPartnerScope,
    #[error("token grants partner_admin or readonly_admin on several tenants")]
    SeveralPartnerTenants,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    scope: serde_json::Value,
}

impl Authenticator {
    pub fn new(
        http: reqwest::Client,
        issuer: &str,
        audience: &str,
        cooldown: Duration,
        max_age: Duration,
        leeway: Duration,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        // Issuers differ on a trailing slash; either spelling of ours is ours.
        let issuer = issuer.trim_end_matches('/');
        validation.set_issuer(&[issuer.to_string(), format!("{issuer}/")]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = leeway.as_secs();
        Self {
            keys: JwksCache::new(http, issuer, cooldown, max_age),
            validation,
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Partner, Rejection> {
        let header = decode_header(token).map_err(|_| Rejection::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(Rejection::NoKeyId)?;
        let key = self.keys.key(&kid).await.map_err(|missing| match missing {
            MissingKey::NotPublished => Rejection::UnknownKey,
            MissingKey::IssuerUnavailable { retry_after } => Rejection::IssuerUnavailable {
                retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            },
        })?;
        let data = decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| Rejection::Invalid(format!("{:?}", e.kind())))?;
        let (tenant_id, access) = match partner_tenants(&data.claims.scope).as_slice() {
            [] => return Err(Rejection::NoPartnerScope),
            [tenant] => *tenant,
            _ => return Err(Rejection::SeveralPartnerTenants),
        };
        Ok(Partner {
            tenant_id,
            subject: data.claims.sub.unwrap_or_default(),
            access,
        })
    }
}

/// The resource the partner role must be granted on.
pub const ACCOUNT_SERVER: &str = "account-server";

/// The distinct tenants (`tuid`) on which the token grants the partner-admin or
/// the read-only admin role of the account server, in order of appearance, each
/// with the most its roles there allow.
fn partner_tenants(scope: &serde_json::Value) -> Vec<(Uuid, Access)> {
    let mut tenants: Vec<(Uuid, Access)> = Vec::new();
    for entry in scope.as_array().into_iter().flatten() {
        let access = entry
            .get("role")
            .and_then(|r| r.as_str())
            .and_then(Access::of_role)
            .filter(|_| entry.get("rn").and_then(|r| r.as_str()) == Some(ACCOUNT_SERVER));
        let tenant = entry
            .get("tuid")
            .and_then(|t| t.as_str())
            .and_then(|t| Uuid::parse_str(t).ok());
        let (Some(access), Some(tenant)) = (access, tenant) else {
            continue;
        };
        match tenants.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, known)) => *known = (*known).max(access),
            None => tenants.push((tenant, access)),
        }
    }
    tenants
}

/// The token of `Authorization: Bearer <token>`, the scheme in any case (RFC 9110
/// §11.1): the one parser of the partner API, the agent API and /metrics.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_partner_tenants_are_the_tuids_of_account_server_partner_or_read_only_admin_scopes() {
        use Access::{Administer, ReadOnly};
        let t = "0b6e7d2a-1c1e-4d0e-9a55-7a8f6f1e2b3c";
        let u = "1c7f8e3b-2d2f-4e1f-8b66-8b9f7f2f3c4d";
        let rn = "account-server";
        let cases: Vec<(serde_json::Value, Vec<(&str, Access)>)> = vec![
            (
                json!([{"tid": 1, "tuid": t, "rs": "", "rn": rn, "role": "partner_admin"}]),
                vec![(t, Administer)],
            ),
            (
                json!([{"tuid": "not-a-uuid", "rn": rn, "role": "partner_admin"}, {"tuid": t, "rn": rn, "role": "partner_admin"}]),
                vec![(t, Administer)],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "partner_admin"}, {"tuid": t, "rn": rn, "role": "partner_admin"}]),
                vec![(t, Administer)],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "partner_admin"}, {"tuid": u, "rn": rn, "role": "partner_admin"}]),
                vec![(t, Administer), (u, Administer)],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "readonly_admin"}]),
                vec![(t, ReadOnly)],
            ),
            // Both roles on one tenant: the more it allows, whatever the order.
            (
                json!([{"tuid": t, "rn": rn, "role": "readonly_admin"}, {"tuid": t, "rn": rn, "role": "partner_admin"}]),
                vec![(t, Administer)],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "partner_admin"}, {"tuid": t, "rn": rn, "role": "readonly_admin"}]),
                vec![(t, Administer)],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "readonly_admin"}, {"tuid": u, "rn": rn, "role": "partner_admin"}]),
                vec![(t, ReadOnly), (u, Administer)],
            ),
            (
                json!([{"tuid": t, "rn": "other-service", "role": "partner_admin"}]),
                vec![],
            ),
            (
                json!([{"tuid": t, "rn": "other-service", "role": "readonly_admin"}]),
                vec![],
            ),
            (json!([{"tuid": t, "role": "partner_admin"}]), vec![]),
            (
                json!([{"tuid": t, "rn": rn, "role": "company_admin"}]),
                vec![],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "protection_ro_admin"}]),
                vec![],
            ),
            (
                json!([{"tuid": t, "rn": rn, "role": "backup_user"}]),
                vec![],
            ),
            (json!([{"rn": rn, "role": "partner_admin"}]), vec![]),
            (json!("partner_admin"), vec![]),
            (json!(null), vec![]),
            (json!([]), vec![]),
        ];
        for (scope, expected) in cases {
            let expected: Vec<(Uuid, Access)> = expected
                .into_iter()
                .map(|(s, access)| (Uuid::parse_str(s).expect("uuid"), access))
                .collect();
            assert_eq!(partner_tenants(&scope), expected, "{scope}");
        }
    }

    #[test]
    fn a_read_only_token_may_read_and_nothing_else() {
        for method in [Method::GET, Method::HEAD] {
            assert!(Access::ReadOnly.allows(&method));
            assert!(Access::Administer.allows(&method));
            assert_eq!(Access::roles_for(&method), [PARTNER_ROLE, READ_ONLY_ROLE]);
        }
        for method in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(!Access::ReadOnly.allows(&method), "{method}");
            assert!(Access::Administer.allows(&method), "{method}");
            assert_eq!(Access::roles_for(&method), [PARTNER_ROLE], "{method}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_nothing_else_is_a_bearer_token() {
        let cases = [
            (Some("Bearer abc.def"), Some("abc.def")),
            (Some("bearer abc"), Some("abc")),
            (Some("BEARER abc"), Some("abc")),
            (Some("bEaReR abc"), Some("abc")),
            (Some("Bearer   abc  "), Some("abc")),
            (Some("Bearer "), None),
            (Some("Bearer"), None),
            (Some("Bearerabc"), None),
            (Some("Basic dXNlcjpwdw=="), None),
            (Some("Token abc"), None),
            (Some(""), None),
            (None, None),
        ];
        for (header, expected) in cases {
            let mut req = actix_web::test::TestRequest::default();
            if let Some(value) = header {
                req = req.insert_header((AUTHORIZATION, value));
            }
            assert_eq!(bearer_token(&req.to_http_request()), expected, "{header:?}");
        }
    }
}
