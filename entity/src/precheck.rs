//! A pre-check report of a workspace: its planning section; the entry sections
//! are in `precheck_chunk`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "prechecks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub tenant_id: Uuid,
    /// The job that computes the report (its operation).
    pub job_id: Uuid,
    /// The selection as JSON.
    #[sea_orm(column_type = "Text")]
    pub selection: String,
    pub check_logins: bool,
    /// The request's options as JSON (`None` before they existed: the defaults).
    #[sea_orm(column_type = "Text", nullable)]
    pub options: Option<String>,
    /// The planning section as JSON, once computed.
    #[sea_orm(column_type = "Text", nullable)]
    pub planning: Option<String>,
    /// The snapshot the report was computed from.
    pub snapshot_synced_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
