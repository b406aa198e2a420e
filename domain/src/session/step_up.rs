//! Step-up: an operation that adds, removes or weakens a way in needs a
//! session that proved presence recently, with two factors when the user
//! has them. The one rule; `sign_in::reauthenticate` raises a session.

use crate::{
    AuthContext,
    error::AuthError,
    session::{Assurance, CurrentSession},
};

/// What the operation itself proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Nothing: the session must have proved presence within the window
    /// (`AUTHGATE_REAUTH_WINDOW`).
    Recent,
    /// The caller just typed the password (`changePassword`,
    /// `deleteAccount`): no window, only the assurance.
    PasswordGiven,
}

/// `REAUTHENTICATION_REQUIRED` unless `current` may make a step-up change:
/// two factors when two-factor is on, and, unless the operation takes the
/// password itself, a proof of presence within the window.
pub(crate) fn require(
    auth: &AuthContext,
    current: &CurrentSession,
    presence: Presence,
) -> Result<(), AuthError> {
    own_session(current)?;
    if current.user.two_factor_enabled && current.session.assurance_level < Assurance::TwoFactors as i16 {
        return Err(AuthError::ReauthenticationRequired);
    }
    let age = auth.clock.now() - current.session.authenticated_at;
    if presence == Presence::Recent && age.to_std().is_ok_and(|age| age > auth.config.reauth_window) {
        return Err(AuthError::ReauthenticationRequired);
    }
    Ok(())
}

/// For an operation that adds a way in or a factor (a passkey, an
/// authenticator, a provider link, a password): `require` with a recent
/// proof, on an account whose address was proved. An unproved account may
/// be a squatter's; what they add would be there when the owner arrives
/// (the owner's reset or claim removes it, but a factor that cannot be
/// added cannot be left behind either): `EMAIL_NOT_VERIFIED`.
pub(crate) fn require_to_add(auth: &AuthContext, current: &CurrentSession) -> Result<(), AuthError> {
    if !current.user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    require(auth, current, Presence::Recent)
}

/// `PERMISSION_DENIED` (`session:own`) in an impersonation: an admin acting
/// as the user never changes their credentials, factors, roles or the
/// account's existence (every such change is a step-up one).
pub(crate) fn own_session(current: &CurrentSession) -> Result<(), AuthError> {
    match current.session.impersonator_id {
        Some(_) => Err(AuthError::PermissionDenied(OWN_SESSION)),
        None => Ok(()),
    }
}

/// What an impersonation session lacks (`extensions.permission`).
pub const OWN_SESSION: &str = "session:own";
