//! The operations log: appended in the transaction of what it records, read
//! newest-last with an id cursor, filtered by subject and kind.

use chrono::Utc;
use entity::event::{self, Column, Entity as Events};
use sea_orm::sea_query::LikeExpr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::Page;
use super::webhooks::NewDeliveries;

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

/// Inserts events in the caller's transaction, in order, with the webhook
/// deliveries they call for (whose jobs the caller queues: `jobs::record_events`).
pub async fn record(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    events: Vec<NewEvent>,
) -> Result<NewDeliveries, DbErr> {
    if events.is_empty() {
        return Ok(NewDeliveries::default());
    }
    let at = Utc::now();
    let recorded: Vec<event::Model> = events
        .into_iter()
        .map(|e| event::Model {
            id: Uuid::now_v7(),
            workspace_id,
            at,
            actor: e.actor,
            subject_kind: e.subject_kind.to_string(),
            subject_id: e.subject_id,
            migration_id: e.migration_id,
            kind: e.kind,
            message: e.message,
            data: e.data.map(|d| d.to_string()),
        })
        .collect();
    for batch in recorded.chunks(500) {
        let models = batch
            .iter()
            .cloned()
            .map(|m| event::ActiveModel::from(m).reset_all());
        Events::insert_many(models)
            .exec_without_returning(db)
            .await?;
    }
    // Webhooks of these events are queued with them, or not at all.
    super::webhooks::fan_out(db, workspace_id, &recorded).await
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub subject_id: Option<String>,
    pub subject_kind: Option<String>,
    /// A kind, or a prefix ending in `.` (`target.` matches every target call).
    pub kind: Option<String>,
    pub migration_id: Option<Uuid>,
}

pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    filter: &EventFilter,
    page: Page,
) -> Result<Vec<event::Model>, DbErr> {
    let mut query = Events::find().filter(Column::WorkspaceId.eq(workspace_id));
    if let Some(subject) = &filter.subject_id {
        query = query.filter(Column::SubjectId.eq(subject.as_str()));
    }
    if let Some(kind) = &filter.subject_kind {
        query = query.filter(Column::SubjectKind.eq(kind.as_str()));
    }
    if let Some(kind) = &filter.kind {
        query = match kind.strip_suffix('.') {
            Some(prefix) => query
                .filter(Column::Kind.like(
                    LikeExpr::new(format!("{}.%", super::like_literal(prefix))).escape('\\'),
                )),
            None => query.filter(Column::Kind.eq(kind.as_str())),
        };
    }
    if let Some(migration) = filter.migration_id {
        query = query.filter(Column::MigrationId.eq(migration));
    }
    page.of(db, query, Column::Id).await
}
