//! What the cloud sells a tenant, as its published document has it: applications
//! (`FetchApplications`), a tenant's offering items with their quotas
//! (`FetchTenantOfferingItems`, `SetTenantOfferingItems`,
//! `FetchOfferingItemsAvailableForTenantChild`) and its pricing mode
//! (`FetchTenantPricingSettings`, `UpdateTenantPricingSettings`).
//!
//! The PUTs are idempotent writes sent again after a lost answer, except that a
//! quota's or the pricing's `version` moves with each write: a replay after a write
//! that did happen is refused with 409 and code 1001
//! ([`ConnectorError::is_version_conflict`]), and the caller reads again.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::target::{TargetClient, TenantKind, cloud_time};
use super::{ConnectorError, JsonApi, Replay};

/// The document's `application`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Application {
    pub id: Uuid,
    pub name: String,
    /// The document's `applicationType`: `backup`, `files_cloud`, `platform`, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub usages: Vec<String>,
}

/// The document's `quota`: null is unlimited; `version` is 0 while both are null.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Quota {
    pub value: Option<i64>,
    pub overage: Option<i64>,
    pub version: i64,
}

/// An item of the document's `offeringItemList`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct OfferingItem {
    pub application_id: Uuid,
    pub name: String,
    /// Null for items outside the editions (e.g. `local_storage`).
    #[serde(default)]
    pub edition: Option<String>,
    pub usage_name: String,
    pub tenant_id: Uuid,
    /// 1 on, 0 off.
    pub status: u8,
    #[serde(default)]
    pub locked: bool,
    /// The document's `offeringItemType`: `count`, `feature` or `infra`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The document's `measurementUnits`: `bytes`, `quantity`, `seconds` or `n/a`.
    pub measurement_unit: String,
    #[serde(default)]
    pub infra_id: Option<Uuid>,
    #[serde(default)]
    pub quota: Option<Quota>,
}

impl OfferingItem {
    pub fn is_on(&self) -> bool {
        self.status == 1
    }
}

/// An item of the document's `tenantOfferingItemsPut`; serialised without null fields.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct OfferingItemPut {
    pub application_id: Uuid,
    pub name: String,
    pub status: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infra_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// The document's `pricingMode`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PricingMode {
    Trial,
    Production,
    Suspended,
}

/// The document's `tenantPricingSettings`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Pricing {
    pub mode: PricingMode,
    #[serde(default)]
    pub currency: Option<String>,
    pub version: i64,
    #[serde(default, deserialize_with = "lenient_optional_time")]
    pub production_start_date: Option<DateTime<Utc>>,
}

fn lenient_optional_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => cloud_time(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("a date that is not RFC 3339")),
    }
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// Every edition: offering items without one are listed whatever the filter.
const ALL_EDITIONS: &str = "*";

impl TargetClient {
    pub(super) async fn fetch_applications(&self) -> Result<Vec<Application>, ConnectorError> {
        let list: Items<Application> = self
            .get_json("list_applications", "/api/2/applications", &[])
            .await?;
        Ok(list.items)
    }

    pub(super) async fn fetch_offering_items(
        &self,
        tenant_id: Uuid,
    ) -> Result<Vec<OfferingItem>, ConnectorError> {
        let list: Items<OfferingItem> = self
            .get_json(
                "list_offering_items",
                &format!("/api/2/tenants/{tenant_id}/offering_items"),
                &[("edition", ALL_EDITIONS.to_string())],
            )
            .await?;
        Ok(list.items)
    }

    pub(super) async fn fetch_available_for_child(
        &self,
        parent_id: Uuid,
        kind: TenantKind,
    ) -> Result<Vec<OfferingItem>, ConnectorError> {
        let kind = serde_json::to_value(kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_string))
            .unwrap_or_default();
        let list: Items<OfferingItem> = self
            .get_json(
                "list_offering_items_for_child",
                &format!("/api/2/tenants/{parent_id}/offering_items/available_for_child"),
                &[("kind", kind), ("edition", ALL_EDITIONS.to_string())],
            )
            .await?;
        Ok(list.items)
    }

    pub(super) async fn put_offering_items(
        &self,
        tenant_id: Uuid,
        items: &[OfferingItemPut],
    ) -> Result<Vec<OfferingItem>, ConnectorError> {
        let body = json!({ "offering_items": items });
        // The same states again are harmless; a quota's version refuses a replay (409 1001).
        let list: Items<OfferingItem> = self
            .send_json(
                "set_offering_items",
                Replay::Safe,
                Method::PUT,
                &format!("/api/2/tenants/{tenant_id}/offering_items"),
                &body,
            )
            .await?;
        Ok(list.items)
    }

    pub(super) async fn fetch_pricing(&self, tenant_id: Uuid) -> Result<Pricing, ConnectorError> {
        self.get_json(
            "get_pricing",
            &format!("/api/2/tenants/{tenant_id}/pricing"),
            &[],
        )
        .await
    }

    pub(super) async fn put_pricing(
        &self,
        tenant_id: Uuid,
        mode: PricingMode,
        version: i64,
    ) -> Result<Pricing, ConnectorError> {
        let body = json!({ "version": version, "mode": mode });
        // A replay after a write that happened meets a newer version (409 1001).
        self.send_json(
            "set_pricing",
            Replay::Safe,
            Method::PUT,
            &format!("/api/2/tenants/{tenant_id}/pricing"),
            &body,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offering_items_the_document_allows_are_read() {
        // The document's own examples: a null edition, a feature without quota or lock,
        // an infra item with a null overage, a count item with every field.
        let example = json!({"timestamp": "2016-06-22T18:25:16", "items": [
            {"application_id": "a9fd8016-0e00-4ade-949e-6efe8672dac0", "name": "vms", "edition": "standard",
             "usage_name": "vms", "tenant_id": "f313ecf6-9256-4afd-9d47-72e032ee81d0", "updated_at": "2016-06-22T18:25:16",
             "deleted_at": null, "status": 1, "locked": true, "type": "count", "measurement_unit": "quantity",
             "quota": {"value": 10, "overage": 10, "version": 1486479690324_i64}},
            {"application_id": "a9fd8016-0e00-4ade-949e-6efe8672dac0", "name": "local_storage", "edition": null,
             "usage_name": "local_storage", "tenant_id": "f313ecf6-9256-4afd-9d47-72e032ee81d0",
             "status": 1, "type": "feature", "measurement_unit": "n/a"},
            {"application_id": "a9fd8016-0e00-4ade-949e-6efe8672dac0", "name": "adv_storage", "edition": "advanced",
             "usage_name": "storage", "tenant_id": "f313ecf6-9256-4afd-9d47-72e032ee81d0", "status": 0,
             "type": "infra", "measurement_unit": "bytes", "infra_id": "ee978065-8caa-463d-82d7-47006376e7f2",
             "quota": {"value": null, "overage": null, "version": 0}},
        ]});
        let list: Items<OfferingItem> = serde_json::from_value(example).expect("offering items");
        let [vms, local, adv] = &list.items[..] else {
            panic!("three items");
        };
        assert_eq!(
            (vms.is_on(), vms.locked, vms.quota.map(|q| q.version)),
            (true, true, Some(1_486_479_690_324))
        );
        assert_eq!(
            (
                local.edition.as_deref(),
                local.locked,
                local.quota,
                local.infra_id
            ),
            (None, false, None, None)
        );
        assert_eq!(
            (adv.is_on(), adv.quota, adv.infra_id.is_some()),
            (
                false,
                Some(Quota {
                    value: None,
                    overage: None,
                    version: 0
                }),
                true
            )
        );
        // No `edition` at all reads as none.
        let bare: OfferingItem = serde_json::from_value(json!({"application_id": Uuid::nil(), "name": "x", "usage_name": "x",
            "tenant_id": Uuid::nil(), "status": 0, "type": "count", "measurement_unit": "quantity"}))
        .expect("bare item");
        assert_eq!(bare.edition, None);
    }

    #[test]
    fn a_put_item_leaves_out_what_it_does_not_set() {
        let off = OfferingItemPut {
            application_id: Uuid::nil(),
            name: "workstations".into(),
            status: 0,
            infra_id: None,
            quota: None,
        };
        assert_eq!(
            serde_json::to_value(&off).expect("json"),
            json!({"application_id": Uuid::nil(), "name": "workstations", "status": 0})
        );
        let unlimited = OfferingItemPut {
            quota: Some(Quota {
                value: None,
                overage: None,
                version: 0,
            }),
            ..off
        };
        assert_eq!(
            serde_json::to_value(&unlimited).expect("json")["quota"],
            json!({"value": null, "overage": null, "version": 0})
        );
    }

    #[test]
    fn pricing_the_document_allows_is_read() {
        let cases = [
            (
                json!({"version": 1497533157730_i64, "mode": "production", "currency": "USD", "production_start_date": "2020-05-19T00:00:00"}),
                (
                    PricingMode::Production,
                    Some("USD"),
                    cloud_time("2020-05-19T00:00:00Z"),
                ),
            ),
            (
                json!({"version": 1, "mode": "trial", "currency": null, "production_start_date": null}),
                (PricingMode::Trial, None, None),
            ),
            (
                json!({"version": 2, "mode": "suspended"}),
                (PricingMode::Suspended, None, None),
            ),
        ];
        for (answer, (mode, currency, start)) in cases {
            let pricing: Pricing = serde_json::from_value(answer.clone()).expect("pricing");
            assert_eq!(
                (
                    pricing.mode,
                    pricing.currency.as_deref(),
                    pricing.production_start_date
                ),
                (mode, currency, start),
                "{answer}"
            );
        }
        let applications: Items<Application> = serde_json::from_value(json!({"items": [
            {"type": "platform", "api_base_url": "/mc/", "name": "Management Portal", "id": "7459244f-68f3-3bf4-9f53-5f63ecc1d91f", "usages": []},
            {"type": "backup", "api_base_url": "/bc/", "name": "Backup", "id": "6e6d758d-8e74-3ae3-ac84-50eb0dff12eb", "usages": ["workstations"]},
        ]}))
        .expect("applications");
        assert_eq!(
            applications
                .items
                .iter()
                .map(|a| (a.kind.as_str(), a.usages.len()))
                .collect::<Vec<_>>(),
            [("platform", 0), ("backup", 1)]
        );
    }

    #[test]
    fn a_stale_version_is_recognisable() {
        let conflict = |code: Option<&str>| ConnectorError::Remote {
            system: "cloud",
            status: 409,
            code: code.map(str::to_string),
            message: "Version mismatch".into(),
        };
        assert!(conflict(Some("1001")).is_version_conflict());
        assert!(!conflict(Some("1004")).is_version_conflict());
        assert!(!conflict(None).is_version_conflict());
    }
}
