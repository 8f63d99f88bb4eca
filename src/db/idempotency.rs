//! Stored first answers of creating POSTs, keyed by tenant, operation and key.

use chrono::{Duration, Utc};
use entity::idempotency_record::{ActiveModel, Column, Entity as Records, Model};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

/// How long a key is remembered; a retry after that creates anew.
pub const RETENTION: Duration = Duration::hours(24);

pub struct Answer {
    pub status_code: u16,
    pub location: Option<String>,
    pub body: String,
}

/// The live record for this key, removing it if it outlived [`RETENTION`].
pub async fn find(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    operation: &str,
    key: &str,
) -> Result<Option<Model>, DbErr> {
    let record = Records::find_by_id((tenant_id, operation.to_string(), key.to_string()))
        .one(db)
        .await?;
    match record {
        Some(r) if Utc::now() - r.created_at > RETENTION => {
            Records::delete_many()
                .filter(Column::TenantId.eq(tenant_id))
                .filter(Column::Operation.eq(operation))
                .filter(Column::Key.eq(key))
                .exec(db)
                .await?;
            Ok(None)
        }
        other => Ok(other),
    }
}

pub async fn insert(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    operation: &str,
    key: &str,
    request_hash: &str,
    answer: &Answer,
) -> Result<(), DbErr> {
    let record = ActiveModel {
        tenant_id: Set(tenant_id),
        operation: Set(operation.to_string()),
        key: Set(key.to_string()),
        request_hash: Set(request_hash.to_string()),
        status_code: Set(i32::from(answer.status_code)),
        location: Set(answer.location.clone()),
        response_body: Set(answer.body.clone()),
        created_at: Set(Utc::now()),
    };
    Records::insert(record).exec_without_returning(db).await?;
    // Expired records go as new ones come: the table holds about a day of keys.
    Records::delete_many()
        .filter(Column::CreatedAt.lt(Utc::now() - RETENTION))
        .exec(db)
        .await
        .map(drop)
}
