//! Source -> target ids per workspace, kept across waves.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "target_mappings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    /// The migration item key: `tenant:…`, `admin:…` or `user:…`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub target_id: Uuid,
    /// The migration that created or found it.
    pub migration_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
