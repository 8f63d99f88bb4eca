//! A migration (a wave): the execution of the plan for a selection.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "migrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub tenant_id: Uuid,
    /// The pre-check whose plan this carries out, when one was named.
    pub precheck_id: Option<Uuid>,
    /// The selection as JSON.
    #[sea_orm(column_type = "Text")]
    pub selection: String,
    /// The options as JSON.
    #[sea_orm(column_type = "Text")]
    pub options: String,
    /// `planning`, `running`, `paused`, `cancelled`, `completed` or `failed`.
    pub status: String,
    /// What planning again changed against the pre-check, as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub replan: Option<String>,
    /// The snapshot the plan was made from.
    pub snapshot_synced_at: Option<DateTimeUtc>,
    /// The supervising job (the migration's operation).
    pub job_id: Uuid,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
