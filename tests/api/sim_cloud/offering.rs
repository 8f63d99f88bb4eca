//! Applications, offering items and pricing in `sim cloud`, over real HTTP: one test
//! per rule (see `src/sim/cloud/offering.rs`, `offering_api.rs`, `pricing.rs`).

use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Sim, assert_error, id, start};
use migration_portal::sim::cloud::Faults;

pub(super) const BACKUP: &str = "6e6d758d-8e74-3ae3-ac84-50eb0dff12eb";
const FILES: &str = "dfd85a5f-a464-32ab-81fd-99bcc66a070f";
const INFRA: &str = "ee978065-8caa-463d-82d7-47006376e7f2";
const STANDARD: &[&str] = &["workstations", "servers", "vms", "mobiles", "storage"];
const ADVANCED: &[&str] = &["adv_workstations", "adv_servers", "adv_vms", "adv_storage"];
const NO_EDITION: &[&str] = &["local_storage", "fc_seats", "fc_storage"];

/// The document's `items_3`: required and allowed fields (it is closed).
const REQUIRED: &[&str] = &[
    "application_id",
    "name",
    "edition",
    "usage_name",
    "tenant_id",
    "status",
    "type",
    "measurement_unit",
];
const OPTIONAL: &[&str] = &["updated_at", "deleted_at", "locked", "quota", "infra_id"];

pub(super) fn item(application: &str, name: &str, status: u8) -> Value {
    json!({"application_id": application, "name": name, "status": status})
}

fn on(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| {
            let application = if n.starts_with("fc_") { FILES } else { BACKUP };
            item(application, n, 1)
        })
        .collect()
}

fn names(items: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn sorted(groups: &[&[&str]]) -> Vec<String> {
    let mut names: Vec<String> = groups
        .iter()
        .flat_map(|g| g.iter().map(|n| n.to_string()))
        .collect();
    names.sort();
    names
}

fn named<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {items:?}"))
}

/// The items of an `offeringItemList` answer, each checked against the document's shape.
async fn item_list(response: Response, tenant: Uuid) -> Vec<Value> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert!(body["timestamp"].is_string(), "{body}");
    let items = body["items"].as_array().expect("items").clone();
    for item in &items {
        let fields = item.as_object().expect("object");
        for key in REQUIRED {
            assert!(fields.contains_key(*key), "{key} missing: {item}");
        }
        for key in fields.keys() {
            assert!(
                REQUIRED.contains(&key.as_str()) || OPTIONAL.contains(&key.as_str()),
                "{key} is not in the document: {item}"
            );
        }
        assert_eq!(item["tenant_id"], json!(tenant), "{item}");
        match item["type"].as_str() {
            Some("feature") => assert!(item.get("quota").is_none(), "{item}"),
            Some("count") => assert_eq!(item["measurement_unit"], "quantity"),
            Some("infra") => {
                assert_eq!(
                    (item["measurement_unit"].clone(), item["infra_id"].clone()),
                    (json!("bytes"), json!(INFRA))
                );
            }
            other => panic!("type {other:?}"),
        }
        if let Some(quota) = item.get("quota") {
            let version = quota["version"].as_i64().expect("version");
            if quota["value"].is_null() && quota["overage"].is_null() {
                assert_eq!(version, 0, "{item}");
            }
        }
    }
    items
}

impl Sim {
    async fn items(&self, tenant: Uuid, query: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/api/2/tenants/{tenant}/offering_items{query}"))
            .send()
            .await
            .expect("request");
        item_list(response, tenant).await
    }

    pub(super) async fn put_items(&self, tenant: Uuid, items: &[Value]) -> Response {
        self.put(
            &format!("/api/2/tenants/{tenant}/offering_items"),
            &json!({ "offering_items": items }),
        )
        .send()
        .await
        .expect("request")
    }

    /// A PUT that must succeed: the answer's items.
    pub(super) async fn set_items(&self, tenant: Uuid, items: &[Value]) -> Vec<Value> {
        item_list(self.put_items(tenant, items).await, tenant).await
    }

    async fn available(&self, tenant: Uuid, query: &str) -> Response {
        self.get(&format!(
            "/api/2/tenants/{tenant}/offering_items/available_for_child{query}"
        ))
        .send()
        .await
        .expect("request")
    }

    async fn pricing(&self, tenant: Uuid) -> Value {
        let response = self
            .get(&format!("/api/2/tenants/{tenant}/pricing"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    async fn put_pricing(&self, tenant: Uuid, body: Value) -> Response {
        self.put(&format!("/api/2/tenants/{tenant}/pricing"), &body)
            .send()
            .await
            .expect("request")
    }

    /// A customer under the root with the standard Backup items on.
    pub(super) async fn backed_up_customer(&self, name: &str) -> Uuid {
        let customer = id(&self.create_tenant(self.root(), name, "customer").await);
        self.set_items(
            customer,
            &on(&["workstations", "servers", "storage", "local_storage"]),
        )
        .await;
        customer
    }
}

/// A 400 whose message names `what`.
async fn refused(response: Response, what: &str) {
    let body = assert_error(response, 400, 1006).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(what), "{what:?} not named: {body}");
}

#[tokio::test]
async fn applications_are_listed_with_their_usages_and_found_by_id() {
    let sim = start().await;
    let response = sim
        .get("/api/2/applications")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.expect("json");
    let kinds: Vec<(&str, &str)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap_or_default(),
                a["id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("backup", BACKUP),
            ("files_cloud", FILES),
            ("platform", "7459244f-68f3-3bf4-9f53-5f63ecc1d91f")
        ]
    );
    let backup: Value = sim
        .get(&format!("/api/2/applications/{BACKUP}"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (backup["name"].clone(), backup["api_base_url"].clone()),
        (json!("Backup"), json!("/bc/"))
    );
    let usages = backup["usages"].as_array().expect("usages");
    for usage in [
        "workstations",
        "servers",
        "vms",
        "mobiles",
        "storage",
        "local_storage",
    ] {
        assert!(usages.contains(&json!(usage)), "{usage}");
    }
    let platform = &list["items"][2];
    assert_eq!(platform["usages"], json!([]));
    for unknown in [Uuid::new_v4().to_string(), "not-a-uuid".into()] {
        assert_error(
            sim.get(&format!("/api/2/applications/{unknown}"))
                .send()
                .await
                .expect("request"),
            404,
            1007,
        )
        .await;
    }
}

#[tokio::test]
async fn the_listing_defaults_to_the_standard_edition_and_star_lists_every_edition() {
    let sim = start().await;
    let root = sim.root();
    // The root partner has the whole catalogue on, unlimited.
    let all = sim.items(root, "?edition=*").await;
    assert_eq!(names(&all), sorted(&[STANDARD, ADVANCED, NO_EDITION]));
    assert!(all.iter().all(|i| i["status"] == 1), "{all:?}");
    assert_eq!(
        named(&all, "storage")["quota"],
        json!({"value": null, "overage": null, "version": 0})
    );
    assert_eq!(
        (
            named(&all, "adv_storage")["usage_name"].clone(),
            named(&all, "adv_storage")["edition"].clone()
        ),
        (json!("storage"), json!("advanced"))
    );
    assert_eq!(named(&all, "local_storage")["edition"], Value::Null);
    // Items without an edition are never filtered out by edition.
    assert_eq!(
        names(&sim.items(root, "").await),
        sorted(&[STANDARD, NO_EDITION])
    );
    assert_eq!(
        names(&sim.items(root, "?edition=standard").await),
        sorted(&[STANDARD, NO_EDITION])
    );
    assert_eq!(
        names(&sim.items(root, "?edition=advanced").await),
        sorted(&[ADVANCED, NO_EDITION])
    );
    // The other filters the document declares.
    assert_eq!(
        names(
            &sim.items(root, "?edition=*&usage_names=storage,local_storage")
                .await
        ),
        sorted(&[&["storage", "adv_storage", "local_storage"]])
    );
    assert_eq!(
        names(&sim.items(root, "?edition=*&type=infra").await),
        sorted(&[&["storage", "adv_storage", "fc_storage"]])
    );
    assert_eq!(
        names(
            &sim.items(root, &format!("?type=infra&infra_uuid={INFRA}"))
                .await
        ),
        sorted(&[&["storage", "fc_storage"]])
    );
    assert!(sim.items(root, "?status=0").await.is_empty());
    assert_eq!(
        sim.items(
            root,
            "?status=1&for_ui=true&include_secondary=false&available_only=1"
        )
        .await
        .len(),
        8
    );
    for bad in [
        "?edition=platinum",
        "?type=bytes",
        "?status=2",
        "?status=on",
        "?usage_names=storage,unicorns",
        "?infra_uuid=nope",
        "?for_ui=maybe",
    ] {
        assert_error(
            sim.get(&format!("/api/2/tenants/{root}/offering_items{bad}"))
                .send()
                .await
                .expect("request"),
            400,
            1006,
        )
        .await;
    }
}

#[tokio::test]
async fn a_new_tenant_has_no_service_and_a_child_sees_only_what_its_parent_has_on() {
    let sim = start().await;
    let partner = id(&sim.create_tenant(sim.root(), "Reseller", "partner").await);
    let customer = id(&sim.create_tenant(partner, "Shop", "customer").await);
    // Created through POST /tenants: every item of the parent, off.
    let items = sim.items(partner, "?edition=*").await;
    assert_eq!(names(&items), sorted(&[STANDARD, ADVANCED, NO_EDITION]));
    assert!(items.iter().all(|i| i["status"] == 0), "{items:?}");
    assert!(
        sim.items(customer, "?edition=*").await.is_empty(),
        "the partner has nothing on"
    );

    sim.set_items(
        partner,
        &on(&["workstations", "servers", "storage", "fc_seats"]),
    )
    .await;
    let items = sim.items(customer, "?edition=*").await;
    assert_eq!(
        names(&items),
        sorted(&[&["workstations", "servers", "storage", "fc_seats"]])
    );
    assert!(items.iter().all(|i| i["status"] == 0));
    // What the partner does not have on, its customer cannot get.
    refused(
        sim.put_items(customer, &on(&["workstations", "vms"])).await,
        "vms",
    )
    .await;
    assert!(
        sim.items(customer, "?status=1").await.is_empty(),
        "a refused PUT changes nothing"
    );
    sim.set_items(customer, &on(&["workstations", "storage"]))
        .await;
    assert_eq!(
        names(&sim.items(customer, "?status=1").await),
        sorted(&[&["workstations", "storage"]])
    );

    // The partner loses servers and workstations: so does everything below it.
    sim.set_items(partner, &on(&["storage", "fc_seats"])).await;
    assert_eq!(
        names(&sim.items(customer, "?status=1").await),
        sorted(&[&["storage"]])
    );
    sim.set_items(partner, &on(&["workstations", "storage", "fc_seats"]))
        .await;
    assert_eq!(
        named(&sim.items(customer, "").await, "workstations")["status"],
        0,
        "turned off below when the parent turned it off"
    );
}

#[tokio::test]
async fn a_put_sets_exactly_the_listed_items_of_each_application_it_names() {
    let sim = start().await;
    let customer = id(&sim.create_tenant(sim.root(), "Strict", "customer").await);
    let answer = sim
        .set_items(
            customer,
            &on(&[
                "workstations",
                "storage",
                "local_storage",
                "fc_seats",
                "fc_storage",
            ]),
        )
        .await;
    assert_eq!(answer.len(), 12, "the answer lists every edition");
    let on_now = |items: &[Value]| {
        names(
            &items
                .iter()
                .filter(|i| i["status"] == 1)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        on_now(&answer),
        sorted(&[&[
            "workstations",
            "storage",
            "local_storage",
            "fc_seats",
            "fc_storage"
        ]])
    );
    // Backup alone: its unlisted items go off, File Sync & Share is left as it was.
    let answer = sim.set_items(customer, &on(&["servers"])).await;
    assert_eq!(
        on_now(&answer),
        sorted(&[&["servers", "fc_seats", "fc_storage"]])
    );
    assert_eq!(
        on_now(&sim.items(customer, "?edition=*").await),
        on_now(&answer)
    );
    // A listed item with status 0 is off; one without a status is on.
    let answer = sim
        .set_items(
            customer,
            &[
                item(FILES, "fc_seats", 0),
                json!({"application_id": FILES, "name": "fc_storage"}),
            ],
        )
        .await;
    assert_eq!(on_now(&answer), sorted(&[&["servers", "fc_storage"]]));
    // The same PUT twice ends in the same state.
    let again = sim.set_items(customer, &on(&["servers"])).await;
    assert_eq!(on_now(&again), sorted(&[&["servers", "fc_storage"]]));
}

#[tokio::test]
async fn a_customer_may_have_one_backup_edition_on_and_a_partner_several() {
    let sim = start().await;
    let partner = id(&sim.create_tenant(sim.root(), "Both", "partner").await);
    sim.set_items(
        partner,
        &on(&[
            "workstations",
            "storage",
            "adv_servers",
            "adv_storage",
            "local_storage",
        ]),
    )
    .await;
    let customer = id(&sim.create_tenant(partner, "One Edition", "customer").await);
    let response = sim
        .put_items(customer, &on(&["workstations", "adv_servers"]))
        .await;
    let body = assert_error(response, 400, 1006).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("One Edition")
            && message.contains("advanced")
            && message.contains("standard"),
        "{body}"
    );
    // An item without an edition goes with either.
    sim.set_items(customer, &on(&["workstations", "storage", "local_storage"]))
        .await;
    // Switching editions in one PUT: the standard items not listed go off.
    let answer = sim
        .set_items(
            customer,
            &on(&["adv_servers", "adv_storage", "local_storage"]),
        )
        .await;
    let on_now: Vec<String> = names(
        &answer
            .into_iter()
            .filter(|i| i["status"] == 1)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        on_now,
        sorted(&[&["adv_servers", "adv_storage", "local_storage"]])
    );
}

#[tokio::test]
async fn unknown_items_applications_and_shapes_are_400_and_foreign_tenants_403() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Careful").await;
    refused(
        sim.put_items(customer, &[item(BACKUP, "unicorns", 1)])
            .await,
        "unicorns",
    )
    .await;
    refused(
        sim.put_items(customer, &[item(FILES, "workstations", 1)])
            .await,
        "workstations",
    )
    .await;
    let stranger = Uuid::new_v4().to_string();
    refused(
        sim.put_items(customer, &[item(&stranger, "workstations", 1)])
            .await,
        &stranger,
    )
    .await;
    refused(
        sim.put_items(customer, &[json!({"application_id": BACKUP, "name": "local_storage", "status": 1, "quota": {"value": 1, "overage": null, "version": 0}})])
            .await,
        "local_storage",
    )
    .await;
    refused(
        sim.put_items(customer, &[json!({"application_id": BACKUP, "name": "storage", "status": 1, "infra_id": Uuid::new_v4()})])
            .await,
        "storage",
    )
    .await;
    refused(
        sim.put_items(
            customer,
            &[item(BACKUP, "servers", 1), item(BACKUP, "servers", 0)],
        )
        .await,
        "servers",
    )
    .await;
    for body in [
        json!({"offering_items": [{"application_id": BACKUP, "name": "servers", "colour": "red"}]}),
        json!({"offering_items": [{"name": "servers"}]}),
        json!({"items": []}),
    ] {
        let response = sim
            .put(&format!("/api/2/tenants/{customer}/offering_items"), &body)
            .send()
            .await
            .expect("request");
        assert_error(response, 400, 1006).await;
    }
    assert_eq!(
        names(&sim.items(customer, "?status=1").await),
        sorted(&[&["workstations", "servers", "storage", "local_storage"]]),
        "nothing refused changed anything"
    );
    // The caller's own tenant is set by its parent; another partner's is not the caller's.
    assert_error(
        sim.put_items(sim.root(), &on(&["servers"])).await,
        403,
        1002,
    )
    .await;
    let other = sim.other_partner();
    assert_error(sim.put_items(other, &on(&["servers"])).await, 403, 1002).await;
    assert_error(
        sim.get(&format!("/api/2/tenants/{other}/offering_items"))
            .send()
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
    // Unknown: 404 where the document declares it (PUT), 403 where it does not (GET).
    let unknown = Uuid::new_v4();
    assert_error(sim.put_items(unknown, &on(&["servers"])).await, 404, 1005).await;
    assert_error(
        sim.get(&format!("/api/2/tenants/{unknown}/offering_items"))
            .send()
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
}

#[tokio::test]
async fn a_quota_write_needs_the_current_version_and_moves_it() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Quota").await;
    let storage = |value: Value, version: i64| {
        json!({"application_id": BACKUP, "name": "storage", "status": 1, "infra_id": INFRA,
               "quota": {"value": value, "overage": null, "version": version}})
    };
    let keep = on(&["workstations", "servers", "local_storage"]);
    let with = |storage: Value| keep.iter().cloned().chain([storage]).collect::<Vec<_>>();
    let answer = sim
        .set_items(customer, &with(storage(json!(1_000_000), 0)))
        .await;
    assert_eq!(
        named(&answer, "storage")["quota"],
        json!({"value": 1_000_000, "overage": null, "version": 1})
    );
    // A replay of the same write (its answer lost) meets the new version.
    let body = assert_error(
        sim.put_items(customer, &with(storage(json!(1_000_000), 0)))
            .await,
        409,
        1001,
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("storage")),
        "{body}"
    );
    let answer = sim
        .set_items(customer, &with(storage(json!(2_000_000), 1)))
        .await;
    assert_eq!(named(&answer, "storage")["quota"]["version"], 2);
    // Back to unlimited: version 0, as the document says; the next write does not reuse a number.
    let answer = sim
        .set_items(customer, &with(storage(Value::Null, 2)))
        .await;
    assert_eq!(
        named(&answer, "storage")["quota"],
        json!({"value": null, "overage": null, "version": 0})
    );
    let answer = sim.set_items(customer, &with(storage(json!(5), 0))).await;
    assert_eq!(named(&answer, "storage")["quota"]["version"], 4);
    // A write without a quota leaves it as it is.
    let answer = sim
        .set_items(
            customer,
            &on(&["workstations", "servers", "storage", "local_storage"]),
        )
        .await;
    assert_eq!(
        named(&answer, "storage")["quota"],
        json!({"value": 5, "overage": null, "version": 4})
    );
    // Negative values are refused.
    refused(
        sim.put_items(customer, &with(storage(json!(-1), 4))).await,
        "storage",
    )
    .await;
}

#[tokio::test]
async fn personal_tenants_hold_their_users_quotas() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Family").await;
    let tenant = json!({"id": customer});
    let user = sim.create_user(&tenant, "kid.one").await;
    let personal = Uuid::parse_str(
        user["personal_tenant_id"]
            .as_str()
            .expect("personal tenant"),
    )
    .expect("uuid");
    // A user gets what its tenant has on until told otherwise, unlimited.
    let items = sim.items(personal, "").await;
    assert_eq!(
        names(&items),
        sorted(&[&["workstations", "servers", "storage", "local_storage"]])
    );
    assert!(items.iter().all(|i| i["status"] == 1), "{items:?}");
    let quota = json!({"value": 50_000_000_000_i64, "overage": 0, "version": 0});
    let answer = sim
        .set_items(
            personal,
            &[
                json!({"application_id": BACKUP, "name": "storage", "status": 1, "quota": quota}),
                item(BACKUP, "workstations", 1),
                item(BACKUP, "local_storage", 1),
            ],
        )
        .await;
    assert_eq!(
        named(&answer, "storage")["quota"]["value"],
        50_000_000_000_i64
    );
    assert_eq!(
        named(&answer, "servers")["status"],
        0,
        "explicitly off: not listed"
    );
    // Nothing beyond the tenant's items.
    refused(sim.put_items(personal, &on(&["vms"])).await, "vms").await;
    let state = sim.sim.inspect();
    let held = state["personal_tenants"]
        .as_array()
        .expect("personal tenants")
        .iter()
        .find(|p| p["id"] == json!(personal))
        .expect("the user's personal tenant")
        .clone();
    assert_eq!(held["login"], "kid.one");
    let storage = held["offering_items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "storage")
        .expect("storage");
    assert_eq!(storage["quota"]["value"], 50_000_000_000_i64);
    // Another partner's user's personal tenant is not the caller's.
    let foreign = state["personal_tenants"]
        .as_array()
        .expect("personal tenants")
        .iter()
        .find(|p| p["login"] == "taken.user")
        .expect("a seeded user")["id"]
        .clone();
    assert_error(
        sim.get(&format!(
            "/api/2/tenants/{}/offering_items",
            foreign.as_str().expect("id")
        ))
        .send()
        .await
        .expect("request"),
        403,
        1002,
    )
    .await;
}

#[tokio::test]
async fn a_root_item_turned_off_is_not_available_for_a_child() {
    let sim = start().await;
    let root = sim.root();
    let available = item_list(sim.available(root, "?kind=customer&edition=*").await, root).await;
    assert_eq!(names(&available), sorted(&[STANDARD, ADVANCED, NO_EDITION]));
    // The edition filter as in the listing: standard by default.
    let available = item_list(sim.available(root, "?kind=customer").await, root).await;
    assert_eq!(names(&available), sorted(&[STANDARD, NO_EDITION]));

    let response = sim
        .http
        .put(sim.url("/sim/cloud/offering_items"))
        .json(&json!({"off": ["adv_workstations", "fc_seats"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let catalogue: Value = response.json().await.expect("json");
    let off: Vec<&str> = catalogue["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["status"] == 0)
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(off, ["adv_workstations", "fc_seats"]);
    let available = item_list(sim.available(root, "?kind=customer&edition=*").await, root).await;
    assert!(
        !names(&available).contains(&"adv_workstations".to_string())
            && !names(&available).contains(&"fc_seats".to_string()),
        "{available:?}"
    );
    let customer = id(&sim.create_tenant(root, "Late", "customer").await);
    refused(
        sim.put_items(customer, &on(&["adv_workstations"])).await,
        "adv_workstations",
    )
    .await;
    sim.set_items(customer, &on(&["adv_servers"])).await;
    // A child of a customer is a unit; a partner cannot be.
    assert_eq!(
        names(
            &item_list(
                sim.available(customer, "?kind=unit&edition=*").await,
                customer
            )
            .await
        ),
        ["adv_servers"]
    );
    assert_error(sim.available(customer, "?kind=partner").await, 400, 1006).await;
    assert_error(sim.available(root, "?kind=emperor").await, 400, 1006).await;
    assert_error(sim.available(root, "?edition=gold").await, 400, 1006).await;
    assert_error(
        sim.available(sim.other_partner(), "?kind=customer").await,
        403,
        1002,
    )
    .await;
    let refused_name = sim
        .http
        .put(sim.url("/sim/cloud/offering_items"))
        .json(&json!({"off": ["unicorns"]}))
        .send()
        .await
        .expect("request");
    assert_error(refused_name, 422, 1006).await;
}

#[tokio::test]
async fn pricing_starts_in_trial_and_the_switch_to_production_is_one_way() {
    let sim = start().await;
    let customer = id(&sim.create_tenant(sim.root(), "Paying", "customer").await);
    assert_eq!(
        sim.pricing(customer).await,
        json!({"mode": "trial", "currency": "USD", "version": 1, "production_start_date": null})
    );
    let tenant: Value = sim
        .get(&format!("/api/2/tenants/{customer}"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(tenant["pricing_mode"], "trial");

    let response = sim
        .put_pricing(customer, json!({"version": 1, "mode": "production"}))
        .await;
    assert_eq!(response.status(), 200);
    let production: Value = response.json().await.expect("json");
    assert_eq!(
        (production["mode"].clone(), production["version"].clone()),
        (json!("production"), json!(2))
    );
    assert!(
        production["production_start_date"].is_string(),
        "{production}"
    );
    assert_eq!(sim.pricing(customer).await, production);
    // The same write again (its answer lost) meets the new version.
    assert_error(
        sim.put_pricing(customer, json!({"version": 1, "mode": "production"}))
            .await,
        409,
        1001,
    )
    .await;
    // Never back to trial, whatever comes between.
    let body = assert_error(
        sim.put_pricing(customer, json!({"version": 2, "mode": "trial"}))
            .await,
        403,
        1011,
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Paying")),
        "{body}"
    );
    let response = sim
        .put_pricing(
            customer,
            json!({"version": 2, "mode": "suspended", "currency": "EUR"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let suspended: Value = response.json().await.expect("json");
    assert_eq!(
        (
            suspended["mode"].clone(),
            suspended["currency"].clone(),
            suspended["production_start_date"].clone()
        ),
        (
            json!("suspended"),
            json!("EUR"),
            production["production_start_date"].clone()
        )
    );
    assert_error(
        sim.put_pricing(customer, json!({"version": 3, "mode": "trial"}))
            .await,
        403,
        1011,
    )
    .await;
    assert_eq!(
        sim.pricing(customer).await["version"],
        3,
        "refusals change nothing"
    );

    // The root's own pricing is its parent's to set; top-level partners are in production.
    assert_eq!(sim.pricing(sim.root()).await["mode"], "production");
    assert_error(
        sim.put_pricing(sim.root(), json!({"version": 1, "mode": "trial"}))
            .await,
        403,
        1002,
    )
    .await;
    assert_error(
        sim.put_pricing(Uuid::new_v4(), json!({"version": 1})).await,
        404,
        1005,
    )
    .await;
    assert_error(
        sim.put_pricing(customer, json!({"mode": "production"}))
            .await,
        422,
        1006,
    )
    .await;
    assert_error(
        sim.put_pricing(customer, json!({"version": 3, "currency": "XYZ"}))
            .await,
        422,
        1006,
    )
    .await;
}

#[tokio::test]
async fn the_inspection_shows_items_on_and_pricing_per_tenant() {
    let sim = start().await;
    let customer = sim.backed_up_customer("Inspected").await;
    sim.put_pricing(customer, json!({"version": 1, "mode": "production"}))
        .await;
    let state: Value = sim
        .http
        .get(sim.url("/sim/cloud/state"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let tenant = state["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .find(|t| t["id"] == json!(customer))
        .expect("tenant")
        .clone();
    assert_eq!(tenant["pricing_mode"], "production");
    let items = tenant["offering_items"].as_array().expect("items");
    assert_eq!(
        names(items),
        sorted(&[&["workstations", "servers", "storage", "local_storage"]])
    );
    let workstations = named(items, "workstations");
    assert_eq!(
        (
            workstations["edition"].clone(),
            workstations["application"].clone(),
            workstations["quota"]["version"].clone()
        ),
        (json!("standard"), json!("backup"), json!(0))
    );
    assert_eq!(named(items, "local_storage")["quota"], Value::Null);
    let root = &state["tenants"][0];
    assert_eq!(root["offering_items"].as_array().map(Vec::len), Some(12));
}

#[tokio::test]
async fn offering_and_pricing_writes_may_lose_their_answer_after_the_change() {
    let sim = start().await;
    let customer = id(&sim.create_tenant(sim.root(), "Lossy", "customer").await);
    sim.sim.set_faults(Faults {
        fail_after_commit_rate: 1.0,
        ..Faults::default()
    });
    assert_error(
        sim.put_items(customer, &on(&["workstations"])).await,
        503,
        1010,
    )
    .await;
    assert_error(
        sim.put_pricing(customer, json!({"version": 1, "mode": "production"}))
            .await,
        503,
        1010,
    )
    .await;
    sim.sim.set_faults(Faults::default());
    assert_eq!(
        names(&sim.items(customer, "?status=1").await),
        ["workstations"],
        "the write happened"
    );
    assert_eq!(sim.pricing(customer).await["mode"], "production");
    assert_error(
        sim.put_pricing(customer, json!({"version": 1, "mode": "production"}))
            .await,
        409,
        1001,
    )
    .await;
    // Reads fail before doing anything, like every other request.
    sim.sim.set_faults(Faults {
        fail_rate: 1.0,
        ..Faults::default()
    });
    assert_error(
        sim.get(&format!("/api/2/tenants/{customer}/offering_items"))
            .send()
            .await
            .expect("request"),
        503,
        1010,
    )
    .await;
    assert_error(
        sim.get("/api/2/applications")
            .send()
            .await
            .expect("request"),
        503,
        1010,
    )
    .await;
    assert_error(sim.put_items(customer, &on(&["servers"])).await, 503, 1010).await;
    sim.sim.set_faults(Faults::default());
    assert_eq!(
        names(&sim.items(customer, "?status=1").await),
        ["workstations"],
        "nothing done"
    );
}
