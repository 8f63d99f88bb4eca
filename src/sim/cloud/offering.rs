//! Offering items per tenant: which items of the [`catalogue`](super::catalogue) a
//! tenant (or a user's personal tenant) has on, and their quotas.
//!
//! - A tenant's items are every item its parent has on (the top-level partners': the
//!   whole catalogue), each with the tenant's own status and quota. A tenant has an
//!   item off until it is set on (a tenant created through `POST /tenants` has no
//!   service); a top-level partner has every item on unless the simulator turned it off.
//! - A personal tenant's parent is its user's tenant. "The user account quotas are
//!   controlled via user account personal tenants": a personal tenant has each of its
//!   parent's items on until it is set explicitly (our reading: a user gets what its
//!   tenant has unless told otherwise), unlimited until a quota is written.
//! - A quota is `{value, overage, version}`; null is unlimited, and the version is 0
//!   while both are null (the document's rule), otherwise the number of writes so far,
//!   so a write increments it and never reuses a number.
//! - Turning an item off turns it off in the whole subtree below (children's and
//!   personal tenants' own settings of it are dropped): a child may only have what its
//!   parent has on.
//! - A customer may have Backup items of one edition only on; items without an
//!   edition are outside that rule, and partners and folders may have several.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::catalogue::{
    BACKUP_APPLICATION_ID, CATALOGUE, CatalogueItem, EDITIONS, ItemType, application,
    catalogue_item, is_known_usage,
};
use super::errors::{CloudError, VERSION_MISMATCH};
use super::state::{Store, Tenant, TenantKind, User, timestamp};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaState {
    pub value: Option<i64>,
    pub overage: Option<i64>,
    /// Writes so far; the version while a limit is set.
    writes: i64,
}

impl QuotaState {
    pub fn version(&self) -> i64 {
        if self.value.is_none() && self.overage.is_none() {
            0
        } else {
            self.writes
        }
    }

    fn write(&mut self, value: Option<i64>, overage: Option<i64>) {
        self.writes += 1;
        self.value = value;
        self.overage = overage;
    }

    /// The document's `quota`.
    pub fn to_json(&self) -> Value {
        json!({ "value": self.value, "overage": self.overage, "version": self.version() })
    }
}

/// What a tenant set of one item; unset fields take the holder's defaults.
#[derive(Clone, Debug, Default)]
pub struct ItemState {
    pub status: Option<u8>,
    pub quota: QuotaState,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The offering settings of every holder, by tenant or personal tenant id, by item name.
pub type Offerings = HashMap<Uuid, HashMap<&'static str, ItemState>>;

/// What holds offering items: a tenant, or a user's personal tenant.
#[derive(Clone, Copy)]
pub enum Holder<'a> {
    Tenant(&'a Tenant),
    Personal(&'a User),
}

impl Holder<'_> {
    /// Whose items it may have: its parent tenant (none for the top-level partners).
    pub fn parent(&self) -> Option<Uuid> {
        match self {
            Holder::Tenant(t) => t.parent_id,
            Holder::Personal(u) => Some(u.tenant_id),
        }
    }

    fn default_status(&self) -> u8 {
        match self {
            Holder::Tenant(t) if t.parent_id.is_none() => 1,
            Holder::Tenant(_) => 0,
            Holder::Personal(_) => 1,
        }
    }

    fn is_customer(&self) -> bool {
        matches!(self, Holder::Tenant(t) if t.kind == TenantKind::Customer)
    }
}

/// One item as a holder has it.
#[derive(Clone, Debug)]
pub struct HeldItem {
    pub item: &'static CatalogueItem,
    pub status: u8,
    pub quota: QuotaState,
    pub updated_at: Option<DateTime<Utc>>,
}

impl HeldItem {
    pub fn is_on(&self) -> bool {
        self.status == 1
    }

    /// An item of the document's `offeringItemList` (`items_3`, closed: optional
    /// fields are left out rather than null where the document does not allow null).
    pub fn to_json(&self, tenant_id: Uuid) -> Value {
        let item = self.item;
        let mut object = json!({
            "application_id": item.application_id,
            "name": item.name,
            "edition": item.edition,
            "usage_name": item.usage_name,
            "tenant_id": tenant_id,
            "deleted_at": null,
            "status": self.status,
            "locked": false,
            "type": item.kind.as_str(),
            "measurement_unit": item.measurement_unit,
        });
        if let Some(map) = object.as_object_mut() {
            if let Some(infra_id) = item.infra_id() {
                map.insert("infra_id".into(), json!(infra_id));
            }
            if item.kind.has_quota() {
                map.insert("quota".into(), self.quota.to_json());
            }
            if let Some(at) = self.updated_at {
                map.insert("updated_at".into(), json!(timestamp(at)));
            }
        }
        object
    }
}

/// The listings' filters, as the document declares them.
#[derive(Clone, Debug, Default)]
pub struct ItemFilter {
    /// `None`: every edition (`*`).
    pub edition: Option<String>,
    pub status: Option<u8>,
    pub usage_names: Option<Vec<String>>,
    pub kind: Option<ItemType>,
    pub infra_id: Option<Uuid>,
}

impl ItemFilter {
    /// `edition` as the document has it: `standard` when absent, `*` for all; an
    /// edition the platform does not know is refused.
    pub fn edition(raw: Option<&str>) -> Result<Option<String>, String> {
        match raw.map(str::trim) {
            None | Some("") => Ok(Some("standard".into())),
            Some("*") => Ok(None),
            Some(e) if EDITIONS.contains(&e) => Ok(Some(e.to_string())),
            Some(e) => Err(format!(
                "edition {e:?} is not one of {} or *",
                EDITIONS.join(", ")
            )),
        }
    }

    pub fn usage_names(raw: &str) -> Result<Vec<String>, String> {
        let names: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        match names.iter().find(|n| !is_known_usage(n)) {
            Some(unknown) => Err(format!(
                "usage_names: {unknown:?} is no usage of any application"
            )),
            None => Ok(names),
        }
    }

    pub fn keeps(&self, held: &HeldItem) -> bool {
        let item = held.item;
        // Items without an edition are never filtered out by edition.
        (item.edition.is_none()
            || self
                .edition
                .as_deref()
                .is_none_or(|e| item.edition == Some(e)))
            && self.status.is_none_or(|s| held.status == s)
            && self
                .usage_names
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == item.usage_name))
            && self.kind.is_none_or(|k| item.kind == k)
            && self.infra_id.is_none_or(|i| item.infra_id() == Some(i))
    }
}

/// One item of a `tenantOfferingItemsPut`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemWrite {
    pub application_id: Uuid,
    pub name: String,
    /// Absent: on (an item listed in a PUT that says nothing else is wanted on).
    pub status: Option<u8>,
    pub infra_id: Option<Uuid>,
    pub quota: Option<QuotaWrite>,
}

/// The document's `quota` as written: all three fields, `version` the current one.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaWrite {
    pub value: Option<i64>,
    pub overage: Option<i64>,
    pub version: i64,
}

impl Store {
    /// The tenant or personal tenant `id`.
    pub fn holder(&self, id: Uuid) -> Option<Holder<'_>> {
        if let Some(tenant) = self.tenants.get(&id) {
            return Some(Holder::Tenant(tenant));
        }
        self.personal_tenants
            .get(&id)
            .and_then(|user| self.users.get(user))
            .map(Holder::Personal)
    }

    /// Every item `id`'s parent has on, with `id`'s status and quota; empty for an unknown id.
    pub fn held_items(&self, id: Uuid) -> Vec<HeldItem> {
        let Some(holder) = self.holder(id) else {
            return Vec::new();
        };
        let available: Vec<&'static CatalogueItem> = match holder.parent() {
            None => CATALOGUE.iter().collect(),
            Some(parent) => self
                .held_items(parent)
                .into_iter()
                .filter(HeldItem::is_on)
                .map(|h| h.item)
                .collect(),
        };
        let own = self.offering.get(&id);
        available
            .into_iter()
            .map(|item| {
                let state = own
                    .and_then(|o| o.get(item.name))
                    .cloned()
                    .unwrap_or_default();
                HeldItem {
                    item,
                    status: state.status.unwrap_or_else(|| holder.default_status()),
                    quota: state.quota,
                    updated_at: state.updated_at,
                }
            })
            .collect()
    }

    /// The items `id` has on.
    pub fn items_on(&self, id: Uuid) -> Vec<HeldItem> {
        let mut items = self.held_items(id);
        items.retain(HeldItem::is_on);
        items
    }

    /// The tenants below `id` and the personal tenants of their users and of `id`'s own.
    fn holders_below(&self, id: Uuid) -> Vec<Uuid> {
        let tenants: HashSet<Uuid> = self.subtree(id).iter().map(|t| t.id).collect();
        let personal = self
            .users
            .values()
            .filter(|u| tenants.contains(&u.tenant_id))
            .map(|u| u.personal_tenant_id);
        tenants
            .iter()
            .copied()
            .filter(|t| *t != id)
            .chain(personal)
            .collect()
    }

    /// `SetTenantOfferingItems` read strictly: for each application named, its items
    /// not listed are turned off. Nothing changes unless every item passes.
    pub fn set_offering_items(
        &mut self,
        id: Uuid,
        writes: &[ItemWrite],
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        let holder = self.holder(id).ok_or_else(CloudError::tenant_not_found)?;
        let is_customer = holder.is_customer();
        let held = self.held_items(id);
        let mut states = self.offering.get(&id).cloned().unwrap_or_default();
        let mut applications = Vec::new();
        let mut listed = Vec::new();
        for write in writes {
            let item = checked_write(write, &held)?;
            if listed.contains(&item.name) {
                return Err(invalid(format!("{} is listed twice", item.name)));
            }
            listed.push(item.name);
            if !applications.contains(&item.application_id) {
                applications.push(item.application_id);
            }
        }
        for write in writes {
            let Some(current) = held.iter().find(|h| h.item.name == write.name) else {
                continue;
            };
            if let Some(quota) = write.quota
                && quota.version != current.quota.version()
            {
                return Err(CloudError::new(
                    actix_web::http::StatusCode::CONFLICT,
                    VERSION_MISMATCH,
                    format!(
                        "Version mismatch: the quota of {} is at version {}, not {}",
                        write.name,
                        current.quota.version(),
                        quota.version
                    ),
                )
                .with_details(json!({ "current_version": current.quota.version(), "offering_item": write.name })));
            }
        }
        for held_item in held
            .iter()
            .filter(|h| applications.contains(&h.item.application_id))
        {
            let name = held_item.item.name;
            let state = states.entry(name).or_default();
            state.updated_at = Some(now);
            match writes.iter().find(|w| w.name == name) {
                None => state.status = Some(0),
                Some(write) => {
                    state.status = Some(write.status.unwrap_or(1));
                    if let Some(quota) = write.quota {
                        state.quota.write(quota.value, quota.overage);
                    }
                }
            }
        }
        let status_of = |name: &str| {
            states
                .get(name)
                .and_then(|s| s.status)
                .unwrap_or_else(|| holder.default_status())
        };
        if is_customer {
            let mut editions: Vec<(&str, &str)> = held
                .iter()
                .filter(|h| {
                    h.item.application_id == BACKUP_APPLICATION_ID && status_of(h.item.name) == 1
                })
                .filter_map(|h| h.item.edition.map(|e| (e, h.item.name)))
                .collect();
            editions.sort();
            editions.dedup_by_key(|(e, _)| *e);
            if let [(first, first_item), (second, second_item), ..] = editions[..] {
                let name = match holder {
                    Holder::Tenant(t) => t.name.clone(),
                    Holder::Personal(_) => id.to_string(),
                };
                return Err(invalid(format!(
                    "customer {name:?} may have Backup items of one edition only: {first} ({first_item}) and {second} ({second_item}) are both on"
                )));
            }
        }
        let turned_off: Vec<&'static str> = held
            .iter()
            .map(|h| h.item.name)
            .filter(|name| status_of(name) == 0)
            .collect();
        self.offering.insert(id, states);
        for below in self.holders_below(id) {
            if let Some(settings) = self.offering.get_mut(&below) {
                settings.retain(|name, _| !turned_off.contains(name));
            }
        }
        Ok(())
    }

    /// The simulator's own switch: the top-level tenant `id` has exactly the catalogue
    /// items not in `off` on.
    pub fn set_top_level_items_off(&mut self, id: Uuid, off: &[&'static str]) {
        let now = Utc::now();
        let settings = self.offering.entry(id).or_default();
        for item in CATALOGUE {
            let state = settings.entry(item.name).or_default();
            state.status = Some(u8::from(!off.contains(&item.name)));
            state.updated_at = Some(now);
        }
        for below in self.holders_below(id) {
            if let Some(settings) = self.offering.get_mut(&below) {
                settings.retain(|name, _| !off.contains(name));
            }
        }
    }
}

/// The document declares 400 for an offering-items write that cannot be done.
fn invalid(message: String) -> CloudError {
    CloudError::bad_query(message)
}

/// The catalogue item a write names, if the holder may set it as asked.
fn checked_write(
    write: &ItemWrite,
    held: &[HeldItem],
) -> Result<&'static CatalogueItem, CloudError> {
    let app = application(write.application_id).ok_or_else(|| {
        invalid(format!(
            "unknown application {} (offering item {:?})",
            write.application_id, write.name
        ))
    })?;
    let item = catalogue_item(write.application_id, &write.name).ok_or_else(|| {
        invalid(format!(
            "unknown offering item {:?} of application {} ({})",
            write.name, app.name, app.kind
        ))
    })?;
    if write.status.is_some_and(|s| s > 1) {
        return Err(invalid(format!("{}: status must be 0 or 1", item.name)));
    }
    if let Some(infra_id) = write.infra_id
        && item.infra_id() != Some(infra_id)
    {
        return Err(invalid(format!(
            "{}: infrastructure {infra_id} is not this item's",
            item.name
        )));
    }
    if let Some(quota) = write.quota {
        if !item.kind.has_quota() {
            return Err(invalid(format!(
                "{} is a feature: it has no quota",
                item.name
            )));
        }
        if quota.value.is_some_and(|v| v < 0)
            || quota.overage.is_some_and(|v| v < 0)
            || quota.version < 0
        {
            return Err(invalid(format!(
                "{}: quota values must be at least 0",
                item.name
            )));
        }
    }
    let wanted_on = write.status.unwrap_or(1) == 1;
    if wanted_on && !held.iter().any(|h| h.item.name == item.name) {
        return Err(invalid(format!(
            "offering item {} ({}) cannot be turned on: the parent tenant does not have it on",
            item.name, app.kind
        )));
    }
    Ok(item)
}
