//! An enrolled agent: one per machine, with its token's hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub machine_id: String,
    /// SHA-256 (hex) of the agent's token; the token itself is never kept.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub enrolled_at: DateTimeUtc,
    /// When the agent last checked in (written once a second for those that did).
    pub last_check_in_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
