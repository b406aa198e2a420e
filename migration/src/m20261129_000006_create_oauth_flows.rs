use sea_orm_migration::prelude::*;

use crate::m20261129_000001_create_users::Users;

/// OAuth sign-ins in progress: what `startOAuth` must remember until the
/// provider sends the browser back (single use, short-lived).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthFlows::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(OauthFlows::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(OauthFlows::StateHash).binary().not_null().unique_key())
                    .col(ColumnDef::new(OauthFlows::Provider).string_len(64).not_null())
                    .col(ColumnDef::new(OauthFlows::PkceVerifier).string_len(128).not_null())
                    .col(ColumnDef::new(OauthFlows::Nonce).string_len(128).not_null())
                    .col(ColumnDef::new(OauthFlows::RedirectTo).string_len(2048).not_null())
                    .col(ColumnDef::new(OauthFlows::LinkUserId).uuid().null())
                    .col(ColumnDef::new(OauthFlows::LinkSessionId).uuid().null())
                    .col(ColumnDef::new(OauthFlows::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(OauthFlows::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_oauth_flows_link_user_id")
                            .from(OauthFlows::Table, OauthFlows::LinkUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_oauth_flows_expires_at")
                    .table(OauthFlows::Table)
                    .col(OauthFlows::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(OauthFlows::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum OauthFlows {
    Table,
    Id,
    StateHash,
    Provider,
    PkceVerifier,
    Nonce,
    RedirectTo,
    LinkUserId,
    LinkSessionId,
    ExpiresAt,
    CreatedAt,
}
