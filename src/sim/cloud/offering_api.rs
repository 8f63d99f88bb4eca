//! Offering items over HTTP, as the document declares them:
//!
//! - `GET /api/2/tenants/{id}/offering_items` (`FetchTenantOfferingItems`): the tenant's
//!   items (see [`super::offering`]), filtered by `edition` (default `standard`, `*` for
//!   all; items without an edition always stay), `status`, `usage_names`, `type` and
//!   `infra_uuid`; `available_only`, `for_ui` and `include_secondary` are accepted and
//!   change nothing (no item is on a grace period or secondary here). An unknown value
//!   is 400. A user's personal tenant answers too. The document declares no 404 here:
//!   a tenant that does not exist is one the caller may not see (403).
//! - `PUT /api/2/tenants/{id}/offering_items` (`SetTenantOfferingItems`): read strictly
//!   as "sets the states and quotas of the offering items for specified applications":
//!   for each application named in the body its unlisted items are turned off; a listed
//!   item without `status` is turned on. Refused with 400 (the document's "were not
//!   successfully set"), naming the item: an unknown application or item, an item the
//!   parent does not have on, a second Backup edition on a customer, a quota on a
//!   feature. A quota whose `version` is not the current one is 409 with code 1001.
//!   `check_usage` is accepted (nothing is used here). A tenant's own items are set by
//!   its parent: the caller's own tenant is 403. Answers the tenant's items, every edition.
//! - `GET /api/2/tenants/{id}/offering_items/available_for_child?kind=&edition=`: what a
//!   child of that kind could get, i.e. the tenant's items that are on (with the
//!   tenant's quotas); a kind that cannot be a child of it is 400.
//! - `GET|PUT /sim/cloud/offering_items` (the simulator's own): the catalogue as the
//!   root partner has it; `{"off": ["adv_workstations", ...]}` turns exactly those items
//!   off on the root (and below it), every other catalogue item on.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Cloud;
use super::auth::Caller;
use super::catalogue::{ItemType, catalogue_item_named};
use super::errors::{CloudError, CloudResult, JsonBody};
use super::offering::{HeldItem, Holder, ItemFilter, ItemWrite};
use super::state::{Store, TenantKind, timestamp};
use super::tenants::tenant_id;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/2/tenants/{id}/offering_items")
            .route(web::get().to(list))
            .route(web::put().to(set)),
    )
    .route(
        "/api/2/tenants/{id}/offering_items/available_for_child",
        web::get().to(available_for_child),
    )
    .service(
        web::resource("/sim/cloud/offering_items")
            .route(web::get().to(root_catalogue))
            .route(web::put().to(set_root_catalogue)),
    );
}

/// The document's `offeringItemList`.
fn item_list(items: &[HeldItem], tenant_id: Uuid) -> Value {
    let items: Vec<Value> = items.iter().map(|h| h.to_json(tenant_id)).collect();
    json!({ "timestamp": timestamp(Utc::now()), "items": items })
}

/// Whether the caller may see the tenant or personal tenant `id` (false when unknown).
fn visible(store: &Store, caller: Caller, id: Uuid) -> bool {
    match store.holder(id) {
        Some(Holder::Tenant(t)) => store.in_subtree(caller.tenant_id, t.id),
        Some(Holder::Personal(u)) => store.in_subtree(caller.tenant_id, u.tenant_id),
        None => false,
    }
}

/// A path id that is not a uuid, or names nothing the caller sees: 403 (no 404 declared).
fn readable(store: &Store, caller: Caller, raw: &str) -> CloudResult<Uuid> {
    Uuid::parse_str(raw)
        .ok()
        .filter(|id| visible(store, caller, *id))
        .ok_or_else(CloudError::access_denied)
}

fn boolean(name: &str, raw: Option<&str>, also: &[&str]) -> CloudResult<()> {
    match raw {
        Some(v) if !["true", "false"].contains(&v) && !also.contains(&v) => Err(
            CloudError::bad_query(format!("{name} must be true or false")),
        ),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    edition: Option<String>,
    status: Option<String>,
    usage_names: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    infra_uuid: Option<String>,
    available_only: Option<String>,
    for_ui: Option<String>,
    include_secondary: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> CloudResult<ItemFilter> {
        boolean(
            "available_only",
            self.available_only.as_deref(),
            &["0", "1"],
        )?;
        boolean("for_ui", self.for_ui.as_deref(), &[])?;
        boolean("include_secondary", self.include_secondary.as_deref(), &[])?;
        let status = match self.status.as_deref() {
            None => None,
            Some("0") => Some(0),
            Some("1") => Some(1),
            Some(_) => return Err(CloudError::bad_query("status must be 0 or 1")),
        };
        let kind = match self.kind.as_deref() {
            None => None,
            Some(raw) => Some(ItemType::parse(raw).ok_or_else(|| {
                CloudError::bad_query("type must be one of count, feature, infra")
            })?),
        };
        let infra_id = match self.infra_uuid.as_deref() {
            None => None,
            Some(raw) => Some(
                Uuid::parse_str(raw)
                    .map_err(|_| CloudError::bad_query("infra_uuid is not a uuid"))?,
            ),
        };
        Ok(ItemFilter {
            edition: ItemFilter::edition(self.edition.as_deref()).map_err(CloudError::bad_query)?,
            status,
            usage_names: self
                .usage_names
                .as_deref()
                .map(ItemFilter::usage_names)
                .transpose()
                .map_err(CloudError::bad_query)?,
            kind,
            infra_id,
        })
    }
}

async fn list(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> CloudResult {
    let filter = query.filter()?;
    let store = cloud.store();
    let id = readable(&store, caller, &path)?;
    let mut items = store.held_items(id);
    items.retain(|h| filter.keeps(h));
    Ok(HttpResponse::Ok().json(item_list(&items, id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsPut {
    offering_items: Vec<ItemWrite>,
    #[serde(rename = "check_usage")]
    _check_usage: Option<bool>,
}

async fn set(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    put: JsonBody<ItemsPut>,
) -> CloudResult {
    let id = tenant_id(&path)?;
    // The document declares 400, not 422, for a body it cannot take here.
    let put = put.parse().map_err(|mut e| {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            e.status = StatusCode::BAD_REQUEST;
        }
        e
    })?;
    let mut store = cloud.store();
    if store.holder(id).is_none() {
        return Err(CloudError::tenant_not_found());
    }
    if !visible(&store, caller, id) {
        return Err(CloudError::access_denied());
    }
    if id == caller.tenant_id {
        return Err(CloudError::access_denied().with_details(
            json!({ "reason": "a tenant's own offering items are set by its parent" }),
        ));
    }
    store.set_offering_items(id, &put.offering_items, Utc::now())?;
    Ok(HttpResponse::Ok().json(item_list(&store.held_items(id), id)))
}

#[derive(Deserialize)]
struct ChildQuery {
    kind: Option<String>,
    edition: Option<String>,
}

async fn available_for_child(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ChildQuery>,
) -> CloudResult {
    let edition = ItemFilter::edition(query.edition.as_deref()).map_err(CloudError::bad_query)?;
    let kind = query
        .kind
        .as_deref()
        .map(|k| {
            serde_json::from_value::<TenantKind>(json!(k)).map_err(|_| {
                CloudError::bad_query(format!(
                    "kind {k:?} is not partner, folder, customer or unit"
                ))
            })
        })
        .transpose()?;
    let store = cloud.store();
    let id = readable(&store, caller, &path)?;
    let Some(Holder::Tenant(tenant)) = store.holder(id) else {
        return Err(CloudError::bad_query(
            "a user's personal tenant has no children",
        ));
    };
    if let Some(kind) = kind
        && !kind.may_be_child_of(tenant.kind)
    {
        return Err(CloudError::bad_query(format!(
            "a {} cannot be a child of a {}",
            kind.as_str(),
            tenant.kind.as_str()
        )));
    }
    let filter = ItemFilter {
        edition,
        ..ItemFilter::default()
    };
    let mut items = store.items_on(id);
    items.retain(|h| filter.keeps(h));
    Ok(HttpResponse::Ok().json(item_list(&items, id)))
}

fn root_catalogue_json(cloud: &Cloud) -> Value {
    let store = cloud.store();
    let items: Vec<Value> = store
        .held_items(cloud.root_tenant_id)
        .iter()
        .map(|h| {
            json!({
                "application": h.item.application().kind,
                "name": h.item.name,
                "edition": h.item.edition,
                "status": h.status,
            })
        })
        .collect();
    json!({ "tenant_id": cloud.root_tenant_id, "items": items })
}

async fn root_catalogue(cloud: web::Data<Cloud>) -> HttpResponse {
    HttpResponse::Ok().json(root_catalogue_json(&cloud))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootOff {
    off: Vec<String>,
}

async fn set_root_catalogue(cloud: web::Data<Cloud>, root_off: JsonBody<RootOff>) -> CloudResult {
    let root_off = root_off.parse()?;
    let off = root_off
        .off
        .iter()
        .map(|name| {
            catalogue_item_named(name)
                .map(|i| i.name)
                .ok_or_else(|| CloudError::invalid(format!("{name:?} is not a catalogue item")))
        })
        .collect::<CloudResult<Vec<&'static str>>>()?;
    cloud
        .store()
        .set_top_level_items_off(cloud.root_tenant_id, &off);
    Ok(HttpResponse::Ok().json(root_catalogue_json(&cloud)))
}
