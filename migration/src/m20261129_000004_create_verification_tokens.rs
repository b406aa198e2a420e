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
                    .table(VerificationTokens::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(VerificationTokens::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(VerificationTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(VerificationTokens::Purpose).string_len(32).not_null())
                    .col(ColumnDef::new(VerificationTokens::TokenHash).binary().not_null().unique_key())
                    .col(ColumnDef::new(VerificationTokens::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(VerificationTokens::ConsumedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(VerificationTokens::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_verification_tokens_user_id")
                            .from(VerificationTokens::Table, VerificationTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_verification_tokens_user_purpose")
                    .table(VerificationTokens::Table)
                    .col(VerificationTokens::UserId)
                    .col(VerificationTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_verification_tokens_expires_at")
                    .table(VerificationTokens::Table)
                    .col(VerificationTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(VerificationTokens::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum VerificationTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenHash,
    ExpiresAt,
    ConsumedAt,
    CreatedAt,
}
