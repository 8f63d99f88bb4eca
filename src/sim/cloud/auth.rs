//! The bearer token on every `/api/2/*` and policy-management route: signed by
//! this simulator's identity provider, unexpired, for our issuer and audience.
//! The caller acts as the partner admin of the tenant its `scope` names.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use super::errors::CloudError;
use crate::sim::idp::IdpState;

/// A partner admin of `tenant_id`, from a verified access token.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub tenant_id: Uuid,
}

impl Caller {
    fn from_request(req: &HttpRequest) -> Result<Self, CloudError> {
        let idp = req
            .app_data::<web::Data<IdpState>>()
            .ok_or_else(CloudError::unauthorized)?;
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(CloudError::unauthorized)?;
        let claims = idp
            .verify(token.trim())
            .ok_or_else(CloudError::unauthorized)?;
        // A token without a partner-admin policy on the account server may do nothing here.
        let tenant_id = claims["scope"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["rn"] == "account-server" && p["role"] == "partner_admin")
            .find_map(|p| p["tuid"].as_str().and_then(|t| Uuid::parse_str(t).ok()))
            .ok_or_else(CloudError::access_denied)?;
        Ok(Self { tenant_id })
    }
}

impl FromRequest for Caller {
    type Error = CloudError;
    type Future = Ready<Result<Self, CloudError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Caller::from_request(req))
    }
}
