//! Turning a provider's identity into a user: sign in through an existing
//! link, link by a verified email, create a new user, or link to the user
//! who started the flow. And removing a link.

use entity::{accounts, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    TransactionTrait,
};
use tracing::instrument;
use uuid::Uuid;

use super::Identity;
use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    notices, session,
    session::{admission, admission::Way, step_up},
    sign_in::{SignedIn, second_step},
    token, user,
    user::{validate, ways_in},
};

/// How a callback ended.
pub enum Completed {
    /// A session was created (sign-in or sign-up).
    SignedIn(Box<SignedIn>),
    /// The provider was linked to the user who started the flow; no new session.
    Linked,
    /// The user has two-factor on: no session yet, but a challenge for
    /// `completeSignIn` (the browser returns to `redirectTo?challenge=…`),
    /// bound to this browser by `binding` (its `signin_binding` cookie).
    SecondFactor { challenge: secrecy::SecretString, binding: secrecy::SecretString },
}

#[instrument(skip_all, fields(user_id))]
pub async fn complete(
    auth: &AuthContext,
    provider: &str,
    identity: Identity,
    link: Option<(Uuid, Uuid)>,
    meta: &ClientMeta,
) -> Result<Completed, AuthError> {
    let now = auth.clock.now();
    let linked = accounts::Entity::find()
        .filter(accounts::Column::ProviderId.eq(provider))
        .filter(accounts::Column::AccountId.eq(&identity.subject))
        .one(&auth.db)
        .await?;
    // A new link (asked for, or by a verified address: perhaps a claim)
    // mails the owner: its place is taken before any write. A sign-in
    // through an existing link mails nobody and waits for nothing.
    let notice = match (link.is_some(), linked.is_none()) {
        (true, _) | (_, true) => Some(notices::notice_slot(auth).await),
        _ => None,
    };
    if let Some((user_id, session_id)) = link {
        return match linked {
            Some(account) if account.user_id == user_id => Ok(Completed::Linked),
            Some(_) => Err(AuthError::AccountAlreadyLinked),
            None => {
                // The session that began the link must still be alive when
                // the link is written, not only before the provider round
                // trip: the user's row is held first, so a password change
                // or reset (which ends sessions) is either wholly before
                // this check or waits until the link is written.
                let txn = auth.db.begin().await?;
                user::lock_user(&txn, user_id, None).await?;
                if !session::is_alive(&txn, auth, user_id, session_id).await? {
                    return Err(AuthError::Unauthenticated);
                }
                user::account_row(user_id, provider, &identity.subject, None, now)
                    .insert(&txn)
                    .await
                    .map_err(|err| AuthError::unique_or(err, AuthError::AccountAlreadyLinked))?;
                txn.commit().await?;
                tracing::info!(%user_id, "provider linked");
                let user = users::Entity::find_by_id(user_id).one(&auth.db).await?;
                if let (Some(slot), Some(user)) = (notice, user) {
                    notify_linked(slot, auth, &user, provider, Some(session_id));
                }
                Ok(Completed::Linked)
            }
        };
    }
    let linked_before = linked.clone();
    let txn = auth.db.begin().await?;
    let mut linked_by_email = false;
    // A claim ends whoever registered the address: their sessions are forgotten.
    let mut forget = None;
    let user = match linked {
        Some(account) => {
            users::Entity::find_by_id(account.user_id).one(&txn).await?.ok_or(AuthError::Internal)?
        }
        None => {
            // A new link needs an address the provider vouches for: linking on
            // an unverified one would hand an existing account (or, later, a
            // sign-up with that address) to whoever controls the provider account.
            let raw = identity.email.as_deref().ok_or(AuthError::OAuthEmailMissing)?;
            // The one normalisation of every entry point: ASCII case folding
            // only (a Kelvin sign is refused, not folded onto k), IDNA domains.
            let email = validate::normalize_email(raw).ok_or(AuthError::OAuthEmailMissing)?;
            if !identity.email_verified {
                return Err(AuthError::OAuthEmailNotVerified);
            }
            let existing = users::Entity::find().filter(users::Column::Email.eq(&email)).one(&txn).await?;
            let user = match existing {
                Some(user) => {
                    linked_by_email = true;
                    forget = Some(auth.sessions.changing(user.id));
                    mark_verified(&txn, user, now).await?
                }
                None => create_user(&txn, email, &identity, now).await?,
            };
            user::account_row(user.id, provider, &identity.subject, None, now)
                .insert(&txn)
                .await
                .map_err(|err| AuthError::unique_or(err, AuthError::AccountAlreadyLinked))?;
            user
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // The provider is one factor, like a password: a user with two-factor
    // on meets the same second step, if the gate would admit them.
    let mut ended_oldest = None;
    let completed = if user.two_factor_enabled {
        admission::may_hold_session(auth, &user)?;
        let binding = token::generate();
        let method = format!("oauth:{provider}");
        let challenge = second_step::challenge(auth, &txn, &user, &method, Some(binding.hash)).await?;
        Completed::SecondFactor { challenge, binding: binding.secret.into() }
    } else {
        // As for a password sign-in: a reset (which may remove this link)
        // or a claim that ran meanwhile wins, and one that runs later sees
        // this session.
        let (version, one) = (user.credentials_version, session::Assurance::OneFactor);
        let admitted = admission::admit(&txn, auth, user.id, version, Way::Provider, one).await?;
        // Signed in through an existing link read before the transaction:
        // under the user's row now, it must still be there (a reset that
        // removed it, or an unlink, committed meanwhile wins).
        if let Some(account) = &linked_before
            && accounts::Entity::find_by_id(account.id).one(&txn).await?.is_none()
        {
            return Err(AuthError::Unauthenticated);
        }
        let new = session::create(&txn, auth, admitted, meta).await?;
        let (token, session) = (new.token, new.session);
        ended_oldest = new.ended_oldest;
        // (told to the cache after the commit, below)
        Completed::SignedIn(Box::new(SignedIn { token, session, user: user.clone(), device: None }))
    };
    txn.commit().await?;
    for forget in [forget, ended_oldest].into_iter().flatten() {
        forget.done();
    }
    if let (true, Some(slot)) = (linked_by_email, notice) {
        notify_linked(slot, auth, &user, provider, None);
    }
    match &completed {
        Completed::SecondFactor { .. } => tracing::info!("provider sign-in checked; second factor required"),
        _ => {
            tracing::info!("signed in through OAuth");
            metrics::counter!("authgate_auth_events_total", "event" => "oauth_login").increment(1);
        }
    }
    Ok(completed)
}

/// Tells the owner a provider now signs in to their account.
fn notify_linked(
    slot: crate::jobs::Slot,
    auth: &AuthContext,
    user: &users::Model,
    provider: &str,
    by: Option<Uuid>,
) {
    notices::notify(slot, auth, user, notices::Notice::MethodAdded(format!("Sign-in with {provider}")), by);
}

/// The provider just proved the address belongs to this person. If the
/// existing user had never proved it, whoever registered it may not be them
/// (account pre-hijacking): every way in they set up (password, linked
/// providers, flows in progress, mailed tokens, sessions) is removed.
async fn mark_verified(
    conn: &impl ConnectionTrait,
    user: users::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<users::Model, AuthError> {
    if user.email_verified {
        return Ok(user);
    }
    // The new credentials version first: it waits for a sign-in holding the
    // row, whose session the deletes below then see and remove (or that
    // sign-in sees the new version and does not land).
    user::bump_credentials(conn, user.id).await?;
    let ended = ways_in::adopt(conn, user.id).await?;
    tracing::warn!(user_id = %user.id, sessions_ended = ended, "unverified account claimed through a verified provider email");
    user::mark_email_verified(conn, user.id, now).await
}

async fn create_user(
    conn: &impl ConnectionTrait,
    email: String,
    identity: &Identity,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<users::Model, AuthError> {
    // Profile data from the provider is kept only when it passes our own rules.
    let name = identity.name.clone().and_then(|n| validate::profile_name(Some(n)).ok().flatten());
    let image = identity.image.as_deref().and_then(|i| validate::image_url(i).ok());
    let user = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email),
        name: Set(name),
        image: Set(image),
        email_verified: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        credentials_version: Set(0),
        two_factor_enabled: Set(false),
    }
    .insert(conn)
    .await?;
    tracing::info!(user_id = %user.id, "user registered through OAuth");
    metrics::counter!("authgate_auth_events_total", "event" => "register").increment(1);
    Ok(user)
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
    let notice = notices::notice_slot(auth).await;
    let forget = auth.sessions.changing(user_id);
    let txn = auth.db.begin().await?;
    // A new credentials version, written first: it serializes concurrent
    // unlinks of one user (a row lock on PostgreSQL, the write lock on
    // SQLite), so two of them cannot each remove "one of two" and leave
    // none, and a sign-in with the way in being removed does not land.
    session::hold_session(&txn, auth, current).await?;
    user::bump_credentials(&txn, user_id).await?;
    let mine = accounts::Entity::find().filter(accounts::Column::UserId.eq(user_id));
    let Some(removed) = mine.clone().filter(accounts::Column::Id.eq(account_id)).one(&txn).await? else {
        return Ok(false);
    };
    if ways_in::count(&txn, user_id).await? <= 1 {
        return Err(AuthError::LastSignInMethod);
    }
    accounts::Entity::delete_by_id(account_id).exec(&txn).await?;
    txn.commit().await?;
    forget.done();
    tracing::info!(%account_id, "sign-in method removed");
    // The owner hears of it as of every other change to a way in.
    let what = match removed.provider_id.as_str() {
        crate::config::CREDENTIAL_PROVIDER => "The password".to_owned(),
        provider => format!("Sign-in with {provider}"),
    };
    notices::notify(
        notice,
        auth,
        &current.user,
        notices::Notice::MethodRemoved(what),
        Some(current.session.id),
    );
    Ok(true)
}
