use async_graphql::{Context, ID, Object};
use domain::{admin, user::roles::Permission};

use crate::graphql::{
    GqlResult,
    effects::{self, Effect},
    guard::{Permitted, SignedIn, TokenSource, signed_in, token_source},
    types::{AuthPayload, BanUserInput, ImpersonateUserInput, User, user_id},
};

#[derive(Default)]
pub struct AdminMutation;

/// The admin fields. Each needs its permission (`PERMISSION_DENIED`,
/// `extensions.permission` naming it); the guard checks it and the service
/// checks it again (a resolver without the guard still acts for nobody).
#[Object]
impl AdminMutation {
    /// Bans a user: every session of theirs ends at once, and every way in
    /// (password, second step, provider, passkey, reset link,
    /// impersonation) answers `ACCOUNT_BANNED` once the credential itself
    /// is proven, until `until` or `unbanUser`. Needs `user:ban`
    /// (`PERMISSION_DENIED`) and a recent sign-in (`REAUTHENTICATION_REQUIRED`). `BAD_USER_INPUT`:
    /// `userId` unknown or your own, `until` not in the future, `reason`
    /// over 500 characters.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserBan))")]
    async fn ban_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Who, why, and until when.")] input: BanUserInput,
    ) -> async_graphql::Result<User> {
        let (auth, current) = signed_in(ctx)?;
        let ban = admin::Ban {
            user_id: user_id(&input.user_id).gql()?,
            reason: input.reason,
            until: input.until.map(|t| t.0),
        };
        Ok(User(admin::ban(auth, current, ban).await.gql()?))
    }

    /// Lifts a ban: the user can sign in again (the sessions the ban ended
    /// stay ended). Needs `user:ban` (`PERMISSION_DENIED`). `BAD_USER_INPUT`:
    /// `userId` unknown.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserBan))")]
    async fn unban_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userId", desc = "The banned user.")] target: ID,
    ) -> async_graphql::Result<User> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&target).gql()?;
        Ok(User(admin::unban(auth, current, id).await.gql()?))
    }

    /// Ends every session of a user at once (here, on every instance, and
    /// through the revocation feed); returns how many. Needs
    /// `session:revoke` (`PERMISSION_DENIED`). `BAD_USER_INPUT`: `userId` unknown.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::SessionRevoke))")]
    async fn revoke_user_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userId", desc = "Whose sessions.")] target: ID,
    ) -> async_graphql::Result<i32> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&target).gql()?;
        let ended = admin::revoke_sessions(auth, current, id).await.gql()?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// For a user who lost their authenticator and recovery codes: removes
    /// both, ends their sessions and sign-ins in progress, and mails them a
    /// notice; they sign in with the password (or provider) alone. `false`
    /// when two-factor was off (nothing changed). Needs
    /// `user:reset_two_factor` (`PERMISSION_DENIED`) and a recent sign-in
    /// (`REAUTHENTICATION_REQUIRED`). `BAD_USER_INPUT`: `userId` unknown or
    /// your own.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserResetTwoFactor))")]
    async fn reset_user_two_factor(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userId", desc = "Whose second factor.")] target: ID,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&target).gql()?;
        admin::reset_two_factor(auth, current, id).await.gql()
    }

    /// Replaces a user's roles (`admin`, `support`, `auditor`; an empty
    /// list takes them all). Counts on the user's next request; their
    /// access tokens' `roles` claim within the session cache's lifetime.
    /// Needs `role:set` (`PERMISSION_DENIED`) and a recent sign-in
    /// (`REAUTHENTICATION_REQUIRED`).
    /// `BAD_USER_INPUT`: an unknown role (`roles`), `userId` unknown or your
    /// own (use another admin, or `authgate admin`).
    #[graphql(guard = "SignedIn.and(Permitted(Permission::RoleSet))")]
    async fn set_user_roles(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userId", desc = "Whose roles.")] target: ID,
        #[graphql(desc = "Every role the user is to hold.")] roles: Vec<String>,
    ) -> async_graphql::Result<User> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&target).gql()?;
        let (user, _) = admin::set_roles(auth, current, id, &roles).await.gql()?;
        Ok(User(user))
    }

    /// Starts a session as the user, to see what they see: an hour at
    /// most, never extended, marked with you (`Session.impersonatorId`, the
    /// access tokens' `act` claim), and recorded in the user's activity
    /// with `reason`. Inside it the user's credentials, factors, roles and
    /// account cannot change, no admin field answers (`PERMISSION_DENIED`),
    /// and `logout` ends it (your own session is untouched). A cookie
    /// client's cookie moves to the new session; a bearer client gets the
    /// token. Needs `user:impersonate` (`PERMISSION_DENIED`; and
    /// `user:impersonate_privileged` for a user who holds a role, which
    /// only `superadmin` grants) and a recent sign-in
    /// (`REAUTHENTICATION_REQUIRED`). `ACCOUNT_BANNED`, `EMAIL_NOT_VERIFIED`:
    /// the user could not sign in either. `BAD_USER_INPUT`: `userId`
    /// unknown or your own, `reason` empty or over 500 characters.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserImpersonate))")]
    async fn impersonate_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Who, and why.")] input: ImpersonateUserInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&input.user_id).gql()?;
        let started = admin::impersonate::start(auth, current, id, &input.reason).await.gql()?;
        if token_source(ctx) == Some(TokenSource::Cookie) {
            let (token, expires_at) = (started.token.clone(), started.session.expires_at);
            effects::record(ctx, Effect::SessionCookie { token, expires_at });
        }
        Ok(AuthPayload {
            token: started.token,
            expires_at: crate::graphql::types::DateTime(started.session.expires_at),
            user: User(started.user),
        })
    }

    /// Deletes a user as their own `deleteAccount` would: every session
    /// ends (and every impersonation they run), every way in and row of
    /// theirs goes; `user.deleted` is recorded with you as actor. Needs
    /// `user:delete` (`PERMISSION_DENIED`; and every permission the user
    /// holds) and a recent sign-in (`REAUTHENTICATION_REQUIRED`).
    /// `BAD_USER_INPUT`: `userId` unknown or your own.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserDelete))")]
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userId", desc = "The user to delete.")] target: ID,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&target).gql()?;
        admin::delete_user(auth, current, id).await.gql()?;
        Ok(true)
    }

    /// Mails the user a password reset link, as `requestPasswordReset`
    /// would (within its per-address mail limit: `RATE_LIMITED`). Needs
    /// `user:send_reset` (`PERMISSION_DENIED`; and every permission the
    /// user holds). `BAD_USER_INPUT`: `userId` unknown.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserSendReset))")]
    async fn send_user_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userId", desc = "Whom to mail.")] target: ID,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let id = user_id(&target).gql()?;
        admin::send_reset_link(auth, current, id).await.gql()?;
        Ok(true)
    }
}
