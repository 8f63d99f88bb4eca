//! A workspace: one BackupAgent install base bound to one cloud tenant.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workspaces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The cloud tenant (`tuid`) that owns the workspace; every query filters on it.
    pub tenant_id: Uuid,
    pub name: String,
    pub source_url: String,
    pub source_login: String,
    /// AES-256-GCM sealed; never leaves the process in clear except toward the source.
    pub source_password: Vec<u8>,
    pub target_url: String,
    pub target_client_id: String,
    /// AES-256-GCM sealed.
    pub target_client_secret: Vec<u8>,
    /// Optimistic-locking counter, exposed as the ETag.
    pub version: i32,
    /// The last connection check report (JSON), if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub connection_check: Option<String>,
    /// Requests per second toward the BackupAgent server.
    pub source_rate_per_sec: i32,
    /// Requests in flight toward the BackupAgent server.
    pub source_concurrency: i32,
    /// Requests per second toward the cloud.
    pub target_rate_per_sec: i32,
    /// Requests in flight toward the cloud.
    pub target_concurrency: i32,
    /// When the last sync replaced the snapshot (our clock).
    pub snapshot_synced_at: Option<DateTimeUtc>,
    /// The BackupAgent server's clock at that sync: last-seen times are measured against it.
    pub snapshot_source_time: Option<DateTimeUtc>,
    /// SHA-256 (hex) of the secret agents enroll with; shown once when set.
    pub enrollment_secret_hash: Option<String>,
    /// The provisioning profile (JSON); NULL: the standard profile.
    #[sea_orm(column_type = "Text", nullable)]
    pub provisioning: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
