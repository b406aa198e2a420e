use async_graphql::{Context, Json, Object};
use domain::{
    AuthContext,
    error::{AuthError, Input},
    factors::{recovery, totp},
    sign_in::{reauthenticate, second_step},
};

use super::sign_in::started_session;
use crate::graphql::{
    GqlResult,
    guard::{SignedIn, client_meta, signed_in},
    types::{AuthPayload, CompleteSignInInput, ReauthenticateInput, TotpSetup},
};

#[derive(Default)]
pub struct TwoFactorMutation;

#[Object]
impl TwoFactorMutation {
    /// Starts setting up an authenticator app: a new secret, its
    /// `otpauth://` URI and QR code. Nothing changes until
    /// `confirmTotpSetup`; calling it again starts over. Step-up
    /// (`REAUTHENTICATION_REQUIRED`); `EMAIL_NOT_VERIFIED` until the address
    /// is proved; `RATE_LIMITED` past the factor-change budget.
    #[graphql(guard = "SignedIn")]
    async fn start_totp_setup(&self, ctx: &Context<'_>) -> async_graphql::Result<TotpSetup> {
        let (auth, current) = signed_in(ctx)?;
        let setup = totp::start_setup(auth, current).await.gql()?;
        Ok(TotpSetup { secret: setup.secret, uri: setup.uri, qr_code_svg: setup.qr_code_svg })
    }

    /// Turns two-factor on with a current code from the app just set up,
    /// and returns 10 recovery codes: the only time they are shown. The
    /// session making the call counts as two factors from now on.
    /// `BAD_USER_INPUT` (field `code`) for a wrong code or no setup
    /// started; `EMAIL_NOT_VERIFIED` until the address is proved;
    /// `RATE_LIMITED` past the account's budget of code checks. Ends the
    /// trust of every device cookie; mails the owner a notice.
    #[graphql(guard = "SignedIn")]
    async fn confirm_totp_setup(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The app's current 6-digit code.")] code: String,
    ) -> async_graphql::Result<Vec<String>> {
        let (auth, current) = signed_in(ctx)?;
        totp::confirm_setup(auth, current, &code).await.gql()
    }

    /// Turns two-factor off: the authenticator and recovery codes are
    /// removed. `false` when it was not on. Step-up
    /// (`REAUTHENTICATION_REQUIRED`). Ends the trust of every
    /// device cookie; mails the owner a notice.
    #[graphql(guard = "SignedIn")]
    async fn disable_two_factor(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        totp::disable(auth, current).await.gql()
    }

    /// Replaces every recovery code with 10 new ones, shown only now.
    /// Step-up (`REAUTHENTICATION_REQUIRED`); `TWO_FACTOR_NOT_ENABLED` when two-factor is off;
    /// `RATE_LIMITED` past the factor-change budget; mails the owner a
    /// notice (repeats within a window: one).
    #[graphql(guard = "SignedIn")]
    async fn regenerate_recovery_codes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let (auth, current) = signed_in(ctx)?;
        recovery::regenerate_recovery_codes(auth, current).await.gql()
    }

    /// Finishes a sign-in that answered `SECOND_FACTOR_REQUIRED`: returns
    /// the token and sets the `session_token` cookie, with
    /// `assuranceLevel` 2. `INVALID_CREDENTIALS` for a wrong code (each
    /// counts like a wrong password); `INVALID_TOKEN` for a challenge that
    /// is unknown, older than 5 minutes, spent or past 5 codes;
    /// `RATE_LIMITED` like `login`.
    async fn complete_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The challenge and a code.")] input: CompleteSignInInput,
    ) -> async_graphql::Result<AuthPayload> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = client_meta(ctx);
        let signed = second_step::complete(auth, &input.challenge, &input.code, &meta).await.gql()?;
        Ok(started_session(ctx, signed))
    }

    /// Proves presence again for the current session, for the step-up
    /// operations: a passkey of the caller's (raises `assuranceLevel` to 2),
    /// or the password when the account has one, plus a code when
    /// two-factor is on (which raises `assuranceLevel` to 2).
    /// `INVALID_CREDENTIALS` when wrong; `BAD_USER_INPUT` when a required
    /// part is missing; `INVALID_TOKEN` for a passkey ceremony that is
    /// unknown, expired or spent; `REAUTHENTICATION_REQUIRED` for an account with
    /// neither (sign in again through its provider); `RATE_LIMITED`.
    #[graphql(guard = "SignedIn")]
    async fn reauthenticate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password and/or a code.")] input: ReauthenticateInput,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let meta = client_meta(ctx);
        let passkey = match (input.passkey, input.challenge) {
            (Some(Json(credential)), Some(challenge)) => {
                Some(reauthenticate::PasskeyProof { challenge, credential })
            }
            (Some(_), None) => {
                return Err(AuthError::bad_input(Input::Challenge, "a passkey needs its challenge")).gql();
            }
            (None, _) => None,
        };
        reauthenticate::reauthenticate(auth, current, input.password, input.code, passkey, &meta)
            .await
            .gql()?;
        Ok(true)
    }
}
