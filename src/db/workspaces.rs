//! Workspace queries. Every one takes the caller's tenant: a workspace of
//! another tenant is simply not found.

use chrono::Utc;
use entity::workspace::{self, ActiveModel, Column, Entity as Workspaces, Model};
use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};
use secrecy::SecretString;
use uuid::Uuid;

use super::Page;
use crate::connectors::Limit;
use crate::connectors::check::ConnectionCheck;
use crate::crypto::{CryptoError, SecretBox};
use crate::domain::provisioning::Profile;

pub struct SourceLogin<'a> {
    pub url: &'a str,
    pub login: &'a str,
    pub password: &'a SecretString,
}

pub struct CloudClient<'a> {
    pub url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
}

pub struct NewWorkspace<'a> {
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub source: SourceLogin<'a>,
    pub target: CloudClient<'a>,
    pub connection_check: Option<&'a ConnectionCheck>,
    pub source_limit: Limit,
    pub target_limit: Limit,
    /// `None`: the standard profile.
    pub provisioning: Option<&'a Profile>,
}

#[derive(Default)]
pub struct WorkspaceChanges<'a> {
    pub name: Option<&'a str>,
    pub source: Option<SourceLogin<'a>>,
    pub target: Option<CloudClient<'a>>,
    pub limits: Option<(Limit, Limit)>,
    pub provisioning: Option<&'a Profile>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("workspace not found")]
    NotFound,
    #[error("workspace version is not the expected one")]
    VersionMismatch,
}

/// The associated data that binds a sealed credential to its row and field.
fn seal_context(id: Uuid, field: &str) -> String {
    format!("workspaces:{id}:{field}")
}

pub async fn insert(
    db: &impl ConnectionTrait,
    secrets: &SecretBox,
    new: NewWorkspace<'_>,
) -> Result<Model, StoreError> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let model = ActiveModel {
        id: Set(id),
        tenant_id: Set(new.tenant_id),
        name: Set(new.name.to_string()),
        source_url: Set(new.source.url.to_string()),
        source_login: Set(new.source.login.to_string()),
        source_password: Set(seal(secrets, id, "source_password", new.source.password)?),
        target_url: Set(new.target.url.to_string()),
        target_client_id: Set(new.target.client_id.to_string()),
        target_client_secret: Set(seal(
            secrets,
            id,
            "target_client_secret",
            new.target.client_secret,
        )?),
        version: Set(1),
        connection_check: Set(new.connection_check.map(check_json)),
        source_rate_per_sec: Set(pace(new.source_limit.rate_per_sec)),
        source_concurrency: Set(pace(new.source_limit.concurrency)),
        target_rate_per_sec: Set(pace(new.target_limit.rate_per_sec)),
        target_concurrency: Set(pace(new.target_limit.concurrency)),
        snapshot_synced_at: Set(None),
        snapshot_source_time: Set(None),
        enrollment_secret_hash: Set(None),
        provisioning: Set(new.provisioning.map(profile_json)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Ok(Workspaces::insert(model).exec_with_returning(db).await?)
}

fn seal(
    secrets: &SecretBox,
    id: Uuid,
    field: &str,
    value: &SecretString,
) -> Result<Vec<u8>, CryptoError> {
    use secrecy::ExposeSecret;
    secrets.seal(value.expose_secret(), &seal_context(id, field))
}

pub async fn find(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<Model>, DbErr> {
    Workspaces::find_by_id(id)
        .filter(Column::TenantId.eq(tenant_id))
        .one(db)
        .await
}

/// Up to `page.limit + 1` workspaces after the cursor, in creation order.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    page: Page,
) -> Result<Vec<Model>, DbErr> {
    let query = Workspaces::find().filter(Column::TenantId.eq(tenant_id));
    page.of(db, query, Column::Id).await
}

/// Applies `changes` in one statement: to any version when `expected_versions` is
/// `None`, else only if the stored version is one of them (optimistic locking).
/// New credentials or a new profile void the last connection check: it described the old ones.
pub async fn update(
    db: &impl ConnectionTrait,
    secrets: &SecretBox,
    tenant_id: Uuid,
    id: Uuid,
    expected_versions: Option<&[i32]>,
    changes: &WorkspaceChanges<'_>,
) -> Result<Model, StoreError> {
    let mut update = Workspaces::update_many()
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()));
    if let Some(name) = changes.name {
        update = update.col_expr(Column::Name, Expr::value(name));
    }
    if let Some(source) = &changes.source {
        update = update
            .col_expr(Column::SourceUrl, Expr::value(source.url))
            .col_expr(Column::SourceLogin, Expr::value(source.login))
            .col_expr(
                Column::SourcePassword,
                Expr::value(seal(secrets, id, "source_password", source.password)?),
            );
    }
    if let Some(target) = &changes.target {
        update = update
            .col_expr(Column::TargetUrl, Expr::value(target.url))
            .col_expr(Column::TargetClientId, Expr::value(target.client_id))
            .col_expr(
                Column::TargetClientSecret,
                Expr::value(seal(
                    secrets,
                    id,
                    "target_client_secret",
                    target.client_secret,
                )?),
            );
    }
    // The check covers the profile's services too.
    if changes.source.is_some() || changes.target.is_some() || changes.provisioning.is_some() {
        update = update.col_expr(Column::ConnectionCheck, Expr::value(Option::<String>::None));
    }
    if let Some((source, target)) = changes.limits {
        update = update
            .col_expr(
                Column::SourceRatePerSec,
                Expr::value(pace(source.rate_per_sec)),
            )
            .col_expr(
                Column::SourceConcurrency,
                Expr::value(pace(source.concurrency)),
            )
            .col_expr(
                Column::TargetRatePerSec,
                Expr::value(pace(target.rate_per_sec)),
            )
            .col_expr(
                Column::TargetConcurrency,
                Expr::value(pace(target.concurrency)),
            );
    }
    if let Some(profile) = changes.provisioning {
        update = update.col_expr(Column::Provisioning, Expr::value(profile_json(profile)));
    }
    let mut update = update
        .filter(Column::Id.eq(id))
        .filter(Column::TenantId.eq(tenant_id));
    if let Some(versions) = expected_versions {
        update = update.filter(Column::Version.is_in(versions.iter().copied()));
    }
    match update.exec_with_returning(db).await?.into_iter().next() {
        Some(model) => Ok(model),
        None if expected_versions.is_some() && find(db, tenant_id, id).await?.is_some() => {
            Err(StoreError::VersionMismatch)
        }
        None => Err(StoreError::NotFound),
    }
}

/// Limits are validated to small positive numbers; the column is a plain integer.
fn pace(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn limit(rate: i32, concurrency: i32) -> Limit {
    let positive = |v: i32| u32::try_from(v).ok().filter(|v| *v > 0).unwrap_or(1);
    Limit {
        rate_per_sec: positive(rate),
        concurrency: positive(concurrency),
    }
}

fn profile_json(profile: &Profile) -> String {
    serde_json::to_string(profile).unwrap_or_default()
}

/// The workspace's provisioning profile: the standard one when it has none (or,
/// which only a hand-edited row could cause, one that no longer reads).
pub fn provisioning(workspace: &Model) -> Profile {
    workspace
        .provisioning
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(Profile::standard)
}

pub fn source_limit(workspace: &Model) -> Limit {
    limit(workspace.source_rate_per_sec, workspace.source_concurrency)
}

pub fn target_limit(workspace: &Model) -> Limit {
    limit(workspace.target_rate_per_sec, workspace.target_concurrency)
}

fn check_json(check: &ConnectionCheck) -> String {
    serde_json::to_string(check).unwrap_or_default()
}

/// The stored report, if any; one that no longer parses counts as none.
pub fn connection_check(workspace: &Model) -> Option<ConnectionCheck> {
    workspace
        .connection_check
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
}

/// Records a check report of `workspace` as it was read; if its credentials
/// changed meanwhile the report is of the old ones and is not kept. Not a
/// change of the workspace, so the version stays. Answers whether it was kept.
pub async fn set_connection_check(
    db: &impl ConnectionTrait,
    workspace: &Model,
    check: &ConnectionCheck,
) -> Result<bool, DbErr> {
    let result = Workspaces::update_many()
        .col_expr(Column::ConnectionCheck, Expr::value(check_json(check)))
        .filter(Column::Id.eq(workspace.id))
        .filter(Column::TenantId.eq(workspace.tenant_id))
        .filter(Column::Version.eq(workspace.version))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Deletes the workspace and its snapshot, together.
pub async fn delete(db: &DatabaseConnection, tenant_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let result = Workspaces::delete_many()
        .filter(Column::Id.eq(id))
        .filter(Column::TenantId.eq(tenant_id))
        .exec(&txn)
        .await?;
    if result.rows_affected == 0 {
        return Ok(false);
    }
    for table in [
        "source_groups",
        "source_users",
        "source_machines",
        "source_plans",
    ] {
        let delete = sea_orm::sea_query::Query::delete()
            .from_table(sea_orm::sea_query::Alias::new(table))
            .and_where(Expr::col(sea_orm::sea_query::Alias::new("workspace_id")).eq(id))
            .to_owned();
        txn.execute(&delete).await?;
    }
    super::prechecks::delete_for_workspace(&txn, id).await?;
    txn.commit().await?;
    Ok(true)
}

/// The BackupAgent password, opened for the moment it is sent to the source.
pub fn source_password(
    secrets: &SecretBox,
    workspace: &workspace::Model,
) -> Result<SecretString, CryptoError> {
    secrets.open(
        &workspace.source_password,
        &seal_context(workspace.id, "source_password"),
    )
}

/// The cloud API client secret, opened for the moment it is sent to the target.
pub fn target_client_secret(
    secrets: &SecretBox,
    workspace: &workspace::Model,
) -> Result<SecretString, CryptoError> {
    secrets.open(
        &workspace.target_client_secret,
        &seal_context(workspace.id, "target_client_secret"),
    )
}
