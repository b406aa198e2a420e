//! Signing in with an email and a password.

use entity::{accounts, users};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tracing::instrument;

use crate::{
    AuthContext, ClientMeta,
    config::CREDENTIAL_PROVIDER,
    error::AuthError,
    events,
    jobs::Lane,
    limits,
    limits::Rule,
    mailed::{tokens, verification},
    session,
    session::{Assurance, admission, admission::Way},
    sign_in::{LoginCounters, SignedIn, second_step},
    user::{credential::rehash_password, validate},
};

/// Signs in with email and password. Unknown email and wrong password give the
/// same error after the same work (one argon2 verification).
#[instrument(skip_all, fields(user_id))]
pub async fn login(
    auth: &AuthContext,
    email: &str,
    password: String,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    // Every attempt counts before any hashing: per address (an IPv6 /64),
    // then either per trusted device (a client that signed in to this
    // account under its current credentials) or, for any other client, per
    // account from that address and per account from everywhere. A device
    // is not held back by the account-wide ceiling, which anyone can
    // exhaust to lock the owner out.
    let ip = limits::ip_subject(meta);
    let account = validate::normalize_email(email);
    let account_key: String = match &account {
        Some(email) => email.clone(),
        None => email.trim().to_ascii_lowercase().chars().take(254).collect(),
    };
    limits::hit(auth, Rule::LoginIp, &ip).await?;
    // One indexed read, before the per-account counters: a device cookie is
    // trusted only under the credentials it was issued with.
    let found = match &account {
        Some(email) => {
            accounts::Entity::find()
                .filter(accounts::Column::ProviderId.eq(CREDENTIAL_PROVIDER))
                .find_also_related(users::Entity)
                .filter(users::Column::Email.eq(email))
                .one(&auth.db)
                .await?
        }
        None => None,
    };
    let (account_id, stored_hash, user) = match found {
        Some((account, Some(user))) => (Some(account.id), account.password_hash, Some(user)),
        _ => (None, None, None),
    };
    let counters = LoginCounters::new(&account_key, &ip, meta, user.as_ref());
    counters.hit(auth).await?;
    // Over-long passwords never reach argon2 (a 1 MB password must not cost
    // a hash); malformed addresses have no account.
    if password.chars().count() > validate::PASSWORD_MAX || account.is_none() {
        return Err(AuthError::InvalidCredentials);
    }
    // Stored at another cost than today's: kept to store it again once proved.
    let rehash = stored_hash.as_deref().is_some_and(|h| auth.hasher.needs_rehash(h));
    let again = rehash.then(|| password.clone()).zip(stored_hash.clone()).zip(account_id);
    let matched = auth.hasher.verify(password, stored_hash).await?;
    let user = match user {
        Some(user) if matched => user,
        _ => {
            tracing::info!("login failed");
            crate::telemetry::AuthEvent::LoginFailure.count();
            if let Some(user) = &user {
                events::sign_in_refused(auth, user, "password", meta);
            }
            return Err(AuthError::InvalidCredentials);
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // The password is proved: stored at another cost than today's, it is
    // stored again now, whatever comes next (a second step, the gate).
    if let Some(((password, old), account_id)) = again {
        rehash_password(auth, account_id, &old, password).await;
    }
    // The gate, after the password, so it tells nothing to someone without it.
    if let Err(refused) = admission::may_hold_session(auth, &user) {
        return Err(refused_after_password(auth, &user, refused).await?);
    }
    if user.two_factor_enabled {
        // The password alone clears no counter: a thief who has it would
        // otherwise loop login → five guessed codes → login for ever.
        tracing::info!("password checked; second factor required");
        let challenge = second_step::challenge(auth, &auth.db, &user, second_step::PASSWORD, None).await?;
        return Err(AuthError::SecondFactorRequired { challenge });
    }
    auth.checkpoints.reach("login:password_checked").await;
    // The session exists only if the password it was checked against is
    // still the user's: the conditional update finds the version it read
    // (and holds the user's row until commit, so a concurrent change waits
    // for this sign-in, then ends its session as it ends every other).
    let (turn, txn) = auth.write().await?;
    let admitted =
        admission::admit(&txn, auth, user.id, user.credentials_version, Way::Password, Assurance::OneFactor)
            .await?;
    let new = session::create(&txn, auth, admitted, meta).await?;
    txn.commit().await?;
    drop(turn);
    let (token, session) = new.committed();
    counters.clear(auth).await?;
    tracing::info!(trusted_device = counters.device.is_some(), "login succeeded");
    crate::telemetry::AuthEvent::LoginSuccess.count();
    let device = Some(counters.device_for(&user));
    Ok(SignedIn { token, session, user, device })
}

/// What a caller who gave the right password hears when the gate refuses
/// the user. An unproved address: when the mailed link has expired (or
/// was never sent), a fresh one helps them on. A live link is never
/// replaced (that would break the one in their inbox), and the
/// per-address mail limit still applies.
async fn refused_after_password(
    auth: &AuthContext,
    user: &users::Model,
    refused: AuthError,
) -> Result<AuthError, AuthError> {
    if !matches!(refused, AuthError::EmailNotVerified) {
        return Ok(refused);
    }
    let live = tokens::has_live(auth, user.id, tokens::Purpose::EmailVerification);
    if !live.await? {
        // Over the mail limit (or the counter unreachable) no link goes out;
        // the answer does not change.
        match limits::hit(auth, Rule::MailAccount, &user.email).await {
            Ok(()) => verification::queue_verification(auth.jobs.reserve(Lane::Links).await, auth, user),
            Err(e) => e.report(),
        }
    }
    // In privacy mode even this would tell: after `register(X, P)`,
    // `login(X, P)` must answer alike whether that registration created X
    // or X was someone else's.
    Ok(match auth.config.register_privacy {
        true => AuthError::InvalidCredentials,
        false => AuthError::EmailNotVerified,
    })
}
