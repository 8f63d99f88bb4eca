//! A unit of background work in the database queue.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Which handler runs it, e.g. `sync`.
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `queued`, `running`, `succeeded`, `discarded` (attempts exhausted) or `cancelled`.
    pub status: String,
    /// At most one queued or running job holds a given key.
    pub unique_key: Option<String>,
    /// Claims so far; completion is fenced by it.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Not claimed before this time (epoch milliseconds).
    pub run_at_ms: i64,
    /// The lease: a running job whose lease has lapsed may be taken over.
    pub locked_until_ms: Option<i64>,
    pub locked_by: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub progress: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
    pub tenant_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
