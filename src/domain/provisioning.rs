//! Provisioning: what services a migrated tenant gets in the cloud, so that its
//! customers can back up the day they migrate. A tenant created through the
//! cloud's `POST /tenants` has no service; services and their quotas are offering
//! items, chosen from what the parent may give a child, and a new customer starts
//! in trial pricing. The workspace's profile says which items (by application
//! type, edition and name, as the cloud names them), their quotas, the pricing
//! mode, and what to do with a customer that already exists in the cloud.
//!
//! Every decision here is pure: the caller reads the cloud, asks what to write,
//! writes it, and asks again after a lost answer (the answer is then "nothing").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use super::plan::TenantKind;

/// The most items one profile lists for a tenant kind.
pub const MAX_ITEMS: usize = 64;
/// The longest application, edition or item name.
pub const MAX_NAME_CHARS: usize = 64;

/// Which services migrated tenants get, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The offering items every migrated customer tenant gets on (an item named twice:
    /// the last rule counts).
    #[schema(max_items = 64)]
    #[validate(length(max = 64, message = "at most 64 items"), nested)]
    pub customer: Vec<ItemRule>,
    /// The offering items every migrated partner tenant gets on. A child can only
    /// get what its parent has on, so a partner holding customers also needs every
    /// customer item (the pre-check flags a missing one). An item named twice: the
    /// last rule counts.
    #[schema(max_items = 64)]
    #[validate(length(max = 64, message = "at most 64 items"), nested)]
    pub partner: Vec<ItemRule>,
    /// The pricing mode of the tenants the migration creates: `production` by
    /// default, since BackupAgent's customers are paying ones; the cloud's switch to
    /// production is one-way.
    #[serde(default)]
    pub pricing_mode: PricingMode,
    /// What happens to a customer tenant that already exists in the cloud.
    #[serde(default)]
    pub existing_customers: ExistingCustomers,
}

/// One offering item and its quota.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Validate, ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ItemRule {
    /// The application's type as the cloud names it (`backup`, `files_cloud`, ...).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[a-z0-9_]+$",
        example = "backup"
    )]
    #[validate(custom(function = "cloud_name"))]
    pub application: String,
    /// The edition (`standard`, `advanced`, ...); absent for items without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[a-z0-9_]+$",
        example = "standard"
    )]
    #[validate(custom(function = "cloud_name"))]
    pub edition: Option<String>,
    /// The offering item's name (`workstations`, `storage`, ...).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[a-z0-9_]+$",
        example = "workstations"
    )]
    #[validate(custom(function = "cloud_name"))]
    pub name: String,
    #[serde(default)]
    #[validate(custom(function = "quota_in_range"))]
    pub quota: QuotaRule,
}

/// An item's quota.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "QuotaWire")]
pub enum QuotaRule {
    /// No limit.
    #[default]
    Unlimited,
    /// A soft limit (`value`), hard when `overage` is given (the cloud allows that much more).
    Fixed {
        #[schema(minimum = 0, maximum = 9007199254740991_u64)]
        value: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 0, maximum = 9007199254740991_u64)]
        overage: Option<u64>,
    },
    /// The source's storage quota, in bytes, where the source has one (a group's for
    /// its tenant, a user's for the user's personal tenant); unlimited where not. Only
    /// for items measured in bytes.
    Source,
}

/// A quota as sent: serde's tagged enums let unknown fields through on their unit
/// variants, so the object is read whole and every field checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaWire {
    kind: QuotaKind,
    value: Option<u64>,
    overage: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum QuotaKind {
    Unlimited,
    Fixed,
    Source,
}

impl TryFrom<QuotaWire> for QuotaRule {
    type Error = &'static str;

    fn try_from(wire: QuotaWire) -> Result<Self, Self::Error> {
        match (wire.kind, wire.value, wire.overage) {
            (QuotaKind::Fixed, Some(value), overage) => Ok(QuotaRule::Fixed { value, overage }),
            (QuotaKind::Fixed, None, _) => Err("a fixed quota needs its value"),
            (QuotaKind::Unlimited, None, None) => Ok(QuotaRule::Unlimited),
            (QuotaKind::Source, None, None) => Ok(QuotaRule::Source),
            _ => Err("only a fixed quota has a value or an overage"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingMode {
    #[default]
    Production,
    Trial,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExistingCustomers {
    /// Turn on the profile's items the customer does not have; leave its own alone
    /// (states and quotas). Nothing is ever turned off.
    #[default]
    AddMissing,
    /// Leave its services and pricing as they are.
    Leave,
}

/// The largest integer a JSON number carries exactly.
const MAX_SAFE: u64 = 9_007_199_254_740_991;

impl Profile {
    /// What a migration gives when the workspace says nothing: the standard
    /// edition's backup of workstations, servers and virtual machines, unlimited,
    /// and cloud storage with the source's quotas; production pricing.
    pub fn standard() -> Self {
        let backup = |name: &str, quota| ItemRule {
            application: "backup".into(),
            edition: Some("standard".into()),
            name: name.into(),
            quota,
        };
        let items = vec![
            backup("workstations", QuotaRule::Unlimited),
            backup("servers", QuotaRule::Unlimited),
            backup("vms", QuotaRule::Unlimited),
            backup("storage", QuotaRule::Source),
        ];
        Self {
            customer: items.clone(),
            partner: items,
            pricing_mode: PricingMode::Production,
            existing_customers: ExistingCustomers::AddMissing,
        }
    }

    pub fn items(&self, kind: TenantKind) -> &[ItemRule] {
        match kind {
            TenantKind::Customer => &self.customer,
            TenantKind::Partner => &self.partner,
        }
    }
}

fn cloud_name(text: &str) -> Result<(), ValidationError> {
    if is_name(text) {
        Ok(())
    } else {
        Err(ValidationError::new("cloud_name").with_message(
            format!("1 to {MAX_NAME_CHARS} lower-case letters, digits or _, as the cloud names it")
                .into(),
        ))
    }
}

fn quota_in_range(quota: &QuotaRule) -> Result<(), ValidationError> {
    match *quota {
        QuotaRule::Fixed { value, overage }
            if value > MAX_SAFE || overage.is_some_and(|o| o > MAX_SAFE) =>
        {
            Err(ValidationError::new("quota").with_message("a quota is at most 2^53 - 1".into()))
        }
        _ => Ok(()),
    }
}

fn is_name(text: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// How an item is named across the cloud: application type, edition, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub struct ItemKey {
    pub application: String,
    pub edition: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.edition {
            Some(edition) => write!(f, "{}/{}/{}", self.application, edition, self.name),
            None => write!(f, "{}/{}", self.application, self.name),
        }
    }
}

impl ItemRule {
    pub fn key(&self) -> ItemKey {
        ItemKey {
            application: self.application.clone(),
            edition: self.edition.clone(),
            name: self.name.clone(),
        }
    }
}

/// A quota as the cloud holds it: `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub value: Option<u64>,
    pub overage: Option<u64>,
}

impl Quota {
    pub const UNLIMITED: Quota = Quota {
        value: None,
        overage: None,
    };
}

/// An offering item as the cloud lists it for one tenant (or offers it to a child).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudItem {
    pub key: ItemKey,
    pub application_id: uuid::Uuid,
    pub infra_id: Option<uuid::Uuid>,
    pub measurement_unit: String,
    pub on: bool,
    pub quota: Option<Quota>,
    /// The quota's version, which a write must name.
    pub quota_version: i64,
}

impl CloudItem {
    fn in_bytes(&self) -> bool {
        self.measurement_unit == "bytes"
    }

    /// A feature (on or off) has no quota; the cloud refuses one.
    fn has_quota(&self) -> bool {
        self.measurement_unit != "n/a"
    }
}

/// Why a tenant will not get what a migration needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// The parent may not give it to a child of this kind (or the cloud has no such item).
    NotOffered,
    /// A `source` quota on an item not measured in bytes.
    SourceQuotaNotInBytes,
    /// A customer would get no backup of machines (workstations, servers or virtual
    /// machines): the cloud refuses its agents' registration.
    NoBackupForMachines,
}

/// Whether an item lets machines register: the backup of workstations, servers or
/// virtual machines, in any edition.
pub fn backs_up_machines(key: &ItemKey) -> bool {
    key.application == "backup"
        && ["workstations", "servers", "vms"]
            .iter()
            .any(|kind| key.name.ends_with(kind))
}

/// A profile item the parent cannot give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Flag {
    pub item: ItemKey,
    pub reason: Unavailable,
}

/// The items of `rules` the parent offers (as `offered` lists them) and the flags of
/// those it does not.
pub fn resolve(
    rules: &[ItemRule],
    offered: &[CloudItem],
) -> (Vec<(ItemRule, CloudItem)>, Vec<Flag>) {
    let by_key: BTreeMap<&ItemKey, &CloudItem> = offered.iter().map(|i| (&i.key, i)).collect();
    let mut given = Vec::new();
    let mut flags = Vec::new();
    let last: BTreeMap<ItemKey, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key(), i))
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let key = rule.key();
        if last.get(&key) != Some(&i) {
            continue;
        }
        match by_key.get(&key) {
            None => flags.push(Flag {
                item: key,
                reason: Unavailable::NotOffered,
            }),
            Some(item) if rule.quota == QuotaRule::Source && !item.in_bytes() => flags.push(Flag {
                item: key,
                reason: Unavailable::SourceQuotaNotInBytes,
            }),
            Some(item) => given.push((rule.clone(), (*item).clone())),
        }
    }
    (given, flags)
}

/// The quota a rule gives, with the source's quota in bytes where it has one.
pub fn quota(rule: QuotaRule, source_bytes: Option<u64>) -> Quota {
    match rule {
        QuotaRule::Unlimited => Quota::UNLIMITED,
        QuotaRule::Fixed { value, overage } => Quota {
            value: Some(value),
            overage,
        },
        QuotaRule::Source => Quota {
            value: source_bytes,
            overage: None,
        },
    }
}

/// How a tenant came to be in the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The migration created it (in this attempt or an earlier one).
    Created,
    /// It was in the cloud before: a customer the partner already had.
    Existing,
}

/// One item to write: the whole state the cloud should hold for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub application_id: uuid::Uuid,
    pub name: String,
    pub infra_id: Option<uuid::Uuid>,
    pub on: bool,
    /// `Some` to set the quota (naming the version read), `None` to leave it.
    pub quota: Option<(Quota, i64)>,
}

/// An item a tenant should have on, with its quota: `item` as the parent offers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub item: CloudItem,
    pub quota: Quota,
}

/// Whether `held` (absent: not listed) is what `want` asks of a tenant of `origin`:
/// an existing customer's own items keep their quotas.
fn satisfied(held: Option<&CloudItem>, want: &Want, origin: Origin) -> bool {
    match held {
        None => false,
        Some(item) if !item.on => false,
        Some(item) => {
            origin == Origin::Existing
                || !item.has_quota()
                || item.quota.unwrap_or_default() == want.quota
        }
    }
}

/// What to write to a tenant holding `current` so that it has `wanted`, as `origin`
/// and the profile's policy allow. The cloud sets an application's items together
/// (those of a named application that are not sent are turned off), so every item
/// of a touched application is sent with the state it should keep; nothing is ever
/// turned off. Empty when the tenant already holds what it should: a replay after a
/// lost answer writes nothing.
pub fn writes(
    current: &[CloudItem],
    wanted: &[Want],
    origin: Origin,
    policy: ExistingCustomers,
) -> Vec<Write> {
    if origin == Origin::Existing && policy == ExistingCustomers::Leave {
        return Vec::new();
    }
    let held: BTreeMap<&ItemKey, &CloudItem> = current.iter().map(|i| (&i.key, i)).collect();
    let unmet: Vec<&Want> = wanted
        .iter()
        .filter(|w| !satisfied(held.get(&w.item.key).copied(), w, origin))
        .collect();
    let touched: BTreeSet<uuid::Uuid> = unmet.iter().map(|w| w.item.application_id).collect();
    let asked: BTreeMap<&ItemKey, &Want> = unmet.iter().map(|w| (&w.item.key, *w)).collect();
    let mut writes: Vec<Write> = current
        .iter()
        .filter(|item| touched.contains(&item.application_id))
        .map(|item| {
            let want = asked.get(&item.key);
            let quota = want
                .filter(|_| item.has_quota())
                .filter(|_| !(origin == Origin::Existing && item.on))
                .filter(|w| item.quota.unwrap_or_default() != w.quota || !item.on)
                .map(|w| (w.quota, item.quota_version));
            Write {
                application_id: item.application_id,
                name: item.key.name.clone(),
                infra_id: item.infra_id,
                on: item.on || want.is_some(),
                quota,
            }
        })
        .collect();
    for want in unmet.iter().filter(|w| !held.contains_key(&w.item.key)) {
        writes.push(Write {
            application_id: want.item.application_id,
            name: want.item.key.name.clone(),
            infra_id: want.item.infra_id,
            on: true,
            quota: want.item.has_quota().then_some((want.quota, 0)),
        });
    }
    writes
}

/// The wanted items `current` does not hold as it should (for the pre-check's view
/// of an existing customer and the migration's record).
pub fn missing(current: &[CloudItem], wanted: &[Want], origin: Origin) -> Vec<ItemKey> {
    let held: BTreeMap<&ItemKey, &CloudItem> = current.iter().map(|i| (&i.key, i)).collect();
    wanted
        .iter()
        .filter(|w| !satisfied(held.get(&w.item.key).copied(), w, origin))
        .map(|w| w.item.key.clone())
        .collect()
}

/// What the workspace's own tenant may give a child of each kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    pub customer: Vec<CloudItem>,
    pub partner: Vec<CloudItem>,
}

impl Offer {
    /// What the cloud is taken to offer when it is not asked: everything the
    /// profile names (nothing is flagged; the migration asks before it starts).
    pub fn assumed(profile: &Profile) -> Self {
        let items = |rules: &[ItemRule]| {
            rules
                .iter()
                .map(|rule| CloudItem {
                    key: rule.key(),
                    application_id: uuid::Uuid::nil(),
                    infra_id: None,
                    measurement_unit: if rule.quota == QuotaRule::Source {
                        "bytes"
                    } else {
                        "quantity"
                    }
                    .into(),
                    on: true,
                    quota: None,
                    quota_version: 0,
                })
                .collect()
        };
        Self {
            customer: items(&profile.customer),
            partner: items(&profile.partner),
        }
    }
}

/// A planned tenant's services: what it gets, and what the profile asks that its
/// parent cannot give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantServices {
    pub key: String,
    pub kind: TenantKind,
    pub wants: Vec<Want>,
    pub flags: Vec<Flag>,
}

/// The services of every planned tenant, parents first as `tenants` lists them. A
/// top-level tenant chooses from `offer`; a tenant below a migrated partner from
/// what that partner gets. `source_quota` is a group's storage quota in bytes.
pub fn for_tenants(
    profile: &Profile,
    offer: &Offer,
    tenants: &[super::plan::PlannedTenant],
    source_quota: impl Fn(&str) -> Option<u64>,
) -> Vec<TenantServices> {
    let mut given: BTreeMap<&str, Vec<CloudItem>> = BTreeMap::new();
    let mut out = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let offered = match tenant.parent_key.as_deref() {
            None => match tenant.kind {
                TenantKind::Customer => offer.customer.as_slice(),
                TenantKind::Partner => offer.partner.as_slice(),
            },
            Some(parent) => given.get(parent).map_or(&[][..], Vec::as_slice),
        };
        let (resolved, mut flags) = resolve(profile.items(tenant.kind), offered);
        if tenant.kind == TenantKind::Customer
            && !resolved
                .iter()
                .any(|(_, item)| backs_up_machines(&item.key))
        {
            flags.push(Flag {
                item: ItemKey {
                    application: "backup".into(),
                    edition: None,
                    name: "workstations|servers|vms".into(),
                },
                reason: Unavailable::NoBackupForMachines,
            });
        }
        // The customer that holds a group's direct users ("{group}#users") is not the
        // group: the group's quota goes to the group's own tenant.
        let quota_bytes = (tenant.key == tenant.group_id)
            .then(|| source_quota(&tenant.group_id))
            .flatten();
        let wants: Vec<Want> = resolved
            .into_iter()
            .map(|(rule, item)| Want {
                quota: quota(rule.quota, quota_bytes),
                item,
            })
            .collect();
        given.insert(
            tenant.key.as_str(),
            wants.iter().map(|w| w.item.clone()).collect(),
        );
        out.push(TenantServices {
            key: tenant.key.clone(),
            kind: tenant.kind,
            wants,
            flags,
        });
    }
    out
}

/// The flags of `services`, one line per item, reason and tenant kind, with how
/// many tenants it concerns.
pub fn flag_summary(services: &[TenantServices]) -> Vec<String> {
    let mut counts: BTreeMap<(String, &'static str, &'static str), usize> = BTreeMap::new();
    for tenant in services {
        let kind = match tenant.kind {
            TenantKind::Customer => "customer",
            TenantKind::Partner => "partner",
        };
        for flag in &tenant.flags {
            let reason = match flag.reason {
                Unavailable::NotOffered => "not offered by the parent",
                Unavailable::SourceQuotaNotInBytes => "a source quota on an item not in bytes",
                Unavailable::NoBackupForMachines => "no backup of machines: agents cannot register",
            };
            *counts
                .entry((flag.item.to_string(), reason, kind))
                .or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((item, reason, kind), n)| format!("{item} ({reason}) for {n} {kind} tenant(s)"))
        .collect()
}

#[cfg(test)]
mod tests;
