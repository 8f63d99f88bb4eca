//! The source client against `sim backupagent`, over loopback.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use migration_portal::connectors::HttpPolicy;
use migration_portal::connectors::source::{SourceApi, SourceClient, for_each_page};
use migration_portal::sim::backupagent::SourceSim;
use migration_portal::sim::install_base::{GenSpec, Size, generate};
use secrecy::{ExposeSecret, SecretString};

fn policy() -> HttpPolicy {
    HttpPolicy {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        rate_per_sec: None,
        // The simulator listens on loopback.
        allow_private_networks: true,
        ..HttpPolicy::default()
    }
}

#[tokio::test]
async fn the_source_client_pages_through_everything_exactly_once() {
    let base = generate(&GenSpec::sized(Size::Small, 7));
    let sim =
        SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base).expect("source simulator");
    let (login, password) = sim.credentials();
    let source = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from(password),
        policy(),
    )
    .expect("client");
    let account = source.account().await.expect("account");
    assert_eq!(account.login, login);

    let stats: serde_json::Value =
        reqwest::get(format!("{}/sim/backupagent/stats", sim.base_url()))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
    for limit in [1000, 37] {
        let mut ids = HashSet::new();
        let mut largest_page = 0;
        let seen = for_each_page(
            |cursor| {
                let source = &source;
                async move { source.users(cursor.as_deref(), limit).await }
            },
            |page| {
                largest_page = largest_page.max(page.len());
                ids.extend(page.into_iter().map(|u| u.id));
            },
        )
        .await
        .expect("pages");
        assert_eq!(seen as usize, ids.len(), "no user twice");
        assert_eq!(
            Some(ids.len() as u64),
            stats["counts"]["users"].as_u64(),
            "every user once"
        );
        assert!(largest_page <= limit as usize, "pages hold at most `limit`");
    }
    let groups = for_each_page(
        |c| {
            let source = &source;
            async move { source.groups(c.as_deref(), 50).await }
        },
        |_| {},
    )
    .await
    .expect("groups");
    assert_eq!(Some(groups), stats["counts"]["groups"].as_u64());
    let machines = for_each_page(
        |c| {
            let source = &source;
            async move { source.machines(c.as_deref(), 500).await }
        },
        |_| {},
    )
    .await
    .expect("machines");
    let plans = for_each_page(
        |c| {
            let source = &source;
            async move { source.plans(c.as_deref(), 500).await }
        },
        |_| {},
    )
    .await
    .expect("plans");
    assert_eq!(Some(machines), stats["counts"]["machines"].as_u64());
    assert_eq!(Some(plans), stats["counts"]["plans"].as_u64());

    let wrong = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from("wrong".to_string()),
        policy(),
    )
    .expect("client");
    let error = wrong.account().await.expect_err("refused");
    assert!(error.is_status(401), "{error:?}");
    assert_eq!(error.remote_code(), Some("unauthorized"));
}

#[tokio::test]
async fn a_users_password_is_read_at_migration_time() {
    let base = generate(&GenSpec::sized(Size::Small, 8));
    let user = base.users[3].id.clone();
    let expected = base
        .password(&user)
        .expect("a generated password")
        .to_string();
    let sim =
        SourceSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), base).expect("source simulator");
    let (login, password) = sim.credentials();
    let source = SourceClient::new(
        &sim.base_url(),
        &login,
        SecretString::from(password),
        policy(),
    )
    .expect("client");
    assert_eq!(
        source
            .user_password(&user)
            .await
            .expect("password")
            .expose_secret(),
        expected
    );
    assert!(
        source
            .user_password("u-nobody")
            .await
            .expect_err("unknown")
            .is_status(404)
    );
}
