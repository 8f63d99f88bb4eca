//! What the workspace's tenant offers its children, read from the cloud once
//! per plan, in the provisioning rules' terms.

use std::collections::HashMap;

use uuid::Uuid;

use crate::connectors::ConnectorError;
use crate::connectors::target::{OfferingItem, TargetApi, TenantKind as CloudKind};
use crate::domain::plan::{Plan, Snapshot};
use crate::domain::provisioning::{
    self, CloudItem, ItemKey, Offer, Profile, Quota, TenantServices,
};

/// Application ids by the application's type, as the cloud lists them.
pub type Applications = HashMap<Uuid, String>;

pub async fn applications(target: &dyn TargetApi) -> Result<Applications, ConnectorError> {
    Ok(target
        .applications()
        .await?
        .into_iter()
        .map(|a| (a.id, a.kind))
        .collect())
}

/// What `root` may give a child of each kind.
pub async fn offer(
    target: &dyn TargetApi,
    applications: &Applications,
    root: Uuid,
) -> Result<Offer, ConnectorError> {
    let customer = target
        .available_for_child(root, CloudKind::Customer)
        .await?;
    let partner = target.available_for_child(root, CloudKind::Partner).await?;
    Ok(Offer {
        customer: cloud_items(&customer, applications),
        partner: cloud_items(&partner, applications),
    })
}

/// The cloud's items in the rules' terms; an item of an application the cloud
/// did not list cannot be named by a profile and is left out.
pub fn cloud_items(items: &[OfferingItem], applications: &Applications) -> Vec<CloudItem> {
    items
        .iter()
        .filter_map(|item| {
            Some(CloudItem {
                key: ItemKey {
                    application: applications.get(&item.application_id)?.clone(),
                    edition: item.edition.clone(),
                    name: item.name.clone(),
                },
                application_id: item.application_id,
                infra_id: item.infra_id,
                measurement_unit: item.measurement_unit.clone(),
                on: item.is_on(),
                quota: item.quota.map(|q| Quota {
                    value: q.value.and_then(|v| u64::try_from(v).ok()),
                    overage: q.overage.and_then(|v| u64::try_from(v).ok()),
                }),
                quota_version: item.quota.map_or(0, |q| q.version),
            })
        })
        .collect()
}

/// What each tenant of the plan gets under `profile`, decided on what `root`
/// offers its children; without a `target` to ask, on the profile's items
/// assumed available. Answers the offer when the cloud was asked.
pub async fn services(
    target: Option<&dyn TargetApi>,
    root: Uuid,
    profile: &Profile,
    snapshot: &Snapshot,
    plan: &Plan,
) -> Result<(Option<Offer>, Vec<TenantServices>), ConnectorError> {
    let offer = match target {
        Some(target) => {
            let applications = applications(target).await?;
            Some(offer(target, &applications, root).await?)
        }
        None => None,
    };
    let quotas = snapshot.group_quotas();
    let services = provisioning::for_tenants(
        profile,
        offer.as_ref().unwrap_or(&Offer::assumed(profile)),
        &plan.tenants,
        |group| quotas.get(group).copied(),
    );
    Ok((offer, services))
}
