use sea_orm_migration::prelude::*;

use crate::m20261129_000001_create_users::Users as UsersTable;

/// Two-factor sign-in and step-up:
/// - `sessions.authenticated_at` (the last time the session proved the
///   user's presence; existing sessions: their sign-in) and
///   `sessions.assurance_level` (1: one factor, 2: two);
/// - `users.two_factor_enabled` (on the user row, so the session cache and
///   its invalidation triggers cover it like every other user field);
/// - `totp_credentials` (one per user: the confirmed secret and a pending
///   one, both encrypted with the server key, and the last time step used,
///   which makes a code single use), `recovery_codes` (SHA-256 of each),
///   `sign_in_challenges` (the half-finished sign-ins: SHA-256 of the
///   challenge, its attempts, the credentials version it was issued under).
///
/// SQLite runs this outside a transaction: each step checks whether it
/// already happened, so a run stopped half-way can be run again.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("sessions", "authenticated_at").await? {
            // A constant default (SQLite adds no column with another), then
            // every existing session proved presence when it was created.
            let column = ColumnDef::new(Sessions::AuthenticatedAt)
                .timestamp_with_time_zone()
                .not_null()
                .default("1970-01-01 00:00:00+00:00")
                .to_owned();
            manager.alter_table(Table::alter().table(Sessions::Table).add_column(column).to_owned()).await?;
            let update = Query::update()
                .table(Sessions::Table)
                .value(Sessions::AuthenticatedAt, Expr::col(Sessions::CreatedAt))
                .to_owned();
            manager.exec_stmt(update).await?;
        }
        if !manager.has_column("sessions", "assurance_level").await? {
            let column =
                ColumnDef::new(Sessions::AssuranceLevel).small_integer().not_null().default(1).to_owned();
            manager.alter_table(Table::alter().table(Sessions::Table).add_column(column).to_owned()).await?;
        }
        if !manager.has_column("users", "two_factor_enabled").await? {
            let column =
                ColumnDef::new(Users::TwoFactorEnabled).boolean().not_null().default(false).to_owned();
            manager.alter_table(Table::alter().table(Users::Table).add_column(column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(TotpCredentials::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(TotpCredentials::UserId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(TotpCredentials::Secret).text().null())
                    .col(ColumnDef::new(TotpCredentials::PendingSecret).text().null())
                    .col(ColumnDef::new(TotpCredentials::LastStep).big_integer().null())
                    .col(ColumnDef::new(TotpCredentials::ConfirmedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(TotpCredentials::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(TotpCredentials::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut user_key(
                        "fk_totp_credentials_user_id",
                        TotpCredentials::Table,
                        TotpCredentials::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(RecoveryCodes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(RecoveryCodes::CodeHash).binary().not_null())
                    .col(ColumnDef::new(RecoveryCodes::UsedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(RecoveryCodes::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut user_key(
                        "fk_recovery_codes_user_id",
                        RecoveryCodes::Table,
                        RecoveryCodes::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recovery_codes_user_code")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .col(RecoveryCodes::CodeHash)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignInChallenges::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SignInChallenges::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(SignInChallenges::UserId).uuid().not_null())
                    .col(ColumnDef::new(SignInChallenges::TokenHash).binary().not_null().unique_key())
                    .col(ColumnDef::new(SignInChallenges::Method).string_len(64).not_null())
                    .col(ColumnDef::new(SignInChallenges::CredentialsVersion).big_integer().not_null())
                    .col(ColumnDef::new(SignInChallenges::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(SignInChallenges::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(SignInChallenges::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut user_key(
                        "fk_sign_in_challenges_user_id",
                        SignInChallenges::Table,
                        SignInChallenges::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_sign_in_challenges_user_id", SignInChallenges::UserId),
            ("idx_sign_in_challenges_expires_at", SignInChallenges::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(SignInChallenges::Table)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SignInChallenges::Table.to_string(),
            RecoveryCodes::Table.to_string(),
            TotpCredentials::Table.to_string(),
        ] {
            manager.drop_table(Table::drop().table(Alias::new(table)).if_exists().to_owned()).await?;
        }
        for (table, column) in [
            ("users", "two_factor_enabled"),
            ("sessions", "assurance_level"),
            ("sessions", "authenticated_at"),
        ] {
            if manager.has_column(table, column).await? {
                manager
                    .alter_table(
                        Table::alter().table(Alias::new(table)).drop_column(Alias::new(column)).to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// A foreign key to `users` whose rows go with their user.
pub(crate) fn user_key<T: Iden + 'static, C: Iden + 'static>(
    name: &str,
    table: T,
    column: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(UsersTable::Table, UsersTable::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    AuthenticatedAt,
    AssuranceLevel,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TwoFactorEnabled,
}

#[derive(DeriveIden)]
enum TotpCredentials {
    Table,
    UserId,
    Secret,
    PendingSecret,
    LastStep,
    ConfirmedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SignInChallenges {
    Table,
    Id,
    UserId,
    TokenHash,
    Method,
    CredentialsVersion,
    Attempts,
    ExpiresAt,
    CreatedAt,
}
