use sea_orm_migration::prelude::*;

/// `users.credentials_version`: bumped whenever the password changes or an
/// account is claimed. A sign-in that checked the old password creates its
/// session only if the version is still the one it read (a conditional
/// update that also serializes it with the change), so a login racing a
/// password change cannot keep the attacker in. And on PostgreSQL a unique
/// index on `lower(email)` backs the application's case folding.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::CredentialsVersion).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE UNIQUE INDEX IF NOT EXISTS idx_users_email_lower ON users (lower(email))",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_users_email_lower").await?;
        }
        manager
            .alter_table(Table::alter().table(Users::Table).drop_column(Users::CredentialsVersion).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    CredentialsVersion,
}
