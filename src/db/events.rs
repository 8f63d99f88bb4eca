//! The operations log: appended in the transaction of what it records, read
//! newest-last with an id cursor, filtered by subject and kind.

use chrono::Utc;
use entity::event::{self, Column, Entity as Events};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::Page;

/// One event to record. `data` is for the verbose mode and must hold no secret.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub actor: String,
    pub subject_kind: &'static str,
    pub subject_id: String,
    pub migration_id: Option<Uuid>,
    pub kind: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

/// Inserts events in the caller's transaction, in order.
pub async fn record(db: &impl ConnectionTrait, workspace_id: Uuid, events: Vec<NewEvent>) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let at = Utc::now();
    let models: Vec<event::ActiveModel> = events
        .into_iter()
        .map(|e| event::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            at: Set(at),
            actor: Set(e.actor),
            subject_kind: Set(e.subject_kind.to_string()),
            subject_id: Set(e.subject_id),
            migration_id: Set(e.migration_id),
            kind: Set(e.kind),
            message: Set(e.message),
            data: Set(e.data.map(|d| d.to_string())),
        })
        .collect();
    for batch in models.chunks(500) {
        Events::insert_many(batch.to_vec()).exec_without_returning(db).await?;
    }
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub subject_id: Option<String>,
    pub subject_kind: Option<String>,
    /// A kind, or a prefix ending in `.` (`target.` matches every target call).
    pub kind: Option<String>,
    pub migration_id: Option<Uuid>,
}

pub async fn list(db: &impl ConnectionTrait, workspace_id: Uuid, filter: &EventFilter, page: Page) -> Result<Vec<event::Model>, DbErr> {
    let mut query = Events::find().filter(Column::WorkspaceId.eq(workspace_id));
    if let Some(subject) = &filter.subject_id {
        query = query.filter(Column::SubjectId.eq(subject.as_str()));
    }
    if let Some(kind) = &filter.subject_kind {
        query = query.filter(Column::SubjectKind.eq(kind.as_str()));
    }
    if let Some(kind) = &filter.kind {
        query = match kind.strip_suffix('.') {
            Some(prefix) => query.filter(Column::Kind.starts_with(format!("{prefix}."))),
            None => query.filter(Column::Kind.eq(kind.as_str())),
        };
    }
    if let Some(migration) = filter.migration_id {
        query = query.filter(Column::MigrationId.eq(migration));
    }
    if let Some(after) = page.after {
        query = query.filter(Column::Id.gt(after));
    }
    query.order_by_asc(Column::Id).limit(page.limit + 1).all(db).await
}
