use sea_orm_migration::prelude::*;

/// Drops the six provider-token columns of `accounts` (access, refresh and
/// ID tokens, their expiries, the scope). authgate never stored a
/// provider's tokens (it only needs the identity at sign-in), so they were
/// always NULL; keeping them invited storing secrets nobody protects.
/// SQLite drops one column per statement, outside a transaction, so each
/// drop first checks the column is still there (a run stopped half-way can
/// be run again). Binaries from before this migration still name these
/// columns: stop them before it runs (docs/deployment.md, Migrations).
#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [Accounts; 6] = [
    Accounts::AccessToken,
    Accounts::RefreshToken,
    Accounts::IdToken,
    Accounts::AccessTokenExpiresAt,
    Accounts::RefreshTokenExpiresAt,
    Accounts::Scope,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
            if manager.has_column("accounts", &column.to_string()).await? {
                manager
                    .alter_table(Table::alter().table(Accounts::Table).drop_column(column).to_owned())
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
            if manager.has_column("accounts", &column.to_string()).await? {
                continue;
            }
            let mut definition = ColumnDef::new(column);
            match column {
                Accounts::AccessTokenExpiresAt | Accounts::RefreshTokenExpiresAt => {
                    definition.timestamp_with_time_zone().null()
                }
                _ => definition.text().null(),
            };
            manager
                .alter_table(Table::alter().table(Accounts::Table).add_column(definition).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Accounts {
    Table,
    AccessToken,
    RefreshToken,
    IdToken,
    AccessTokenExpiresAt,
    RefreshTokenExpiresAt,
    Scope,
}
