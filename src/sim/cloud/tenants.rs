//! `/api/2/tenants`: create, get, list with cursor paging, update and delete
//! under optimistic locking, inside the caller's subtree.
//!
//! Tenant names: the real character rule is unconfirmed. We refuse, as a
//! conservative choice, names that are empty after trimming, longer than
//! [`MAX_NAME_CHARS`], hold a control character or any of [`REFUSED_NAME_CHARS`].
//! Names are stored trimmed; siblings may not share a name (trimmed, case-insensitive).

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Cloud;
use super::auth::Caller;
use super::errors::{CloudError, CloudResult, JsonBody};
use super::state::{Tenant, TenantKind, timestamp};

/// Characters a tenant name may not hold (our conservative choice; see the module doc).
pub const REFUSED_NAME_CHARS: &[char] = &['<', '>', '"', '\\', '/', '|', ';'];
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_INTERNAL_TAG_CHARS: usize = 256;
pub const DEFAULT_PAGE_LIMIT: usize = 5000;
pub const MAX_UUIDS: usize = 100;

/// Why the simulated cloud refuses `name` as a tenant name, if it does.
pub fn name_problem(name: &str) -> Option<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Some("name must not be empty".into());
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Some(format!("name must be at most {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| c.is_control() || REFUSED_NAME_CHARS.contains(c))
    {
        return Some(format!("name must not contain {c:?}"));
    }
    None
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/2/tenants")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/api/2/tenants/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}

/// The optional fields the API accepts besides the modelled ones; echoed as sent.
struct Passthrough {
    company_billing_contact: Option<Value>,
    default_idp_id: Option<Uuid>,
    update_lock: Option<Value>,
    ancestral_access: Option<bool>,
    settings: Option<Value>,
}

impl Passthrough {
    fn apply(self, extra: &mut Map<String, Value>) {
        let fields = [
            ("company_billing_contact", self.company_billing_contact),
            ("default_idp_id", self.default_idp_id.map(|id| json!(id))),
            ("update_lock", self.update_lock),
            ("ancestral_access", self.ancestral_access.map(Value::Bool)),
            ("settings", self.settings),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                extra.insert(key.to_string(), value);
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
    parent_id: Uuid,
    kind: TenantKind,
    contact: Option<Map<String, Value>>,
    enabled: Option<bool>,
    customer_id: Option<String>,
    internal_tag: Option<String>,
    language: Option<String>,
    company_billing_contact: Option<Value>,
    default_idp_id: Option<Uuid>,
    update_lock: Option<Value>,
    ancestral_access: Option<bool>,
    settings: Option<Value>,
}

fn check_fields(
    name: Option<&str>,
    internal_tag: Option<&str>,
    language: Option<&str>,
) -> CloudResult<()> {
    if let Some(problem) = name.and_then(name_problem) {
        return Err(CloudError::invalid(problem));
    }
    if internal_tag.is_some_and(|t| t.chars().count() > MAX_INTERNAL_TAG_CHARS) {
        return Err(CloudError::invalid(format!(
            "internal_tag must be at most {MAX_INTERNAL_TAG_CHARS} characters"
        )));
    }
    if language.is_some_and(|l| l.trim().is_empty()) {
        return Err(CloudError::invalid("language must not be empty"));
    }
    Ok(())
}

async fn create(cloud: web::Data<Cloud>, caller: Caller, new: JsonBody<NewTenant>) -> CloudResult {
    let new = new.parse()?;
    check_fields(
        Some(&new.name),
        new.internal_tag.as_deref(),
        new.language.as_deref(),
    )?;
    let mut store = cloud.store();
    let parent = store.visible_tenant(caller.tenant_id, new.parent_id)?;
    if !new.kind.may_be_child_of(parent.kind) {
        return Err(CloudError::invalid(format!(
            "a {} cannot be created under a {}",
            new.kind.as_str(),
            parent.kind.as_str()
        )));
    }
    let name = new.name.trim().to_string();
    if store.sibling_named(Some(new.parent_id), &name, None) {
        return Err(CloudError::name_conflict(&name));
    }
    let mut extra = Map::new();
    Passthrough {
        company_billing_contact: new.company_billing_contact,
        default_idp_id: new.default_idp_id,
        update_lock: new.update_lock,
        ancestral_access: new.ancestral_access,
        settings: new.settings,
    }
    .apply(&mut extra);
    let now = Utc::now();
    let tenant = Tenant {
        id: store.new_id(),
        seq: store.next_seq(),
        version: 1,
        created_at: now,
        updated_at: now,
        name,
        kind: new.kind,
        parent_id: Some(new.parent_id),
        contact: Value::Object(new.contact.unwrap_or_default()),
        contact_id: store.new_id(),
        enabled: new.enabled.unwrap_or(true),
        customer_id: new.customer_id,
        internal_tag: new.internal_tag,
        language: new.language.unwrap_or_else(|| "en".into()),
        extra,
    };
    let answer = store.tenant_json(&tenant);
    store.insert_tenant(tenant);
    Ok(HttpResponse::Created().json(answer))
}

/// A path id that is not a uuid names no tenant.
pub fn tenant_id(raw: &str) -> CloudResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| CloudError::tenant_not_found())
}

async fn get(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>) -> CloudResult {
    let id = tenant_id(&path)?;
    let store = cloud.store();
    let tenant = store.visible_tenant(caller.tenant_id, id)?;
    Ok(HttpResponse::Ok().json(store.tenant_json(tenant)))
}

#[derive(Deserialize)]
struct ListQuery {
    parent_id: Option<Uuid>,
    subtree_root_id: Option<Uuid>,
    uuids: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// Which tenants a listing holds: its one filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Filter {
    Parent(Uuid),
    Subtree(Uuid),
    Uuids(String),
}

/// A page cursor: it encodes the listing's filter, so the next page needs `after` alone.
#[derive(Serialize, Deserialize)]
struct Cursor {
    filter: Filter,
    seq: u64,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> CloudResult<Cursor> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| CloudError::bad_query("after is not a cursor of this listing"))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| CloudError::bad_query("after is not a cursor of this listing"))
    }
}

/// Parses `a,b,c` (at most [`MAX_UUIDS`]) into uuids, 400 otherwise.
pub fn parse_uuids(raw: &str) -> CloudResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| CloudError::bad_query(format!("uuids: {s:?} is not a uuid")))
        })
        .collect::<CloudResult<_>>()?;
    if ids.is_empty() || ids.len() > MAX_UUIDS {
        return Err(CloudError::bad_query(format!(
            "uuids must name 1 to {MAX_UUIDS} ids"
        )));
    }
    Ok(ids)
}

/// The listing's filter and where it resumes: from the cursor, or from the one filter given.
fn filter_of(query: &ListQuery) -> CloudResult<(Filter, u64)> {
    let given = [
        query.parent_id.map(Filter::Parent),
        query.subtree_root_id.map(Filter::Subtree),
        query.uuids.clone().map(Filter::Uuids),
    ];
    let given: Vec<Filter> = given.into_iter().flatten().collect();
    if let Some(cursor) = query.after.as_deref().filter(|a| !a.is_empty()) {
        let cursor = Cursor::decode(cursor)?;
        // Filters sent beside a cursor must be the cursor's own.
        if given.iter().any(|f| *f != cursor.filter) {
            return Err(CloudError::bad_query(
                "the filters differ from the cursor's",
            ));
        }
        return Ok((cursor.filter, cursor.seq));
    }
    match <[Filter; 1]>::try_from(given) {
        Ok([filter]) => Ok((filter, 0)),
        Err(_) => Err(CloudError::bad_query(
            "exactly one of parent_id, subtree_root_id and uuids is required",
        )),
    }
}

/// A `tenantBatch` page, in creation order, with `paging.cursors.after` while more remain.
async fn list(
    cloud: web::Data<Cloud>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> CloudResult {
    let query = query.into_inner();
    let (filter, after) = filter_of(&query)?;
    // The document sets no maximum; a larger limit gets the largest page we serve.
    let limit = query
        .limit
        .unwrap_or(DEFAULT_PAGE_LIMIT)
        .min(DEFAULT_PAGE_LIMIT);
    if limit == 0 {
        return Err(CloudError::bad_query("limit must be at least 1"));
    }
    let store = cloud.store();
    let mut tenants: Vec<&Tenant> = match &filter {
        Filter::Parent(parent) => {
            store.visible_tenant(caller.tenant_id, *parent)?;
            store
                .children
                .get(parent)
                .into_iter()
                .flatten()
                .filter_map(|id| store.tenants.get(id))
                .collect()
        }
        Filter::Subtree(root) => {
            store.visible_tenant(caller.tenant_id, *root)?;
            store.subtree(*root)
        }
        Filter::Uuids(raw) => {
            let mut found = Vec::new();
            for id in parse_uuids(raw)? {
                match store.visible_tenant(caller.tenant_id, id) {
                    Ok(tenant) => found.push(tenant),
                    Err(e) if e.code == super::errors::TENANT_NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
            found
        }
    };
    tenants.sort_by_key(|t| t.seq);
    tenants.dedup_by_key(|t| t.id);
    let rest: Vec<&Tenant> = tenants.into_iter().filter(|t| t.seq > after).collect();
    let page = &rest[..rest.len().min(limit)];
    let mut cursors = Map::new();
    if rest.len() > page.len()
        && let Some(last) = page.last()
    {
        cursors.insert(
            "after".into(),
            json!(
                Cursor {
                    filter: filter.clone(),
                    seq: last.seq
                }
                .encode()
            ),
        );
    }
    let items: Vec<Value> = page.iter().map(|t| store.tenant_json(t)).collect();
    Ok(HttpResponse::Ok().json(json!({ "timestamp": timestamp(Utc::now()), "items": items, "paging": { "cursors": cursors } })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantUpdate {
    version: u64,
    name: Option<String>,
    contact: Option<Map<String, Value>>,
    enabled: Option<bool>,
    customer_id: Option<String>,
    internal_tag: Option<String>,
    language: Option<String>,
    company_billing_contact: Option<Value>,
    default_idp_id: Option<Uuid>,
    update_lock: Option<Value>,
    ancestral_access: Option<bool>,
    settings: Option<Value>,
}

async fn update(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    change: JsonBody<TenantUpdate>,
) -> CloudResult {
    let id = tenant_id(&path)?;
    let change = change.parse()?;
    check_fields(
        change.name.as_deref(),
        change.internal_tag.as_deref(),
        change.language.as_deref(),
    )?;
    let mut store = cloud.store();
    let tenant = store.visible_tenant(caller.tenant_id, id)?;
    if tenant.version != change.version {
        return Err(CloudError::version_mismatch(tenant.version));
    }
    let parent_id = tenant.parent_id;
    let name = change.name.map(|n| n.trim().to_string());
    if let Some(name) = &name
        && store.sibling_named(parent_id, name, Some(id))
    {
        return Err(CloudError::name_conflict(name));
    }
    let Some(tenant) = store.tenants.get_mut(&id) else {
        return Err(CloudError::tenant_not_found());
    };
    if let Some(name) = name {
        tenant.name = name;
    }
    if let Some(contact) = change.contact {
        tenant.contact = Value::Object(contact);
    }
    if let Some(enabled) = change.enabled {
        tenant.enabled = enabled;
    }
    if change.customer_id.is_some() {
        tenant.customer_id = change.customer_id;
    }
    if change.internal_tag.is_some() {
        tenant.internal_tag = change.internal_tag;
    }
    if let Some(language) = change.language {
        tenant.language = language;
    }
    Passthrough {
        company_billing_contact: change.company_billing_contact,
        default_idp_id: change.default_idp_id,
        update_lock: change.update_lock,
        ancestral_access: change.ancestral_access,
        settings: change.settings,
    }
    .apply(&mut tenant.extra);
    tenant.version += 1;
    tenant.updated_at = Utc::now();
    let tenant = &store.tenants[&id];
    Ok(HttpResponse::Ok().json(store.tenant_json(tenant)))
}

#[derive(Deserialize)]
struct DeleteQuery {
    version: Option<u64>,
}

async fn delete(
    cloud: web::Data<Cloud>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<DeleteQuery>,
) -> CloudResult {
    let id = tenant_id(&path)?;
    let version = query
        .version
        .ok_or_else(|| CloudError::invalid("version is required"))?;
    let mut store = cloud.store();
    let tenant = store.visible_tenant(caller.tenant_id, id)?;
    if id == caller.tenant_id {
        return Err(CloudError::access_denied()
            .with_details(json!({ "reason": "the caller's own tenant" })));
    }
    if tenant.version != version {
        return Err(CloudError::version_mismatch(tenant.version));
    }
    if store.has_children(id) {
        return Err(CloudError::conflict("Tenant has children"));
    }
    store.remove_tenant(id);
    Ok(HttpResponse::NoContent().finish())
}
