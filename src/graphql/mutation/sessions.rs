use async_graphql::{Context, ID, Object};
use domain::session;
use uuid::Uuid;

use crate::graphql::{
    GqlResult,
    guard::{SignedIn, signed_in},
};

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Ends the current session at once (its token stops working everywhere)
    /// and clears the cookie. `UNAUTHENTICATED` without a live session.
    #[graphql(guard = "SignedIn")]
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        session::revoke(auth, current, current.session.id).await.gql()?;
        super::forget_session_cookie(ctx);
        domain::telemetry::AuthEvent::Logout.count();
        Ok(true)
    }

    /// Signs out one of the caller's own sessions: `true` when it was live and
    /// is now revoked, `false` when the caller has no such session (another
    /// user's session id answers exactly like an unknown one). Revoking the
    /// current session works like `logout`.
    #[graphql(guard = "SignedIn")]
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `Session.id` to sign out.")] id: ID,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let Ok(session_id) = Uuid::parse_str(&id) else {
            return Ok(false);
        };
        let revoked = session::revoke(auth, current, session_id).await.gql()?;
        if revoked && session_id == current.session.id {
            super::forget_session_cookie(ctx);
        }
        Ok(revoked)
    }

    /// Signs out every session of the caller but the current one; returns how many.
    #[graphql(guard = "SignedIn")]
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let (auth, current) = signed_in(ctx)?;
        let revoked = session::revoke_all_but_current(auth, current).await.gql()?;
        Ok(i32::try_from(revoked).unwrap_or(i32::MAX))
    }
}
