//! A tenant's pricing mode: `GET|PUT /api/2/tenants/{id}/pricing`
//! (`tenantPricingSettings`, `tenantPricingSettingsPut`).
//!
//! A tenant created through `POST /tenants` starts in `trial` (version 1, currency USD,
//! no production start date); the top-level partners are in `production` since their
//! creation. A PUT must carry the current `version` (a stale one is 409 with code 1001,
//! which the document does not declare here: an allowance of the contract test, see
//! `docs/cloud-contract.md`) and increments it. Switching to `production` sets
//! `production_start_date` and is one-way: once it is set, `trial` is refused. The
//! document declares 200, 401, 403 and 404 for the PUT; 403 (code 1011) is the
//! refusal that fits ("not authorized to ... its method": the platform forbids that
//! move to everyone), 400 and 409 not being declared. `suspended` may follow and
//! precede either mode (going back from it to `trial` only if never in production).
//! A tenant's own pricing is set by its parent: the caller's own tenant is 403.
//! Personal tenants have no pricing (404).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::Cloud;
use super::auth::Caller;
use super::errors::{CloudError, CloudResult, FORBIDDEN_CHANGE, JsonBody};
use super::state::{Store, Tenant, timestamp};
use super::tenants::tenant_id;

/// The document's `currency`.
pub const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "EUR", "CNY", "GBP", "JPY", "KZT", "NZD", "RUB", "USD", "ZAR",
];

/// The document's `pricingMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PricingMode {
    Trial,
    Production,
    Suspended,
}

impl PricingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PricingMode::Trial => "trial",
            PricingMode::Production => "production",
            PricingMode::Suspended => "suspended",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pricing {
    pub mode: PricingMode,
    pub currency: Option<String>,
    pub version: i64,
    pub production_start_date: Option<DateTime<Utc>>,
}

impl Pricing {
    /// The document's `tenantPricingSettings`.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode,
            "currency": self.currency,
            "version": self.version,
            "production_start_date": self.production_start_date.map(timestamp),
        })
    }
}

impl Store {
    /// The tenant's pricing; a tenant nobody set is at its start.
    pub fn pricing_of(&self, tenant: &Tenant) -> Pricing {
        self.pricing.get(&tenant.id).cloned().unwrap_or_else(|| {
            let top_level = tenant.parent_id.is_none();
            Pricing {
                mode: if top_level {
                    PricingMode::Production
                } else {
                    PricingMode::Trial
                },
                currency: Some("USD".into()),
                version: 1,
                production_start_date: top_level.then_some(tenant.created_at),
            }
        })
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/2/tenants/{id}/pricing")
            .route(web::get().to(get))
            .route(web::put().to(set)),
    );
}

async fn get(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>) -> CloudResult {
    let id = tenant_id(&path)?;
    let store = cloud.store();
    let tenant = store.visible_tenant(caller.tenant_id, id)?;
    Ok(HttpResponse::Ok().json(store.pricing_of(tenant).to_json()))
}

/// A field that may be sent as null: `Some(None)`; absent: `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingPut {
    version: i64,
    mode: Option<PricingMode>,
    #[serde(default, deserialize_with = "present")]
    currency: Option<Option<String>>,
}

async fn set(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    put: JsonBody<PricingPut>,
) -> CloudResult {
    let id = tenant_id(&path)?;
    let put = put.parse()?;
    if let Some(Some(currency)) = &put.currency
        && !CURRENCIES.contains(&currency.as_str())
    {
        return Err(CloudError::invalid(format!(
            "currency {currency:?} is not one of {}",
            CURRENCIES.join(", ")
        )));
    }
    let mut store = cloud.store();
    let tenant = store.visible_tenant(caller.tenant_id, id)?;
    if id == caller.tenant_id {
        return Err(CloudError::access_denied()
            .with_details(json!({ "reason": "a tenant's own pricing is set by its parent" })));
    }
    let mut pricing = store.pricing_of(tenant);
    if put.version != pricing.version {
        return Err(CloudError::version_mismatch(pricing.version.max(0) as u64));
    }
    if let Some(mode) = put.mode {
        if mode == PricingMode::Trial
            && let Some(since) = pricing.production_start_date
        {
            return Err(CloudError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                FORBIDDEN_CHANGE,
                format!(
                    "Tenant {:?} is in production since {}: it cannot go back to trial",
                    tenant.name,
                    timestamp(since)
                ),
            ));
        }
        if mode == PricingMode::Production && pricing.production_start_date.is_none() {
            pricing.production_start_date = Some(Utc::now());
        }
        pricing.mode = mode;
    }
    if let Some(currency) = put.currency {
        pricing.currency = currency;
    }
    pricing.version += 1;
    let answer = pricing.to_json();
    store.pricing.insert(id, pricing);
    Ok(HttpResponse::Ok().json(answer))
}
