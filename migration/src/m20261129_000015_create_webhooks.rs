use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Webhook subscriptions per workspace (secrets sealed; the previous one signs
/// too until its grace ends) and their deliveries: one row per event and
/// subscription, written in the transaction of the event, sent by the job queue.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookSubscriptions::Table)
                    .if_not_exists()
                    .col(uuid(WebhookSubscriptions::Id).primary_key())
                    .col(uuid(WebhookSubscriptions::WorkspaceId))
                    .col(text(WebhookSubscriptions::Url))
                    .col(text_null(WebhookSubscriptions::Description))
                    .col(text(WebhookSubscriptions::EventTypes))
                    .col(blob(WebhookSubscriptions::Secret))
                    .col(blob_null(WebhookSubscriptions::PreviousSecret))
                    .col(timestamp_with_time_zone_null(
                        WebhookSubscriptions::PreviousSecretExpiresAt,
                    ))
                    .col(boolean(WebhookSubscriptions::Enabled))
                    .col(text_null(WebhookSubscriptions::DisabledReason))
                    .col(integer(WebhookSubscriptions::ConsecutiveFailures).default(0))
                    .col(timestamp_with_time_zone_null(
                        WebhookSubscriptions::FailingSince,
                    ))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_subscriptions_workspace")
                    .table(WebhookSubscriptions::Table)
                    .col(WebhookSubscriptions::WorkspaceId)
                    .col(WebhookSubscriptions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(uuid(WebhookDeliveries::Id).primary_key())
                    .col(uuid(WebhookDeliveries::SubscriptionId))
                    .col(uuid(WebhookDeliveries::WorkspaceId))
                    .col(uuid_null(WebhookDeliveries::EventId))
                    .col(string(WebhookDeliveries::EventType))
                    .col(text(WebhookDeliveries::Payload))
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts).default(0))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::LastAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_subscription")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::SubscriptionId)
                    .col(WebhookDeliveries::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookSubscriptions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookSubscriptions {
    Table,
    Id,
    WorkspaceId,
    Url,
    Description,
    EventTypes,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    Enabled,
    DisabledReason,
    ConsecutiveFailures,
    FailingSince,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    SubscriptionId,
    WorkspaceId,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    CreatedAt,
    LastAttemptAt,
    NextAttemptAt,
    DeliveredAt,
}
