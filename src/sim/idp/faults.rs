//! Fault injection on the identity provider's discovery document and key set:
//! the next N requests of either fail, with a 503, a 200 that is not JSON, or a
//! 200 with an empty key set. `GET|PUT /sim/idp/faults` read or replace them;
//! a large N keeps the issuer down until the faults are put back to 0.

use std::sync::Mutex;

use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::IdpState;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdpFaults {
    /// The next this many requests for the discovery document fail.
    pub fail_discovery: u64,
    /// The next this many requests for the key set fail.
    pub fail_keys: u64,
    /// How they fail.
    pub answer: FaultAnswer,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAnswer {
    /// 503 with `Retry-After: 1`.
    #[default]
    Unavailable,
    /// 200 with an HTML page (a proxy's error page, say).
    Garbage,
    /// 200 with `{"keys": []}` (the discovery document answers garbage instead).
    NoKeys,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Discovery,
    Keys,
}

#[derive(Default)]
pub(super) struct FaultState(Mutex<IdpFaults>);

impl FaultState {
    pub(super) fn get(&self) -> IdpFaults {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set(&self, faults: IdpFaults) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// The failing answer for this request to `endpoint`, if one is due (and counts it).
    pub(super) fn take(&self, endpoint: Endpoint) -> Option<HttpResponse> {
        let mut faults = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let left = match endpoint {
            Endpoint::Discovery => &mut faults.fail_discovery,
            Endpoint::Keys => &mut faults.fail_keys,
        };
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(match (faults.answer, endpoint) {
            (FaultAnswer::Unavailable, _) => HttpResponse::ServiceUnavailable()
                .insert_header((RETRY_AFTER, "1"))
                .json(json!({"error": "temporarily_unavailable"})),
            (FaultAnswer::NoKeys, Endpoint::Keys) => HttpResponse::Ok().json(json!({"keys": []})),
            (FaultAnswer::Garbage | FaultAnswer::NoKeys, _) => HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway</body></html>"),
        })
    }
}

pub(super) async fn get_faults(state: web::Data<IdpState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults.get())
}

pub(super) async fn put_faults(state: web::Data<IdpState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<IdpFaults>(&body) {
        Ok(faults) => {
            state.faults.set(faults);
            HttpResponse::Ok().json(state.faults.get())
        }
        Err(e) => HttpResponse::BadRequest()
            .json(json!({"error": "invalid_request", "error_description": e.to_string()})),
    }
}
