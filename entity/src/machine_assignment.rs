//! A machine released to its agent: where it goes in the target and its converted backup plans.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "machine_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub machine_id: String,
    pub migration_id: Uuid,
    pub user_id: String,
    pub target_user_id: Uuid,
    pub target_tenant_id: Uuid,
    /// The converted backup plans, as JSON.
    #[sea_orm(column_type = "Text")]
    pub plans: String,
    pub released_at: DateTimeUtc,
    /// The agent's one-time registration token, sealed; made at its first `migrate` instructions.
    pub registration_token: Option<Vec<u8>>,
    pub registration_expires_at: Option<DateTimeUtc>,
    /// The cloud's id of that token (to revoke it once a renewed one is kept).
    pub registration_token_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
