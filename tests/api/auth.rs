//! Partner authentication: the token matrix, JWKS caching, key rotation and an
//! issuer that fails for a while.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rsa::pkcs1::EncodeRsaPublicKey;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, assert_problem, logs, spawn_app, spawn_app_with, test_keys,
};

const PROTECTED: &str = "/api/v1/workspaces";

/// Asserts a 401 that says no more than "invalid token", and returns the problem.
async fn assert_invalid_token(app: &TestApp, case: &str, token: &str) -> Value {
    let response = app.get(PROTECTED, token).send().await.expect("request");
    let www = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        www.starts_with("Bearer") && www.contains(r#"error="invalid_token""#),
        "{case}: WWW-Authenticate {www:?}"
    );
    assert_problem(response, 401).await
}

fn with(mut claims: Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    edit(claims.as_object_mut().expect("claims are an object"));
    claims
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401_and_never_logged() {
    let app = spawn_app(Backend::Sqlite).await;
    let good = app.idp.partner_claims(app.tenant, "client-1");
    let now = chrono::Utc::now().timestamp();
    let kid = app.idp.active_kid();
    let rs256_with_kid = |kid: Option<&str>| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = kid.map(str::to_string);
        h
    };
    let public_pem = test_keys()[0]
        .to_public_key()
        .to_pkcs1_pem(Default::default())
        .expect("pem");
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(kid.clone());
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let other_key = EncodingKey::from_rsa_der(
        rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&test_keys()[1])
            .expect("der")
            .as_bytes(),
    );

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            app.idp.sign(&with(good.clone(), |c| {
                c.insert("exp".into(), json!(now - 3600));
                c.insert("iat".into(), json!(now - 7200));
                c.insert("nbf".into(), json!(now - 7200));
            })),
        ),
        (
            "not yet valid",
            app.idp.sign(&with(good.clone(), |c| {
                c.insert("nbf".into(), json!(now + 3600));
            })),
        ),
        (
            "wrong issuer",
            app.idp.sign(&with(good.clone(), |c| {
                c.insert("iss".into(), json!("https://evil.example.com"));
            })),
        ),
        (
            "wrong audience",
            app.idp.sign(&with(good.clone(), |c| {
                c.insert("aud".into(), json!("someone-else"));
            })),
        ),
        (
            "no audience",
            app.idp.sign(&with(good.clone(), |c| {
                c.remove("aud");
            })),
        ),
        (
            "no expiry",
            app.idp.sign(&with(good.clone(), |c| {
                c.remove("exp");
            })),
        ),
        (
            "no issuer",
            app.idp.sign(&with(good.clone(), |c| {
                c.remove("iss");
            })),
        ),
        ("alg none", alg_none),
        (
            "HS256 with the RSA public key as secret",
            encode(
                &hs256,
                &good,
                &EncodingKey::from_secret(public_pem.as_bytes()),
            )
            .expect("hs256"),
        ),
        (
            "unknown kid",
            app.idp
                .sign_with_header(&rs256_with_kid(Some("no-such-key")), &good),
        ),
        (
            "no kid",
            app.idp.sign_with_header(&rs256_with_kid(None), &good),
        ),
        (
            "right kid, another key's signature",
            encode(&rs256_with_kid(Some(&kid)), &good, &other_key).expect("sign"),
        ),
        ("garbage", "not-a-jwt".to_string()),
        ("three garbage parts", "aaa.bbb.ccc".to_string()),
    ];
    let jwks_before = app.idp.jwks_requests();
    let mut problems = Vec::new();
    for (case, token) in &cases {
        problems.push(assert_invalid_token(&app, case, token).await);
    }
    // Every refusal reads the same: the caller learns nothing about which check failed.
    assert!(problems.windows(2).all(|w| w[0] == w[1]), "{problems:?}");
    // Unknown kids caused at most one key-set fetch (the cooldown holds the rest).
    assert_eq!(
        app.idp.jwks_requests() - jwks_before,
        1,
        "one key-set load, then the cooldown holds"
    );

    // The good token still works, and none of the bad ones reached a log line.
    let response = app
        .get(PROTECTED, &app.idp.sign(&good))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let log = logs().text();
    assert!(
        log.contains("partner request refused"),
        "refusals are logged"
    );
    for (case, token) in &cases {
        let signature = token.rsplit('.').next().unwrap_or(token);
        assert!(
            signature.len() < 8 || !log.contains(signature),
            "{case}: token found in the logs"
        );
    }
}

#[tokio::test]
async fn a_missing_or_non_bearer_authorization_is_401_without_an_error_code() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .http
        .get(app.url(PROTECTED))
        .send()
        .await
        .expect("request");
    let www = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        www.starts_with("Bearer") && !www.contains("error="),
        "{www:?}"
    );
    assert_problem(response, 401).await;
    let response = app
        .http
        .get(app.url(PROTECTED))
        .basic_auth("user", Some("pw"))
        .send()
        .await
        .expect("request");
    assert_problem(response, 401).await;
}

/// Asserts a 403 that names the missing scope (RFC 6750 §3.1), and returns the problem.
async fn assert_forbidden(app: &TestApp, token: &str) -> Value {
    let response = app.get(PROTECTED, token).send().await.expect("request");
    let www = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        www,
        r#"Bearer realm="migration-portal", error="insufficient_scope""#
    );
    assert_problem(response, 403).await
}

#[tokio::test]
async fn a_valid_token_without_a_partner_scope_is_forbidden_with_insufficient_scope() {
    for backend in Backend::enabled() {
        let app = spawn_app(backend).await;
        let claims = with(app.idp.partner_claims(app.tenant, "user-1"), |c| {
            c.insert("scope".into(), json!([{"tid": 1, "tuid": Uuid::new_v4().to_string(), "rs": "", "rn": "account-server", "role": "company_admin"}]));
        });
        assert_forbidden(&app, &app.idp.sign(&claims)).await;
        let claims = with(app.idp.partner_claims(app.tenant, "user-1"), |c| {
            c.remove("scope");
        });
        assert_forbidden(&app, &app.idp.sign(&claims)).await;
        // The partner role of another resource server is not ours.
        let claims = with(app.idp.partner_claims(app.tenant, "user-1"), |c| {
            c.insert("scope".into(), json!([{"tid": 1, "tuid": app.tenant.to_string(), "rs": "", "rn": "other-service", "role": "partner_admin"}]));
        });
        assert_forbidden(&app, &app.idp.sign(&claims)).await;
        // Partner admin of two tenants: which workspaces to show is ambiguous, so none.
        let claims = with(app.idp.partner_claims(app.tenant, "user-1"), |c| {
            let entry = |t: Uuid| json!({"tid": 1, "tuid": t.to_string(), "rs": "", "rn": "account-server", "role": "partner_admin"});
            c.insert(
                "scope".into(),
                json!([entry(app.tenant), entry(Uuid::new_v4())]),
            );
        });
        let problem = assert_forbidden(&app, &app.idp.sign(&claims)).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("several tenants"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn tokens_keep_working_through_an_issuer_key_rotation() {
    // Keys are old at once, so every request also refreshes them in the background.
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.auth.jwks_refresh_cooldown_secs = 0;
        c.auth.jwks_max_age_secs = 0;
    })
    .await;
    let old_token = app.token.clone();
    assert_eq!(
        app.get(PROTECTED, &old_token)
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    let old_kid = app.idp.active_kid();

    app.idp.rotate(&test_keys()[1], false);
    let new_token = app.idp.partner_token(app.tenant);
    assert_ne!(app.idp.active_kid(), old_kid);
    assert_eq!(
        app.get(PROTECTED, &new_token)
            .send()
            .await
            .expect("request")
            .status(),
        200,
        "new key picked up"
    );
    assert_eq!(
        app.get(PROTECTED, &old_token)
            .send()
            .await
            .expect("request")
            .status(),
        200,
        "old key still published"
    );

    // Once the issuer retires the old key, tokens signed with it stop working as
    // soon as the background refresh has run (within `jwks_max_age_secs`).
    app.idp.rotate(&test_keys()[1], true);
    let mut refused = false;
    for _ in 0..100 {
        if app
            .get(PROTECTED, &old_token)
            .send()
            .await
            .expect("request")
            .status()
            == 401
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "a token signed with a retired key kept working");
    assert_eq!(
        app.get(PROTECTED, &old_token)
            .send()
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(
        app.get(PROTECTED, &new_token)
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_key_set_once_then_waits_for_the_cooldown() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.auth.jwks_refresh_cooldown_secs = 3600
    })
    .await;
    assert_eq!(
        app.get(PROTECTED, &app.token)
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    assert_eq!(app.idp.jwks_requests(), 1, "first request loads the keys");

    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("unknown".into());
    let unknown = app
        .idp
        .sign_with_header(&header, &app.idp.partner_claims(app.tenant, "x"));
    // The load above was the last attempt, so the cooldown already holds.
    for _ in 0..5 {
        assert_eq!(
            app.get(PROTECTED, &unknown)
                .send()
                .await
                .expect("request")
                .status(),
            401
        );
    }
    assert_eq!(
        app.idp.jwks_requests(),
        1,
        "the cooldown stops a flood of unknown kids from hammering the issuer"
    );
    assert_eq!(
        app.get(PROTECTED, &app.token)
            .send()
            .await
            .expect("request")
            .status(),
        200
    );

    let fresh = spawn_app_with(Backend::Sqlite, |c| {
        c.auth.jwks_refresh_cooldown_secs = 3600
    })
    .await;
    let unknown = fresh
        .idp
        .sign_with_header(&header, &fresh.idp.partner_claims(fresh.tenant, "x"));
    assert_eq!(
        fresh
            .get(PROTECTED, &unknown)
            .send()
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(
        fresh.idp.jwks_requests(),
        1,
        "an unknown kid causes exactly one refresh"
    );
}

#[tokio::test]
async fn concurrent_first_requests_share_one_key_set_fetch() {
    let app = spawn_app(Backend::Sqlite).await;
    let requests = (0..24).map(|_| app.get(PROTECTED, &app.token).send());
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.expect("request").status(), 200);
    }
    assert_eq!(app.idp.jwks_requests(), 1);
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_issuer_is_down_and_new_ones_wait_for_it() {
    for backend in Backend::enabled() {
        let app = spawn_app_with(backend, |c| {
            c.auth.jwks_max_age_secs = 0;
            c.auth.jwks_refresh_cooldown_secs = 0;
        })
        .await;
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200
        );
        app.idp.stop().await;
        // Keys are "stale" at every request now, and every refresh fails.
        for _ in 0..3 {
            assert_eq!(
                app.get(PROTECTED, &app.token)
                    .send()
                    .await
                    .expect("request")
                    .status(),
                200
            );
        }
        // A key the service has not seen cannot be fetched: connections are refused.
        app.idp.rotate(&test_keys()[1], false);
        assert_issuer_unavailable(&app, &app.idp.partner_token(app.tenant)).await;
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200
        );
    }
}

/// Replaces the identity provider's faults through its control endpoint.
async fn set_issuer_faults(app: &TestApp, faults: Value) {
    let response = app
        .http
        .put(format!("{}/sim/idp/faults", app.idp.issuer()))
        .json(&faults)
        .send()
        .await
        .expect("faults");
    assert_eq!(response.status(), 200, "{faults}");
}

/// Asserts a 503 problem that says to come back, and returns its `Retry-After` in seconds.
async fn assert_issuer_unavailable(app: &TestApp, token: &str) -> u64 {
    let response = app.get(PROTECTED, token).send().await.expect("request");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "not a token problem"
    );
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem["code"], "issuer_unavailable", "{problem}");
    let retry_after = retry_after.expect("Retry-After in seconds");
    assert!((1..=8).contains(&retry_after), "{retry_after}");
    retry_after
}

fn token_with_kid(app: &TestApp, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    app.idp
        .sign_with_header(&header, &app.idp.partner_claims(app.tenant, "x"))
}

#[tokio::test]
async fn an_issuer_failing_within_the_retry_budget_still_serves_the_first_request() {
    for backend in Backend::enabled() {
        let app = spawn_app_with(backend, |c| c.auth.jwks_refresh_cooldown_secs = 3600).await;
        set_issuer_faults(&app, json!({"fail_discovery": 2, "fail_keys": 2})).await;
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200,
            "{backend:?}"
        );
        assert_eq!(
            (app.idp.discovery_requests(), app.idp.jwks_requests()),
            (3, 3),
            "each tried again twice"
        );

        // The issuer answers after its failures and does not publish the kid: the token's fault.
        let app = spawn_app_with(backend, |c| c.auth.jwks_refresh_cooldown_secs = 3600).await;
        set_issuer_faults(&app, json!({"fail_discovery": 1, "fail_keys": 2})).await;
        assert_invalid_token(
            &app,
            "kid not published",
            &token_with_kid(&app, "no-such-key"),
        )
        .await;
        assert_eq!(
            (app.idp.discovery_requests(), app.idp.jwks_requests()),
            (2, 3)
        );
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn an_issuer_answering_garbage_is_unavailable_not_the_token_invalid() {
    for backend in Backend::enabled() {
        for faults in [
            json!({"fail_discovery": 1, "answer": "garbage"}),
            json!({"fail_keys": 1, "answer": "garbage"}),
            json!({"fail_keys": 1, "answer": "no_keys"}),
        ] {
            let app = spawn_app_with(backend, |c| c.auth.jwks_refresh_cooldown_secs = 3600).await;
            set_issuer_faults(&app, faults.clone()).await;
            let retry_after = assert_issuer_unavailable(&app, &app.token).await;
            tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
            assert_eq!(
                app.get(PROTECTED, &app.token)
                    .send()
                    .await
                    .expect("request")
                    .status(),
                200,
                "{backend:?} {faults}"
            );
        }
    }
}

#[tokio::test]
async fn an_issuer_down_at_start_is_503_for_all_and_its_return_is_noticed_without_the_cooldown() {
    for backend in Backend::enabled() {
        // A cooldown far longer than the test: recovery must not wait for it.
        let app = spawn_app_with(backend, |c| c.auth.jwks_refresh_cooldown_secs = 3600).await;
        set_issuer_faults(
            &app,
            json!({"fail_discovery": 1_000_000, "fail_keys": 1_000_000}),
        )
        .await;
        // Concurrent misses share one fetch (three attempts at discovery) and its outcome.
        let misses = futures_util::future::join_all(
            (0..12).map(|_| assert_issuer_unavailable(&app, &app.token)),
        )
        .await;
        assert_eq!(
            app.idp.discovery_requests() + app.idp.jwks_requests(),
            3,
            "one fetch for twelve misses"
        );

        // The issuer is back: once Retry-After has passed, the keys are fetched.
        set_issuer_faults(&app, json!({})).await;
        tokio::time::sleep(std::time::Duration::from_secs(
            misses.into_iter().max().unwrap_or(1),
        ))
        .await;
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200,
            "{backend:?}"
        );
        // Reachable, and its key set lacks the kid: a bad token.
        assert_invalid_token(
            &app,
            "kid not published",
            &token_with_kid(&app, "no-such-key"),
        )
        .await;
    }
}

#[tokio::test]
async fn while_the_issuer_fails_a_new_key_gets_503_a_cached_one_works_and_the_new_one_works_once_it_is_back()
 {
    for backend in Backend::enabled() {
        // Every unknown kid may ask the issuer (no cooldown after a success).
        let app = spawn_app_with(backend, |c| c.auth.jwks_refresh_cooldown_secs = 0).await;
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200
        );
        set_issuer_faults(
            &app,
            json!({"fail_discovery": 1_000_000, "fail_keys": 1_000_000}),
        )
        .await;
        app.idp.rotate(&test_keys()[1], false);
        let new_token = app.idp.partner_token(app.tenant);
        let mut wait = 1;
        for _ in 0..3 {
            wait = assert_issuer_unavailable(&app, &new_token).await;
            assert_eq!(
                app.get(PROTECTED, &app.token)
                    .send()
                    .await
                    .expect("request")
                    .status(),
                200,
                "a cached key keeps working"
            );
        }
        set_issuer_faults(&app, json!({})).await;
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        assert_eq!(
            app.get(PROTECTED, &new_token)
                .send()
                .await
                .expect("request")
                .status(),
            200,
            "{backend:?}"
        );
        assert_eq!(
            app.get(PROTECTED, &app.token)
                .send()
                .await
                .expect("request")
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn the_identity_provider_fails_the_next_requests_it_is_told_to_and_says_how_many_are_left() {
    let idp = migration_portal::sim::idp::IdentityProvider::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        "aud",
        &test_keys()[0],
    )
    .expect("idp");
    let http = reqwest::Client::new();
    let faults = format!("{}/sim/idp/faults", idp.issuer());
    let put = |body: Value| http.put(&faults).json(&body).send();
    assert_eq!(
        put(json!({"fail_keys": 2, "surprise": true}))
            .await
            .expect("put")
            .status(),
        400,
        "unknown fields are refused"
    );
    let set: Value = put(json!({"fail_discovery": 1, "fail_keys": 2}))
        .await
        .expect("put")
        .json()
        .await
        .expect("json");
    assert_eq!(
        set,
        json!({"fail_discovery": 1, "fail_keys": 2, "answer": "unavailable"})
    );
    let discovery = format!("{}/.well-known/openid-configuration", idp.issuer());
    let keys = format!("{}/api/2/idp/keys", idp.issuer());
    let failed = http.get(&discovery).send().await.expect("get");
    assert_eq!(
        (
            failed.status().as_u16(),
            failed
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
        ),
        (503, Some("1"))
    );
    assert_eq!(
        http.get(&discovery).send().await.expect("get").status(),
        200,
        "one failure asked, one served"
    );
    assert_eq!(http.get(&keys).send().await.expect("get").status(), 503);
    let left: Value = http
        .get(&faults)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (left["fail_discovery"].as_u64(), left["fail_keys"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(http.get(&keys).send().await.expect("get").status(), 503);
    let served: Value = http
        .get(&keys)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(served["keys"].as_array().map(Vec::len), Some(1));
    put(json!({"fail_discovery": 1, "fail_keys": 1, "answer": "no_keys"}))
        .await
        .expect("put");
    let garbage = http.get(&discovery).send().await.expect("get");
    assert_eq!(garbage.status(), 200);
    assert!(
        serde_json::from_str::<Value>(&garbage.text().await.expect("text")).is_err(),
        "not JSON"
    );
    assert_eq!(
        http.get(&keys)
            .send()
            .await
            .expect("get")
            .json::<Value>()
            .await
            .expect("json"),
        json!({"keys": []})
    );
    assert_eq!(
        (idp.discovery_requests(), idp.jwks_requests()),
        (3, 4),
        "failed requests are counted too"
    );
    idp.stop().await;
}
