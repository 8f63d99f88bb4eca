//! The BackupAgent server simulator and its install-base generator: determinism,
//! every planted oddity checked against the served data, auth, paging, mutations.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use migration_portal::sim::backupagent::{PATHS, SourceSim};
use migration_portal::sim::install_base::{
    BackupPlan, GenSpec, Group, InstallBase, Machine, Mutations, OsFamily, PlanType, Schedule,
    Size, User, WeekOfMonth, generate,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const REFUSED: [char; 7] = ['<', '>', '"', '\\', '/', '|', ';'];

fn start(spec: &GenSpec) -> SourceSim {
    SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), generate(spec))
        .expect("simulator starts")
}

struct Client {
    http: reqwest::Client,
    url: String,
    login: String,
    password: String,
}

impl Client {
    fn new(sim: &SourceSim) -> Self {
        let (login, password) = sim.credentials();
        Self {
            http: reqwest::Client::new(),
            url: sim.base_url(),
            login,
            password,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.url))
            .basic_auth(&self.login, Some(&self.password))
    }

    async fn json(&self, path: &str) -> Value {
        let response = self.get(path).send().await.expect("request");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    async fn bytes(&self, path: &str) -> Vec<u8> {
        self.get(path)
            .send()
            .await
            .expect("request")
            .bytes()
            .await
            .expect("body")
            .to_vec()
    }

    /// Every item of a listing, page by page, as raw JSON.
    async fn all_raw(&self, listing: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/source/v1/{listing}?limit={limit}&cursor={c}"),
                None => format!("/api/source/v1/{listing}?limit={limit}"),
            };
            let page = self.json(&path).await;
            let batch = page["items"].as_array().expect("items");
            assert!(batch.len() <= limit);
            items.extend(batch.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }

    async fn all<T: DeserializeOwned>(&self, listing: &str) -> Vec<T> {
        self.all_raw(listing, 5000)
            .await
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("entity"))
            .collect()
    }

    async fn mutate(&self, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/sim/backupagent/mutations", self.url))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let spec = GenSpec::sized(Size::Small, 42);
    let first = serde_json::to_vec(&generate(&spec)).expect("json");
    let second = serde_json::to_vec(&generate(&spec)).expect("json");
    assert!(first == second, "same seed, same bytes");
    let other = serde_json::to_vec(&generate(&GenSpec::sized(Size::Small, 43))).expect("json");
    assert!(first != other, "another seed, other data");
}

#[tokio::test]
async fn two_servers_with_the_same_seed_serve_the_same_bytes() {
    let spec = GenSpec::sized(Size::Small, 9);
    let (a, b, c) = (
        start(&spec),
        start(&spec),
        start(&GenSpec::sized(Size::Small, 10)),
    );
    let (a, b, c) = (Client::new(&a), Client::new(&b), Client::new(&c));
    assert_eq!((&a.login, &a.password), (&b.login, &b.password));
    for path in [
        "/api/source/v1/account",
        "/sim/backupagent/truth",
        "/api/source/v1/users/u-0000001/password",
    ] {
        assert_eq!(a.bytes(path).await, b.bytes(path).await, "{path}");
    }
    for listing in ["groups", "users", "machines", "plans"] {
        let (x, y) = (
            a.all_raw(listing, 5000).await,
            b.all_raw(listing, 5000).await,
        );
        assert_eq!(
            serde_json::to_vec(&x).expect("json"),
            serde_json::to_vec(&y).expect("json"),
            "{listing}"
        );
        assert_ne!(
            x,
            c.all_raw(listing, 5000).await,
            "{listing} of another seed"
        );
    }
}

#[test]
fn explicit_counts_are_honoured_in_the_large_shape() {
    let base = generate(&GenSpec::custom(400, 4_000, 6_000, 3));
    let counts = base.counts();
    assert_eq!(
        (counts.groups, counts.users, counts.machines),
        (400, 4_000, 6_000)
    );
    let per_machine = counts.plans as f64 / counts.machines as f64;
    assert!(
        (2.4..3.0).contains(&per_machine),
        "about 2.7 plans per machine (large: ~400,000 for 150,000): {per_machine}"
    );
    let g = &base.truth.groups;
    assert_eq!(
        g.resellers.len() + g.customers.len() + g.mixed.len() + g.empty.len(),
        399,
        "every non-root group has one kind"
    );
    let off = base.truth.users.auto_update_off.len() as f64 / 4_000.0;
    assert!(
        (0.10..=0.15).contains(&off),
        "auto-update off for 10-15% of users: {off}"
    );
    let planted = &base.truth.machines;
    assert_eq!(
        planted.client_old.len()
            + planted.client_below_threshold.len()
            + planted.client_at_or_above_threshold.len()
            + planted.client_never_reported.len(),
        6_000
    );
    assert_eq!(
        planted.supported_os.len() + planted.unsupported_os.len(),
        6_000
    );
    let typed: usize = base.truth.plans.by_type.values().map(Vec::len).sum();
    assert_eq!(typed, counts.plans);
    assert_eq!(Size::Large.counts(), (10_000, 100_000, 150_000));
}

#[test]
fn tiny_explicit_counts_are_honoured_as_far_as_they_go() {
    for (groups, users, machines) in [
        (1, 0, 0),
        (1, 5, 7),
        (2, 1, 1),
        (3, 2, 1),
        (8, 3, 0),
        (10, 40, 30),
        (25, 25, 25),
    ] {
        let base = generate(&GenSpec::custom(groups, users, machines, 11));
        assert_eq!(
            (base.groups.len(), base.users.len(), base.machines.len()),
            (groups, users, machines)
        );
        let homes: HashSet<&str> = base.users.iter().map(|u| u.group_id.as_str()).collect();
        assert!(homes.iter().all(|h| base.groups.iter().any(|g| g.id == *h)));
    }
    assert!(
        generate(&GenSpec::custom(1, 0, 9, 1)).machines.is_empty(),
        "no users, no machines"
    );
}

#[tokio::test]
async fn credentials_of_the_top_level_group_are_required() {
    let sim = start(&GenSpec::sized(Size::Small, 1));
    let client = Client::new(&sim);
    let account = client.json("/api/source/v1/account").await;
    let root = sim.with_base(|b| b.root().clone());
    assert_eq!(account["group_id"], root.id.as_str());
    assert_eq!(account["name"], root.name.as_str());
    assert_eq!(account["login"], client.login.as_str());
    assert!(account["server_version"].as_str().is_some());

    for path in [
        "/api/source/v1/account",
        "/api/source/v1/groups",
        "/api/source/v1/plans",
        "/api/source/v1/users/u-0000001/password",
    ] {
        let url = format!("{}{path}", client.url);
        let missing = client.http.get(&url).send().await.expect("request");
        let wrong = client
            .http
            .get(&url)
            .basic_auth(&client.login, Some("wrong"))
            .send()
            .await
            .expect("request");
        let stranger = client
            .http
            .get(&url)
            .basic_auth("someone", Some(&client.password))
            .send()
            .await
            .expect("request");
        for response in [missing, wrong, stranger] {
            assert_eq!(response.status(), 401, "{path}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
}

#[tokio::test]
async fn paging_visits_every_entity_exactly_once_in_id_order() {
    let sim = start(&GenSpec::sized(Size::Small, 5));
    let client = Client::new(&sim);
    let expected: HashMap<&str, Vec<String>> = sim.with_base(|b| {
        HashMap::from([
            ("groups", b.groups.iter().map(|x| x.id.clone()).collect()),
            ("users", b.users.iter().map(|x| x.id.clone()).collect()),
            (
                "machines",
                b.machines.iter().map(|x| x.id.clone()).collect(),
            ),
            ("plans", b.plans.iter().map(|x| x.id.clone()).collect()),
        ])
    });
    for (listing, expected) in &expected {
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(&sorted, expected, "{listing} are held in id order");
        for limit in [1, 7, 100, 1000, 5000] {
            if limit == 1 && expected.len() > 500 {
                continue;
            }
            assert_eq!(
                &ids(&client.all_raw(listing, limit).await),
                expected,
                "{listing} with limit {limit}"
            );
        }
    }
    let first = client.json("/api/source/v1/plans").await;
    assert_eq!(
        first["items"].as_array().map(Vec::len),
        Some(1000),
        "the default limit is 1000"
    );
    let stats: Value = client
        .http
        .get(format!("{}/sim/backupagent/stats", client.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["counts"]["plans"], expected["plans"].len());
    assert!(stats["requests"]["total"].as_u64().is_some_and(|n| n > 100));
}

#[tokio::test]
async fn bad_paging_parameters_are_refused_with_400() {
    let sim = start(&GenSpec::sized(Size::Small, 5));
    let client = Client::new(&sim);
    let users_cursor = client.json("/api/source/v1/users?limit=2").await["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    for query in [
        "limit=0",
        "limit=5001",
        "limit=-1",
        "limit=abc",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
        &format!("cursor={users_cursor}"),
    ] {
        let response = client
            .get(&format!("/api/source/v1/groups?{query}"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
    }
    assert_eq!(
        client.json("/api/source/v1/groups?limit=5000").await["items"]
            .as_array()
            .map(Vec::len),
        Some(60)
    );
    assert_eq!(
        client
            .json(&format!(
                "/api/source/v1/users?cursor={users_cursor}&limit=1"
            ))
            .await["items"][0]["id"],
        "u-0000003"
    );
}

#[tokio::test]
async fn the_password_endpoint_answers_for_known_users_only() {
    let sim = start(&GenSpec::sized(Size::Small, 5));
    let client = Client::new(&sim);
    let (id, password) = sim.with_base(|b| {
        (
            b.users[17].id.clone(),
            b.password(&b.users[17].id).map(String::from),
        )
    });
    let body = client
        .json(&format!("/api/source/v1/users/{id}/password"))
        .await;
    assert_eq!(body, json!({"password": password.expect("a password")}));
    assert!(
        !client
            .json("/api/source/v1/users?limit=5")
            .await
            .to_string()
            .contains("password"),
        "listings hold no passwords"
    );
    let response = client
        .get("/api/source/v1/users/u-9999999/password")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"]["code"],
        "not_found"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_paths() {
    let doc: Value = serde_json::from_str(include_str!("../../openapi/backupagent-source.json"))
        .expect("document is JSON");
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let served: BTreeSet<&str> = PATHS.into_iter().collect();
    assert_eq!(
        documented, served,
        "openapi/backupagent-source.json and the served routes differ"
    );
    let sim = start(&GenSpec::custom(20, 40, 50, 1));
    let client = Client::new(&sim);
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{id}", "u-0000001");
        for method in item.as_object().expect("path item").keys() {
            let request = match method.as_str() {
                "get" => client.get(&concrete),
                "post" => client
                    .http
                    .post(format!("{}{concrete}", client.url))
                    .json(&json!({})),
                other => panic!("unexpected method {other}"),
            };
            assert_eq!(
                request.send().await.expect("request").status(),
                200,
                "{method} {path}"
            );
        }
    }
    let response = client
        .get("/api/source/v1/nothing")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404, "an undocumented path is not served");

    // The documented entity fields are the served ones.
    let schemas = &doc["components"]["schemas"];
    let keys = |v: &Value| {
        v.as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<BTreeSet<String>>()
    };
    // Every field is required but those added after 1.0.0, which an older server
    // does not send; the simulator sends them all.
    for (listing, schema, optional) in [
        ("groups", "Group", &["storage_quota_bytes"][..]),
        ("users", "User", &["storage_quota_bytes"][..]),
        ("machines", "Machine", &[][..]),
        ("plans", "BackupPlan", &[][..]),
    ] {
        let documented = keys(&schemas[schema]["properties"]);
        let required: BTreeSet<String> =
            strings(&schemas[schema]["required"]).into_iter().collect();
        let mut always = documented.clone();
        for field in optional {
            assert!(always.remove(*field), "{schema}.{field} is documented");
        }
        assert_eq!(always, required, "{schema}: the required fields");
        for item in client.all_raw(listing, 5000).await {
            assert_eq!(keys(&item), documented, "{listing} item {item}");
        }
    }
    let account = client.json("/api/source/v1/account").await;
    assert_eq!(keys(&account), keys(&schemas["Account"]["properties"]));
}

#[tokio::test]
async fn mutations_are_visible_and_paging_stays_exact_across_them() {
    let sim = start(&GenSpec::sized(Size::Small, 8));
    let client = Client::new(&sim);
    let before_users: HashMap<String, User> = client
        .all::<User>("users")
        .await
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let before_machines: HashMap<String, Machine> = client
        .all::<Machine>("machines")
        .await
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();

    // Half-way through paging each listing, the install base changes.
    let mut seen: HashMap<&str, Vec<String>> = HashMap::new();
    let mut cursors: HashMap<&str, Option<String>> = HashMap::new();
    for listing in ["users", "machines", "plans"] {
        let mut cursor = None;
        for _ in 0..3 {
            let path = match &cursor {
                Some(c) => format!("/api/source/v1/{listing}?limit=40&cursor={c}"),
                None => format!("/api/source/v1/{listing}?limit=40"),
            };
            let page = client.json(&path).await;
            seen.entry(listing)
                .or_default()
                .extend(ids(page["items"].as_array().expect("items")));
            cursor = page["next_cursor"].as_str().map(String::from);
        }
        cursors.insert(listing, cursor);
    }
    let before: HashMap<&str, Vec<String>> = sim.with_base(|b| {
        HashMap::from([
            ("users", b.users.iter().map(|x| x.id.clone()).collect()),
            (
                "machines",
                b.machines.iter().map(|x| x.id.clone()).collect(),
            ),
            ("plans", b.plans.iter().map(|x| x.id.clone()).collect()),
        ])
    });
    let report = client.mutate(json!({"seed": 4, "add_users": 5, "move_users": 7, "remove_users": 20, "upgrade_clients": 9})).await;
    for (kind, n) in [
        ("added_users", 5),
        ("moved_users", 7),
        ("removed_users", 20),
        ("upgraded_machines", 9),
    ] {
        assert_eq!(report[kind].as_array().map(Vec::len), Some(n), "{kind}");
    }
    for listing in ["users", "machines", "plans"] {
        let mut cursor = cursors[listing].clone();
        while let Some(c) = cursor {
            let page = client
                .json(&format!("/api/source/v1/{listing}?limit=40&cursor={c}"))
                .await;
            seen.entry(listing)
                .or_default()
                .extend(ids(page["items"].as_array().expect("items")));
            cursor = page["next_cursor"].as_str().map(String::from);
        }
        let got = &seen[listing];
        assert_eq!(
            got.iter().collect::<HashSet<_>>().len(),
            got.len(),
            "{listing}: nothing seen twice"
        );
        let (added, removed) = match listing {
            "users" => ("added_users", "removed_users"),
            "machines" => ("added_machines", "removed_machines"),
            _ => ("added_plans", "removed_plans"),
        };
        let removed: HashSet<String> = strings(&report[removed]).into_iter().collect();
        let already: HashSet<&String> = got.iter().take(120).collect();
        let mut expected: Vec<String> = before[listing]
            .iter()
            .filter(|id| already.contains(id) || !removed.contains(*id))
            .cloned()
            .collect();
        expected.extend(strings(&report[added]));
        assert_eq!(
            got, &expected,
            "{listing}: every entity once, except those removed before they were reached"
        );
        assert!(!removed.is_empty(), "{listing}: some were removed");
    }

    let after_users: HashMap<String, User> = client
        .all::<User>("users")
        .await
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    for id in strings(&report["removed_users"]) {
        assert!(!after_users.contains_key(&id));
        let response = client
            .get(&format!("/api/source/v1/users/{id}/password"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "a removed user has no password");
    }
    for id in strings(&report["moved_users"]) {
        let (old, new) = (&before_users[&id], &after_users[&id]);
        assert_ne!(old.group_id, new.group_id, "{id} moved");
        assert!(new.updated_at > old.updated_at);
    }
    let after_machines: HashMap<String, Machine> = client
        .all::<Machine>("machines")
        .await
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    for id in strings(&report["upgraded_machines"]) {
        let (old, new) = (&before_machines[&id], &after_machines[&id]);
        assert_ne!(old.client_version, new.client_version, "{id} upgraded");
        assert!(
            new.client_version
                .as_deref()
                .is_some_and(|v| v.starts_with("5.5."))
        );
        assert!(new.updated_at > old.updated_at);
    }
    for id in strings(&report["added_users"]) {
        let user = &after_users[&id];
        assert!(!before_users.contains_key(&id));
        assert!(
            after_machines.values().any(|m| m.user_id == id),
            "{id} got a machine"
        );
        assert_eq!(
            client
                .json(&format!("/api/source/v1/users/{id}/password"))
                .await["password"]
                .as_str()
                .map(str::is_empty),
            Some(false)
        );
        assert!(
            user.login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c))
        );
    }
    let truth: Value = client
        .http
        .get(format!("{}/sim/backupagent/truth", client.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        truth["mutations"][0], report,
        "the truth records the mutation"
    );
    assert_eq!(
        sim.mutate(Mutations {
            seed: 1,
            upgrade_clients: 1,
            ..Mutations::default()
        })
        .upgraded_machines
        .len(),
        1
    );
}

/// Collapses whitespace and trims, the way a clean name already is.
fn tidy(name: &str) -> String {
    name.split(' ')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn every_oddity_the_pre_check_must_find_is_planted_in_small() {
    for seed in [1, 2, 3, 1234] {
        assert_oddities_planted(seed).await;
    }
}

async fn assert_oddities_planted(seed: u64) {
    let sim = start(&GenSpec::sized(Size::Small, seed));
    let client = Client::new(&sim);
    let truth = sim.truth();
    let as_of = sim.with_base(|b: &InstallBase| b.spec.as_of);
    let groups: Vec<Group> = client.all("groups").await;
    let users: Vec<User> = client.all("users").await;
    let machines: Vec<Machine> = client.all("machines").await;
    let plans: Vec<BackupPlan> = client.all("plans").await;
    assert_eq!((groups.len(), users.len(), machines.len()), (60, 300, 450));
    assert!(
        (1_000..1_400).contains(&plans.len()),
        "about 1,200 plans: {}",
        plans.len()
    );
    let group = |id: &str| {
        groups
            .iter()
            .find(|g| g.id == id)
            .expect("planted group is served")
    };
    let user = |id: &str| {
        users
            .iter()
            .find(|u| u.id == id)
            .expect("planted user is served")
    };

    // Hierarchy: the kinds, as the served parent ids and user homes show them.
    let mut children: HashMap<&str, usize> = HashMap::new();
    for g in &groups {
        if let Some(p) = &g.parent_id {
            *children.entry(p.as_str()).or_default() += 1;
        }
    }
    let homes: HashSet<&str> = users.iter().map(|u| u.group_id.as_str()).collect();
    assert_eq!(
        groups
            .iter()
            .filter(|g| g.parent_id.is_none())
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        [truth.root_group_id.as_str()]
    );
    let t = &truth.groups;
    for (list, subgroups, has_users) in [
        (&t.resellers, true, false),
        (&t.customers, false, true),
        (&t.mixed, true, true),
        (&t.empty, false, false),
    ] {
        assert!(!list.is_empty());
        for id in list {
            assert_eq!(
                (
                    children.contains_key(id.as_str()),
                    homes.contains(id.as_str())
                ),
                (subgroups, has_users),
                "{id}"
            );
        }
    }
    assert_eq!(
        t.resellers.len() + t.customers.len() + t.mixed.len() + t.empty.len(),
        59
    );
    let mut depth = 0;
    let mut at = group(t.deep_chain.last().expect("chain"));
    while let Some(parent) = &at.parent_id {
        depth += 1;
        at = group(parent);
    }
    assert!(
        depth >= 6,
        "the deep chain is {depth} levels below the root"
    );
    assert!(t.deep_chain.iter().all(|id| t.resellers.contains(id)));

    // Group names and admins.
    assert!(
        t.whitespace_names.len() >= 4
            && t.refused_character_names.len() >= 7
            && t.control_character_names.len() >= 2
    );
    for id in &t.whitespace_names {
        let name = &group(id).name;
        assert_ne!(&tidy(name), name, "{name:?}");
    }
    let refused: HashSet<char> = t
        .refused_character_names
        .iter()
        .flat_map(|id| group(id).name.chars())
        .filter(|c| REFUSED.contains(c))
        .collect();
    assert_eq!(
        refused.len(),
        REFUSED.len(),
        "each refused character appears"
    );
    assert!(
        t.control_character_names
            .iter()
            .all(|id| group(id).name.chars().any(char::is_control))
    );
    assert!(
        t.long_names.len() >= 2
            && t.long_names
                .iter()
                .all(|id| group(id).name.chars().count() > 128)
    );
    assert!(t.duplicate_sibling_names.len() >= 2);
    for set in &t.duplicate_sibling_names {
        let members: Vec<&Group> = set.iter().map(|id| group(id)).collect();
        assert!(members.windows(2).all(|w| w[0].parent_id == w[1].parent_id
            && w[0].name.to_lowercase() == w[1].name.to_lowercase()));
        assert!(
            members.windows(2).all(|w| w[0].name != w[1].name),
            "they differ in case only"
        );
    }
    assert!(!t.without_admin.is_empty());
    for g in &groups {
        match &g.admin {
            Some(admin) => assert_eq!(admin.login, g.name, "the admin login is the group name"),
            None => assert!(t.without_admin.contains(&g.id)),
        }
    }
    // Nothing odd beyond what was planted: the truth is exact.
    let odd: HashSet<&String> = t
        .whitespace_names
        .iter()
        .chain(&t.refused_character_names)
        .chain(&t.control_character_names)
        .chain(&t.long_names)
        .chain(t.duplicate_sibling_names.iter().flatten())
        .collect();
    let mut sibling_names = HashSet::new();
    for g in groups.iter().filter(|g| !odd.contains(&g.id)) {
        assert_eq!(tidy(&g.name), g.name);
        assert!(
            !g.name
                .chars()
                .any(|c| REFUSED.contains(&c) || c.is_control())
                && g.name.len() <= 128,
            "{:?}",
            g.name
        );
        assert!(
            sibling_names.insert((g.parent_id.clone(), g.name.to_lowercase())),
            "{:?}",
            g.name
        );
    }

    // Logins.
    let u = &truth.users;
    assert!(
        u.bad_character_logins.len() >= 3
            && u.short_logins.len() >= 2
            && u.case_colliding_logins.len() >= 2
    );
    for (needle, planted) in [('$', 1), ('#', 1), (' ', 1)] {
        assert!(
            u.bad_character_logins
                .iter()
                .filter(|id| user(id).login.contains(needle))
                .count()
                >= planted,
            "{needle:?}"
        );
    }
    assert!(
        u.short_logins
            .iter()
            .all(|id| user(id).login.chars().count() < 3)
    );
    for set in &u.case_colliding_logins {
        let logins: Vec<&str> = set.iter().map(|id| user(id).login.as_str()).collect();
        assert!(
            logins
                .windows(2)
                .all(|w| w[0] != w[1] && w[0].to_lowercase() == w[1].to_lowercase()),
            "{logins:?}"
        );
    }
    let cloud: HashSet<&str> = truth
        .cloud_existing_logins
        .iter()
        .map(String::as_str)
        .collect();
    let cloud_lower: HashSet<String> = cloud.iter().map(|l| l.to_lowercase()).collect();
    assert_eq!(sim.cloud_existing_logins(), truth.cloud_existing_logins);
    assert!(u.cloud_existing_logins.len() >= 2 && u.cloud_existing_logins_other_case.len() >= 2);
    assert!(
        u.cloud_existing_logins
            .iter()
            .all(|id| cloud.contains(user(id).login.as_str()))
    );
    for id in &u.cloud_existing_logins_other_case {
        let login = &user(id).login;
        assert!(
            !cloud.contains(login.as_str()) && cloud_lower.contains(&login.to_lowercase()),
            "{login}"
        );
    }
    let odd: HashSet<&String> = u
        .bad_character_logins
        .iter()
        .chain(&u.short_logins)
        .chain(u.case_colliding_logins.iter().flatten())
        .chain(&u.cloud_existing_logins)
        .chain(&u.cloud_existing_logins_other_case)
        .collect();
    let mut logins = HashSet::new();
    for x in users.iter().filter(|x| !odd.contains(&x.id)) {
        assert!(
            x.login.len() >= 3
                && x.login
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c)),
            "{}",
            x.login
        );
        assert!(
            logins.insert(x.login.to_lowercase()) && !cloud_lower.contains(&x.login.to_lowercase()),
            "{}",
            x.login
        );
    }
    let off: Vec<&String> = users
        .iter()
        .filter(|x| !x.auto_update)
        .map(|x| &x.id)
        .collect();
    assert_eq!(off, u.auto_update_off.iter().collect::<Vec<_>>());
    assert!(
        (30..=45).contains(&off.len()),
        "10-15% of 300 users have auto-update off: {}",
        off.len()
    );
    assert!(!u.offline.is_empty());
    for id in &u.offline {
        let theirs: Vec<&Machine> = machines.iter().filter(|m| &m.user_id == id).collect();
        assert!(
            theirs.iter().all(|m| m
                .last_seen_at
                .is_some_and(|t| as_of - t >= chrono::Duration::days(21))),
            "{id} offline for weeks"
        );
    }

    // Machines: every OS, every client category per platform, sizes from MB to TB.
    let m = &truth.machines;
    for name in [
        "Windows Vista",
        "Windows 7",
        "Windows 8.1",
        "Windows 10",
        "Windows Server 2008",
        "Windows Server 2008 R2",
        "Windows SBS 2011",
        "Windows Server 2012",
        "Windows Server 2012 R2",
        "Ubuntu 22.04",
        "CentOS 7",
        "macOS 12",
        "Windows XP",
        "Windows Server 2003",
        "Solaris 11",
        "Windows 11",
        "Windows Server 2019",
    ] {
        assert!(
            m.by_os.get(name).is_some_and(|ids| !ids.is_empty()),
            "{name}"
        );
    }
    for (name, ids) in &m.by_os {
        assert!(
            ids.iter()
                .all(|id| machines.iter().any(|x| &x.id == id && &x.os.name == name)),
            "{name}"
        );
    }
    for name in [
        "Windows XP",
        "Windows Server 2003",
        "Solaris 11",
        "Windows 11",
        "Windows Server 2019",
    ] {
        assert!(
            m.by_os[name].iter().all(|id| m.unsupported_os.contains(id)),
            "{name} is unsupported"
        );
    }
    let machine = |id: &str| {
        machines
            .iter()
            .find(|x| x.id == id)
            .expect("planted machine is served")
    };
    let build = |x: &Machine| -> (String, u64) {
        let v = x.client_version.as_deref().expect("a reported version");
        let (release, build) = v.rsplit_once('.').expect("four parts");
        (release.to_string(), build.parse().expect("build number"))
    };
    for family in [OsFamily::Windows, OsFamily::Linux, OsFamily::Macos] {
        let threshold = if family == OsFamily::Windows {
            15908
        } else {
            15836
        };
        let of = |list: &Vec<String>| {
            list.iter()
                .map(|id| machine(id))
                .filter(|x| x.os.family == family)
                .map(build)
                .collect::<Vec<_>>()
        };
        assert!(
            of(&m.client_below_threshold)
                .iter()
                .any(|(r, b)| r == "5.5.0" && *b < threshold),
            "{family:?} below"
        );
        assert!(
            of(&m.client_below_threshold)
                .iter()
                .all(|(r, b)| r == "5.5.0" && *b < threshold)
        );
        assert!(
            of(&m.client_exactly_at_threshold)
                .iter()
                .any(|(r, b)| r == "5.5.0" && *b == threshold),
            "{family:?} at"
        );
        assert!(
            of(&m.client_at_or_above_threshold)
                .iter()
                .all(|(r, b)| r.starts_with("5.5.") && *b >= threshold)
        );
        assert!(
            of(&m.client_old).iter().any(|(r, _)| r.as_str() < "5.5"),
            "{family:?} old"
        );
    }
    assert!(
        m.client_below_windows_threshold_only
            .iter()
            .map(|id| build(machine(id)).1)
            .all(|b| (15836..15908).contains(&b))
    );
    assert!(!m.client_below_windows_threshold_only.is_empty());
    assert!(
        !m.client_never_reported.is_empty()
            && m.client_never_reported
                .iter()
                .all(|id| machine(id).client_version.is_none())
    );
    assert!(
        !m.data_under_100_mb.is_empty()
            && m.data_under_100_mb
                .iter()
                .all(|id| machine(id).data_size_bytes < 100_000_000)
    );
    assert!(
        !m.data_over_1_tb.is_empty()
            && m.data_over_1_tb
                .iter()
                .all(|id| machine(id).data_size_bytes > 1_000_000_000_000)
    );

    // Plans: every type, filters, every schedule kind.
    let p = &truth.plans;
    let plan = |id: &str| {
        plans
            .iter()
            .find(|x| x.id == id)
            .expect("planted plan is served")
    };
    for plan_type in PlanType::ALL {
        let planted = p
            .by_type
            .get(plan_type.as_str())
            .expect("every type is planted");
        assert!(
            !planted.is_empty() && planted.iter().all(|id| plan(id).plan_type == plan_type),
            "{plan_type:?}"
        );
    }
    assert!(
        plans
            .iter()
            .all(|x| x.network_share.is_some() == (x.plan_type == PlanType::NetworkShare))
    );
    let filtered: Vec<&String> = plans
        .iter()
        .filter(|x| !x.inclusion_filters.is_empty())
        .map(|x| &x.id)
        .collect();
    assert!(!filtered.is_empty() && filtered.len() < plans.len());
    assert_eq!(
        filtered,
        p.with_inclusion_filters.iter().collect::<Vec<_>>()
    );
    let minutes = |t: &String| -> i64 {
        let (h, m) = t.split_once(':').expect("HH:MM");
        h.parse::<i64>().expect("hour") * 60 + m.parse::<i64>().expect("minute")
    };
    let gaps = |id: &String| -> Vec<i64> {
        match &plan(id).schedule {
            Schedule::Daily { times } => times
                .windows(2)
                .map(|w| minutes(&w[1]) - minutes(&w[0]))
                .collect(),
            other => panic!("{id} is not daily: {other:?}"),
        }
    };
    assert!(!p.daily_one_time.is_empty() && p.daily_one_time.iter().all(|id| gaps(id).is_empty()));
    assert!(
        !p.daily_even.is_empty()
            && p.daily_even.iter().all(|id| {
                let g = gaps(id);
                !g.is_empty() && g.iter().all(|x| *x == g[0] && *x > 0)
            })
    );
    assert!(
        !p.daily_uneven.is_empty()
            && p.daily_uneven.iter().all(|id| {
                let g = gaps(id);
                g.iter().all(|x| *x > 0) && g.iter().any(|x| *x != g[0])
            })
    );
    assert!(!p.weekly.is_empty() && p.weekly.iter().all(|id| matches!(&plan(id).schedule, Schedule::Weekly { weekdays, .. } if !weekdays.is_empty())));
    assert!(
        !p.monthly.is_empty()
            && p.monthly.iter().all(|id| matches!(
                &plan(id).schedule,
                Schedule::Monthly {
                    week_of_month: WeekOfMonth::Last | WeekOfMonth::Nth(1..=4),
                    ..
                }
            ))
    );
    assert!(
        !p.once.is_empty()
            && p.once
                .iter()
                .all(|id| matches!(plan(id).schedule, Schedule::Once { .. }))
    );
    let kinds = p.daily_one_time.len()
        + p.daily_even.len()
        + p.daily_uneven.len()
        + p.weekly.len()
        + p.monthly.len()
        + p.once.len();
    assert_eq!(kinds, plans.len(), "every plan has one schedule kind");

    // Times agree with each other: nothing is created before its parent or changed before it exists.
    for x in &groups {
        assert!(x.created_at <= x.updated_at && x.updated_at <= as_of);
        if let Some(parent) = &x.parent_id {
            assert!(
                group(parent).created_at <= x.created_at,
                "{} created before its parent",
                x.id
            );
        }
    }
    for x in &users {
        assert!(
            group(&x.group_id).created_at <= x.created_at
                && x.created_at <= x.updated_at
                && x.updated_at <= as_of
        );
    }
    for x in &machines {
        assert!(
            user(&x.user_id).created_at <= x.created_at
                && x.created_at <= x.updated_at
                && x.updated_at <= as_of
        );
        assert!(
            x.last_seen_at
                .is_none_or(|t| x.created_at <= t && t <= as_of),
            "{}",
            x.id
        );
    }
    assert!(
        plans
            .iter()
            .all(|x| machine(&x.machine_id).created_at <= x.updated_at && x.updated_at <= as_of)
    );
}

#[test]
fn the_simulator_shares_no_code_with_the_service() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
    let mut files = vec![root.join("backupagent"), root.join("install_base")]
        .into_iter()
        .flat_map(|dir| {
            std::fs::read_dir(dir)
                .expect("module directory")
                .map(|e| e.expect("entry").path())
        })
        .collect::<Vec<_>>();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for forbidden in [
            "crate::api",
            "crate::db",
            "crate::auth",
            "crate::connectors",
            "crate::domain",
            "crate::jobs",
            "entity::",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn the_command_prints_its_url_and_credentials_and_serves() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_migration-portal"))
        .args([
            "sim",
            "backupagent",
            "--bind",
            "127.0.0.1:0",
            "--size",
            "small",
            "--seed",
            "3",
            "--users",
            "120",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("ground truth:"))
            .collect()
    })
    .await
    .expect("lines");
    let find = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
    };
    let url = find("BackupAgent server: ").expect("the URL is printed");
    let credentials = find("top-level group login: ").expect("the credentials are printed");
    let quoted: Vec<&str> = credentials.split('"').collect();
    let (login, password) = (quoted[1], quoted[3]);
    assert!(
        find("groups 60 users 120 machines 450 plans ").is_some(),
        "counts printed: {lines:?}"
    );
    let response = reqwest::Client::new()
        .get(format!("{url}/api/source/v1/account"))
        .basic_auth(login, Some(password))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let account: Value = response.expect("request").json().await.expect("json");
    assert_eq!(account["login"], login);
}
