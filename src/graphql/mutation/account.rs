use async_graphql::{Context, Object};
use domain::{account, account::profile};

use crate::graphql::{
    GqlResult,
    guard::{SignedIn, signed_in},
    types::{ChangePasswordInput, UpdateProfileInput, User},
};

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Replaces the password. `INVALID_CREDENTIALS` when `currentPassword` is
    /// wrong; `BAD_USER_INPUT` (field `newPassword`) when the new one is outside
    /// the policy or equals the current one; `REAUTHENTICATION_REQUIRED` when
    /// two-factor is on and the session has one factor. Signs out the other sessions
    /// unless `revokeOtherSessions` is false, spends outstanding reset links
    /// and mails the owner a notice. `RATE_LIMITED` past the account's
    /// budget of password checks.
    #[graphql(guard = "SignedIn")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The current and the new password.")] input: ChangePasswordInput,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        account::change_password(auth, current, input.into()).await.gql()?;
        Ok(true)
    }

    /// Edits the caller's profile: an omitted field stays, `null` clears it.
    /// `BAD_USER_INPUT` (field `name` or `image`) for a name over 100
    /// characters or an image that is not an http(s) URL of at most 2048.
    #[graphql(guard = "SignedIn")]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change: omitted stays, null clears.")] input: UpdateProfileInput,
    ) -> async_graphql::Result<User> {
        let (auth, current) = signed_in(ctx)?;
        let user = profile::update(auth, current, input.into()).await.gql()?;
        Ok(User(user))
    }

    /// Deletes the caller's account with its sessions, sign-in methods and
    /// tokens, after checking the password (`INVALID_CREDENTIALS` when wrong).
    /// An account without a password (signed up through a provider) needs a
    /// session that proved presence within the re-authentication window
    /// instead (`REAUTHENTICATION_REQUIRED`); `password` is then ignored.
    /// With two-factor on, the session needs two factors either way.
    /// `RATE_LIMITED` past the account's budget of password checks.
    #[graphql(guard = "SignedIn")]
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's current password.")] password: String,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        account::delete(auth, current, password).await.gql()?;
        super::forget_session_cookie(ctx);
        Ok(true)
    }
}
