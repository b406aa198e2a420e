//! Linking a provider to the signed-in user who asked for it
//! (`linkOAuth`, finished by the callback), and removing a link.

use entity::{accounts, users};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use tracing::instrument;
use uuid::Uuid;

use super::{Completed, Identity};
use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    events::{Event, Kind},
    notices, session,
    session::{change::Change, step_up},
    user,
    user::ways_in,
};

/// The callback of a `linkOAuth` flow: links the provider to the user who
/// started it (`user_id`), if the session that started it (`session_id`)
/// still lives. Already linked to them: done; to someone else:
/// `ACCOUNT_ALREADY_LINKED`.
pub(super) async fn to_session(
    auth: &AuthContext,
    provider: &str,
    identity: &Identity,
    linked: Option<accounts::Model>,
    (user_id, session_id): (Uuid, Uuid),
    meta: &ClientMeta,
) -> Result<Completed, AuthError> {
    match linked {
        Some(account) if account.user_id == user_id => return Ok(Completed::Linked),
        Some(_) => return Err(AuthError::AccountAlreadyLinked),
        None => {}
    }
    // A new link mails the owner: its place is taken before any write.
    let notice = notices::notice_slot(auth).await;
    // The session that began the link must still be alive when the link is
    // written, not only before the provider round trip: the user's row is
    // held first, so a password change or reset (which ends sessions) is
    // either wholly before this check or waits until the link is written.
    let (turn, txn) = auth.write().await?;
    user::lock_user(&txn, user_id, None).await?;
    if !session::is_alive(&txn, auth, user_id, session_id).await? {
        return Err(AuthError::Unauthenticated);
    }
    let account = user::account_row(user_id, provider, &identity.subject, None, auth.clock.now())
        .insert(&txn)
        .await
        .map_err(|err| AuthError::unique_or(err, AuthError::AccountAlreadyLinked))?;
    record_linked(&txn, auth, &account, Some(session_id), meta).await?;
    txn.commit().await?;
    drop(turn);
    tracing::info!(%user_id, "provider linked");
    if let Some(user) = users::Entity::find_by_id(user_id).one(&auth.db).await? {
        notify_linked(notice, auth, &user, provider, Some(session_id));
    }
    Ok(Completed::Linked)
}

/// Tells the owner a provider now signs in to their account.
/// `oauth.linked` for `account`, from the session that asked for it (a
/// link) or from the callback itself (a sign-up or a claim).
pub(super) async fn record_linked(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    account: &accounts::Model,
    session_id: Option<Uuid>,
    meta: &ClientMeta,
) -> Result<(), AuthError> {
    let mut event = Event::new(Kind::OauthLinked, account.user_id)
        .with("provider", account.provider_id.as_str())
        .with("account_id", account.id.to_string());
    if let Some(id) = session_id {
        event = event.session(id);
    }
    event.record(conn, auth, meta).await
}

pub(super) fn notify_linked(
    slot: crate::jobs::Slot,
    auth: &AuthContext,
    user: &users::Model,
    provider: &str,
    by: Option<Uuid>,
) {
    notices::notify(slot, auth, user, notices::Notice::MethodAdded(format!("Sign-in with {provider}")), by);
}

/// Removes one of the user's sign-in methods; `false` when the user has no
/// such account, `LAST_SIGN_IN_METHOD` when it is the only one left.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn unlink(
    auth: &AuthContext,
    current: &session::CurrentSession,
    account_id: Uuid,
) -> Result<bool, AuthError> {
    step_up::require(auth, current, step_up::Presence::Recent)?;
    let user_id = current.user.id;
    // A new credentials version, written first: it serializes concurrent
    // unlinks of one user (a row lock on PostgreSQL, the write lock on
    // SQLite), so two of them cannot each remove "one of two" and leave
    // none, and a sign-in with the way in being removed does not land.
    let change = Change::begin_noticed(auth, current).await?;
    let txn = change.txn();
    user::bump_credentials(txn, user_id).await?;
    let mine = accounts::Entity::find().filter(accounts::Column::UserId.eq(user_id));
    let Some(removed) = mine.clone().filter(accounts::Column::Id.eq(account_id)).one(txn).await? else {
        return Ok(false);
    };
    if ways_in::count(txn, user_id).await? <= 1 {
        return Err(AuthError::LastSignInMethod);
    }
    accounts::Entity::delete_by_id(account_id).exec(txn).await?;
    let details =
        [("provider", removed.provider_id.as_str().into()), ("account_id", account_id.to_string().into())];
    change.record(Kind::OauthUnlinked, &details).await?;
    let committed = change.commit().await?;
    tracing::info!(%account_id, "sign-in method removed");
    // The owner hears of it as of every other change to a way in.
    let what = match removed.provider_id.as_str() {
        crate::config::CREDENTIAL_PROVIDER => "The password".to_owned(),
        provider => format!("Sign-in with {provider}"),
    };
    committed.notify(notices::Notice::MethodRemoved(what)).await;
    Ok(true)
}
