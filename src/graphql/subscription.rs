use async_graphql::{Context, ID, Subscription};
use futures_util::{Stream, StreamExt};

use super::{
    GqlResult,
    guard::{SignedIn, signed_in},
    types::SecurityEvent,
};

pub struct SubscriptionRoot;

/// Live updates, as Server-Sent Events: `POST /graphql` with
/// `Accept: text/event-stream` (the graphql-sse protocol's distinct
/// connections mode; docs/api.md).
#[Subscription]
impl SubscriptionRoot {
    /// The signed-in user's security events as they happen (a sign-in
    /// elsewhere, a password change, a session ended, …), after the events
    /// since `after` (the last event id seen: resume across a reconnect).
    /// Ends when this session ends: the `session.revoked` event of this
    /// session is the last one sent; `user.deleted` too.
    /// `UNAUTHENTICATED` without a live session.
    #[graphql(guard = "SignedIn")]
    async fn security_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The id of the last event seen: the stream begins with those after it (at most 100)."
        )]
        after: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = SecurityEvent> + use<>> {
        let (auth, current) = signed_in(ctx)?;
        let after = after
            .map(|id| {
                id.parse::<i64>().ok().filter(|id| *id >= 0).ok_or_else(|| {
                    domain::error::AuthError::bad_input(domain::error::Input::After, "not an event id")
                })
            })
            .transpose()
            .gql()?;
        let stream = domain::session::live::follow(auth, current, after).await.gql()?;
        Ok(stream.map(SecurityEvent))
    }
}
