use async_graphql::{Context, Object, SimpleObject};
use domain::access;

use crate::graphql::{
    GqlResult,
    guard::{SignedIn, signed_in},
    types::DateTime,
};

/// A signed access token (a JWT, RFC 9068) for one of the app's services.
#[derive(SimpleObject)]
pub struct AccessToken {
    /// The JWT: verify it with the keys of `/.well-known/jwks.json`.
    pub token: String,
    /// When it expires (`AUTHGATE_JWT_TTL`, or the session's end if sooner).
    pub expires_at: DateTime,
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// A short-lived signed token of the current session for `audience`,
    /// which the app's services verify without calling authgate (docs/tokens.md).
    /// `BAD_USER_INPUT` (`audience`): not one of `AUTHGATE_JWT_AUDIENCES`.
    #[graphql(guard = "SignedIn")]
    async fn access_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service the token is for (its `aud`).")] audience: String,
    ) -> async_graphql::Result<AccessToken> {
        let (auth, current) = signed_in(ctx)?;
        let minted = access::mint(auth, current, &audience).await.gql()?;
        let token = secrecy::ExposeSecret::expose_secret(&minted.token).to_owned();
        Ok(AccessToken { token, expires_at: DateTime(minted.expires_at) })
    }
}
