//! Proving an address: a mailed link, sent at registration and on request.

use entity::users;
use tracing::instrument;

use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    events::{Event, Kind},
    jobs::{Lane, Slot},
    limits,
    limits::Rule,
    mail::templates,
    mailed::{queue_link, tokens, tokens::Purpose},
    user,
};

/// Mails a verification link to `user` (a new token; earlier ones stop working).
#[instrument(skip_all, fields(user_id = %user.id))]
pub(crate) async fn send_verification(auth: &AuthContext, user: &users::Model) -> Result<(), AuthError> {
    let secret = tokens::issue(auth, user.id, Purpose::EmailVerification).await?;
    let hours = auth.config.email_verification_ttl.as_secs().div_ceil(3600);
    auth.mail.send(templates::verify_email(&user.email, &auth.config.app_url, &secret, hours));
    Ok(())
}

/// Queues a verification mail after the answer; nothing when already verified.
pub async fn request_verification(
    auth: &AuthContext,
    user: &users::Model,
    meta: &ClientMeta,
) -> Result<(), AuthError> {
    limits::hit(auth, Rule::MailIp, &limits::ip_subject(meta)).await?;
    limits::hit(auth, Rule::MailAccount, &user.email).await?;
    queue_verification(auth.jobs.reserve(Lane::Links).await, auth, user);
    Ok(())
}

/// Queues a verification mail (unless the address is verified already).
/// (In `slot`, a place in the links lane reserved before any write.)
pub(crate) fn queue_verification(slot: Slot, auth: &AuthContext, user: &users::Model) {
    if user.email_verified {
        return;
    }
    let (worker, user) = (auth.clone(), user.clone());
    queue_link(slot, "verification", async move { send_verification(&worker, &user).await });
}

/// Spends a verification token and marks the email verified.
#[instrument(skip_all, fields(user_id))]
pub async fn verify_email(
    auth: &AuthContext,
    secret: &str,
    meta: &ClientMeta,
) -> Result<users::Model, AuthError> {
    limits::hit(auth, Rule::TokenIp, &limits::ip_subject(meta)).await?;
    let (_turn, txn) = auth.write().await?;
    let user_id = tokens::spend(&txn, auth, secret, Purpose::EmailVerification).await?;
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    // Taken as soon as the user is known (inside the transaction: a
    // cancellation before the commit rolls it back, and forgets anyway).
    let forget = auth.sessions.changing(user_id);
    let user = user::mark_email_verified(&txn, user_id, auth.clock.now()).await?;
    Event::new(Kind::UserEmailVerified, user_id).with("by", "link").record(&txn, auth, meta).await?;
    txn.commit().await?;
    forget.done();
    tracing::info!("email verified");
    Ok(user)
}
