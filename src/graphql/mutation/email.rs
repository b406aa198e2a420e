use async_graphql::{Context, Object};
use domain::{
    AuthContext,
    mailed::{reset, verification},
};

use crate::graphql::{
    GqlResult,
    guard::{SignedIn, client_meta, signed_in},
    types::{ResetPasswordInput, User},
};

#[derive(Default)]
pub struct EmailMutation;

#[Object]
impl EmailMutation {
    /// Mails the signed-in user a link to confirm their email address (a new
    /// single-use token; earlier ones stop working). `true` without sending
    /// anything when the address is already verified. `RATE_LIMITED` past
    /// the mail budget of the client or the address.
    #[graphql(guard = "SignedIn")]
    async fn request_email_verification(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        verification::request_verification(auth, &current.user, &client_meta(ctx)).await.gql()?;
        Ok(true)
    }

    /// Confirms the email address with the token from the mailed link (no
    /// session needed: the link may be opened on another device).
    /// `INVALID_TOKEN` when the token is unknown, expired or already used;
    /// `RATE_LIMITED` past the client's budget of token redemptions.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the verification link.")] token: String,
    ) -> async_graphql::Result<User> {
        let auth = ctx.data::<AuthContext>()?;
        let user = verification::verify_email(auth, &token, &client_meta(ctx)).await.gql()?;
        Ok(User(user))
    }

    /// Mails a password reset link when an account has this email. Always
    /// `true`, whether or not it exists, in the same time. `BAD_USER_INPUT`
    /// (field `email`) only for a malformed address; `RATE_LIMITED` past the
    /// mail budget of the client or the address.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email address (any case).")] email: String,
    ) -> async_graphql::Result<bool> {
        let auth = ctx.data::<AuthContext>()?;
        reset::request_password_reset(auth, &email, &client_meta(ctx)).await.gql()?;
        Ok(true)
    }

    /// Sets a new password with the token from the mailed link: spends the
    /// token, marks the email verified, signs out every session and mails
    /// the owner a notice; with `removeProviderLinks`, also removes every
    /// provider link and every passkey.
    /// `INVALID_TOKEN` for a bad token; `BAD_USER_INPUT` (field `newPassword`)
    /// for a password outside the policy; `RATE_LIMITED` past the client's
    /// budget of token redemptions.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the reset link and the new password.")] input: ResetPasswordInput,
    ) -> async_graphql::Result<bool> {
        let auth = ctx.data::<AuthContext>()?;
        let reset = reset::Reset {
            token: input.token,
            new_password: input.new_password,
            remove_provider_links: input.remove_provider_links,
        };
        reset::reset_password(auth, reset, &client_meta(ctx)).await.gql()?;
        Ok(true)
    }
}
