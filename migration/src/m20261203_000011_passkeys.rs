use sea_orm_migration::prelude::*;

use crate::m20261202_000010_two_factor::user_key;

/// Passkeys (WebAuthn):
/// - `passkeys`: one row per registered credential: its id (unique across
///   all users), the credential as the WebAuthn library stores it (public
///   key, signature counter, backup flags, transports), the same counter,
///   flags and transports as columns of their own, a name, when it was
///   registered and last used;
/// - `passkey_challenges`: ceremonies under way (5 minutes, single use):
///   a registration bound to the session that began it, or a sign-in whose
///   handle (SHA-256 stored) the client sends back; the library's state.
///
/// SQLite runs this outside a transaction: every step is `IF NOT EXISTS`,
/// so a run stopped half-way can be run again.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Passkeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Passkeys::UserId).uuid().not_null())
                    .col(ColumnDef::new(Passkeys::CredentialId).binary().not_null().unique_key())
                    .col(ColumnDef::new(Passkeys::Credential).text().not_null())
                    .col(ColumnDef::new(Passkeys::Counter).big_integer().not_null())
                    .col(ColumnDef::new(Passkeys::BackupEligible).boolean().not_null())
                    .col(ColumnDef::new(Passkeys::BackupState).boolean().not_null())
                    .col(ColumnDef::new(Passkeys::Transports).text().null())
                    .col(ColumnDef::new(Passkeys::Name).string_len(100).null())
                    .col(ColumnDef::new(Passkeys::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Passkeys::LastUsedAt).timestamp_with_time_zone().null())
                    .foreign_key(&mut user_key("fk_passkeys_user_id", Passkeys::Table, Passkeys::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkeys_user_id")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasskeyChallenges::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(PasskeyChallenges::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(PasskeyChallenges::Purpose).string_len(16).not_null())
                    .col(ColumnDef::new(PasskeyChallenges::TokenHash).binary().null().unique_key())
                    .col(ColumnDef::new(PasskeyChallenges::UserId).uuid().null())
                    .col(ColumnDef::new(PasskeyChallenges::SessionId).uuid().null())
                    .col(ColumnDef::new(PasskeyChallenges::State).text().not_null())
                    .col(ColumnDef::new(PasskeyChallenges::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(PasskeyChallenges::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut user_key(
                        "fk_passkey_challenges_user_id",
                        PasskeyChallenges::Table,
                        PasskeyChallenges::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_passkey_challenges_session_id", PasskeyChallenges::SessionId),
            ("idx_passkey_challenges_user_id", PasskeyChallenges::UserId),
            ("idx_passkey_challenges_expires_at", PasskeyChallenges::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(PasskeyChallenges::Table)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [PasskeyChallenges::Table.to_string(), Passkeys::Table.to_string()] {
            manager.drop_table(Table::drop().table(Alias::new(table)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Credential,
    Counter,
    BackupEligible,
    BackupState,
    Transports,
    Name,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PasskeyChallenges {
    Table,
    Id,
    Purpose,
    TokenHash,
    UserId,
    SessionId,
    State,
    ExpiresAt,
    CreatedAt,
}
