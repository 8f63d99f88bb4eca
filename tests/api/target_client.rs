//! The target client against `sim cloud`, over loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use migration_portal::connectors::target::{
    LoginStatus, NewTenant, NewUser, Role, TargetApi, TargetClient, TenantKind, UserContact,
};
use migration_portal::connectors::{ConnectorError, HttpPolicy};
use migration_portal::sim::cloud::{CloudSim, CloudSimConfig, Faults};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::test_keys;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn quick_policy() -> HttpPolicy {
    HttpPolicy {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        max_attempts: 12,
        rate_per_sec: None,
        concurrency: 8,
        // The simulator listens on loopback.
        allow_private_networks: true,
        ..HttpPolicy::default()
    }
}

fn cloud(faults: Faults) -> CloudSim {
    let config = CloudSimConfig {
        bind: loopback(),
        faults,
        existing_logins: vec!["taken-login".into()],
        ..CloudSimConfig::default()
    };
    CloudSim::start(config, &test_keys()[0]).expect("cloud simulator")
}

fn target_client(sim: &CloudSim, policy: HttpPolicy) -> TargetClient {
    let client = sim.root_client();
    TargetClient::new(
        &sim.base_url(),
        &client.client_id,
        SecretString::from(client.client_secret),
        policy,
    )
    .expect("client")
}

#[tokio::test]
async fn the_target_client_reports_the_remote_code_and_message() {
    let sim = cloud(Faults::default());
    let target = target_client(&sim, quick_policy());
    let root = sim.root_tenant_id();
    let info = target.token_info().await.expect("token");
    assert_eq!(info.tenant_id, root);
    assert!(info.roles.iter().any(|r| r == "partner_admin"));

    let new = NewTenant {
        name: "Acme".into(),
        parent_id: root,
        kind: TenantKind::Customer,
        internal_tag: "g-1".into(),
    };
    target.create_tenant(&new).await.expect("created");
    let clash = NewTenant {
        internal_tag: "g-2".into(),
        name: "ACME".into(),
        ..new.clone()
    };
    match target.create_tenant(&clash).await {
        Err(ConnectorError::Remote {
            status: 409,
            code: Some(code),
            message,
            ..
        }) => {
            assert_eq!(code, "1004");
            assert!(!message.is_empty());
        }
        other => panic!("expected a 1004 conflict, got {other:?}"),
    }
    let bad_kind = NewTenant {
        kind: TenantKind::Unit,
        internal_tag: "g-3".into(),
        name: "Unit under partner".into(),
        ..new.clone()
    };
    assert!(
        target
            .create_tenant(&bad_kind)
            .await
            .expect_err("hierarchy")
            .is_status(422)
    );

    assert_eq!(
        target.check_login("taken-login").await.expect("check"),
        LoginStatus::Taken
    );
    assert_eq!(
        target.check_login("TAKEN-login").await.expect("check"),
        LoginStatus::Taken
    );
    assert_eq!(
        target
            .check_login(&format!("free-{}", Uuid::new_v4().simple()))
            .await
            .expect("check"),
        LoginStatus::Free
    );
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let sim = cloud(Faults::default());
    let target = target_client(&sim, quick_policy());
    target
        .children(sim.root_tenant_id())
        .await
        .expect("first call");
    // The issuer drops the key that signed the cached token: the next call gets a 401, renews, succeeds.
    sim.idp().rotate(&test_keys()[1], true);
    target
        .children(sim.root_tenant_id())
        .await
        .expect("renewed");
}

#[tokio::test]
async fn a_rate_limited_client_waits_for_retry_after_and_succeeds() {
    let sim = cloud(Faults {
        rate_limit_per_sec: Some(5),
        ..Faults::default()
    });
    let target = target_client(&sim, quick_policy());
    let root = sim.root_tenant_id();
    let started = Instant::now();
    let calls = (0..20).map(|_| target.tenant(root));
    for result in futures_util::future::join_all(calls).await {
        result.expect("every call eventually succeeds");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the client waited for Retry-After"
    );
    let state = sim.inspect();
    assert!(
        state["counters"]["rate_limited"].as_u64().unwrap_or(0) > 0,
        "the limit was hit: {}",
        state["counters"]
    );
}

#[tokio::test]
async fn under_faults_look_up_before_create_creates_everything_exactly_once() {
    let sim = cloud(Faults {
        fail_rate: 0.2,
        rate_limit_per_sec: Some(50),
        fail_after_commit_rate: 0.1,
        ..Faults::default()
    });
    let policy = HttpPolicy {
        rate_per_sec: Some(45),
        ..quick_policy()
    };
    let target = target_client(&sim, policy);
    let root = sim.root_tenant_id();

    let mut outcomes = Vec::new();
    let partners = (0..3).map(|p| NewTenant {
        name: format!("Reseller {p}"),
        parent_id: root,
        kind: TenantKind::Partner,
        internal_tag: format!("g-p{p}"),
    });
    let mut created = Vec::new();
    for new in partners {
        created.push(target.ensure_tenant(&new).await.expect("partner"));
    }
    let customers: Vec<NewTenant> = created
        .iter()
        .flat_map(|p| {
            (0..4).map(move |c| NewTenant {
                name: format!("Customer {c}"),
                parent_id: p.id,
                kind: TenantKind::Customer,
                internal_tag: format!("g-{}-{c}", p.id),
            })
        })
        .collect();
    let results =
        futures_util::future::join_all(customers.iter().map(|c| target.ensure_tenant(c))).await;
    let customers: Vec<_> = results.into_iter().map(|r| r.expect("customer")).collect();
    for (i, customer) in customers.iter().enumerate() {
        for u in 0..3 {
            let new = NewUser {
                tenant_id: customer.id,
                login: format!("user-{i}-{u}-{}", Uuid::new_v4().simple()),
                contact: Some(UserContact {
                    email: format!("u{i}{u}@example.com"),
                    ..UserContact::default()
                }),
                external_id: format!("u-{i}-{u}"),
            };
            let result = match target.ensure_user(&new).await {
                Ok(user) => target
                    .grant_role(&user, Role::BackupUser, customer.id)
                    .await
                    .map(|_| user),
                Err(e) => Err(e),
            };
            outcomes.push(result);
        }
    }
    // Every call succeeded (or would report a final error; none is expected here).
    for outcome in &outcomes {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let state = sim.inspect();
    for kind in [
        "tenants_by_name",
        "tenants_by_internal_tag",
        "users_by_login",
        "users_by_external_id",
    ] {
        assert_eq!(
            state["duplicates"][kind].as_array().map(Vec::len),
            Some(0),
            "{kind}: {}",
            state["duplicates"]
        );
    }
    let tenants = state["tenants"].as_array().expect("tenants");
    let under_root = |tag: &str| {
        tenants
            .iter()
            .filter(|t| t["internal_tag"].as_str() == Some(tag))
            .count()
    };
    assert_eq!(under_root("g-p0"), 1);
    let users = state["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| {
            u["external_id"]
                .as_str()
                .is_some_and(|e| e.starts_with("u-"))
        })
        .count();
    assert_eq!(users, 36);
    let faults = &state["counters"];
    assert!(
        faults["unavailable"].as_u64().unwrap_or(0) > 0
            && faults["failed_after_commit"].as_u64().unwrap_or(0) > 0,
        "faults happened: {faults}"
    );
}

#[tokio::test]
async fn a_429_is_retried_once_after_retry_after_not_sooner() {
    let sim = cloud(Faults {
        rate_limit_per_sec: Some(1),
        ..Faults::default()
    });
    let target = target_client(&sim, quick_policy());
    let root = sim.root_tenant_id();
    target.tenant(root).await.expect("first call");
    let before = sim.inspect()["counters"]["rate_limited"]
        .as_u64()
        .unwrap_or(0);
    target
        .tenant(root)
        .await
        .expect("second call waits and succeeds");
    let limited = sim.inspect()["counters"]["rate_limited"]
        .as_u64()
        .unwrap_or(0)
        - before;
    // Backing off 20 ms, 40 ms, … instead of waiting a second would meet several 429s.
    assert_eq!(limited, 1, "the client waited as told");
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_not_made_again() {
    let sim = cloud(Faults::default());
    let target = target_client(&sim, quick_policy());
    let root = sim.root_tenant_id();
    // Every create commits and then answers 503.
    sim.set_faults(Faults {
        fail_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let tenant = target
        .ensure_tenant(&NewTenant {
            name: "Lost answer".into(),
            parent_id: root,
            kind: TenantKind::Customer,
            internal_tag: "g-lost".into(),
        })
        .await
        .expect("found after the lost answer");
    let login = format!("lost-{}", Uuid::new_v4().simple());
    let new = NewUser {
        tenant_id: tenant.id,
        login: login.clone(),
        contact: None,
        external_id: "u-lost".into(),
    };
    let user = target
        .ensure_user(&new)
        .await
        .expect("found after the lost answer");
    sim.set_faults(Faults::default());
    // A later attempt planned another login for the same source user: still the same user.
    let renamed = NewUser {
        login: format!("{login}-1"),
        ..new
    };
    assert_eq!(
        target
            .ensure_user(&renamed)
            .await
            .expect("found by external_id")
            .id,
        user.id
    );

    let state = sim.inspect();
    assert!(
        state["counters"]["failed_after_commit"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
    for kind in [
        "tenants_by_name",
        "tenants_by_internal_tag",
        "users_by_login",
        "users_by_external_id",
    ] {
        assert_eq!(
            state["duplicates"][kind].as_array().map(Vec::len),
            Some(0),
            "{kind}: {}",
            state["duplicates"]
        );
    }
    let tagged = state["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter(|t| t["internal_tag"] == "g-lost")
        .count();
    assert_eq!(tagged, 1);
}

#[tokio::test]
async fn granting_a_second_role_keeps_the_first() {
    let sim = cloud(Faults::default());
    let target = target_client(&sim, quick_policy());
    let customer = target
        .ensure_tenant(&NewTenant {
            name: "Roles".into(),
            parent_id: sim.root_tenant_id(),
            kind: TenantKind::Customer,
            internal_tag: "g-roles".into(),
        })
        .await
        .expect("tenant");
    let user = target
        .ensure_user(&NewUser {
            tenant_id: customer.id,
            login: format!("roles-{}", Uuid::new_v4().simple()),
            contact: None,
            external_id: "u-roles".into(),
        })
        .await
        .expect("user");
    target
        .grant_role(&user, Role::BackupUser, customer.id)
        .await
        .expect("backup user");
    target
        .grant_role(&user, Role::CompanyAdmin, customer.id)
        .await
        .expect("company admin");
    target
        .grant_role(&user, Role::CompanyAdmin, customer.id)
        .await
        .expect("again: no change");
    let state = sim.inspect();
    let stored = state["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["external_id"] == "u-roles")
        .expect("user")
        .clone();
    let mut roles: Vec<&str> = stored["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    roles.sort();
    assert_eq!(roles, ["backup_user", "company_admin"]);
}

#[tokio::test]
async fn an_activation_email_whose_answer_is_lost_is_not_sent_twice() {
    let sim = cloud(Faults::default());
    let target = target_client(&sim, quick_policy());
    let customer = target
        .ensure_tenant(&NewTenant {
            name: "Mail".into(),
            parent_id: sim.root_tenant_id(),
            kind: TenantKind::Customer,
            internal_tag: "g-mail".into(),
        })
        .await
        .expect("tenant");
    let user = target
        .ensure_user(&NewUser {
            tenant_id: customer.id,
            login: format!("mail-{}", Uuid::new_v4().simple()),
            contact: None,
            external_id: "u-mail".into(),
        })
        .await
        .expect("user");
    sim.set_faults(Faults {
        fail_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let error = target
        .send_activation_email(user.id)
        .await
        .expect_err("the answer is lost");
    assert!(error.is_status(503), "{error:?}");
    sim.set_faults(Faults::default());
    let state = sim.inspect();
    let sent = state["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["external_id"] == "u-mail")
        .map(|u| u["activation_email_sent"].clone());
    assert_eq!(sent, Some(json!(1)), "sent once, not retried blindly");
}

#[tokio::test]
async fn the_inspection_reports_a_tag_used_under_two_parents() {
    let sim = cloud(Faults::default());
    let target = target_client(&sim, quick_policy());
    let root = sim.root_tenant_id();
    let partner = target
        .create_tenant(&NewTenant {
            name: "P".into(),
            parent_id: root,
            kind: TenantKind::Partner,
            internal_tag: "g-a".into(),
        })
        .await
        .expect("partner");
    target
        .create_tenant(&NewTenant {
            name: "Q".into(),
            parent_id: partner.id,
            kind: TenantKind::Partner,
            internal_tag: "g-a".into(),
        })
        .await
        .expect("nested");
    let duplicates = sim.inspect()["duplicates"]["tenants_by_internal_tag"].clone();
    assert_eq!(duplicates.as_array().map(Vec::len), Some(1), "{duplicates}");
}
