//! Resetting a forgotten password through a mailed link. The same answer
//! whether or not the address has an account; a reset of an account whose
//! address nobody had proved adopts it.

use entity::{accounts, users};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use tracing::instrument;

use crate::{
    AuthContext, ClientMeta,
    config::CREDENTIAL_PROVIDER,
    error::{AuthError, Input},
    events,
    events::{Ended, Event, Kind},
    jobs::Lane,
    limits,
    limits::Rule,
    mail::templates,
    mailed::{queue_link, tokens, tokens::Purpose},
    notices, session, user,
    user::{validate, ways_in},
};

/// Validates the address, then answers; the lookup and the mail happen
/// after the answer, so known and unknown emails take the same time.
pub async fn request_password_reset(
    auth: &AuthContext,
    email: &str,
    meta: &ClientMeta,
) -> Result<(), AuthError> {
    limits::hit(auth, Rule::MailIp, &limits::ip_subject(meta)).await?;
    let email = validate::email_for_signup(email, Input::Email)?;
    limits::hit(auth, Rule::MailAccount, &email).await?;
    let worker = auth.clone();
    let slot = auth.jobs.reserve(Lane::Links).await;
    queue_link(slot, "password reset", async move { send_password_reset(&worker, &email).await });
    Ok(())
}

pub(crate) async fn send_password_reset(auth: &AuthContext, email: &str) -> Result<(), AuthError> {
    let Some(user) = users::Entity::find().filter(users::Column::Email.eq(email)).one(&auth.db).await? else {
        tracing::info!("password reset requested for an unknown email; nothing sent");
        return Ok(());
    };
    let secret = tokens::issue(auth, user.id, Purpose::PasswordReset).await?;
    let minutes = auth.config.password_reset_ttl.as_secs().div_ceil(60);
    auth.mail.send(templates::reset_password(&user.email, &auth.config.app_url, &secret, minutes));
    Ok(())
}

pub struct Reset {
    pub token: String,
    pub new_password: String,
    /// Remove every provider link and passkey too (the new password stays
    /// the only way in).
    pub remove_provider_links: bool,
}

/// Sets a new password with a reset token: spends the token, marks the email
/// verified (the user proved they own it), ends every session (and, when
/// asked, removes every provider link and passkey) and mails the owner a
/// notice. On an account whose address was never proved, the reset is its
/// owner's first proof: every other way in is removed, second factor
/// included (a squatter's must not survive the owner's recovery).
#[instrument(skip_all, fields(user_id))]
pub async fn reset_password(auth: &AuthContext, reset: Reset, meta: &ClientMeta) -> Result<(), AuthError> {
    let Reset { token: secret, new_password, remove_provider_links } = reset;
    let secret = secret.as_str();
    limits::hit(auth, Rule::TokenIp, &limits::ip_subject(meta)).await?;
    // Refuse a bad token before paying for a hash.
    let token = tokens::peek(auth, secret, Purpose::PasswordReset).await?;
    let user =
        users::Entity::find_by_id(token.user_id).one(&auth.db).await?.ok_or(AuthError::InvalidToken)?;
    // The link is proved: a banned user hears so, and nothing changes
    // (an unproved account too: a reset must not lift a ban).
    crate::session::admission::not_banned(auth, &user)?;
    validate::new_password(&new_password, &user.email, auth.config.password_min_score, Input::NewPassword)?;
    let hash = auth.hasher.hash(new_password).await?;
    let now = auth.clock.now();
    let notice = notices::notice_slot(auth).await;
    let forget = auth.sessions.changing(user.id);
    let (_turn, txn) = auth.write().await?;
    let user_id = tokens::spend(&txn, auth, secret, Purpose::PasswordReset).await?;
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    user::bump_credentials(&txn, user_id).await?;
    // Read under the hold the new version took: a verification that
    // committed meanwhile is seen.
    let held = users::Entity::find_by_id(user_id).one(&txn).await?.ok_or(AuthError::InvalidToken)?;
    // Again under the hold: a ban that committed meanwhile wins.
    crate::session::admission::not_banned(auth, &held)?;
    let adopted = !held.email_verified;
    if adopted {
        // The first proof that this person owns the address: whoever
        // registered it may have been someone else (a squatter), so every
        // way in they set up goes (password, providers, passkeys, TOTP,
        // recovery codes, flows, tokens, sessions; device trust ends with
        // the new credentials version; their name and picture too), as when
        // a provider claims it.
        let ended = ways_in::adopt(&txn, user_id).await?;
        // Without where the owner is: the ended sessions' holder may hear of it.
        events::sessions_ended(&txn, auth, user_id, &ended, Ended::Claimed, &ClientMeta::default()).await?;
        tracing::warn!(
            sessions_ended = ended.len(),
            "unverified account adopted by its address's owner through a reset"
        );
    }
    let updated = accounts::Entity::update_many()
        .col_expr(accounts::Column::PasswordHash, Expr::value(hash.clone()))
        .col_expr(accounts::Column::UpdatedAt, Expr::value(now))
        .filter(accounts::Column::UserId.eq(user_id))
        .filter(accounts::Column::ProviderId.eq(CREDENTIAL_PROVIDER))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        // A user without a password (e.g. signed up through OAuth) gets one.
        user::credential_account(user_id, hash, now).insert(&txn).await?;
    }
    // The link reached the owner of the address: it is verified.
    user::mark_email_verified(&txn, user_id, now).await?;
    if adopted {
        Event::new(Kind::UserEmailVerified, user_id)
            .with("by", "password_reset")
            .record(&txn, auth, meta)
            .await?;
    }
    let ended = session::revoke_others(&txn, auth, user_id, None, Ended::CredentialsChanged, meta).await?;
    let unlinked = if remove_provider_links && !adopted {
        accounts::Entity::delete_many()
            .filter(accounts::Column::UserId.eq(user_id))
            .filter(accounts::Column::ProviderId.ne(CREDENTIAL_PROVIDER))
            .exec(&txn)
            .await?
            .rows_affected
            + entity::passkeys::Entity::delete_many()
                .filter(entity::passkeys::Column::UserId.eq(user_id))
                .exec(&txn)
                .await?
                .rows_affected
    } else {
        0
    };
    Event::new(Kind::UserPasswordReset, user_id)
        .with("adopted", adopted)
        .with("ways_in_removed", unlinked)
        .record(&txn, auth, meta)
        .await?;
    txn.commit().await?;
    forget.done();
    tracing::info!(sessions_ended = ended, unlinked, "password reset");
    // The link proved the address: its owner hears of the reset.
    let user = users::Model { email_verified: true, ..user };
    notices::notify(notice, auth, &user, notices::Notice::PasswordReset, None);
    Ok(())
}
