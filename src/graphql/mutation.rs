use async_graphql::{Context, Object};

use super::{
    guard::{SessionGuard, current_session},
    types::{AuthPayload, LoginInput, RegisterInput},
};
use crate::{
    auth::{AuthContext, ClientMeta, account, session},
    error::GqlResult,
    http::cookie,
};

pub struct MutationRoot;

/// Sign up, sign in and sign out.
///
/// Errors carry `extensions.code`: `UNAUTHENTICATED`, `BAD_USER_INPUT` (with
/// `extensions.field`), `INVALID_CREDENTIALS`, `EMAIL_TAKEN`,
/// `RATE_LIMITED` (with `extensions.retryAfter`), `SERVICE_UNAVAILABLE`,
/// `INTERNAL_SERVER_ERROR`.
#[Object]
impl MutationRoot {
    /// Creates an account with email and password and signs it in: returns the
    /// token and sets the `session_token` cookie. `EMAIL_TAKEN` when the email
    /// (case-insensitively) already has an account; `BAD_USER_INPUT` for an
    /// invalid email, a password outside 8..128 characters or a too-long name.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> async_graphql::Result<AuthPayload> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = ctx.data_opt::<ClientMeta>().cloned().unwrap_or_default();
        let signed = account::register(auth, input.into(), &meta).await.gql()?;
        Ok(signed_in(ctx, auth, signed))
    }

    /// Signs in with email and password: returns the token and sets the
    /// `session_token` cookie. `INVALID_CREDENTIALS` for an unknown email or a
    /// wrong password alike.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> async_graphql::Result<AuthPayload> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = ctx.data_opt::<ClientMeta>().cloned().unwrap_or_default();
        let signed = account::login(auth, &input.email, input.password, &meta).await.gql()?;
        Ok(signed_in(ctx, auth, signed))
    }

    /// Ends the current session at once (its token stops working everywhere)
    /// and clears the cookie. `UNAUTHENTICATED` without a live session.
    #[graphql(guard = "SessionGuard")]
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let auth = ctx.data::<AuthContext>()?;
        let current = current_session(ctx).await.gql()?;
        session::revoke(auth, current.user.id, current.session.id).await.gql()?;
        ctx.append_http_header(axum::http::header::SET_COOKIE, cookie::cleared(auth));
        Ok(true)
    }
}

/// Sets the session cookie alongside the token returned in the payload.
fn signed_in(ctx: &Context<'_>, auth: &AuthContext, signed: account::SignedIn) -> AuthPayload {
    ctx.append_http_header(
        axum::http::header::SET_COOKIE,
        cookie::session(&signed.token, &signed.session, auth),
    );
    signed.into()
}
