//! Mutations, grouped by what they act on and merged into one root.

mod account;
mod email;
mod oauth;
mod sessions;
mod sign_in;

use async_graphql::MergedObject;

/// Sign up, sign in and out, and manage sessions and the account.
///
/// Errors carry `extensions.code`: `UNAUTHENTICATED` (no live session),
/// `BAD_USER_INPUT` (with `extensions.field`), `INVALID_CREDENTIALS`,
/// `EMAIL_TAKEN`, `EMAIL_NOT_VERIFIED`, `INVALID_TOKEN`, `FORBIDDEN`, `RATE_LIMITED` (with `extensions.retryAfter`),
/// `REDIRECT_NOT_ALLOWED`, `LAST_SIGN_IN_METHOD`, `PASSWORD_ALREADY_SET`, `REAUTHENTICATION_REQUIRED`,
/// `SERVICE_UNAVAILABLE` (retry later), `INTERNAL_SERVER_ERROR`.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    sign_in::SignInMutation,
    sessions::SessionMutation,
    account::AccountMutation,
    email::EmailMutation,
    oauth::OAuthMutation,
);

/// Makes a cookie client forget its session (after sign-out or deletion).
fn forget_session_cookie(ctx: &async_graphql::Context<'_>, auth: &crate::auth::AuthContext) {
    for cleared in crate::http::cookie::cleared(auth) {
        ctx.append_http_header(axum::http::header::SET_COOKIE, cleared);
    }
}
