use sea_orm_migration::prelude::*;

/// `sign_in_challenges.browser_hash`: the SHA-256 of a random value the
/// OAuth callback gives the browser in an HttpOnly cookie with the
/// `redirectTo?challenge=…` redirect. A challenge that came from a provider
/// completes only with that cookie, so a challenge leaked from the URL
/// (history, a `Referer`, a log) is worth nothing in another browser.
/// Password challenges (`extensions.challenge` of `login`) carry none.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_column("sign_in_challenges", "browser_hash").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(SignInChallenges::Table)
                    .add_column(ColumnDef::new(SignInChallenges::BrowserHash).binary().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SignInChallenges::Table)
                    .drop_column(SignInChallenges::BrowserHash)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SignInChallenges {
    Table,
    BrowserHash,
}
