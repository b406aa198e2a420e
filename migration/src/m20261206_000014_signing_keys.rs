use sea_orm_migration::prelude::*;

/// Signed access tokens (JWT), and an index for the webhook worker:
/// - `signing_keys`: the keys tokens are signed with, newest generation
///   first per algorithm. `kid` is the RFC 7638 thumbprint of the public
///   key; the private key is sealed with the server key (its `kid` is the
///   sealing context). A key is published in the JWKS from `created_at`,
///   signs from `signs_from` (later than `created_at` by at least one JWKS
///   cache lifetime, except for the very first key), and stays published
///   until every token it signed has expired, unless `revoked_at` takes it
///   out at once. The unique `(alg, generation)` is the lock: N instances
///   (or a command line beside them) that try to add the same generation
///   add one key.
/// - `idx_webhook_deliveries_endpoint_due`: the webhook worker asks, per
///   endpoint, whether anything is due (one probe, however long a stalled
///   receiver's backlog).
/// - SQLite: a `session.revoked` event deletes its session (trigger
///   `events_end_session`), so that a sign-out is one statement there too,
///   `INSERT INTO events … SELECT … FROM sessions` (PostgreSQL does it in
///   one statement with `WITH gone AS (DELETE …) INSERT …`). Everywhere
///   else the session is deleted first and the trigger finds nothing.
/// - `sessions.method`: how the session was signed into (`password`,
///   `second_step`, `passkey`, `provider`, `registration`), for the
///   tokens' `amr`. Older sessions have none.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SigningKeys::Kid).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(SigningKeys::Alg).string_len(16).not_null())
                    .col(ColumnDef::new(SigningKeys::Generation).integer().not_null())
                    .col(ColumnDef::new(SigningKeys::PublicJwk).text().not_null())
                    .col(ColumnDef::new(SigningKeys::PrivateKey).text().not_null())
                    .col(ColumnDef::new(SigningKeys::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(SigningKeys::SignsFrom).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(SigningKeys::RevokedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_signing_keys_generation")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::Alg)
                    .col(SigningKeys::Generation)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_endpoint_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE TRIGGER IF NOT EXISTS events_end_session AFTER INSERT ON events \
                     WHEN NEW.type = 'session.revoked' AND NEW.session_id IS NOT NULL \
                     BEGIN DELETE FROM sessions WHERE id = NEW.session_id; END",
                )
                .await?;
        }
        if !manager.has_column("sessions", "method").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(ColumnDef::new(Sessions::Method).string_len(32).null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Sqlite {
            manager.get_connection().execute_unprepared("DROP TRIGGER IF EXISTS events_end_session").await?;
        }
        manager
            .alter_table(Table::alter().table(Sessions::Table).drop_column(Sessions::Method).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_webhook_deliveries_endpoint_due")
                    .table(WebhookDeliveries::Table)
                    .to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(SigningKeys::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    Generation,
    PublicJwk,
    PrivateKey,
    CreatedAt,
    SignsFrom,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Method,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    EndpointId,
    Status,
    NextAttemptAt,
}
