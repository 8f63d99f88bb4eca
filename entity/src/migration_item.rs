//! One thing a migration creates in the target: a tenant, an admin or a backup user.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "migration_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub migration_id: Uuid,
    /// `tenant:{tenant key}`, `admin:{group id}` or `user:{user id}`; also the mapping key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub workspace_id: Uuid,
    /// `tenant`, `admin` or `user`.
    pub kind: String,
    /// Plan order: tenants parent first, then admins, then users.
    pub seq: i32,
    pub source_id: String,
    /// The tenant item this one waits for; `None` when its parent is known.
    pub parent_key: Option<String>,
    /// `waiting`, `queued`, `done`, `failed`, `blocked` or `cancelled`.
    pub state: String,
    /// The last step done of a user or admin (`created`, `role`, ...).
    pub step: Option<String>,
    /// What the plan says to create, as JSON.
    #[sea_orm(column_type = "Text")]
    pub planned: String,
    pub target_id: Option<Uuid>,
    /// The transfer job the item is queued in.
    pub job_id: Option<Uuid>,
    pub attempts: i32,
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
