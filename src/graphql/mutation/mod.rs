//! Mutations, grouped by what they act on and merged into one root.

mod access;
mod account;
mod admin;
mod email;
mod oauth;
mod passkey;
mod sessions;
mod sign_in;
mod two_factor;
mod webhooks;

use async_graphql::MergedObject;

/// Sign up, sign in and out, and manage sessions and the account.
///
/// Errors carry `extensions.code` (with `extensions.field` for
/// `BAD_USER_INPUT` and `extensions.retryAfter` for `RATE_LIMITED`). Field
/// descriptions name the codes particular to them; any field may also
/// answer `SERVICE_UNAVAILABLE` (retry later) or `INTERNAL_SERVER_ERROR`,
/// and those behind a session `UNAUTHENTICATED`. docs/api.md lists every code.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    sign_in::SignInMutation,
    sessions::SessionMutation,
    account::AccountMutation,
    email::EmailMutation,
    oauth::OAuthMutation,
    two_factor::TwoFactorMutation,
    passkey::PasskeyMutation,
    webhooks::WebhookMutation,
    access::AccessMutation,
    admin::AdminMutation,
);

/// Makes a cookie client forget its session (after sign-out or deletion).
fn forget_session_cookie(ctx: &async_graphql::Context<'_>) {
    crate::graphql::effects::record(ctx, crate::graphql::effects::Effect::SessionEnded);
}
