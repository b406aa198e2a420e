//! Proving presence again for a session (step-up): a passkey, or the
//! password with a code when two-factor is on.

use tracing::instrument;

use crate::{
    AuthContext, ClientMeta,
    error::{AuthError, Input},
    events,
    events::{Event, Kind},
    factors,
    factors::passkey,
    limits,
    limits::Rule,
    session,
    session::{Assurance, CurrentSession},
    user::credential,
};

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
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    let user = &current.user;
    limits::hit(auth, Rule::LoginIp, &limits::ip_subject(meta)).await?;
    limits::hit(auth, Rule::PasswordAccount, &user.id.to_string()).await?;
    if let Some(proof) = passkey {
        return passkey::reauthenticate(auth, current, &proof.challenge, proof.credential).await;
    }
    let credential = credential::credential_of(auth, user.id).await?;
    if credential.is_none() && !user.two_factor_enabled {
        return Err(AuthError::ReauthenticationRequired);
    }
    let credential_given = credential.is_some();
    if credential.is_some() {
        let password =
            password.ok_or_else(|| AuthError::bad_input(Input::Password, "the password is required"))?;
        if let Err(e) = credential::verify(auth, credential, password).await {
            if matches!(e, AuthError::InvalidCredentials) {
                events::sign_in_refused(auth, user, "reauthenticate", meta);
            }
            return Err(e);
        }
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
    let (turn, txn) = auth.write().await?;
    if !session::proved_presence(&txn, &current.session, auth.clock.now(), assurance).await? {
        return Err(AuthError::Unauthenticated);
    }
    if let Some(code) = code
        && !factors::spend_code(&txn, auth, user.id, &code).await?
    {
        tracing::info!("reauthentication failed: wrong code");
        drop(txn);
        events::sign_in_refused(auth, user, "reauthenticate", meta);
        return Err(AuthError::InvalidCredentials);
    }
    Event::new(Kind::SessionReauthenticated, user.id)
        .session(current.session.id)
        .with("method", if credential_given { "password" } else { "code" })
        .with("assurance", assurance as i16)
        .record(&txn, auth, meta)
        .await?;
    txn.commit().await?;
    drop(turn);
    forget.done();
    if assurance == Assurance::TwoFactors {
        limits::clear(auth, Rule::SecondFactorAccount, &code_budget).await?;
    }
    tracing::info!(level = assurance as i16, "reauthenticated");
    Ok(())
}
