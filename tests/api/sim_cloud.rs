//! The cloud simulator (`sim cloud`), over real HTTP: one test per rule of
//! `cloud-api.md` and of the simulator's own choices.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig, Faults, REFUSED_NAME_CHARS};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::test_keys;

mod agents;
mod offering;

struct Sim {
    sim: CloudSim,
    http: reqwest::Client,
    /// The root client's token, from the token endpoint.
    token: String,
}

/// A client-credentials token request to the simulator at `base`.
fn token_request(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    client_secret: &str,
) -> RequestBuilder {
    http.post(format!("{base}/api/2/idp/token"))
        .basic_auth(client_id, Some(client_secret))
        .form(&[("grant_type", "client_credentials")])
}

async fn start() -> Sim {
    start_with(CloudSimConfig {
        existing_logins: vec!["taken.user".into(), "Seeded@Example.com".into()],
        ..Default::default()
    })
    .await
}

async fn start_with(config: CloudSimConfig) -> Sim {
    let sim = CloudSim::start(config, &test_keys()[0]).expect("cloud simulator starts");
    let http = reqwest::Client::new();
    let client = sim.root_client();
    let answer: Value = token_request(
        &http,
        &sim.base_url(),
        &client.client_id,
        &client.client_secret,
    )
    .send()
    .await
    .expect("token request")
    .json()
    .await
    .expect("token json");
    let token = answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    Sim { sim, http, token }
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    fn root(&self) -> Uuid {
        self.sim.root_tenant_id()
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    fn put(&self, path: &str, body: &Value) -> RequestBuilder {
        self.http
            .put(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }

    async fn create_tenant(&self, parent: Uuid, name: &str, kind: &str) -> Value {
        let response = self
            .post(
                "/api/2/tenants",
                &json!({"name": name, "parent_id": parent, "kind": kind}),
            )
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            201,
            "create {kind} {name:?}: {}",
            response.text().await.unwrap_or_default()
        );
        response.json().await.expect("json")
    }

    async fn create_user(&self, tenant: &Value, login: &str) -> Value {
        let body = json!({"tenant_id": tenant["id"], "login": login, "contact": {"email": format!("{}@example.com", Uuid::new_v4().simple())}});
        let response = self
            .post("/api/2/users", &body)
            .send()
            .await
            .expect("request");
        // The document answers a created user with 200.
        assert_eq!(
            response.status(),
            200,
            "create user {login:?}: {}",
            response.text().await.unwrap_or_default()
        );
        response.json().await.expect("json")
    }

    fn other_partner(&self) -> Uuid {
        let state = self.sim.inspect();
        let other = state["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .find(|t| t["name"] == "Other Partner")
            .expect("Other Partner");
        id(other)
    }
}

fn id(object: &Value) -> Uuid {
    object["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("object has a uuid id")
}

/// Asserts the cloud's error answer with `status` and `code`; returns the body.
async fn assert_error(response: Response, status: u16, code: u64) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "status; body: {text}");
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["domain"], "PlatformAccountServer", "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["details"].is_object() && error["context"].is_object(),
        "{body}"
    );
    body
}

#[tokio::test]
async fn the_token_endpoint_answers_good_clients_and_refuses_bad_secrets_and_grants() {
    let sim = start().await;
    let discovery: Value = sim
        .http
        .get(sim.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], sim.sim.base_url());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/api/2/idp/keys", sim.sim.base_url())
    );
    let keys: Value = sim
        .http
        .get(sim.url("/api/2/idp/keys"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1));

    let client = sim.sim.root_client();
    let token = |id: &str, secret: &str, grant: &str| {
        sim.http
            .post(sim.url("/api/2/idp/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", grant)])
            .send()
    };
    let response = token(
        &client.client_id,
        &client.client_secret,
        "client_credentials",
    )
    .await
    .expect("request");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["token_type"], "bearer");
    let now = chrono::Utc::now().timestamp();
    assert!(
        answer["expires_on"]
            .as_i64()
            .is_some_and(|e| (now + 7100..=now + 7300).contains(&e)),
        "{answer}"
    );
    let claims = sim
        .sim
        .idp()
        .verify(answer["access_token"].as_str().expect("token"))
        .expect("signed by the simulator");
    assert_eq!(claims["iss"], sim.sim.base_url());
    assert_eq!(claims["scope"][0]["tuid"], sim.root().to_string());
    assert_eq!(claims["scope"][0]["role"], "partner_admin");

    assert_eq!(
        token(&client.client_id, "wrong", "client_credentials")
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(
        token(&client.client_id, &client.client_secret, "password")
            .await
            .expect("request")
            .status(),
        400
    );
}

#[tokio::test]
async fn bad_expired_and_foreign_tokens_are_401() {
    let sim = start().await;
    let idp = sim.sim.idp();
    let good = idp.partner_claims(sim.root(), "client");
    let edit = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = good.clone();
        edit(claims.as_object_mut().expect("object"));
        idp.sign(&claims)
    };
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(idp.active_kid());
    let other_key = EncodingKey::from_rsa_der(
        rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&test_keys()[1])
            .expect("der")
            .as_bytes(),
    );
    let cases = [
        ("garbage", "not-a-jwt".to_string()),
        (
            "expired",
            edit(&|c| {
                c.insert("exp".into(), json!(now - 3600));
            }),
        ),
        (
            "foreign issuer",
            edit(&|c| {
                c.insert("iss".into(), json!("https://eu2-cloud.example.com"));
            }),
        ),
        (
            "wrong audience",
            edit(&|c| {
                c.insert("aud".into(), json!("someone-else"));
            }),
        ),
        (
            "another key's signature",
            encode(&header, &good, &other_key).expect("sign"),
        ),
    ];
    for (case, token) in cases {
        let response = sim
            .http
            .get(sim.url(&format!("/api/2/tenants/{}", sim.root())))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        eprintln!("case {case}");
        assert_error(response, 401, 1000).await;
    }
    let response = sim
        .http
        .get(sim.url(&format!("/api/2/tenants/{}", sim.root())))
        .send()
        .await
        .expect("request");
    assert_error(response, 401, 1000).await;
    assert_eq!(
        sim.get(&format!("/api/2/tenants/{}", sim.root()))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
}

#[tokio::test]
async fn tokens_survive_a_key_rotation_until_the_old_key_is_retired() {
    let sim = start().await;
    let path = format!("/api/2/tenants/{}", sim.root());
    assert_eq!(
        sim.http
            .post(sim.url("/sim/idp/rotate"))
            .send()
            .await
            .expect("rotate")
            .status(),
        200
    );
    assert_eq!(
        sim.get(&path).send().await.expect("request").status(),
        200,
        "old key still published"
    );
    assert_eq!(
        sim.http
            .post(sim.url("/sim/idp/rotate?retire_old=true"))
            .send()
            .await
            .expect("rotate")
            .status(),
        200
    );
    assert_error(sim.get(&path).send().await.expect("request"), 401, 1000).await;
}

#[tokio::test]
async fn the_hierarchy_allows_only_its_kind_pairings() {
    let sim = start().await;
    let partner = sim.create_tenant(sim.root(), "Reseller", "partner").await;
    let folder = sim.create_tenant(sim.root(), "Folder", "folder").await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let unit = sim.create_tenant(id(&customer), "Unit", "unit").await;
    let parents = [
        ("partner", id(&partner)),
        ("folder", id(&folder)),
        ("customer", id(&customer)),
        ("unit", id(&unit)),
    ];
    let allowed = |parent: &str, child: &str| match child {
        "partner" => parent == "partner",
        "folder" | "customer" => matches!(parent, "partner" | "folder"),
        _ => matches!(parent, "customer" | "unit"),
    };
    for (parent_kind, parent) in parents {
        for kind in ["partner", "folder", "customer", "unit"] {
            let body = json!({"name": format!("{kind} under {parent_kind}"), "parent_id": parent, "kind": kind});
            let response = sim
                .post("/api/2/tenants", &body)
                .send()
                .await
                .expect("request");
            if allowed(parent_kind, kind) {
                assert_eq!(response.status(), 201, "{kind} under {parent_kind}");
                let tenant: Value = response.json().await.expect("json");
                assert_eq!(tenant["parent_id"], json!(parent));
                assert_eq!(
                    (
                        tenant["version"].clone(),
                        tenant["enabled"].clone(),
                        tenant["language"].clone()
                    ),
                    (json!(1), json!(true), json!("en"))
                );
                assert!(
                    tenant["deleted_at"].is_null() && tenant["has_children"] == false,
                    "{tenant}"
                );
            } else {
                eprintln!("{kind} under {parent_kind}");
                assert_error(response, 422, 1006).await;
            }
        }
    }
    let parent: Value = sim
        .get(&format!("/api/2/tenants/{}", id(&customer)))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(parent["has_children"], true);
    let body = json!({"name": "Nowhere", "parent_id": Uuid::new_v4(), "kind": "customer"});
    assert_error(
        sim.post("/api/2/tenants", &body)
            .send()
            .await
            .expect("request"),
        404,
        1005,
    )
    .await;
}

#[tokio::test]
async fn sibling_names_conflict_case_insensitively_and_trimmed() {
    let sim = start().await;
    let first = sim.create_tenant(sim.root(), "Acme Corp", "customer").await;
    for clash in ["Acme Corp", "ACME corp", "  acme corp "] {
        let body = json!({"name": clash, "parent_id": sim.root(), "kind": "partner"});
        assert_error(
            sim.post("/api/2/tenants", &body)
                .send()
                .await
                .expect("request"),
            409,
            1004,
        )
        .await;
    }
    let other = sim.create_tenant(sim.root(), "Other", "partner").await;
    sim.create_tenant(id(&other), "acme corp", "customer").await;
    let rename = json!({"version": 1, "name": "ACME CORP"});
    assert_error(
        sim.put(&format!("/api/2/tenants/{}", id(&other)), &rename)
            .send()
            .await
            .expect("request"),
        409,
        1004,
    )
    .await;
    assert_eq!(first["name"], "Acme Corp");
}

#[tokio::test]
async fn names_with_refused_characters_or_length_and_long_internal_tags_are_422() {
    let sim = start().await;
    let long = "n".repeat(129);
    let mut refused: Vec<String> = REFUSED_NAME_CHARS
        .iter()
        .map(|c| format!("Bad{c}Name"))
        .collect();
    refused.extend([
        "".into(),
        "   ".into(),
        long,
        "Tab\there".into(),
        "Line\nbreak".into(),
    ]);
    for name in &refused {
        let body = json!({"name": name, "parent_id": sim.root(), "kind": "customer"});
        eprintln!("name {name:?}");
        assert_error(
            sim.post("/api/2/tenants", &body)
                .send()
                .await
                .expect("request"),
            422,
            1006,
        )
        .await;
    }
    let longest = sim
        .create_tenant(sim.root(), &"n".repeat(128), "customer")
        .await;
    assert_eq!(
        longest["name"].as_str().map(|n| n.chars().count()),
        Some(128)
    );
    let trimmed = sim
        .create_tenant(sim.root(), "  Müller & Söhne, Inc. (#1)  ", "customer")
        .await;
    assert_eq!(trimmed["name"], "Müller & Söhne, Inc. (#1)");

    let tag = |tag: String| json!({"name": format!("T{}", tag.len()), "parent_id": sim.root(), "kind": "customer", "internal_tag": tag});
    assert_error(
        sim.post("/api/2/tenants", &tag("t".repeat(257)))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;
    assert_eq!(
        sim.post("/api/2/tenants", &tag("t".repeat(256)))
            .send()
            .await
            .expect("request")
            .status(),
        201
    );
}

#[tokio::test]
async fn unknown_fields_bad_types_and_non_json_bodies_are_refused() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let root = sim.root();
    let cases = [
        (
            "/api/2/tenants",
            json!({"name": "X", "parent_id": root, "kind": "customer", "description": "no such field"}),
        ),
        ("/api/2/tenants", json!({"name": "X", "parent_id": root})),
        (
            "/api/2/tenants",
            json!({"name": 7, "parent_id": root, "kind": "customer"}),
        ),
        (
            "/api/2/tenants",
            json!({"name": "X", "parent_id": root, "kind": "reseller"}),
        ),
        (
            "/api/2/users",
            json!({"tenant_id": customer["id"], "login": "someone", "password": "secret-123"}),
        ),
        ("/api/2/users", json!({"login": "someone"})),
        (
            "/api/2/users",
            json!({"tenant_id": customer["id"], "contact": {"firstname": "No email"}}),
        ),
        (
            "/api/2/users",
            json!({"tenant_id": customer["id"], "contact": {"email": "a@b.c", "fax": "123"}}),
        ),
    ];
    for (path, body) in &cases {
        eprintln!("{path} {body}");
        assert_error(
            sim.post(path, body).send().await.expect("request"),
            422,
            1006,
        )
        .await;
    }
    let tokens = format!("/api/2/tenants/{}/registration_tokens", id(&customer));
    let body = json!({"expires_in": 3600, "scopes": [], "tenant_id": customer["id"]});
    assert_error(
        sim.post(&tokens, &body).send().await.expect("request"),
        422,
        1006,
    )
    .await;

    let response = sim
        .http
        .post(sim.url("/api/2/tenants"))
        .bearer_auth(&sim.token)
        .body("name=X")
        .send()
        .await
        .expect("request");
    assert_error(response, 415, 1008).await;
    let response = sim
        .http
        .post(sim.url("/api/2/tenants"))
        .bearer_auth(&sim.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    assert_error(response, 422, 1006).await;
    assert!(
        sim.sim.inspect()["tenants"]
            .as_array()
            .is_some_and(|t| t.len() == 3),
        "nothing created"
    );
}

#[tokio::test]
async fn updates_and_deletes_need_the_current_version() {
    let sim = start().await;
    let tenant = sim.create_tenant(sim.root(), "Locked", "customer").await;
    let path = format!("/api/2/tenants/{}", id(&tenant));
    let response = sim
        .put(
            &path,
            &json!({"version": 1, "name": "Renamed", "internal_tag": "src-1"}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("json");
    assert_eq!(
        (
            updated["version"].clone(),
            updated["name"].clone(),
            updated["internal_tag"].clone()
        ),
        (json!(2), json!("Renamed"), json!("src-1"))
    );

    assert_error(
        sim.put(&path, &json!({"version": 1, "name": "Stale"}))
            .send()
            .await
            .expect("request"),
        409,
        1001,
    )
    .await;
    assert_error(
        sim.put(&path, &json!({"name": "No version"}))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;
    assert_error(
        sim.put(&path, &json!({"version": 2, "kind": "partner"}))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;
    assert_error(
        sim.delete(&format!("{path}?version=1"))
            .send()
            .await
            .expect("request"),
        409,
        1001,
    )
    .await;

    sim.create_tenant(id(&tenant), "Child", "unit").await;
    assert_error(
        sim.delete(&format!("{path}?version=2"))
            .send()
            .await
            .expect("request"),
        409,
        1003,
    )
    .await;
    let child = &sim.sim.inspect()["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .find(|t| t["name"] == "Child")
        .cloned()
        .expect("child");
    assert_eq!(
        sim.delete(&format!("/api/2/tenants/{}?version=1", id(child)))
            .send()
            .await
            .expect("request")
            .status(),
        204
    );
    assert_eq!(
        sim.delete(&format!("{path}?version=2"))
            .send()
            .await
            .expect("request")
            .status(),
        204
    );
    assert_error(sim.get(&path).send().await.expect("request"), 404, 1005).await;
}

#[tokio::test]
async fn tenants_outside_the_callers_subtree_are_403() {
    let sim = start().await;
    let other = sim.other_partner();
    assert_error(
        sim.get(&format!("/api/2/tenants/{other}"))
            .send()
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
    assert_error(
        sim.get(&format!("/api/2/tenants?parent_id={other}"))
            .send()
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
    let body = json!({"name": "Intruder", "parent_id": other, "kind": "customer"});
    assert_error(
        sim.post("/api/2/tenants", &body)
            .send()
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
    assert_error(
        sim.post(
            "/api/2/users",
            &json!({"tenant_id": other, "login": "intruder"}),
        )
        .send()
        .await
        .expect("request"),
        403,
        1002,
    )
    .await;
    let body = json!({"expires_in": 3600, "scopes": []});
    assert_error(
        sim.post(
            &format!("/api/2/tenants/{other}/registration_tokens"),
            &body,
        )
        .send()
        .await
        .expect("request"),
        403,
        1002,
    )
    .await;

    let seeded = sim.sim.inspect()["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["login"] == "taken.user")
        .cloned()
        .expect("seeded user");
    let user = id(&seeded);
    assert_error(
        sim.get(&format!("/api/2/users/{user}"))
            .send()
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
    assert_error(
        sim.post(
            &format!("/api/2/users/{user}/send-activation-email"),
            &json!({}),
        )
        .send()
        .await
        .expect("request"),
        403,
        1002,
    )
    .await;
    assert_error(
        sim.post(
            &format!("/api/2/users/{user}/password"),
            &json!({"password": "long-enough"}),
        )
        .send()
        .await
        .expect("request"),
        403,
        1002,
    )
    .await;

    // A client of a sub-tenant sees its subtree only, not its parent.
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let token = sim.sim.idp().partner_token(id(&customer));
    let get = |path: String| sim.http.get(sim.url(&path)).bearer_auth(&token).send();
    assert_eq!(
        get(format!("/api/2/tenants/{}", id(&customer)))
            .await
            .expect("request")
            .status(),
        200
    );
    assert_error(
        get(format!("/api/2/tenants/{}", sim.root()))
            .await
            .expect("request"),
        403,
        1002,
    )
    .await;
}

#[tokio::test]
async fn extra_clients_are_registered_for_a_tenant_and_act_in_its_subtree() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let response = sim
        .http
        .post(sim.url("/sim/cloud/clients"))
        .json(&json!({"tenant_id": customer["id"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let client: Value = response.json().await.expect("json");
    assert_eq!(client["tenant_id"], customer["id"]);
    let answer: Value = token_request(
        &sim.http,
        &sim.sim.base_url(),
        client["client_id"].as_str().expect("id"),
        client["client_secret"].as_str().expect("secret"),
    )
    .send()
    .await
    .expect("request")
    .json()
    .await
    .expect("json");
    let token = answer["access_token"].as_str().expect("token");
    let response = sim
        .http
        .get(sim.url(&format!("/api/2/tenants/{}", sim.root())))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_error(response, 403, 1002).await;
    let response = sim
        .http
        .post(sim.url("/sim/cloud/clients"))
        .json(&json!({"tenant_id": Uuid::new_v4()}))
        .send()
        .await
        .expect("request");
    assert_error(response, 404, 1005).await;
}

#[tokio::test]
async fn check_login_says_free_taken_or_invalid() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    sim.create_user(&customer, "alice@example.com").await;
    let check = |login: &str| {
        let encoded: String = url::form_urlencoded::byte_serialize(login.as_bytes()).collect();
        sim.get(&format!("/api/2/users/check_login?username={encoded}"))
            .send()
    };
    assert_eq!(check("free.login").await.expect("request").status(), 204);
    for taken in [
        "taken.user",
        "TAKEN.user",
        "seeded@example.com",
        "alice@example.com",
        "Alice@Example.COM",
        " alice@example.com ",
    ] {
        eprintln!("taken {taken:?}");
        assert_error(check(taken).await.expect("request"), 409, 1003).await;
    }
    // The document's refusal of a login that cannot be one: 406, "not acceptable".
    for invalid in [
        "ab",
        "  ab  ",
        "has space",
        "ünïcode",
        "semi;colon",
        "",
        "back\\slash",
    ] {
        eprintln!("invalid {invalid:?}");
        assert_error(check(invalid).await.expect("request"), 406, 1006).await;
    }
    assert_error(
        sim.get("/api/2/users/check_login")
            .send()
            .await
            .expect("request"),
        406,
        1006,
    )
    .await;
}

#[tokio::test]
async fn user_logins_follow_the_login_rules_and_are_unique() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let every_special = "a.@_-+:!#$%^*={}'`/?z";
    let user = sim.create_user(&customer, every_special).await;
    assert_eq!(user["login"], every_special);
    assert_eq!(
        (
            user["activated"].clone(),
            user["enabled"].clone(),
            user["version"].clone()
        ),
        (json!(false), json!(true), json!(1))
    );
    assert!(
        user["personal_tenant_id"]
            .as_str()
            .is_some_and(|p| Uuid::parse_str(p).is_ok() && p != user["id"]),
        "{user}"
    );
    let trimmed = sim.create_user(&customer, "  bob  ").await;
    assert_eq!(trimmed["login"], "bob");
    for (login, status, code) in [
        ("ab", 422, 1006),
        ("white space", 422, 1006),
        ("ümlaut", 422, 1006),
        ("BOB", 409, 1003),
        ("Taken.User", 409, 1003),
    ] {
        let body = json!({"tenant_id": customer["id"], "login": login});
        eprintln!("login {login:?}");
        assert_error(
            sim.post("/api/2/users", &body)
                .send()
                .await
                .expect("request"),
            status,
            code,
        )
        .await;
    }
    // Looked up by id, by uuids and through the tenant's user list.
    let fetched: Value = sim
        .get(&format!("/api/2/users/{}", id(&user)))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, user);
    let listed: Value = sim
        .get(&format!(
            "/api/2/users?uuids={},{}",
            id(&user),
            Uuid::new_v4()
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    // A batch item is the full user with the origin fields a batch requires (null here).
    let mut full = user.clone();
    for key in ["origin_id", "origin_external_id", "disable_after"] {
        full[key] = Value::Null;
    }
    assert_eq!(listed["items"], json!([full]));
    assert!(listed["timestamp"].is_string(), "a userBatch: {listed}");
    let ids: Value = sim
        .get(&format!("/api/2/tenants/{}/users", id(&customer)))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(ids["items"], json!([user["id"], trimmed["id"]]));
    assert_error(
        sim.get(&format!("/api/2/users/{}", Uuid::new_v4()))
            .send()
            .await
            .expect("request"),
        404,
        1007,
    )
    .await;
}

#[tokio::test]
async fn roles_fit_the_tenant_kind_and_the_trustee() {
    let sim = start().await;
    let partner = sim.create_tenant(sim.root(), "Reseller", "partner").await;
    let folder = sim.create_tenant(sim.root(), "Folder", "folder").await;
    let customer = sim
        .create_tenant(id(&partner), "Customer", "customer")
        .await;
    let unit = sim.create_tenant(id(&customer), "Unit", "unit").await;
    let user = sim.create_user(&customer, "role.holder").await;
    let path = format!("/api/2/users/{}/access_policies", id(&user));
    let nil = Uuid::nil();
    let policy = |role: &str, tenant: &Value, trustee: Uuid| json!({"items": [{"id": nil, "issuer_id": nil, "role_id": role, "tenant_id": tenant["id"], "trustee_id": trustee, "trustee_type": "user", "version": 0}]});
    let tenants = [
        ("partner", &partner),
        ("folder", &folder),
        ("customer", &customer),
        ("unit", &unit),
    ];
    let fits = [
        ("partner_admin", &["partner", "folder"][..]),
        ("company_admin", &["customer"][..]),
        ("backup_user", &["customer", "unit"][..]),
    ];
    for (role, kinds) in fits {
        for (kind, tenant) in tenants {
            let response = sim
                .put(&path, &policy(role, tenant, id(&user)))
                .send()
                .await
                .expect("request");
            if kinds.contains(&kind) {
                assert_eq!(response.status(), 200, "{role} on {kind}");
                let stored: Value = response.json().await.expect("json");
                let item = &stored["items"][0];
                assert!(
                    item["id"].as_str().is_some_and(|i| i != nil.to_string()),
                    "id assigned: {stored}"
                );
                assert_eq!(
                    (item["role_id"].as_str(), &item["tenant_id"]),
                    (Some(role), &tenant["id"])
                );
            } else {
                eprintln!("{role} on {kind}");
                assert_error(response, 422, 1006).await;
            }
        }
    }
    assert_error(
        sim.put(&path, &policy("superuser", &customer, id(&user)))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;
    assert_error(
        sim.put(&path, &policy("backup_user", &customer, Uuid::new_v4()))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;

    sim.put(&path, &policy("backup_user", &customer, id(&user)))
        .send()
        .await
        .expect("request");
    let stored: Value = sim
        .get(&path)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(stored["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(stored["items"][0]["role_id"], "backup_user");
    let state = sim.sim.inspect();
    let inspected = state["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == user["id"])
        .cloned()
        .expect("user");
    assert_eq!(inspected["roles"], json!(["backup_user"]));
}

#[tokio::test]
async fn activation_emails_go_only_to_users_of_sub_tenants() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let admin = sim.create_user(&customer, "company.admin").await;
    let root_user = sim
        .create_user(&json!({"id": sim.root()}), "partner.colleague")
        .await;
    // No body: the document declares none.
    let send = |user: &Value| {
        sim.http
            .post(sim.url(&format!("/api/2/users/{}/send-activation-email", id(user))))
            .bearer_auth(&sim.token)
            .send()
    };
    assert_eq!(send(&admin).await.expect("request").status(), 204);
    assert_eq!(send(&admin).await.expect("request").status(), 204);
    assert_error(send(&root_user).await.expect("request"), 403, 1002).await;
    let state = sim.sim.inspect();
    let sent = |user: &Value| {
        state["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["id"] == user["id"])
            .map(|u| u["activation_email_sent"].clone())
    };
    assert_eq!(sent(&admin), Some(json!(2)));
    assert_eq!(sent(&root_user), Some(json!(0)));
}

#[tokio::test]
async fn a_password_activates_the_user_and_only_its_hash_is_kept() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let user = sim.create_user(&customer, "backup.user").await;
    let path = format!("/api/2/users/{}/password", id(&user));
    assert_error(
        sim.post(&path, &json!({"password": "short"}))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;
    assert_error(
        sim.post(&path, &json!({"password": "long-enough", "old": "x"}))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;
    assert_eq!(
        sim.post(&path, &json!({"password": "Secret-Passw0rd"}))
            .send()
            .await
            .expect("request")
            .status(),
        204
    );
    let state = sim.sim.inspect();
    assert!(
        !state.to_string().contains("Secret-Passw0rd"),
        "the password is not kept"
    );
    let inspected = state["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == user["id"])
        .cloned()
        .expect("user");
    assert_eq!(
        (
            inspected["password_set"].clone(),
            inspected["activated"].clone()
        ),
        (json!(true), json!(true))
    );
    let fetched: Value = sim
        .get(&format!("/api/2/users/{}", id(&user)))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(fetched["activated"], true);
}

#[tokio::test]
async fn registration_tokens_have_the_documented_shape_and_can_be_revoked() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let path = format!("/api/2/tenants/{}/registration_tokens", id(&customer));
    let scope = format!(
        "urn:acronis.com:tenant-id:{}:backup_agent_admin",
        Uuid::new_v4()
    );
    let response = sim
        .post(&path, &json!({"expires_in": 31_536_000, "scopes": [scope]}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "the document answers a created token with 200"
    );
    let token: Value = response.json().await.expect("json");
    assert!(token["id"].is_u64(), "an integer id: {token}");
    let code = token["token"].as_str().expect("token");
    let groups: Vec<&str> = code.split('-').collect();
    assert!(
        groups.len() == 3
            && groups.iter().all(|g| g.len() == 4
                && g.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())),
        "{code}"
    );
    assert_eq!(token["tenant_uuid"], customer["id"]);
    assert!(
        token["tenant_id"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit())),
        "the owner's numeric id: {token}"
    );
    assert_eq!(token["scopes"], json!([scope]));
    let created =
        chrono::DateTime::parse_from_rfc3339(token["created_at"].as_str().expect("created_at"))
            .expect("time");
    let expires =
        chrono::DateTime::parse_from_rfc3339(token["expires_at"].as_str().expect("expires_at"))
            .expect("time");
    assert_eq!((expires - created).num_seconds(), 31_536_000);

    for expires_in in [json!(0), json!(31_536_001), json!(-5), json!("3600")] {
        let body = json!({"expires_in": expires_in, "scopes": []});
        assert_error(
            sim.post(&path, &body).send().await.expect("request"),
            422,
            1006,
        )
        .await;
    }
    assert_error(
        sim.post(&path, &json!({"expires_in": 60}))
            .send()
            .await
            .expect("request"),
        422,
        1006,
    )
    .await;

    // Listed with its code, by its tenant and among all the caller's; a short-lived one is gone once expired.
    let listed: Value = sim
        .get(&path)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"], json!([token]));
    let brief = sim
        .post(&path, &json!({"expires_in": 1, "scopes": [scope]}))
        .send()
        .await
        .expect("request");
    assert_eq!(brief.status(), 200);
    let everywhere: Value = sim
        .get("/api/2/registration_tokens")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(everywhere["items"].as_array().map(Vec::len), Some(2));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let listed: Value = sim
        .get(&path)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"], json!([token]), "the expired token is gone");
    assert_error(
        sim.get(&format!(
            "/api/2/tenants/{}/registration_tokens",
            sim.other_partner()
        ))
        .send()
        .await
        .expect("request"),
        403,
        1002,
    )
    .await;

    let revoke = format!("/api/2/registration_tokens/{}", token["id"]);
    assert_eq!(
        sim.delete(&revoke).send().await.expect("request").status(),
        204
    );
    assert_error(
        sim.delete(&revoke).send().await.expect("request"),
        404,
        1007,
    )
    .await;
    assert_eq!(sim.sim.inspect()["registration_tokens"], json!([]));
    let listed: Value = sim
        .get(&path)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"], json!([]));
}

fn plan(schedule: Value) -> Value {
    let (root, backup) = (Uuid::new_v4(), Uuid::new_v4());
    json!({"subject": {"policy": [
        {"id": root, "type": "policy.protection.total", "name": "Migrated plan", "enabled": true},
        {"id": backup, "type": "policy.backup.machine", "parent_ids": [root], "settings_schema": "2.0",
         "settings": {"scheduling": {"enabled": true, "scheme": "always_incremental",
                                     "backup_sets": [{"type": "auto", "schedule": schedule}]}}},
    ]}})
}

fn weekly() -> Value {
    json!({"type": "weekly", "alarms": {"time": {"weekdays": ["mon", "wed", "fri"], "repeat_at": [{"hour": 23, "minute": 30}]}}})
}

fn edited(mut body: Value, pointer: &str, value: Value) -> Value {
    *body.pointer_mut(pointer).expect("pointer exists") = value;
    body
}

#[tokio::test]
async fn protection_plans_of_the_documented_shape_are_stored_and_others_are_422() {
    let sim = start().await;
    const PATH: &str = "/api/policy_management/v4/policies";
    let good = plan(weekly());
    let response = sim.post(PATH, &good).send().await.expect("request");
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.expect("json");
    assert_eq!(stored["id"], good["subject"]["policy"][0]["id"]);
    let fetched: Value = sim
        .get(&format!("{PATH}/{}", id(&stored)))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(fetched["subject"], good["subject"]);
    assert_error(
        sim.post(PATH, &good).send().await.expect("request"),
        409,
        1003,
    )
    .await;

    let sched = "/subject/policy/1/settings/scheduling";
    let accepted = [
        plan(
            json!({"type": "daily", "alarms": {"time": {"repeat_at": [{"hour": 0, "minute": 0}]}}}),
        ),
        plan(
            json!({"type": "hourly", "alarms": {"time": {"weekdays": ["mon"], "repeat_every": {"type": "minutes", "count": 90},
            "start_at": {"hour": 8, "minute": 0}, "end_at": {"hour": 18, "minute": 0}}}}),
        ),
        plan(
            json!({"type": "monthly", "alarms": {"time": {"weekdays": ["tue"], "week_numbers": ["last"], "repeat_at": [{"hour": 1, "minute": 5}]}}}),
        ),
        plan(
            json!({"type": "monthly", "alarms": {"time": {"days": [1, 15], "repeat_at": [{"hour": 1, "minute": 5}]}}}),
        ),
        edited(plan(weekly()), sched, json!({"enabled": false})),
    ];
    for body in &accepted {
        assert_eq!(
            sim.post(PATH, body).send().await.expect("request").status(),
            201,
            "{body}"
        );
    }

    let root_only = {
        let mut body = plan(weekly());
        body["subject"]["policy"]
            .as_array_mut()
            .expect("array")
            .truncate(1);
        body
    };
    let two_roots = {
        let mut body = plan(weekly());
        let extra = json!({"id": Uuid::new_v4(), "type": "policy.protection.total"});
        body["subject"]["policy"]
            .as_array_mut()
            .expect("array")
            .push(extra);
        body
    };
    let refused = [
        ("no backup item", root_only),
        ("two roots", two_roots),
        (
            "no parent",
            edited(
                plan(weekly()),
                "/subject/policy/1/parent_ids",
                json!([Uuid::new_v4()]),
            ),
        ),
        (
            "schema 1.0",
            edited(
                plan(weekly()),
                "/subject/policy/1/settings_schema",
                json!("1.0"),
            ),
        ),
        (
            "no enabled",
            edited(plan(weekly()), &format!("{sched}/enabled"), Value::Null),
        ),
        (
            "enabled without sets",
            edited(plan(weekly()), &format!("{sched}/backup_sets"), json!([])),
        ),
        (
            "funday",
            edited(
                plan(weekly()),
                &format!("{sched}/backup_sets/0/schedule/alarms/time/weekdays"),
                json!(["funday"]),
            ),
        ),
        (
            "hour 24",
            edited(
                plan(weekly()),
                &format!("{sched}/backup_sets/0/schedule/alarms/time/repeat_at"),
                json!([{"hour": 24, "minute": 0}]),
            ),
        ),
        (
            "minute 60",
            edited(
                plan(weekly()),
                &format!("{sched}/backup_sets/0/schedule/alarms/time/repeat_at"),
                json!([{"hour": 1, "minute": 60}]),
            ),
        ),
        (
            "yearly",
            edited(
                plan(weekly()),
                &format!("{sched}/backup_sets/0/schedule/type"),
                json!("yearly"),
            ),
        ),
        ("not a list", json!({"subject": {"policy": {}}})),
        (
            "extra field",
            json!({"subject": plan(weekly())["subject"], "other": 1}),
        ),
    ];
    for (case, body) in &refused {
        eprintln!("case {case}");
        assert_error(
            sim.post(PATH, body).send().await.expect("request"),
            422,
            1006,
        )
        .await;
    }
    assert_eq!(
        sim.sim.inspect()["policies"].as_array().map(Vec::len),
        Some(1 + accepted.len())
    );
}

#[tokio::test]
async fn listing_pages_through_every_child_once() {
    let sim = start().await;
    let partner = sim.create_tenant(sim.root(), "Reseller", "partner").await;
    let mut created = Vec::new();
    for i in 0..12 {
        created.push(
            sim.create_tenant(id(&partner), &format!("Child {i:02}"), "customer")
                .await["id"]
                .clone(),
        );
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/2/tenants?parent_id={}&limit=5", id(&partner));
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let page: Value = sim
            .get(&path)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        let items = page["items"].as_array().expect("items");
        pages.push(items.len());
        seen.extend(items.iter().map(|t| t["id"].clone()));
        match page["paging"]["cursors"]["after"].as_str() {
            Some(cursor) => after = Some(cursor.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, [5, 5, 2]);
    assert_eq!(seen, created, "every child once, in creation order");
    // The cursor holds the listing's filter: the next page by `after` alone, as the document says.
    let first: Value = sim
        .get(&format!(
            "/api/2/tenants?parent_id={}&limit=5",
            id(&partner)
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let cursor = first["paging"]["cursors"]["after"]
        .as_str()
        .expect("cursor");
    let next: Value = sim
        .get(&format!("/api/2/tenants?after={cursor}&limit=5"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        next["items"]
            .as_array()
            .map(|i| i.iter().map(|t| t["id"].clone()).collect::<Vec<_>>()),
        Some(created[5..10].to_vec())
    );
    assert!(next["timestamp"].is_string(), "a tenantBatch: {next}");

    let subtree: Value = sim
        .get(&format!("/api/2/tenants?subtree_root_id={}", id(&partner)))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        subtree["items"].as_array().map(Vec::len),
        Some(13),
        "the root of the subtree and its 12 children"
    );
    assert!(subtree["paging"]["cursors"]["after"].is_null());
    let uuids = format!("{},{}", created[3].as_str().expect("id"), Uuid::new_v4());
    let found: Value = sim
        .get(&format!("/api/2/tenants?uuids={uuids}"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        found["items"]
            .as_array()
            .map(|i| i.iter().map(|t| t["id"].clone()).collect::<Vec<_>>()),
        Some(vec![created[3].clone()])
    );

    let too_many = (0..101)
        .map(|_| Uuid::new_v4().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for query in [
        String::new(),
        format!(
            "parent_id={}&subtree_root_id={}",
            id(&partner),
            id(&partner)
        ),
        format!("uuids={too_many}"),
        format!("parent_id={}&limit=0", id(&partner)),
        "parent_id=not-a-uuid".into(),
        "after=not-a-cursor".into(),
        format!(
            "parent_id={}&after={}",
            Uuid::new_v4(),
            first["paging"]["cursors"]["after"]
                .as_str()
                .expect("cursor")
        ),
    ] {
        eprintln!("query {query:?}");
        // The document declares 400 for a listing's bad query.
        assert_error(
            sim.get(&format!("/api/2/tenants?{query}"))
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
async fn latency_delays_api_requests_but_not_the_simulators_own_routes() {
    let sim = start().await;
    sim.sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(
        sim.get(&format!("/api/2/tenants/{}", sim.root()))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(
        sim.http
            .get(sim.url("/sim/cloud/state"))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_fail_rate_of_one_answers_503_before_doing_anything() {
    let config = CloudSimConfig {
        faults: Faults {
            fail_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    };
    let sim = CloudSim::start(config, &test_keys()[0]).expect("cloud simulator starts");
    let http = reqwest::Client::new();
    let token = sim.idp().partner_token(sim.root_tenant_id());
    let body = json!({"name": "Never", "parent_id": sim.root_tenant_id(), "kind": "customer"});
    let response = http
        .post(format!("{}/api/2/tenants", sim.base_url()))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_error(response, 503, 1010).await;
    let client = sim.root_client();
    let response = token_request(
        &http,
        &sim.base_url(),
        &client.client_id,
        &client.client_secret,
    )
    .send()
    .await
    .expect("request");
    assert_eq!(response.status(), 503, "the token endpoint fails too");
    assert_eq!(
        http.get(format!("{}/api/2/idp/keys", sim.base_url()))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    let state = sim.inspect();
    assert_eq!(
        state["tenants"].as_array().map(Vec::len),
        Some(2),
        "nothing created"
    );
    assert_eq!(state["counters"]["unavailable"], 2);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let sim = start().await;
    sim.sim.set_faults(Faults {
        rate_limit_per_sec: Some(2),
        ..Faults::default()
    });
    let path = format!("/api/2/tenants/{}", sim.root());
    let mut limited = None;
    for _ in 0..10 {
        let response = sim.get(&path).send().await.expect("request");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let response = limited.expect("a 429 within 10 requests at 2 per second");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    assert_error(response, 429, 1009).await;
    assert!(
        sim.sim.inspect()["counters"]["rate_limited"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
    sim.sim.set_faults(Faults::default());
    assert_eq!(sim.get(&path).send().await.expect("request").status(), 200);
}

#[tokio::test]
async fn failing_after_commit_creates_the_object_and_a_blind_re_create_shows_as_a_duplicate() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    sim.sim.set_faults(Faults {
        fail_after_commit_rate: 1.0,
        ..Faults::default()
    });
    for login in ["first.try", "second.try"] {
        let body =
            json!({"tenant_id": customer["id"], "login": login, "external_id": "source-user-7"});
        assert_error(
            sim.post("/api/2/users", &body)
                .send()
                .await
                .expect("request"),
            503,
            1010,
        )
        .await;
    }
    for name in ["Shop", "Shop (2)"] {
        let body = json!({"name": name, "parent_id": sim.root(), "kind": "customer", "internal_tag": "source-group-3"});
        assert_error(
            sim.post("/api/2/tenants", &body)
                .send()
                .await
                .expect("request"),
            503,
            1010,
        )
        .await;
    }
    // A refused request is not "committed": it keeps its own answer.
    let clash = json!({"tenant_id": customer["id"], "login": "FIRST.TRY"});
    assert_error(
        sim.post("/api/2/users", &clash)
            .send()
            .await
            .expect("request"),
        409,
        1003,
    )
    .await;
    // Reads are not creating requests.
    assert_eq!(
        sim.get(&format!("/api/2/tenants/{}", id(&customer)))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    sim.sim.set_faults(Faults::default());

    let state = sim.sim.inspect();
    let logins: Vec<&Value> = state["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| &u["login"])
        .collect();
    assert!(
        logins.contains(&&json!("first.try")) && logins.contains(&&json!("second.try")),
        "both committed: {logins:?}"
    );
    let duplicates = &state["duplicates"];
    assert_eq!(
        duplicates["users_by_external_id"].as_array().map(Vec::len),
        Some(1),
        "{duplicates}"
    );
    assert_eq!(
        duplicates["users_by_external_id"][0]["ids"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        duplicates["tenants_by_internal_tag"][0]["key"]["internal_tag"], "source-group-3",
        "{duplicates}"
    );
    assert_eq!(duplicates["tenants_by_name"], json!([]));
    assert_eq!(duplicates["users_by_login"], json!([]));
    assert_eq!(state["counters"]["failed_after_commit"], 4);
}

#[tokio::test]
async fn faults_are_read_and_replaced_over_http() {
    let sim = start().await;
    let faults = json!({"latency_ms": 5, "fail_rate": 0.25, "rate_limit_per_sec": 200, "fail_after_commit_rate": 0.1});
    let response = sim
        .http
        .put(sim.url("/sim/cloud/faults"))
        .json(&faults)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let current: Value = sim
        .http
        .get(sim.url("/sim/cloud/faults"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(current, faults);
    assert_eq!(
        sim.sim.faults(),
        Faults {
            latency_ms: 5,
            fail_rate: 0.25,
            rate_limit_per_sec: Some(200),
            fail_after_commit_rate: 0.1
        }
    );
    for bad in [
        json!({"fail_rate": 2.0}),
        json!({"rate_limit_per_sec": 0}),
        json!({"latency": 5}),
    ] {
        let response = sim
            .http
            .put(sim.url("/sim/cloud/faults"))
            .json(&bad)
            .send()
            .await
            .expect("request");
        assert_error(response, 422, 1006).await;
    }
}

#[tokio::test]
async fn the_inspection_shows_tenants_users_tokens_plans_and_counters() {
    let sim = start().await;
    let customer = sim.create_tenant(sim.root(), "Customer", "customer").await;
    let user = sim.create_user(&customer, "inspected").await;
    let body = json!({"expires_in": 60, "scopes": []});
    sim.post(
        &format!("/api/2/tenants/{}/registration_tokens", id(&customer)),
        &body,
    )
    .send()
    .await
    .expect("request");
    sim.post("/api/policy_management/v4/policies", &plan(weekly()))
        .send()
        .await
        .expect("request");

    let state: Value = sim
        .http
        .get(sim.url("/sim/cloud/state"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = state["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["Sim Root Partner", "Other Partner", "Customer"]);
    assert_eq!(state["tenants"][2]["parent_id"], json!(sim.root()));
    assert_eq!(state["tenants"][2]["kind"], "customer");
    let users = state["users"].as_array().expect("users");
    assert_eq!(users.len(), 3, "two seeded, one created");
    let inspected = users.iter().find(|u| u["id"] == user["id"]).expect("user");
    assert_eq!(
        (inspected["tenant_id"].clone(), inspected["login"].clone()),
        (customer["id"].clone(), json!("inspected"))
    );
    assert_eq!(
        (
            inspected["activation_email_sent"].clone(),
            inspected["password_set"].clone(),
            inspected["activated"].clone()
        ),
        (json!(0), json!(false), json!(false))
    );
    assert_eq!(
        state["registration_tokens"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(state["policies"].as_array().map(Vec::len), Some(1));
    // The token request, 3 creations and a token; the inspection itself is not counted.
    assert_eq!(state["counters"]["total"], 5);
    for group in [
        "tenants_by_name",
        "tenants_by_internal_tag",
        "users_by_login",
        "users_by_external_id",
    ] {
        assert_eq!(state["duplicates"][group], json!([]), "{group}");
    }
}

#[tokio::test]
async fn framework_errors_take_the_clouds_error_shape_too() {
    let sim = start().await;
    let response = sim
        .http
        .patch(sim.url(&format!("/api/2/tenants/{}", sim.root())))
        .bearer_auth(&sim.token)
        .send()
        .await
        .expect("request");
    assert_error(response, 405, 1006).await;
    let big = json!({"name": "x".repeat(300_000), "parent_id": sim.root(), "kind": "customer"});
    assert_error(
        sim.post("/api/2/tenants", &big)
            .send()
            .await
            .expect("request"),
        413,
        1006,
    )
    .await;
    assert_error(
        sim.get("/api/2/no/such/route")
            .send()
            .await
            .expect("request"),
        404,
        1007,
    )
    .await;
}

#[tokio::test]
async fn the_same_seed_draws_the_same_ids_and_faults() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let config = CloudSimConfig {
            seed: 7,
            faults: Faults {
                fail_rate: 0.5,
                ..Faults::default()
            },
            ..Default::default()
        };
        let sim = CloudSim::start(config, &test_keys()[0]).expect("cloud simulator starts");
        let token = sim.idp().partner_token(sim.root_tenant_id());
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let response = http
                .get(format!(
                    "{}/api/2/tenants/{}",
                    sim.base_url(),
                    sim.root_tenant_id()
                ))
                .bearer_auth(&token)
                .send()
                .await
                .expect("request");
            statuses.push(response.status().as_u16());
        }
        assert!(
            statuses.contains(&200) && statuses.contains(&503),
            "{statuses:?}"
        );
        runs.push((sim.root_tenant_id(), statuses));
        sim.stop().await;
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn the_exchange_log_keeps_every_api_exchange_with_its_secrets_masked() {
    let sim = start().await;
    let log = sim.url("/sim/cloud/exchanges");
    let off: Value = sim
        .http
        .get(&log)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(off, json!({"recording": false, "exchanges": []}));
    let on = sim
        .http
        .put(&log)
        .json(&json!({"recording": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(on.status(), 200);
    let customer = sim.create_tenant(sim.root(), "Logged", "customer").await;
    let user = sim.create_user(&customer, "logged.user").await;
    let password = "Secret-Passw0rd-42";
    sim.post(
        &format!("/api/2/users/{}/password", id(&user)),
        &json!({"password": password}),
    )
    .send()
    .await
    .expect("request");
    let client = sim.sim.root_client();
    let token: Value = token_request(
        &sim.http,
        &sim.sim.base_url(),
        &client.client_id,
        &client.client_secret,
    )
    .send()
    .await
    .expect("request")
    .json()
    .await
    .expect("json");
    let kept: Value = sim
        .http
        .get(&log)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let exchanges = kept["exchanges"].as_array().expect("exchanges");
    let summary: Vec<(String, String, u64)> = exchanges
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap_or_default().into(),
                e["path"].as_str().unwrap_or_default().into(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let password_path = format!("/api/2/users/{}/password", id(&user));
    assert_eq!(
        summary,
        [
            ("POST".into(), "/api/2/tenants".into(), 201),
            ("POST".into(), "/api/2/users".into(), 200),
            ("POST".into(), password_path, 204),
            ("POST".into(), "/api/2/idp/token".into(), 200)
        ],
        "the simulator's own routes are not kept"
    );
    let text = kept.to_string();
    for secret in [
        password,
        token["access_token"].as_str().expect("token"),
        client.client_secret.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret in the log");
    }
    let masked: Value =
        serde_json::from_str(exchanges[2]["request_body"].as_str().expect("body")).expect("json");
    assert_eq!(
        masked["password"], "Xxxxxx-Xxxxx0xx-00",
        "masked: same length and character classes"
    );
    assert_eq!(
        (exchanges[2]["auth"].as_str(), exchanges[3]["auth"].as_str()),
        (Some("Bearer"), Some("Basic"))
    );
    assert_eq!(sim.sim.exchanges().len(), 4);
    assert_eq!(
        sim.http
            .delete(&log)
            .send()
            .await
            .expect("request")
            .status(),
        204
    );
    assert!(sim.sim.exchanges().is_empty());
}
