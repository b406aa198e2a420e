//! Mail to the owner after a change to the account ("your password was
//! changed"), listing every way in; coalesced so a script cannot mail-bomb
//! the address, and never to an address nobody proved.

use entity::users;
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::{
    AuthContext,
    config::CREDENTIAL_PROVIDER,
    error::AuthError,
    jobs::{Lane, Slot},
    limits,
    limits::Rule,
    mail::templates,
    user::{for_users, ways_in},
};

/// What a notice to the owner is about.
pub(crate) enum Notice {
    /// A sign-in method was added ("A password", "Sign-in with github",
    /// "A passkey"): never a name the user (or an intruder) chose, which a
    /// mail client could show as a link.
    MethodAdded(String),
    /// A sign-in method was removed ("Sign-in with github", "The password").
    MethodRemoved(String),
    PasswordChanged,
    PasswordReset,
    TwoFactorOn,
    TwoFactorOff,
    /// An admin removed the authenticator and recovery codes.
    TwoFactorReset,
    RecoveryCodesReplaced,
    PasskeyRemoved,
}

impl Notice {
    /// What a notice says, for telling repeats apart (`NoticeAccount`).
    fn key(&self) -> String {
        match self {
            Self::MethodAdded(what) => format!("method_added:{what}"),
            Self::MethodRemoved(what) => format!("method_removed:{what}"),
            Self::PasswordChanged => "password_changed".into(),
            Self::PasswordReset => "password_reset".into(),
            Self::TwoFactorOn => "two_factor_on".into(),
            Self::TwoFactorOff => "two_factor_off".into(),
            Self::TwoFactorReset => "two_factor_reset".into(),
            Self::RecoveryCodesReplaced => "recovery_codes_replaced".into(),
            Self::PasskeyRemoved => "passkey_removed".into(),
        }
    }
}

/// Mails the owner a notice that lists every way into the account, after
/// the answer (a background job; a failure is logged, never shown).
/// Repeats are coalesced: a notice that says the same, with the same list
/// of ways in, as one mailed within the `AUTHGATE_RATE_NOTICE_ACCOUNT`
/// window is logged, not mailed (a script changing the same thing again
/// and again cannot mail-bomb the address). Any change to the ways in is
/// new information and is always mailed.
///
/// `slot` is a place in the notice lane the service reserved before its
/// transaction (`notice_slot`), so queueing after the commit never waits.
///
/// `by`: the session that made the change, if one did. Repeats are
/// coalesced per session: the owner and an intruder doing the same thing
/// within the window are two notices.
///
/// An address nobody proved gets none: it may not be the account's owner's,
/// and notices would let whoever registered it mail it at will (the
/// verification mail, within its own limit, is all it gets).
pub(crate) fn notify(slot: Slot, auth: &AuthContext, user: &users::Model, notice: Notice, by: Option<Uuid>) {
    notify_as_of(slot, auth, user, notice, by, None);
}

/// `notify` with the ways in as they were just after the change (read by
/// the request, `as_of`), not when the lane gets to it: a passkey added,
/// removed and added again in quick succession is three notices, though a
/// late read would find the same list for the first and the last.
///
/// The read and the queueing run in a task of their own that the request
/// waits for: a request dropped meanwhile (a client gone, the request's
/// deadline) cannot lose the owner's notice of a change already committed.
pub(crate) async fn notify_committed(
    slot: Slot,
    auth: &AuthContext,
    user: &users::Model,
    notice: Notice,
    by: Option<Uuid>,
) {
    let (auth, user) = (auth.clone(), user.clone());
    let queued = tokio::spawn(async move {
        let as_of = match user.email_verified {
            true => ways_in(&auth, user.id).await.inspect_err(|e| e.report()).ok(),
            false => None,
        };
        notify_as_of(slot, &auth, &user, notice, by, as_of);
    });
    if let Err(e) = queued.await {
        tracing::error!(error = %e, "queueing an account notice failed");
    }
}

fn notify_as_of(
    slot: Slot,
    auth: &AuthContext,
    user: &users::Model,
    notice: Notice,
    by: Option<Uuid>,
    as_of: Option<WaysIn>,
) {
    if !user.email_verified {
        return tracing::info!(user_id = %user.id, notice = %notice.key(), "no notice to an address nobody proved");
    }
    let (worker, user) = (auth.clone(), user.clone());
    slot.run(async move {
        if let Err(e) = send_notice(&worker, &user, notice, by, as_of).await {
            e.report();
            tracing::warn!(error = %e, "account notice not sent");
        }
    });
}

/// A place for a notice, reserved before the change it will tell of.
pub(crate) async fn notice_slot(auth: &AuthContext) -> Slot {
    auth.jobs.reserve(Lane::Notices).await
}

async fn send_notice(
    auth: &AuthContext,
    user: &users::Model,
    notice: Notice,
    by: Option<Uuid>,
    as_of: Option<WaysIn>,
) -> Result<(), AuthError> {
    let WaysIn { labels: methods, identity } = match as_of {
        Some(ways) => ways,
        None => ways_in(auth, user.id).await?,
    };
    // The ways in by identity, not only by kind: a link removed and made
    // again (or a passkey removed and added again) is news, even though the
    // list reads the same as in the notice before.
    let said = format!("{}|{:?}|{}|{identity}", user.id, by, notice.key());
    match limits::hit(auth, Rule::NoticeAccount, &said).await {
        Ok(()) => {}
        Err(AuthError::RateLimited { .. }) => {
            tracing::info!(user_id = %user.id, notice = %notice.key(), "notice coalesced: the same was mailed in this window");
            return Ok(());
        }
        // The counter unreachable: tell the owner all the same.
        Err(e) => e.report(),
    }
    let (to, app_url) = (&user.email, &auth.config.app_url);
    let email = match notice {
        Notice::MethodAdded(what) => templates::sign_in_method_added(to, app_url, &what, &methods),
        Notice::MethodRemoved(what) => templates::sign_in_method_removed(to, app_url, &what, &methods),
        Notice::PasswordChanged => templates::password_changed(to, app_url, "changed", &methods),
        Notice::TwoFactorOn => templates::two_factor_changed(
            to,
            app_url,
            "Two-factor sign-in was turned on (or its authenticator replaced) for your account, with new recovery codes.",
            &methods,
        ),
        Notice::TwoFactorOff => templates::two_factor_changed(
            to,
            app_url,
            "Two-factor sign-in was turned off for your account: a password or a provider alone now signs in.",
            &methods,
        ),
        Notice::TwoFactorReset => templates::two_factor_changed(
            to,
            app_url,
            "An administrator removed the authenticator and recovery codes of your account, and signed it out everywhere: a password or a provider alone now signs in. If you did not ask for this, reset your password and contact the administrators.",
            &methods,
        ),
        Notice::RecoveryCodesReplaced => templates::two_factor_changed(
            to,
            app_url,
            "New recovery codes were made for your account; the earlier ones no longer work.",
            &methods,
        ),
        Notice::PasswordReset => {
            templates::password_changed(to, app_url, "reset with a mailed link", &methods)
        }
        Notice::PasskeyRemoved => templates::passkey_removed(to, app_url, &methods),
    };
    auth.mail.send(email);
    Ok(())
}

/// The user's ways in, read once: as the owner knows them ("password",
/// "github", ...), and by identity (ids of the sign-in methods and
/// passkeys, when the authenticator was confirmed), which is what a
/// notice's coalescing compares: a way in removed and made again is news
/// though its label reads the same.
struct WaysIn {
    labels: Vec<String>,
    identity: String,
}

async fn ways_in(auth: &AuthContext, user_id: Uuid) -> Result<WaysIn, AuthError> {
    let accounts = for_users(auth, &[user_id]).await?.remove(&user_id).unwrap_or_default();
    let passkeys = ways_in::passkeys_of(&auth.db, user_id).await?;
    let totp = entity::totp_credentials::Entity::find_by_id(user_id).one(&auth.db).await?;
    let confirmed = totp.as_ref().and_then(|t| t.secret.as_ref().and(t.confirmed_at));
    let mut ids: Vec<String> = accounts.iter().map(|a| a.id.to_string()).collect();
    ids.extend(passkeys.iter().map(|p| p.id.to_string()));
    ids.push(format!("totp:{confirmed:?}"));
    let mut labels: Vec<String> = accounts
        .into_iter()
        .map(|a| if a.provider_id == CREDENTIAL_PROVIDER { "password".to_owned() } else { a.provider_id })
        .collect();
    if confirmed.is_some() {
        labels.push("an authenticator app (second factor)".to_owned());
    }
    // Counted, not named: a passkey's name is the user's (or an intruder's)
    // text, and a mail client would show a URL in it as a link.
    match passkeys.len() {
        0 => {}
        1 => labels.push("a passkey".to_owned()),
        n => labels.push(format!("{n} passkeys")),
    }
    Ok(WaysIn { labels, identity: ids.join(",") })
}
