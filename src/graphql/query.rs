use async_graphql::{Context, Object};
use domain::AuthContext;

use super::{
    guard::{SignedIn, signed_in},
    types::User,
};

pub struct QueryRoot;

/// Read the signed-in user.
///
/// Errors carry `extensions.code`: `UNAUTHENTICATED` (no live session),
/// `SERVICE_UNAVAILABLE` (database unreachable; retry), `INTERNAL_SERVER_ERROR`.
#[Object]
impl QueryRoot {
    /// The signed-in user. `UNAUTHENTICATED` without a live session.
    #[graphql(guard = "SignedIn")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let (_, current) = signed_in(ctx)?;
        Ok(User(current.user.clone()))
    }

    /// Names of the OAuth providers this server offers (for `startOAuth`),
    /// sorted; empty when none is configured.
    async fn providers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        Ok(domain::sign_in::oauth::providers(ctx.data::<AuthContext>()?))
    }
}
