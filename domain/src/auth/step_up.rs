//! Step-up: changes that hand out, remove or weaken a way into the account
//! need more than a session (which may be stolen): a session that proved
//! the user's presence recently and, when two-factor is on, with both
//! factors. The one rule, in one place; `reauthenticate` is how a session
//! meets it again.

use sea_orm::TransactionTrait;
use tracing::instrument;

use super::{
    AuthContext, ClientMeta, account,
    limits::{self, Rule},
    session::{self, Assurance, CurrentSession},
    two_factor,
};
use crate::error::{AuthError, Input};

/// What the operation itself proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
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
pub fn require(auth: &AuthContext, current: &CurrentSession, presence: Presence) -> Result<(), AuthError> {
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
pub fn require_to_add(auth: &AuthContext, current: &CurrentSession) -> Result<(), AuthError> {
    if !current.user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    require(auth, current, Presence::Recent)
}

/// A passkey's answer to a `startPasskeySignIn` ceremony: its handle and
/// the assertion (`PublicKeyCredential.toJSON()`).
pub struct PasskeyProof {
    pub challenge: String,
    pub credential: serde_json::Value,
}

/// Proves presence again for the caller's session: a passkey of theirs
/// (two factors by itself), or the password when the user has one and a
/// TOTP or recovery code when two-factor is on. Wrong:
/// `INVALID_CREDENTIALS`; a missing part: `BAD_USER_INPUT`. A user with
/// neither (signed up through a provider, no second factor) has nothing
/// to prove it with here: `REAUTHENTICATION_REQUIRED`, sign in again.
/// Counted per client like `login` and per user like every password check.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn reauthenticate(
    auth: &AuthContext,
    current: &CurrentSession,
    password: Option<String>,
    code: Option<String>,
    passkey: Option<PasskeyProof>,
    meta: &ClientMeta,
) -> Result<(), AuthError> {
    let user = &current.user;
    limits::hit(auth, Rule::LoginIp, &limits::ip_subject(meta)).await?;
    limits::hit(auth, Rule::PasswordAccount, &user.id.to_string()).await?;
    if let Some(proof) = passkey {
        return super::passkey::reauthenticate(auth, current, &proof.challenge, proof.credential).await;
    }
    let credential = account::credential_of(auth, user.id).await?;
    if credential.is_none() && !user.two_factor_enabled {
        return Err(AuthError::ReauthenticationRequired);
    }
    if credential.is_some() {
        let password =
            password.ok_or_else(|| AuthError::bad_input(Input::Password, "the password is required"))?;
        account::verify(auth, credential, password).await?;
    }
    let code = match user.two_factor_enabled {
        true => Some(
            code.ok_or_else(|| AuthError::bad_input(Input::Code, "a TOTP or recovery code is required"))?,
        ),
        false => None,
    };
    // Every code check counts against the account's one code budget, the
    // one `completeSignIn` spends: a stolen session must not get a second
    // budget of guesses at the code here.
    let code_budget = user.id.to_string();
    if code.is_some() {
        limits::hit(auth, Rule::SecondFactorAccount, &code_budget).await?;
    }
    let assurance = if code.is_some() { Assurance::TwoFactors } else { Assurance::OneFactor };
    // The write first (SQLite takes its write lock at once); a wrong code
    // rolls it back.
    let forget = auth.sessions.changing(user.id);
    let txn = auth.db.begin().await?;
    if !session::proved_presence(&txn, &current.session, auth.clock.now(), assurance).await? {
        return Err(AuthError::Unauthenticated);
    }
    if let Some(code) = code
        && !two_factor::spend_code(&txn, auth, user.id, &code).await?
    {
        tracing::info!("reauthentication failed: wrong code");
        return Err(AuthError::InvalidCredentials);
    }
    txn.commit().await?;
    forget.done();
    if assurance == Assurance::TwoFactors {
        limits::clear(auth, Rule::SecondFactorAccount, &code_budget).await?;
    }
    tracing::info!(level = assurance as i16, "reauthenticated");
    Ok(())
}
