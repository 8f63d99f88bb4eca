//! The operations log: item transitions and target call outcomes.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Time-ordered (UUIDv7): the cursor.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub at: DateTimeUtc,
    /// `partner:{subject}`, `worker:{id}` or `agent:{machine}`.
    pub actor: String,
    /// `migration`, `tenant`, `admin`, `user` or `machine`.
    pub subject_kind: String,
    pub subject_id: String,
    pub migration_id: Option<Uuid>,
    /// E.g. `item.done`, `target.create_user`.
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// Verbose mode: what was sent to the target, secrets redacted.
    #[sea_orm(column_type = "Text", nullable)]
    pub data: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
