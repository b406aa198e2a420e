use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

/// The event record and the webhooks that read it:
/// - `events`: one thin row per change to a user, a session or a way in,
///   per sign-in and per refused sign-in of an existing account (those
///   are counted into one row per account and 15 minutes: `count`).
///   Written in the transaction of the change it describes. `tx` orders
///   the record for readers that must miss nothing (webhooks, the
///   revocation feed): on PostgreSQL the writing transaction's id, since
///   ids are handed out before commit and concurrent transactions commit
///   out of id order; a reader takes only rows of transactions older than
///   every one still running (`pg_snapshot_xmin`). SQLite has one writer
///   at a time, so id order is commit order: `tx` is 0.
///   No foreign key to `users`: a deleted user's record stays.
/// - `webhook_endpoints`: where to deliver, which types, the signing
///   secret (sealed with the server key) and the previous one during a
///   rotation.
/// - `webhook_deliveries`: one row per event and endpoint, claimed by one
///   instance at a time (`locked_until`), retried until delivered or given up.
/// - `event_cursors`: how far a reader of the record (the webhook fan-out)
///   has come, as `(tx, id)`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tx_default = match manager.get_database_backend() {
            DatabaseBackend::Postgres => Expr::cust("(pg_current_xact_id()::text::bigint)"),
            _ => Expr::value(0),
        };
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Events::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Events::Tx).big_integer().not_null().default(tx_default))
                    .col(ColumnDef::new(Events::Type).string_len(48).not_null())
                    .col(ColumnDef::new(Events::OccurredAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Events::LastAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Events::Count).integer().not_null().default(1))
                    .col(ColumnDef::new(Events::ActorId).uuid().null())
                    .col(ColumnDef::new(Events::ImpersonatorId).uuid().null())
                    .col(ColumnDef::new(Events::SubjectUserId).uuid().null())
                    .col(ColumnDef::new(Events::SessionId).uuid().null())
                    .col(ColumnDef::new(Events::IpAddress).string_len(64).null())
                    .col(ColumnDef::new(Events::UserAgent).string_len(512).null())
                    .col(ColumnDef::new(Events::RequestId).string_len(128).null())
                    .col(ColumnDef::new(Events::Data).text().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("idx_events_subject", vec![Events::SubjectUserId, Events::Id]),
            ("idx_events_order", vec![Events::Tx, Events::Id]),
            ("idx_events_occurred_at", vec![Events::OccurredAt]),
            ("idx_events_type", vec![Events::Type, Events::Id]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Events::Table).if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(WebhookEndpoints::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookEndpoints::Url).string_len(2048).not_null())
                    .col(ColumnDef::new(WebhookEndpoints::EventTypes).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::PreviousSecret).text().null())
                    .col(ColumnDef::new(WebhookEndpoints::Enabled).boolean().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::DisabledReason).string_len(256).null())
                    .col(ColumnDef::new(WebhookEndpoints::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(WebhookDeliveries::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookDeliveries::EndpointId).uuid().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::EventId).big_integer().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Status).string_len(16).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::LockedUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(WebhookDeliveries::LastStatus).integer().null())
                    .col(ColumnDef::new(WebhookDeliveries::LastError).string_len(512).null())
                    .col(ColumnDef::new(WebhookDeliveries::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::DeliveredAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_endpoint")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_once")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::EventId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventCursors::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(EventCursors::Name).string_len(32).not_null().primary_key())
                    .col(ColumnDef::new(EventCursors::Tx).big_integer().not_null())
                    .col(ColumnDef::new(EventCursors::EventId).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            EventCursors::Table.into_iden(),
            Events::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Tx,
    Type,
    OccurredAt,
    LastAt,
    Count,
    ActorId,
    ImpersonatorId,
    SubjectUserId,
    SessionId,
    IpAddress,
    UserAgent,
    RequestId,
    Data,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Url,
    EventTypes,
    Secret,
    PreviousSecret,
    Enabled,
    DisabledReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventId,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum EventCursors {
    Table,
    Name,
    Tx,
    EventId,
}
