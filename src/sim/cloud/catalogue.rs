//! Applications and the catalogue of offering items, as the document's examples
//! spell them (`applicationsList`, `offeringItemList`, `tenantOfferingItemsPut`):
//! `GET /api/2/applications` and `GET /api/2/applications/{application_id}`.
//!
//! The catalogue is what the top-level partners have on, unlimited (the root's can be
//! turned off with `PUT /sim/cloud/offering_items`, see [`super::offering_api`]):
//!
//! | application | edition | items |
//! |---|---|---|
//! | Backup (`backup`) | `standard` | `workstations`, `servers`, `vms`, `mobiles` (count), `storage` (infra) |
//! | Backup | `advanced` | `adv_workstations`, `adv_servers`, `adv_vms` (count), `adv_storage` (infra) |
//! | Backup | none | `local_storage` (feature) |
//! | File Sync & Share (`files_cloud`) | none | `fc_seats` (count), `fc_storage` (infra) |
//!
//! Management Portal (`platform`) has no usages and no items. An `adv_` item counts the
//! same usage as its standard twin (`adv_storage` counts `storage`, as in the document's
//! example). Every infra item is on the simulator's one storage, [`STORAGE_INFRA_ID`].
//! `fc_seats` has no edition (the document's examples give files_cloud none).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use uuid::{Uuid, uuid};

use super::auth::Caller;
use super::errors::{CloudError, CloudResult};

/// The simulator's one storage infrastructure (the document's example id).
pub const STORAGE_INFRA_ID: Uuid = uuid!("ee978065-8caa-463d-82d7-47006376e7f2");
pub const BACKUP_APPLICATION_ID: Uuid = uuid!("6e6d758d-8e74-3ae3-ac84-50eb0dff12eb");
pub const FILES_CLOUD_APPLICATION_ID: Uuid = uuid!("dfd85a5f-a464-32ab-81fd-99bcc66a070f");
pub const PLATFORM_APPLICATION_ID: Uuid = uuid!("7459244f-68f3-3bf4-9f53-5f63ecc1d91f");

#[derive(Debug)]
pub struct Application {
    pub id: Uuid,
    pub name: &'static str,
    /// The document's `applicationType`.
    pub kind: &'static str,
    pub api_base_url: &'static str,
    pub usages: &'static [&'static str],
}

impl Application {
    /// The document's `application`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            "api_base_url": self.api_base_url,
            "usages": self.usages,
        })
    }
}

/// The applications, with the usages of the document's `applicationsList` example.
pub const APPLICATIONS: &[Application] = &[
    Application {
        id: BACKUP_APPLICATION_ID,
        name: "Backup",
        kind: "backup",
        api_base_url: "/bc/",
        usages: &[
            "assigned_compute_points",
            "child_storages",
            "cloud_to_cloud_backup",
            "compute_points",
            "dr_cloud_servers",
            "dr_internet_access",
            "dr_storage",
            "google_drive_storage",
            "google_mail_storage",
            "google_team_drive_storage",
            "group_mailbox_storage",
            "group_site_storage",
            "gsuite_seats",
            "local_storage",
            "mailbox_instance_size",
            "mailbox_storage",
            "mailboxes",
            "mobile_storage",
            "mobiles",
            "onedrive_storage",
            "public_ips",
            "server_storage",
            "servers",
            "sharepoint_online_site_storage",
            "site_collection_storage",
            "storage",
            "total_storage",
            "universal_devices",
            "universal_devices_storage",
            "virtualhost_storage",
            "virtualhosts",
            "vm_storage",
            "vms",
            "website_storage",
            "websites",
            "win_server_essentials",
            "win_server_essentials_storage",
            "workstation_storage",
            "workstations",
        ],
    },
    Application {
        id: FILES_CLOUD_APPLICATION_ID,
        name: "File Sync & Share",
        kind: "files_cloud",
        api_base_url: "/fc/",
        usages: &[
            "fc_child_storages",
            "fc_seats",
            "fc_storage",
            "fc_total_storage",
        ],
    },
    Application {
        id: PLATFORM_APPLICATION_ID,
        name: "Management Portal",
        kind: "platform",
        api_base_url: "/mc/",
        usages: &[],
    },
];

pub fn application(id: Uuid) -> Option<&'static Application> {
    APPLICATIONS.iter().find(|a| a.id == id)
}

/// The document's `offeringItemType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemType {
    Count,
    Feature,
    Infra,
}

impl ItemType {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Count => "count",
            ItemType::Feature => "feature",
            ItemType::Infra => "infra",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ItemType::Count, ItemType::Feature, ItemType::Infra]
            .into_iter()
            .find(|t| t.as_str() == text)
    }

    /// Features are on or off; counted and infra items carry a quota.
    pub fn has_quota(self) -> bool {
        self != ItemType::Feature
    }
}

#[derive(Debug)]
pub struct CatalogueItem {
    pub application_id: Uuid,
    pub name: &'static str,
    pub edition: Option<&'static str>,
    pub usage_name: &'static str,
    pub kind: ItemType,
    /// The document's `measurementUnits`.
    pub measurement_unit: &'static str,
}

impl CatalogueItem {
    pub fn infra_id(&self) -> Option<Uuid> {
        (self.kind == ItemType::Infra).then_some(STORAGE_INFRA_ID)
    }

    pub fn application(&self) -> &'static Application {
        application(self.application_id).unwrap_or(&APPLICATIONS[0])
    }
}

/// An item counting the usage of its own name.
const fn item(
    application_id: Uuid,
    name: &'static str,
    edition: Option<&'static str>,
    kind: ItemType,
) -> CatalogueItem {
    let measurement_unit = match kind {
        ItemType::Count => "quantity",
        ItemType::Feature => "n/a",
        ItemType::Infra => "bytes",
    };
    CatalogueItem {
        application_id,
        name,
        edition,
        usage_name: name,
        kind,
        measurement_unit,
    }
}

/// An advanced Backup item: it counts the usage of its standard twin.
const fn advanced(name: &'static str, twin: &'static str, kind: ItemType) -> CatalogueItem {
    CatalogueItem {
        name,
        edition: Some("advanced"),
        ..item(BACKUP, twin, STANDARD, kind)
    }
}

const STANDARD: Option<&str> = Some("standard");
const BACKUP: Uuid = BACKUP_APPLICATION_ID;
const FILES: Uuid = FILES_CLOUD_APPLICATION_ID;

pub const CATALOGUE: &[CatalogueItem] = &[
    item(BACKUP, "workstations", STANDARD, ItemType::Count),
    item(BACKUP, "servers", STANDARD, ItemType::Count),
    item(BACKUP, "vms", STANDARD, ItemType::Count),
    item(BACKUP, "mobiles", STANDARD, ItemType::Count),
    item(BACKUP, "storage", STANDARD, ItemType::Infra),
    item(BACKUP, "local_storage", None, ItemType::Feature),
    advanced("adv_workstations", "workstations", ItemType::Count),
    advanced("adv_servers", "servers", ItemType::Count),
    advanced("adv_vms", "vms", ItemType::Count),
    advanced("adv_storage", "storage", ItemType::Infra),
    item(FILES, "fc_seats", None, ItemType::Count),
    item(FILES, "fc_storage", None, ItemType::Infra),
];

/// The Backup items a machine registers against (phase of an agent's registration).
pub const MACHINE_ITEMS: &[&str] = &[
    "workstations",
    "servers",
    "vms",
    "adv_workstations",
    "adv_servers",
    "adv_vms",
];

/// The editions the catalogue knows.
pub const EDITIONS: &[&str] = &["standard", "advanced"];

pub fn catalogue_item(application_id: Uuid, name: &str) -> Option<&'static CatalogueItem> {
    CATALOGUE
        .iter()
        .find(|i| i.application_id == application_id && i.name == name)
}

pub fn catalogue_item_named(name: &str) -> Option<&'static CatalogueItem> {
    CATALOGUE.iter().find(|i| i.name == name)
}

pub fn is_known_usage(usage: &str) -> bool {
    APPLICATIONS.iter().any(|a| a.usages.contains(&usage))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/2/applications", web::get().to(list))
        .route("/api/2/applications/{id}", web::get().to(get));
}

async fn list(_caller: Caller) -> HttpResponse {
    let items: Vec<Value> = APPLICATIONS.iter().map(Application::to_json).collect();
    HttpResponse::Ok().json(json!({ "items": items }))
}

async fn get(_caller: Caller, path: web::Path<String>) -> CloudResult {
    Uuid::parse_str(&path)
        .ok()
        .and_then(application)
        .map(|a| HttpResponse::Ok().json(a.to_json()))
        .ok_or_else(|| CloudError::not_found("Application"))
}
