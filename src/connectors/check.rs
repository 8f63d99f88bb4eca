//! The prerequisite checks of a workspace: can the service log in to the
//! BackupAgent server, and can its cloud API client act for the partner's tenant?

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ConnectorError;
use super::source::SourceApi;
use super::target::{TargetApi, TenantKind};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The BackupAgent server accepts the top-level group's login and password.
    SourceLogin,
    /// The cloud issues a token to the API client.
    TargetCredentials,
    /// The API client's tenant is the partner's tenant, or one from which it is reachable.
    TargetTenant,
    /// The API client may create tenants and users under the partner's tenant.
    TargetPermissions,
    /// The partner's tenant may give a child of each kind the offering items the
    /// workspace's provisioning profile names.
    TargetServices,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not run because a check it depends on failed.
    Skipped,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct Check {
    pub name: CheckName,
    pub status: CheckStatus,
    /// Why, in words a partner can act on.
    pub detail: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct ConnectionCheck {
    pub checked_at: DateTime<Utc>,
    /// True when every check passed.
    pub passed: bool,
    pub checks: Vec<Check>,
}

fn check(name: CheckName, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

fn unreachable_detail(system: &str, error: &ConnectorError) -> String {
    match error {
        ConnectorError::Unavailable { last, .. } => format!("Cannot reach the {system}: {last}."),
        ConnectorError::Decode(..) => {
            format!("The {system} answered something that is not its API; check the URL.")
        }
        ConnectorError::Remote {
            status, message, ..
        } => format!("The {system} answered {status}: {message}"),
        ConnectorError::NotAllowed { reason, .. } => {
            format!(
                "The {system} URL is refused: {reason}. This service does not contact its own network."
            )
        }
    }
}

/// Runs the source and target checks side by side. A client that could not be
/// built (e.g. a refused address) fails its first check with the reason.
/// An offering item as a profile names it: application type, edition, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WantedItem {
    pub application: String,
    pub edition: Option<String>,
    pub name: String,
}

impl std::fmt::Display for WantedItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.edition {
            Some(edition) => write!(f, "{}/{}/{}", self.application, edition, self.name),
            None => write!(f, "{}/{}", self.application, self.name),
        }
    }
}

/// The offering items a child of each kind should get.
#[derive(Clone, Debug, Default)]
pub struct WantedServices {
    pub customer: Vec<WantedItem>,
    pub partner: Vec<WantedItem>,
}

pub async fn check_connection(
    source: Result<&dyn SourceApi, ConnectorError>,
    target: Result<&dyn TargetApi, ConnectorError>,
    partner_tenant: Uuid,
    services: &WantedServices,
) -> ConnectionCheck {
    let (source, target) = tokio::join!(
        source_login(source),
        target_checks(target, partner_tenant, services)
    );
    let mut checks = vec![source];
    checks.extend(target);
    ConnectionCheck {
        checked_at: Utc::now(),
        passed: checks.iter().all(|c| c.status == CheckStatus::Passed),
        checks,
    }
}

async fn source_login(source: Result<&dyn SourceApi, ConnectorError>) -> Check {
    let source = match source {
        Ok(source) => source,
        Err(e) => {
            return check(
                CheckName::SourceLogin,
                CheckStatus::Failed,
                unreachable_detail("BackupAgent server", &e),
            );
        }
    };
    match source.account().await {
        Ok(account) => check(
            CheckName::SourceLogin,
            CheckStatus::Passed,
            format!(
                "Logged in to the BackupAgent server as the top-level group \"{}\".",
                account.name
            ),
        ),
        Err(e) if e.is_status(401) || e.is_status(403) => check(
            CheckName::SourceLogin,
            CheckStatus::Failed,
            "The BackupAgent server refused the login and password of the top-level group.",
        ),
        Err(e) => check(
            CheckName::SourceLogin,
            CheckStatus::Failed,
            unreachable_detail("BackupAgent server", &e),
        ),
    }
}

async fn target_checks(
    target: Result<&dyn TargetApi, ConnectorError>,
    partner_tenant: Uuid,
    services: &WantedServices,
) -> Vec<Check> {
    use CheckName::{TargetCredentials, TargetPermissions, TargetServices, TargetTenant};
    let skipped = |name| {
        check(
            name,
            CheckStatus::Skipped,
            "Not checked: an earlier check failed.",
        )
    };
    let info = match target {
        Ok(target) => target.token_info().await.map(|info| (target, info)),
        Err(e) => Err(e),
    };
    let (target, info) = match info {
        Ok(found) => found,
        Err(e) => {
            let detail = if matches!(e.status(), Some(400 | 401 | 403)) {
                "The cloud refused the API client id or secret.".to_string()
            } else {
                unreachable_detail("cloud", &e)
            };
            return vec![
                check(TargetCredentials, CheckStatus::Failed, detail),
                skipped(TargetTenant),
                skipped(TargetPermissions),
                skipped(TargetServices),
            ];
        }
    };
    let credentials = check(
        TargetCredentials,
        CheckStatus::Passed,
        format!(
            "The cloud issued a token to the API client of tenant {}.",
            info.tenant_id
        ),
    );
    // The client can read the partner's tenant only if it is that tenant or above it.
    let tenant = match target.tenant(partner_tenant).await {
        Ok(tenant) => tenant,
        Err(e) => {
            let detail = if matches!(e.status(), Some(403 | 404)) {
                format!(
                    "The API client belongs to tenant {}, from which your tenant {partner_tenant} cannot be reached; \
                     create the API client in your own tenant.",
                    info.tenant_id
                )
            } else {
                unreachable_detail("cloud", &e)
            };
            return vec![
                credentials,
                check(TargetTenant, CheckStatus::Failed, detail),
                skipped(TargetPermissions),
                skipped(TargetServices),
            ];
        }
    };
    let tenant_check = if info.tenant_id == partner_tenant {
        check(
            TargetTenant,
            CheckStatus::Passed,
            "The API client belongs to your tenant.",
        )
    } else {
        check(
            TargetTenant,
            CheckStatus::Passed,
            format!(
                "The API client belongs to tenant {}, above yours, and can reach it.",
                info.tenant_id
            ),
        )
    };
    let permissions = if !info.roles.iter().any(|r| r == "partner_admin") {
        check(
            TargetPermissions,
            CheckStatus::Failed,
            format!(
                "The API client lacks the partner_admin role (it has: {}).",
                if info.roles.is_empty() {
                    "none".into()
                } else {
                    info.roles.join(", ")
                }
            ),
        )
    } else if !matches!(tenant.kind, TenantKind::Partner | TenantKind::Folder) {
        check(
            TargetPermissions,
            CheckStatus::Failed,
            format!(
                "Your tenant \"{}\" is not a partner or folder: it cannot hold customer tenants.",
                tenant.name
            ),
        )
    } else {
        check(
            TargetPermissions,
            CheckStatus::Passed,
            format!(
                "The API client may create tenants and users under \"{}\".",
                tenant.name
            ),
        )
    };
    let services = if permissions.status == CheckStatus::Passed {
        services_check(target, partner_tenant, services).await
    } else {
        skipped(TargetServices)
    };
    vec![credentials, tenant_check, permissions, services]
}

/// Whether `partner_tenant` may give a child of each kind what `wanted` names.
async fn services_check(
    target: &dyn TargetApi,
    partner_tenant: Uuid,
    wanted: &WantedServices,
) -> Check {
    let failed = |e: ConnectorError| {
        check(
            CheckName::TargetServices,
            CheckStatus::Failed,
            unreachable_detail("cloud", &e),
        )
    };
    let applications = match target.applications().await {
        Ok(applications) => applications,
        Err(e) => return failed(e),
    };
    let mut missing = Vec::new();
    for (kind, label, items) in [
        (TenantKind::Customer, "customer", &wanted.customer),
        (TenantKind::Partner, "partner", &wanted.partner),
    ] {
        let offered = match target.available_for_child(partner_tenant, kind).await {
            Ok(offered) => offered,
            Err(e) => return failed(e),
        };
        let offered: std::collections::BTreeSet<WantedItem> = offered
            .iter()
            .filter_map(|item| {
                let application = applications.iter().find(|a| a.id == item.application_id)?;
                Some(WantedItem {
                    application: application.kind.clone(),
                    edition: item.edition.clone(),
                    name: item.name.clone(),
                })
            })
            .collect();
        for item in items.iter().filter(|i| !offered.contains(*i)) {
            missing.push(format!("{item} to a {label}"));
        }
    }
    if missing.is_empty() {
        check(
            CheckName::TargetServices,
            CheckStatus::Passed,
            "Your tenant may give migrated customers and partners every offering item of the provisioning profile.",
        )
    } else {
        check(
            CheckName::TargetServices,
            CheckStatus::Failed,
            format!(
                "Your tenant may not give {}: turn these offering items on for your tenant, or change the workspace's provisioning profile.",
                missing.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use secrecy::SecretString;
    use serde_json::Value;

    use super::*;
    use crate::connectors::source::{
        SourceAccount, SourceGroup, SourceMachine, SourcePage, SourcePlan, SourceUser,
    };
    use crate::connectors::target::{
        Application, LoginStatus, NewTenant, NewUser, OfferingItem, OfferingItemPut, Pricing,
        PricingMode, RegistrationToken, Role, Tenant, TokenInfo, User,
    };

    fn remote(status: u16) -> ConnectorError {
        ConnectorError::Remote {
            system: "test",
            status,
            code: None,
            message: "no".into(),
        }
    }

    fn down() -> ConnectorError {
        ConnectorError::Unavailable {
            system: "test",
            attempts: 2,
            last: "could not connect".into(),
        }
    }

    struct Source(Result<SourceAccount, ConnectorError>);

    #[async_trait]
    impl SourceApi for Source {
        async fn account(&self) -> Result<SourceAccount, ConnectorError> {
            self.0.clone()
        }
        async fn groups(
            &self,
            _: Option<&str>,
            _: u32,
        ) -> Result<SourcePage<SourceGroup>, ConnectorError> {
            Err(down())
        }
        async fn users(
            &self,
            _: Option<&str>,
            _: u32,
        ) -> Result<SourcePage<SourceUser>, ConnectorError> {
            Err(down())
        }
        async fn machines(
            &self,
            _: Option<&str>,
            _: u32,
        ) -> Result<SourcePage<SourceMachine>, ConnectorError> {
            Err(down())
        }
        async fn plans(
            &self,
            _: Option<&str>,
            _: u32,
        ) -> Result<SourcePage<SourcePlan>, ConnectorError> {
            Err(down())
        }
        async fn user_password(&self, _: &str) -> Result<SecretString, ConnectorError> {
            Err(down())
        }
    }

    struct Target {
        token: Result<TokenInfo, ConnectorError>,
        tenant: Result<Tenant, ConnectorError>,
    }

    #[async_trait]
    impl TargetApi for Target {
        async fn token_info(&self) -> Result<TokenInfo, ConnectorError> {
            self.token.clone()
        }
        async fn tenant(&self, _: Uuid) -> Result<Tenant, ConnectorError> {
            self.tenant.clone()
        }
        async fn children(&self, _: Uuid) -> Result<Vec<Tenant>, ConnectorError> {
            Err(down())
        }
        async fn find_tenant_by_tag(
            &self,
            _: Uuid,
            _: &str,
        ) -> Result<Option<Tenant>, ConnectorError> {
            Err(down())
        }
        async fn create_tenant(&self, _: &NewTenant) -> Result<Tenant, ConnectorError> {
            Err(down())
        }
        async fn ensure_tenant(&self, _: &NewTenant) -> Result<Tenant, ConnectorError> {
            Err(down())
        }
        async fn check_login(&self, _: &str) -> Result<LoginStatus, ConnectorError> {
            Err(down())
        }
        async fn user(&self, _: Uuid) -> Result<User, ConnectorError> {
            Err(down())
        }
        async fn find_user(&self, _: Uuid, _: &str) -> Result<Option<User>, ConnectorError> {
            Err(down())
        }
        async fn tenant_users(&self, _: Uuid) -> Result<Vec<User>, ConnectorError> {
            Err(down())
        }
        async fn create_user(&self, _: &NewUser) -> Result<User, ConnectorError> {
            Err(down())
        }
        async fn ensure_user(&self, _: &NewUser) -> Result<User, ConnectorError> {
            Err(down())
        }
        async fn ensure_user_listed(
            &self,
            _: &NewUser,
            _: &[User],
        ) -> Result<User, ConnectorError> {
            Err(down())
        }
        async fn grant_role(&self, _: &User, _: Role, _: Uuid) -> Result<(), ConnectorError> {
            Err(down())
        }
        async fn send_activation_email(&self, _: Uuid) -> Result<(), ConnectorError> {
            Err(down())
        }
        async fn set_password(&self, _: Uuid, _: &SecretString) -> Result<(), ConnectorError> {
            Err(down())
        }
        async fn create_registration_token(
            &self,
            _: Uuid,
            _: Duration,
            _: &[String],
        ) -> Result<RegistrationToken, ConnectorError> {
            Err(down())
        }
        async fn registration_tokens(
            &self,
            _: Uuid,
        ) -> Result<Vec<RegistrationToken>, ConnectorError> {
            Err(down())
        }
        async fn revoke_registration_token(&self, _: &str) -> Result<(), ConnectorError> {
            Err(down())
        }
        async fn create_protection_plan(&self, _: &Value) -> Result<Value, ConnectorError> {
            Err(down())
        }
        async fn applications(&self) -> Result<Vec<Application>, ConnectorError> {
            Ok(vec![Application {
                id: Uuid::nil(),
                name: "Backup".into(),
                kind: "backup".into(),
                usages: vec![],
            }])
        }
        async fn offering_items(&self, _: Uuid) -> Result<Vec<OfferingItem>, ConnectorError> {
            Err(down())
        }
        async fn available_for_child(
            &self,
            parent: Uuid,
            _: TenantKind,
        ) -> Result<Vec<OfferingItem>, ConnectorError> {
            Ok(vec![OfferingItem {
                application_id: Uuid::nil(),
                name: "workstations".into(),
                edition: Some("standard".into()),
                usage_name: "workstations".into(),
                tenant_id: parent,
                status: 1,
                locked: false,
                kind: "count".into(),
                measurement_unit: "quantity".into(),
                infra_id: None,
                quota: None,
            }])
        }
        async fn set_offering_items(
            &self,
            _: Uuid,
            _: &[OfferingItemPut],
        ) -> Result<Vec<OfferingItem>, ConnectorError> {
            Err(down())
        }
        async fn pricing(&self, _: Uuid) -> Result<Pricing, ConnectorError> {
            Err(down())
        }
        async fn set_pricing(
            &self,
            _: Uuid,
            _: PricingMode,
            _: i64,
        ) -> Result<Pricing, ConnectorError> {
            Err(down())
        }
    }

    fn account() -> SourceAccount {
        SourceAccount {
            group_id: "g-1".into(),
            name: "Root".into(),
            login: "root".into(),
            server_version: None,
            server_time: None,
        }
    }

    fn info(tenant_id: Uuid, roles: &[&str]) -> TokenInfo {
        TokenInfo {
            tenant_id,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: Utc::now(),
        }
    }

    fn tenant(id: Uuid, kind: TenantKind) -> Tenant {
        Tenant {
            id,
            version: 1,
            name: "Partner".into(),
            kind,
            parent_id: None,
            internal_tag: None,
        }
    }

    #[tokio::test]
    async fn each_failure_is_reported_with_its_reason_and_dependants_skipped() {
        use CheckStatus::{Failed as F, Passed as P, Skipped as S};
        let me = Uuid::new_v4();
        let above = Uuid::new_v4();
        let cases: Vec<(&str, Source, Target, [CheckStatus; 5], &str)> = vec![
            (
                "all good",
                Source(Ok(account())),
                Target {
                    token: Ok(info(me, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Partner)),
                },
                [P, P, P, P, P],
                "your tenant",
            ),
            (
                "client above",
                Source(Ok(account())),
                Target {
                    token: Ok(info(above, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Folder)),
                },
                [P, P, P, P, P],
                "above yours",
            ),
            (
                "source refuses",
                Source(Err(remote(401))),
                Target {
                    token: Ok(info(me, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Partner)),
                },
                [F, P, P, P, P],
                "refused the login",
            ),
            (
                "source down",
                Source(Err(down())),
                Target {
                    token: Ok(info(me, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Partner)),
                },
                [F, P, P, P, P],
                "Cannot reach the BackupAgent",
            ),
            (
                "bad client secret",
                Source(Ok(account())),
                Target {
                    token: Err(remote(401)),
                    tenant: Err(down()),
                },
                [P, F, S, S, S],
                "refused the API client",
            ),
            (
                "cloud down",
                Source(Ok(account())),
                Target {
                    token: Err(down()),
                    tenant: Err(down()),
                },
                [P, F, S, S, S],
                "Cannot reach the cloud",
            ),
            (
                "client elsewhere",
                Source(Ok(account())),
                Target {
                    token: Ok(info(above, &["partner_admin"])),
                    tenant: Err(remote(403)),
                },
                [P, P, F, S, S],
                "cannot be reached",
            ),
            (
                "no partner role",
                Source(Ok(account())),
                Target {
                    token: Ok(info(me, &["company_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Partner)),
                },
                [P, P, P, F, S],
                "lacks the partner_admin role",
            ),
            (
                "customer tenant",
                Source(Ok(account())),
                Target {
                    token: Ok(info(me, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Customer)),
                },
                [P, P, P, F, S],
                "not a partner or folder",
            ),
            (
                "private source address",
                Source(Err(ConnectorError::NotAllowed {
                    system: "test",
                    reason: "10.0.0.5 is private".into(),
                })),
                Target {
                    token: Ok(info(me, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Partner)),
                },
                [F, P, P, P, P],
                "does not contact its own network",
            ),
        ];
        let wanted = |names: &[&str]| WantedServices {
            customer: names
                .iter()
                .map(|n| WantedItem {
                    application: "backup".into(),
                    edition: Some("standard".into()),
                    name: (*n).into(),
                })
                .collect(),
            partner: vec![],
        };
        let cases: Vec<(&str, Source, Target, [CheckStatus; 5], &str, WantedServices)> = cases
            .into_iter()
            .map(|(case, source, target, expected, phrase)| {
                (
                    case,
                    source,
                    target,
                    expected,
                    phrase,
                    wanted(&["workstations"]),
                )
            })
            .chain([(
                "an item the partner cannot give",
                Source(Ok(account())),
                Target {
                    token: Ok(info(me, &["partner_admin"])),
                    tenant: Ok(tenant(me, TenantKind::Partner)),
                },
                [P, P, P, P, F],
                "may not give backup/standard/vms to a customer",
                wanted(&["workstations", "vms"]),
            )])
            .collect();
        for (case, source, target, expected, phrase, services) in cases {
            let report = check_connection(Ok(&source), Ok(&target), me, &services).await;
            let statuses: Vec<CheckStatus> = report.checks.iter().map(|c| c.status).collect();
            assert_eq!(statuses, expected, "{case}");
            assert_eq!(report.passed, expected.iter().all(|s| *s == P), "{case}");
            assert!(
                report.checks.iter().any(|c| c.detail.contains(phrase)),
                "{case}: no detail says {phrase:?}: {:?}",
                report.checks
            );
        }
    }
}
