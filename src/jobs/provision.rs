//! Provisioning in the cloud: a tenant's offering items and pricing mode set as
//! the plan says, idempotently: read, compare ([`rules::writes`]), write what
//! differs. (What the workspace's tenant offers its children is read once per
//! plan: `planning::offer`.)
//! A write whose answer was lost meets a newer version on its replay (409, 1001):
//! the tenant is read again, and what is already there is not written twice.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::connectors::ConnectorError;
use crate::connectors::target::{
    OfferingItemPut, PricingMode as CloudPricing, Quota as CloudQuota, TargetApi,
};
use crate::domain::provisioning::{self as rules, ExistingCustomers, Origin, PricingMode, Want};
pub use crate::planning::offer::{Applications, applications, cloud_items};

/// Reads and writes after a version conflict before giving up (as unavailable).
const ATTEMPTS: usize = 3;

fn put(write: &rules::Write) -> OfferingItemPut {
    let signed = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    OfferingItemPut {
        application_id: write.application_id,
        name: write.name.clone(),
        status: u8::from(write.on),
        infra_id: write.infra_id,
        quota: write.quota.map(|(quota, version)| CloudQuota {
            value: signed(quota.value),
            overage: signed(quota.overage),
            version,
        }),
    }
}

/// One call made while provisioning, for the operations log.
pub struct Call {
    pub name: &'static str,
    pub outcome: Result<(), String>,
    pub data: Value,
}

/// What provisioning a tenant did.
#[derive(Default)]
pub struct Provisioned {
    /// Items written (0: the tenant already held them).
    pub written: Vec<String>,
    /// The pricing mode it was switched to, if it was.
    pub pricing: Option<CloudPricing>,
    pub calls: Vec<Call>,
}

impl Provisioned {
    /// Keeps a call to the cloud and its outcome for the operations log.
    fn record<T>(&mut self, name: &'static str, result: &Result<T, ConnectorError>, data: Value) {
        self.calls.push(Call {
            name,
            outcome: result.as_ref().map(|_| ()).map_err(ToString::to_string),
            data,
        });
    }
}

/// What one tenant is to get: its offering items, and for a tenant the
/// migration created, its pricing mode.
pub struct Provision<'a> {
    pub tenant_id: Uuid,
    pub wants: &'a [Want],
    pub origin: Origin,
    pub policy: ExistingCustomers,
    pub pricing: Option<PricingMode>,
}

/// Sets the tenant's offering items to `wants` (as `origin` and `policy` allow)
/// and, for a tenant the migration created, its pricing mode. Safe to repeat.
pub async fn tenant(
    target: &dyn TargetApi,
    applications: &Applications,
    order: Provision<'_>,
) -> (Provisioned, Result<(), ConnectorError>) {
    let mut done = Provisioned::default();
    let result = async {
        items(target, applications, &order, &mut done).await?;
        if order.origin == Origin::Created
            && let Some(mode) = order.pricing
        {
            pricing_mode(target, order.tenant_id, mode, &mut done).await?;
        }
        Ok(())
    }
    .await;
    (done, result)
}

async fn items(
    target: &dyn TargetApi,
    applications: &Applications,
    order: &Provision<'_>,
    done: &mut Provisioned,
) -> Result<(), ConnectorError> {
    let Provision {
        tenant_id,
        wants,
        origin,
        policy,
        ..
    } = *order;
    for attempt in 1..=ATTEMPTS {
        let listed = target.offering_items(tenant_id).await;
        done.record("offering_items", &listed, json!({"tenant_id": tenant_id}));
        let current = cloud_items(&listed?, applications);
        let writes = rules::writes(&current, wants, origin, policy);
        let missing = rules::missing(&current, wants, origin);
        if writes.is_empty() {
            return Ok(());
        }
        let body: Vec<OfferingItemPut> = writes.iter().map(put).collect();
        let result = target.set_offering_items(tenant_id, &body).await;
        done.record(
            "set_offering_items",
            &result,
            json!({"tenant_id": tenant_id, "offering_items": body}),
        );
        match result {
            Ok(_) => {
                done.written = missing.iter().map(ToString::to_string).collect();
                return Ok(());
            }
            // Written meanwhile (a lost answer, another worker): read again.
            Err(e) if e.is_version_conflict() && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn pricing_mode(
    target: &dyn TargetApi,
    tenant_id: Uuid,
    mode: PricingMode,
    done: &mut Provisioned,
) -> Result<(), ConnectorError> {
    let wanted = match mode {
        PricingMode::Production => CloudPricing::Production,
        PricingMode::Trial => CloudPricing::Trial,
    };
    for attempt in 1..=ATTEMPTS {
        let read = target.pricing(tenant_id).await;
        done.record("pricing", &read, json!({"tenant_id": tenant_id}));
        let current = read?;
        // Production is one-way: a tenant already there stays (and trial is where a new one starts).
        if current.mode == wanted || wanted != CloudPricing::Production {
            return Ok(());
        }
        let result = target.set_pricing(tenant_id, wanted, current.version).await;
        done.record(
            "set_pricing",
            &result,
            json!({"tenant_id": tenant_id, "mode": wanted, "version": current.version}),
        );
        match result {
            Ok(_) => {
                done.pricing = Some(wanted);
                return Ok(());
            }
            Err(e) if e.is_version_conflict() && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
