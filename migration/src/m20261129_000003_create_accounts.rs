use sea_orm_migration::prelude::*;

use crate::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Accounts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Accounts::UserId).uuid().not_null())
                    .col(ColumnDef::new(Accounts::ProviderId).string_len(64).not_null())
                    .col(ColumnDef::new(Accounts::AccountId).string_len(255).not_null())
                    .col(ColumnDef::new(Accounts::PasswordHash).text().null())
                    // Columns an OAuth provider needs (kept encrypted by the service that fills them).
                    .col(ColumnDef::new(Accounts::AccessToken).text().null())
                    .col(ColumnDef::new(Accounts::RefreshToken).text().null())
                    .col(ColumnDef::new(Accounts::IdToken).text().null())
                    .col(ColumnDef::new(Accounts::AccessTokenExpiresAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Accounts::RefreshTokenExpiresAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Accounts::Scope).text().null())
                    .col(ColumnDef::new(Accounts::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Accounts::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_accounts_user_id")
                            .from(Accounts::Table, Accounts::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_accounts_provider_account")
                    .table(Accounts::Table)
                    .col(Accounts::ProviderId)
                    .col(Accounts::AccountId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_accounts_user_id")
                    .table(Accounts::Table)
                    .col(Accounts::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Accounts::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    UserId,
    ProviderId,
    AccountId,
    PasswordHash,
    AccessToken,
    RefreshToken,
    IdToken,
    AccessTokenExpiresAt,
    RefreshTokenExpiresAt,
    Scope,
    CreatedAt,
    UpdatedAt,
}
