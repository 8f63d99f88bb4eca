//! Provisioning: every tenant a migration creates or adopts ends with the
//! profile's offering items, quotas and pricing mode in the cloud; an existing
//! customer keeps its own services and gains only what it lacks; an item the
//! cloud cannot give stops the migration unless it is told to skip it.

use std::collections::BTreeMap;

use migration_portal::sim::install_base::InstallBase;

use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::migrations::{fast_world, small};
use crate::world::World;

/// A profile that differs from the standard one in every part a test can see.
pub(crate) fn profile() -> Value {
    let item = |name: &str, quota: Value| json!({"application": "backup", "edition": "standard", "name": name, "quota": quota});
    json!({
        "customer": [
            item("workstations", json!({"kind": "fixed", "value": 50})),
            item("servers", json!({"kind": "fixed", "value": 5, "overage": 2})),
            item("storage", json!({"kind": "source"})),
        ],
        "partner": [
            item("workstations", json!({"kind": "unlimited"})),
            item("servers", json!({"kind": "unlimited"})),
            item("vms", json!({"kind": "unlimited"})),
            item("storage", json!({"kind": "unlimited"})),
        ],
        "pricing_mode": "production",
        "existing_customers": "add_missing",
    })
}

/// The install base's group quotas in bytes, by group id.
pub(crate) fn group_quotas(base: &InstallBase) -> BTreeMap<String, u64> {
    base.groups
        .iter()
        .filter_map(|g| Some((g.id.clone(), g.storage_quota_bytes?)))
        .collect()
}

/// What the cloud holds for a tenant: `{"name" -> quota}` of its items that are on, and its pricing mode.
fn held(cloud: &Value, tenant_id: &str) -> (BTreeMap<String, Value>, String) {
    let tenant = cloud["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .find(|t| t["id"] == tenant_id)
        .unwrap_or_else(|| panic!("tenant {tenant_id} is in the cloud"));
    let items = tenant["offering_items"]
        .as_array()
        .expect("offering_items")
        .iter()
        .map(|i| {
            let name = match i["edition"].as_str() {
                Some(edition) => format!(
                    "{}/{}/{}",
                    i["application"].as_str().unwrap_or_default(),
                    edition,
                    i["name"].as_str().unwrap_or_default()
                ),
                None => format!(
                    "{}/{}",
                    i["application"].as_str().unwrap_or_default(),
                    i["name"].as_str().unwrap_or_default()
                ),
            };
            (name, i["quota"].clone())
        })
        .collect();
    (
        items,
        tenant["pricing_mode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The items a profile's rules give, with the quota the cloud should hold
/// (`source` quotas: the tenant's group quota, `None` here when it has none).
fn expected(
    rules: &Value,
    source_quota: Option<u64>,
) -> BTreeMap<String, (Option<u64>, Option<u64>)> {
    rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let key = format!(
                "{}/{}/{}",
                r["application"].as_str().unwrap_or_default(),
                r["edition"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            );
            let quota = match r["quota"]["kind"].as_str() {
                Some("fixed") => (r["quota"]["value"].as_u64(), r["quota"]["overage"].as_u64()),
                Some("source") => (source_quota, None),
                _ => (None, None),
            };
            (key, quota)
        })
        .collect()
}

fn quotas(items: &BTreeMap<String, Value>) -> BTreeMap<String, (Option<u64>, Option<u64>)> {
    items
        .iter()
        .map(|(k, q)| (k.clone(), (q["value"].as_u64(), q["overage"].as_u64())))
        .collect()
}

/// Every tenant item of the migration at `location` that the migration created has
/// exactly `profile`'s items and quotas for its kind and its pricing mode in the
/// cloud; answers the tenant items that found an existing tenant.
pub(crate) async fn assert_tenants_provisioned(
    world: &World,
    location: &str,
    profile: &Value,
    group_quota: impl Fn(&str) -> Option<u64>,
) -> Vec<Value> {
    let cloud = world.cloud.inspect();
    let items = world.all(&format!("{location}/items?kind=tenant")).await;
    assert!(!items.is_empty());
    let mut existing = Vec::new();
    for item in items {
        assert_eq!(item["state"], "done", "{item}");
        let target = item["target_id"].as_str().expect("target_id");
        let (on, pricing) = held(&cloud, target);
        if item["step"] == "existing_provisioned" {
            existing.push(item);
            continue;
        }
        assert_eq!(item["step"], "provisioned", "{item}");
        let kind = item["planned"]["kind"].as_str().expect("kind");
        let key = item["planned"]["tenant_key"].as_str().expect("tenant_key");
        let source = (!key.ends_with("#users"))
            .then(|| group_quota(key))
            .flatten();
        assert_eq!(
            quotas(&on),
            expected(&profile[kind], source),
            "{kind} {key}: exactly the profile's items and quotas"
        );
        assert_eq!(
            pricing,
            profile["pricing_mode"].as_str().expect("mode"),
            "{key}"
        );
    }
    existing
}

#[tokio::test]
async fn every_migrated_tenant_has_exactly_the_profile_and_an_existing_customer_gains_only_what_it_lacks()
 {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        let response = world
            .app
            .patch_json(
                &world.path(""),
                &world.token,
                &json!({"provisioning": profile()}),
            )
            .send()
            .await
            .expect("patch");
        assert_eq!(response.status(), 200);
        let workspace: Value = response.json().await.expect("json");
        assert_eq!(
            workspace["provisioning"],
            profile(),
            "the workspace shows its profile"
        );
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        // A customer the partner already has in the cloud: its own workstations quota
        // (5) and File Sync & Share, in trial.
        let hierarchy = world
            .all(&format!(
                "/api/v1/workspaces/{}/prechecks/{}/sections/hierarchy",
                world.workspace,
                precheck["id"].as_str().expect("id")
            ))
            .await;
        // The pre-check shows each tenant's services and quotas, and users whose data exceeds theirs.
        let planning = world
            .get(&world.path(&format!(
                "/prechecks/{}/planning",
                precheck["id"].as_str().expect("id")
            )))
            .await;
        assert_eq!(planning["provisioning"]["profile"], profile(), "{planning}");
        assert_eq!(
            planning["provisioning"]["unavailable"],
            json!([]),
            "{planning}"
        );
        for entry in hierarchy
            .iter()
            .filter(|e| e["tenant"]["kind"] == "customer")
        {
            let items: Vec<&str> = entry["tenant"]["services"]
                .as_array()
                .expect("services")
                .iter()
                .filter_map(|s| s["item"].as_str())
                .collect();
            assert_eq!(
                items,
                [
                    "backup/standard/workstations",
                    "backup/standard/servers",
                    "backup/standard/storage"
                ],
                "{entry}"
            );
        }
        let users = world
            .all(&world.path(&format!(
                "/prechecks/{}/sections/users",
                precheck["id"].as_str().expect("id")
            )))
            .await;
        let mut over: Vec<&str> = users
            .iter()
            .filter(|u| u["data_exceeds_quota"] == true)
            .filter_map(|u| u["user_id"].as_str())
            .collect();
        let mut truth_over: Vec<&str> = base
            .users
            .iter()
            .filter(|u| {
                let data: u64 = base
                    .machines
                    .iter()
                    .filter(|m| m.user_id == u.id)
                    .map(|m| m.data_size_bytes)
                    .sum();
                u.storage_quota_bytes.is_some_and(|q| data > q)
            })
            .map(|u| u.id.as_str())
            .collect();
        over.sort();
        truth_over.sort();
        assert!(!truth_over.is_empty());
        assert_eq!(
            over, truth_over,
            "{backend:?}: the users whose data exceeds their quota"
        );
        assert_eq!(
            planning["provisioning"]["users_over_quota"],
            truth_over.len()
        );
        let customer = hierarchy
            .iter()
            .map(|e| &e["tenant"])
            .find(|t| {
                t["kind"] == "customer"
                    && t["parent_key"].is_null()
                    && !t["key"].as_str().unwrap_or("#").contains('#')
            })
            .unwrap_or_else(|| panic!("a top-level customer in {hierarchy:?}"))
            .clone();
        let existing = create_existing_customer(
            &world,
            customer["name"].as_str().expect("name"),
            customer["key"].as_str().expect("key"),
        )
        .await;
        let worker = world.run_worker();
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"]}))
            .await;
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "completed", "{backend:?}: {migration}");
        let group_quotas = group_quotas(&base);
        let adopted = assert_tenants_provisioned(&world, &location, &profile(), |g| {
            group_quotas.get(g).copied()
        })
        .await;
        assert_eq!(
            adopted.len(),
            1,
            "{backend:?}: the existing customer was adopted"
        );
        // Source quotas: every migrated user with one has it on its personal tenant's storage.
        let cloud = world.cloud.inspect();
        let external: BTreeMap<&str, &str> = cloud["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| Some((u["id"].as_str()?, u["external_id"].as_str()?)))
            .collect();
        let user_quotas: BTreeMap<&str, u64> = base
            .users
            .iter()
            .filter_map(|u| Some((u.id.as_str(), u.storage_quota_bytes?)))
            .collect();
        let migrated_users = world.all(&format!("{location}/items?kind=user")).await;
        let mut carried = 0;
        for personal in cloud["personal_tenants"]
            .as_array()
            .expect("personal_tenants")
        {
            let Some(source) = personal["user_id"].as_str().and_then(|id| external.get(id)) else {
                continue;
            };
            if !migrated_users.iter().any(|i| i["source_id"] == *source) {
                continue;
            }
            let storage = personal["offering_items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|i| i["name"] == "storage")
                .map(|i| i["quota"]["value"].as_u64());
            match user_quotas.get(source) {
                Some(quota) => {
                    carried += 1;
                    assert_eq!(
                        storage,
                        Some(Some(*quota)),
                        "{backend:?}: user {source} keeps its source quota"
                    );
                }
                None => assert_eq!(
                    storage,
                    Some(None),
                    "{backend:?}: user {source} has no quota: unlimited"
                ),
            }
        }
        assert!(carried > 0, "{backend:?}: some users carried a quota");
        assert_eq!(adopted[0]["target_id"], existing);
        let (on, pricing) = held(&world.cloud.inspect(), &existing);
        let on = quotas(&on);
        assert_eq!(
            on["backup/standard/workstations"],
            (Some(5), None),
            "its own quota is kept"
        );
        assert!(
            on.contains_key("files_cloud/fc_seats"),
            "its own service is kept: {on:?}"
        );
        assert_eq!(
            on["backup/standard/servers"],
            (Some(5), Some(2)),
            "what it lacked is added with the profile's quota"
        );
        assert!(on.contains_key("backup/standard/storage"), "{on:?}");
        assert_eq!(
            pricing, "trial",
            "an existing customer's pricing is its own"
        );
        let events = world
            .all(&world.path("/events?kind=target.set_offering_items"))
            .await;
        assert!(!events.is_empty());
        worker.stop().await;
    }
}

#[tokio::test]
async fn an_item_the_cloud_cannot_give_fails_the_migration_before_anything_is_created_unless_skipped()
 {
    for backend in Backend::enabled() {
        let base = small();
        let world = fast_world(backend, base.clone()).await;
        world.sync().await;
        let precheck = world.whole_precheck(&base).await;
        let off = reqwest::Client::new()
            .put(format!(
                "{}/sim/cloud/offering_items",
                world.cloud.base_url()
            ))
            .json(&json!({"off": ["vms"]}))
            .send()
            .await
            .expect("put");
        assert_eq!(off.status(), 200);
        let worker = world.run_worker();
        let location = world
            .start_migration(
                json!({"precheck_id": precheck["id"], "options": {"provisioning": profile()}}),
            )
            .await;
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "failed", "{backend:?}: {migration}");
        let reason = migration["error"].to_string();
        assert!(
            reason.contains("backup/standard/vms") && reason.contains("skip_unavailable_items"),
            "{reason}"
        );
        assert_eq!(
            world.cloud.inspect()["tenants"].as_array().map(Vec::len),
            Some(2),
            "nothing was created"
        );
        let location = world
            .start_migration(json!({"precheck_id": precheck["id"], "options": {"provisioning": profile(), "skip_unavailable_items": true}}))
            .await;
        let migration = world.wait_over(&location).await;
        assert_eq!(migration["status"], "completed", "{backend:?}: {migration}");
        let mut without_vms = profile();
        without_vms["partner"]
            .as_array_mut()
            .expect("partner")
            .retain(|r| r["name"] != "vms");
        let group_quotas = group_quotas(&base);
        assert_tenants_provisioned(&world, &location, &without_vms, |g| {
            group_quotas.get(g).copied()
        })
        .await;
        worker.stop().await;
    }
}

/// A customer tenant made in the cloud before the migration, tagged as the
/// migration would tag `key`: workstations with its own quota (5) and File Sync &
/// Share on, in trial. Answers its id.
async fn create_existing_customer(world: &World, name: &str, key: &str) -> String {
    let http = reqwest::Client::new();
    let base = world.cloud.base_url();
    let client = world.cloud.root_client();
    let token: Value = http
        .post(format!("{base}/api/2/idp/token"))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access_token"].as_str().expect("access_token");
    let body = json!({"name": name, "parent_id": world.cloud.root_tenant_id(), "kind": "customer", "internal_tag": key});
    let tenant: Value = http
        .post(format!("{base}/api/2/tenants"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = tenant["id"].as_str().expect("id").to_string();
    let items: Value = http
        .get(format!(
            "{base}/api/2/tenants/{id}/offering_items?edition=*"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("items")
        .json()
        .await
        .expect("json");
    let pick = |name: &str| {
        items["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {items}"))
            .clone()
    };
    let (workstations, seats) = (pick("workstations"), pick("fc_seats"));
    let put = json!({"offering_items": [
        {"application_id": workstations["application_id"], "name": "workstations", "status": 1, "quota": {"value": 5, "overage": null, "version": workstations["quota"]["version"].as_i64().unwrap_or(0)}},
        {"application_id": seats["application_id"], "name": "fc_seats", "status": 1},
    ]});
    let response = http
        .put(format!("{base}/api/2/tenants/{id}/offering_items"))
        .bearer_auth(token)
        .json(&put)
        .send()
        .await
        .expect("put");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    id
}
