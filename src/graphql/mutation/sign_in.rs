use async_graphql::{Context, Object};
use domain::{
    AuthContext, sign_in,
    sign_in::{password, register},
};

use crate::graphql::{
    GqlResult,
    effects::{self, Effect},
    guard::client_meta,
    types::{AuthPayload, LoginInput, RegisterInput},
};

#[derive(Default)]
pub struct SignInMutation;

#[Object]
impl SignInMutation {
    /// Creates an account with email and password and signs it in: returns the
    /// token and sets the `session_token` cookie (and a long-lived device
    /// cookie). `EMAIL_TAKEN` when the email (case-insensitively) already has
    /// an account; `BAD_USER_INPUT` for an invalid email, a password outside
    /// 8..128 characters or a name too long or with invisible or
    /// direction-changing characters; `RATE_LIMITED` per client, per target
    /// address and server-wide. When the server requires verified addresses,
    /// the account is created and the link mailed, but the answer is
    /// `EMAIL_NOT_VERIFIED` (no session); in privacy mode a taken address
    /// answers exactly that too (its owner is mailed instead).
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Email, password and an optional name.")] input: RegisterInput,
    ) -> async_graphql::Result<AuthPayload> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = client_meta(ctx);
        let signed = register::register(auth, input.into(), &meta).await.gql()?;
        Ok(started_session(ctx, signed))
    }

    /// Signs in with email and password: returns the token and sets the
    /// `session_token` cookie. `INVALID_CREDENTIALS` for an unknown email or a
    /// wrong password alike; `EMAIL_NOT_VERIFIED` (after the password check)
    /// when the server requires verified addresses (a fresh link is mailed
    /// when the last one expired); `SECOND_FACTOR_REQUIRED` (after the
    /// password check) when two-factor is on: no session yet, finish with
    /// `completeSignIn` and `extensions.challenge`; `RATE_LIMITED` after too
    /// many attempts (a client with this account's device cookie has a
    /// budget of its own).
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Email and password.")] input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = client_meta(ctx);
        let signed = password::login(auth, &input.email, input.password, &meta).await.gql()?;
        Ok(started_session(ctx, signed))
    }
}

/// The session cookie (and the device cookie) alongside the token returned
/// in the payload.
pub(super) fn started_session(ctx: &Context<'_>, signed: sign_in::SignedIn) -> AuthPayload {
    let (token, expires_at) = (signed.token.clone(), signed.session.expires_at);
    effects::record(ctx, Effect::SessionCookie { token, expires_at });
    if let Some(device) = &signed.device {
        effects::record(ctx, Effect::DeviceTrusted(device.clone()));
    }
    signed.into()
}
