//! What an item is to become, as the plan said when the migration was planned:
//! kept with the item (its `planned` column) and read back by the transfer job.
//! The item's kind says which of these its JSON is.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ItemKind;
use crate::domain::plan::input::Contact;
use crate::domain::plan::{AdminRole, TenantKind};
use crate::domain::provisioning::{ExistingCustomers, PricingMode, Want};
use crate::domain::support::Readiness;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Planned {
    Tenant(PlannedTenant),
    Admin(PlannedAdmin),
    User(PlannedUser),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedTenant {
    /// The plan's key of the tenant: its `internal_tag` in the target.
    pub tenant_key: String,
    /// The target name.
    pub name: String,
    pub kind: TenantKind,
    pub direct_users: bool,
    /// Rows written before tenants were provisioned have none of the three below.
    #[serde(default)]
    pub services: Vec<Want>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_mode: Option<PricingMode>,
    #[serde(default)]
    pub existing_customers: ExistingCustomers,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedAdmin {
    /// The target login.
    pub login: String,
    pub role: AdminRole,
    pub contact: Contact,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedUser {
    /// The target login.
    pub login: String,
    pub contact: Contact,
    pub machines: Vec<UserMachine>,
    /// The storage item of its personal tenant, with the user's source quota.
    /// Boxed: most users have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_quota: Option<Box<Want>>,
}

impl Planned {
    pub fn kind(&self) -> ItemKind {
        match self {
            Planned::Tenant(_) => ItemKind::Tenant,
            Planned::Admin(_) => ItemKind::Admin,
            Planned::User(_) => ItemKind::User,
        }
    }

    /// An item's `planned` column, read as what its `kind` column says it is.
    pub fn parse(kind: ItemKind, json: &str) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            ItemKind::Tenant => Planned::Tenant(serde_json::from_str(json)?),
            ItemKind::Admin => Planned::Admin(serde_json::from_str(json)?),
            ItemKind::User => Planned::User(serde_json::from_str(json)?),
        })
    }

    /// The `planned` column: through a `Value`, so its keys are sorted at every
    /// level, as items have always been written.
    pub fn to_json(&self) -> String {
        json!(self).to_string()
    }
}

/// A machine of the user: released to its agent once the user is migrated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMachine {
    pub machine_id: String,
    pub readiness: Readiness,
    /// Its converted backup plans, handed to its agent as they are.
    pub plans: Vec<Value>,
}

#[cfg(test)]
mod tests;
