use async_graphql::{Context, ID, Object};
use domain::{AuthContext, account, sign_in::oauth};

use crate::graphql::{
    GqlResult,
    effects::{self, Effect},
    guard::{SignedIn, client_meta, signed_in},
};

#[derive(Default)]
pub struct OAuthMutation;

#[Object]
impl OAuthMutation {
    /// Starts signing in with an OAuth provider: returns the provider's
    /// authorization URL to send the browser to, and sets the `oauth_state`
    /// cookie that the callback checks (call it from the browser that will
    /// follow the URL). The provider sends the browser back to
    /// `/auth/callback/{provider}`, which signs in (or up) and redirects to
    /// `redirectTo`; for a user with two-factor on it signs nobody in but
    /// redirects to `redirectTo?challenge=…`, to finish with
    /// `completeSignIn`. `BAD_USER_INPUT` (field `provider`) for a provider that is
    /// not configured; `REDIRECT_NOT_ALLOWED` when `redirectTo` is not on an
    /// allowed origin; `SERVICE_UNAVAILABLE` when the provider cannot be reached;
    /// `RATE_LIMITED` past the client's budget of OAuth sign-ins.
    #[graphql(name = "startOAuth")]
    async fn start_oauth(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A name from `providers`.")] provider: String,
        #[graphql(desc = "Absolute URL to land on afterwards; the app's URL when omitted.")]
        redirect_to: Option<String>,
    ) -> async_graphql::Result<String> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = client_meta(ctx);
        let started = oauth::start(auth, &provider, redirect_to.as_deref(), None, &meta).await.gql()?;
        Ok(started_url(ctx, started))
    }

    /// Like `startOAuth`, for the signed-in user: the callback links the
    /// provider account to this user instead of signing in.
    /// `EMAIL_NOT_VERIFIED` until the user's email is verified;
    /// `REAUTHENTICATION_REQUIRED` unless the session proved presence within
    /// the re-authentication window (and has two factors when two-factor is on);
    /// `ACCOUNT_ALREADY_LINKED` (on the callback) when that provider account
    /// belongs to another user; `RATE_LIMITED` like `startOAuth`.
    #[graphql(guard = "SignedIn", name = "linkOAuth")]
    async fn link_oauth(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A name from `providers`.")] provider: String,
        #[graphql(desc = "Absolute URL to land on afterwards; the app's URL when omitted.")]
        redirect_to: Option<String>,
    ) -> async_graphql::Result<String> {
        let (auth, current) = signed_in(ctx)?;
        let meta = client_meta(ctx);
        let started =
            oauth::start(auth, &provider, redirect_to.as_deref(), Some(current), &meta).await.gql()?;
        Ok(started_url(ctx, started))
    }

    /// Removes one of the caller's sign-in methods (an id from
    /// `me { accounts { id } }`). `false` when the caller has no such
    /// account; `LAST_SIGN_IN_METHOD` when it is the only one left;
    /// `REAUTHENTICATION_REQUIRED` unless the session proved presence within
    /// the re-authentication window (and has two factors when two-factor is on).
    #[graphql(guard = "SignedIn")]
    async fn unlink_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: ID,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let Ok(account_id) = uuid::Uuid::parse_str(&id) else { return Ok(false) };
        oauth::unlink(auth, current, account_id).await.gql()
    }

    /// Gives a password to a user who has none (signed up through OAuth), so
    /// they can also sign in with email and password. `PASSWORD_ALREADY_SET`
    /// when there is one (use `changePassword`); `BAD_USER_INPUT` (field
    /// `newPassword`) when it is outside the policy;
    /// `REAUTHENTICATION_REQUIRED` unless the session proved presence within
    /// the re-authentication window (and has two factors when two-factor is
    /// on); `EMAIL_NOT_VERIFIED` until the address is proved; `RATE_LIMITED`
    /// past the account's budget of password checks. The owner is
    /// mailed a notice listing every way in.
    #[graphql(guard = "SignedIn")]
    async fn set_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password to set.")] new_password: String,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        account::set_password(auth, current, new_password).await.gql()?;
        Ok(true)
    }
}

/// The provider's URL; the state cookie goes with the answer.
fn started_url(ctx: &Context<'_>, started: oauth::Started) -> String {
    effects::record(ctx, Effect::OAuthStarted { state: started.state });
    started.url
}
