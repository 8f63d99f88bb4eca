use serde_json::json;

use super::*;
use crate::domain::provisioning::{CloudItem, ItemKey, Quota};

fn storage(quota: u64) -> Want {
    Want {
        item: CloudItem {
            key: ItemKey {
                application: "backup".into(),
                edition: None,
                name: "storage".into(),
            },
            application_id: uuid::Uuid::from_u128(1),
            infra_id: None,
            measurement_unit: "bytes".into(),
            on: true,
            quota: None,
            quota_version: 3,
        },
        quota: Quota {
            value: Some(quota),
            overage: None,
        },
    }
}

fn contact(login: &str) -> Contact {
    Contact {
        login: login.into(),
        email: Some(format!("{login}@example.com")),
        first_name: Some("Ada".into()),
        last_name: None,
        phone: None,
    }
}

fn tenant() -> Planned {
    Planned::Tenant(PlannedTenant {
        tenant_key: "g1#users".into(),
        name: "Acme users".into(),
        kind: TenantKind::Customer,
        direct_users: true,
        services: vec![storage(500)],
        pricing_mode: Some(PricingMode::Trial),
        existing_customers: ExistingCustomers::Leave,
    })
}

/// A partner the profile gives nothing; `None`: a row written before tenants
/// were provisioned.
fn partner(pricing_mode: Option<PricingMode>) -> Planned {
    Planned::Tenant(PlannedTenant {
        tenant_key: "g2".into(),
        name: "Acme".into(),
        kind: TenantKind::Partner,
        direct_users: false,
        services: Vec::new(),
        pricing_mode,
        existing_customers: ExistingCustomers::AddMissing,
    })
}

fn admin() -> Planned {
    Planned::Admin(PlannedAdmin {
        login: "ada.admin".into(),
        role: AdminRole::PartnerAdmin,
        contact: contact("ada"),
    })
}

fn user(personal_quota: Option<Box<Want>>) -> Planned {
    Planned::User(PlannedUser {
        login: "bob".into(),
        contact: contact("bob"),
        machines: vec![UserMachine {
            machine_id: "m1".into(),
            readiness: Readiness::ReadyAfterClientUpgrade,
            plans: vec![json!({"plan_id": "p1", "type": "files"})],
        }],
        personal_quota,
    })
}

/// Each kind as it is stored, written as the items always were: keys sorted at
/// every level, fields a row does not have left out.
#[test]
fn writes_the_json_items_have_always_had() {
    let table: [(Planned, &str); 5] = [
        (
            tenant(),
            r#"{"direct_users":true,"existing_customers":"leave","kind":"customer","name":"Acme users","pricing_mode":"trial","services":[{"item":{"application_id":"00000000-0000-0000-0000-000000000001","infra_id":null,"key":{"application":"backup","edition":null,"name":"storage"},"measurement_unit":"bytes","on":true,"quota":null,"quota_version":3},"quota":{"overage":null,"value":500}}],"tenant_key":"g1#users"}"#,
        ),
        (
            partner(Some(PricingMode::Production)),
            r#"{"direct_users":false,"existing_customers":"add_missing","kind":"partner","name":"Acme","pricing_mode":"production","services":[],"tenant_key":"g2"}"#,
        ),
        (
            admin(),
            r#"{"contact":{"email":"ada@example.com","first_name":"Ada","last_name":null,"login":"ada","phone":null},"login":"ada.admin","role":"partner_admin"}"#,
        ),
        (
            user(None),
            r#"{"contact":{"email":"bob@example.com","first_name":"Ada","last_name":null,"login":"bob","phone":null},"login":"bob","machines":[{"machine_id":"m1","plans":[{"plan_id":"p1","type":"files"}],"readiness":"ready_after_client_upgrade"}]}"#,
        ),
        (
            user(Some(Box::new(storage(7)))),
            r#"{"contact":{"email":"bob@example.com","first_name":"Ada","last_name":null,"login":"bob","phone":null},"login":"bob","machines":[{"machine_id":"m1","plans":[{"plan_id":"p1","type":"files"}],"readiness":"ready_after_client_upgrade"}],"personal_quota":{"item":{"application_id":"00000000-0000-0000-0000-000000000001","infra_id":null,"key":{"application":"backup","edition":null,"name":"storage"},"measurement_unit":"bytes","on":true,"quota":null,"quota_version":3},"quota":{"overage":null,"value":7}}}"#,
        ),
    ];
    for (planned, stored) in table {
        assert_eq!(planned.to_json(), stored, "{:?}", planned.kind());
        assert_eq!(
            Planned::parse(planned.kind(), stored).ok(),
            Some(planned),
            "{stored}"
        );
    }
}

#[test]
fn the_kind_is_the_variant() {
    let table = [
        (tenant(), ItemKind::Tenant),
        (admin(), ItemKind::Admin),
        (user(None), ItemKind::User),
    ];
    for (planned, kind) in table {
        assert_eq!(planned.kind(), kind);
        assert_eq!(Planned::parse(kind, &planned.to_json()).ok(), Some(planned));
    }
}

/// Rows written before tenants were provisioned, or for users without a source quota.
#[test]
fn fields_older_rows_lack_take_their_defaults() {
    let table = [
        (
            ItemKind::Tenant,
            r#"{"direct_users":false,"kind":"partner","name":"Acme","tenant_key":"g2"}"#,
            partner(None),
        ),
        (
            ItemKind::User,
            r#"{"contact":{"email":"bob@example.com","first_name":"Ada","login":"bob"},"login":"bob","machines":[{"machine_id":"m1","plans":[{"plan_id":"p1","type":"files"}],"readiness":"ready_after_client_upgrade"}]}"#,
            user(None),
        ),
    ];
    for (kind, stored, planned) in table {
        assert_eq!(Planned::parse(kind, stored).ok(), Some(planned), "{stored}");
    }
}

/// A row of the wrong shape, or of another kind than its `kind` column says, is an
/// error: never read as a default.
#[test]
fn a_row_of_the_wrong_shape_is_an_error() {
    let tenant = r#"{"direct_users":true,"kind":"customer","name":"Acme","tenant_key":"g1"}"#;
    let admin = r#"{"contact":{"login":"ada"},"login":"ada","role":"company_admin"}"#;
    let user = r#"{"contact":{"login":"bob"},"login":"bob","machines":[]}"#;
    for (kind, stored) in [
        (ItemKind::Tenant, tenant),
        (ItemKind::Admin, admin),
        (ItemKind::User, user),
    ] {
        assert!(Planned::parse(kind, stored).is_ok(), "{stored}");
    }
    let table: &[(ItemKind, &str)] = &[
        (ItemKind::Tenant, ""),
        (ItemKind::Tenant, "null"),
        (ItemKind::Tenant, "[]"),
        (
            ItemKind::Tenant,
            r#"{"direct_users":true,"kind":"reseller","name":"Acme","tenant_key":"g1"}"#,
        ),
        (
            ItemKind::Tenant,
            r#"{"direct_users":"yes","kind":"customer","name":"Acme","tenant_key":"g1"}"#,
        ),
        (
            ItemKind::Tenant,
            r#"{"direct_users":true,"kind":"customer","tenant_key":"g1"}"#,
        ),
        (
            ItemKind::Tenant,
            r#"{"direct_users":true,"kind":"customer","name":"Acme","tenant_key":"g1","services":{}}"#,
        ),
        (
            ItemKind::Tenant,
            r#"{"direct_users":true,"kind":"customer","name":"Acme","tenant_key":"g1","pricing_mode":"free"}"#,
        ),
        (
            ItemKind::Tenant,
            r#"{"direct_users":true,"kind":"customer","name":"Acme","tenant_key":"g1","existing_customers":"replace"}"#,
        ),
        (
            ItemKind::Admin,
            r#"{"contact":{"login":"ada"},"login":"ada","role":"owner"}"#,
        ),
        (ItemKind::Admin, r#"{"login":"ada","role":"company_admin"}"#),
        (
            ItemKind::Admin,
            r#"{"contact":{"login":"ada"},"login":7,"role":"company_admin"}"#,
        ),
        (
            ItemKind::User,
            r#"{"contact":{"login":"bob"},"login":"bob","machines":3}"#,
        ),
        (
            ItemKind::User,
            r#"{"contact":{"login":"bob"},"login":"bob","machines":[{"readiness":"ready","plans":[]}]}"#,
        ),
        (
            ItemKind::User,
            r#"{"contact":{"login":"bob"},"login":"bob","machines":[{"machine_id":"m1","readiness":"fine","plans":[]}]}"#,
        ),
        (
            ItemKind::User,
            r#"{"contact":{"login":"bob"},"login":"bob","machines":[{"machine_id":"m1","readiness":"ready","plans":{}}]}"#,
        ),
        (
            ItemKind::User,
            r#"{"contact":{"login":"bob"},"login":"bob","machines":[],"personal_quota":5}"#,
        ),
        // Another kind's plan.
        (ItemKind::Tenant, admin),
        (ItemKind::Tenant, user),
        (ItemKind::Admin, tenant),
        (ItemKind::Admin, user),
        (ItemKind::User, tenant),
        (ItemKind::User, admin),
    ];
    for (kind, stored) in table {
        assert!(Planned::parse(*kind, stored).is_err(), "{kind:?}: {stored}");
    }
}
