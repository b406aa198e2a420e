use sea_orm_migration::prelude::*;

use crate::m20261202_000010_two_factor::user_key;

/// Admin:
/// - `user_roles`: a user's roles, one row each (`admin`, …), who granted
///   it and when; indexed by role for the user list's filter;
/// - `users.banned_at`, `banned_until`, `ban_reason`: a ban (no `until`:
///   until lifted), read by the admission gate on every way in and every
///   session use;
/// - `sessions.impersonator_id`: the admin an impersonation session acts
///   for, and `impersonator_session_id`: the admin's session that started
///   it (the impersonation counts only while that one lives);
/// - indexes for the admin's user list: newest first by `(created_at, id)`,
///   and the search by the start of the email or the name (PostgreSQL:
///   pattern-operator indexes; SQLite: the email's unique index, and one on
///   `lower(name)`).
///
/// SQLite runs this outside a transaction: every step can run again.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(UserRoles::UserId).uuid().not_null())
                    .col(ColumnDef::new(UserRoles::Role).string_len(64).not_null())
                    .col(ColumnDef::new(UserRoles::GrantedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(UserRoles::GrantedBy).uuid().null())
                    .primary_key(Index::create().col(UserRoles::UserId).col(UserRoles::Role))
                    .foreign_key(&mut user_key("fk_user_roles_user_id", UserRoles::Table, UserRoles::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_roles_role")
                    .table(UserRoles::Table)
                    .col(UserRoles::Role)
                    .col(UserRoles::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for column in [Users::BannedAt, Users::BannedUntil] {
            if !manager.has_column("users", column.to_string()).await? {
                let def = ColumnDef::new(column).timestamp_with_time_zone().null().to_owned();
                manager.alter_table(Table::alter().table(Users::Table).add_column(def).to_owned()).await?;
            }
        }
        if !manager.has_column("users", Users::BanReason.to_string()).await? {
            let def = ColumnDef::new(Users::BanReason).string_len(500).null().to_owned();
            manager.alter_table(Table::alter().table(Users::Table).add_column(def).to_owned()).await?;
        }
        for column in [Sessions::ImpersonatorId, Sessions::ImpersonatorSessionId] {
            if !manager.has_column("sessions", column.to_string()).await? {
                let def = ColumnDef::new(column).uuid().null().to_owned();
                manager.alter_table(Table::alter().table(Sessions::Table).add_column(def).to_owned()).await?;
            }
        }
        // The impersonations an admin runs, found when the admin is banned,
        // deleted or has their roles changed.
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_impersonator_id")
                    .table(Sessions::Table)
                    .col(Sessions::ImpersonatorId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_created_at_id")
                    .table(Users::Table)
                    .col(Users::CreatedAt)
                    .col(Users::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            // `LIKE 'prefix%'` uses a b-tree only with the pattern operators,
            // whatever the database's collation.
            connection
                .execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_users_email_prefix ON users (email text_pattern_ops)",
                )
                .await?;
            connection
                .execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_users_name_prefix ON users (lower(name) text_pattern_ops)",
                )
                .await?;
        } else {
            // SQLite compares bytes: a range on `lower(name)` is a prefix.
            connection
                .execute_unprepared("CREATE INDEX IF NOT EXISTS idx_users_name_lower ON users (lower(name))")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for index in ["idx_users_name_prefix", "idx_users_email_prefix", "idx_users_name_lower"] {
            connection.execute_unprepared(&format!("DROP INDEX IF EXISTS {index}")).await?;
        }
        manager
            .drop_index(
                Index::drop().name("idx_users_created_at_id").table(Users::Table).if_exists().to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Sessions::Table).drop_column(Sessions::ImpersonatorId).to_owned(),
            )
            .await?;
        for column in [Users::BanReason, Users::BannedUntil, Users::BannedAt] {
            manager.alter_table(Table::alter().table(Users::Table).drop_column(column).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(UserRoles::Table).if_exists().to_owned()).await
    }
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    UserId,
    Role,
    GrantedAt,
    GrantedBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    CreatedAt,
    BannedAt,
    BannedUntil,
    BanReason,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    ImpersonatorId,
    ImpersonatorSessionId,
}
