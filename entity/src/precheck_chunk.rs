//! A run of consecutive entries of one section of a pre-check report.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "precheck_chunks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub precheck_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub section: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk: i32,
    /// The position of the chunk's first entry in the section.
    pub first_entry: i32,
    pub entries: i32,
    /// A JSON array of `[key, entry]` pairs.
    #[sea_orm(column_type = "Text")]
    pub data: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
