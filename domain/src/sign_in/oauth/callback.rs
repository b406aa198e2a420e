//! A provider's callback, once its state checked out: one of three flows.
//! Through an existing link, the linked user signs in; with no link, the
//! address the provider vouches for signs up a new user or claims the
//! account that has it; from a signed-in user's `linkOAuth`, the provider
//! is linked to that user (`link.rs`). The first two end in a session or,
//! with two-factor on, the second step.

use entity::{accounts, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter,
};
use tracing::instrument;
use uuid::Uuid;

use super::{Identity, link};
use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    events,
    events::{Ended, Event, Kind},
    session::{self, admission, admission::Way, cache::Forget},
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

/// `link`: the user and session that started a `linkOAuth` flow.
#[instrument(skip_all, fields(user_id))]
pub(crate) async fn complete(
    auth: &AuthContext,
    provider: &str,
    identity: Identity,
    link: Option<(Uuid, Uuid)>,
    meta: &ClientMeta,
) -> Result<Completed, AuthError> {
    let linked = accounts::Entity::find()
        .filter(accounts::Column::ProviderId.eq(provider))
        .filter(accounts::Column::AccountId.eq(&identity.subject))
        .one(&auth.db)
        .await?;
    let completed = match (link, linked) {
        (Some((user_id, session_id)), linked) => {
            return link::to_session(auth, provider, &identity, linked, (user_id, session_id), meta).await;
        }
        (None, Some(account)) => sign_in_linked(auth, account, provider, meta).await?,
        (None, None) => sign_up_or_claim(auth, provider, &identity, meta).await?,
    };
    match &completed {
        Completed::SecondFactor { .. } => tracing::info!("provider sign-in checked; second factor required"),
        _ => {
            tracing::info!("signed in through OAuth");
            crate::telemetry::AuthEvent::OAuthLogin.count();
        }
    }
    Ok(completed)
}

/// Through an existing link: its user signs in. A sign-in mails nobody.
async fn sign_in_linked(
    auth: &AuthContext,
    account: accounts::Model,
    provider: &str,
    meta: &ClientMeta,
) -> Result<Completed, AuthError> {
    let (_turn, txn) = auth.write().await?;
    let user = users::Entity::find_by_id(account.user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AuthError::internal("a provider link without its user", account.id))?;
    let (completed, ended_oldest) =
        session_or_second_step(auth, &txn, &user, provider, Some(&account), meta).await?;
    txn.commit().await?;
    if let Some(forget) = ended_oldest {
        forget.done();
    }
    Ok(completed)
}

/// No link yet: the address the provider vouches for signs up a new user,
/// or claims the account that has it (a new link, mailed to the owner).
async fn sign_up_or_claim(
    auth: &AuthContext,
    provider: &str,
    identity: &Identity,
    meta: &ClientMeta,
) -> Result<Completed, AuthError> {
    let now = auth.clock.now();
    // A new link mails the owner: its place is taken before any write.
    let notice = crate::notices::notice_slot(auth).await;
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
    let (_turn, txn) = auth.write().await?;
    // A claim ends whoever registered the address: their sessions are forgotten.
    let mut claimed = None;
    let existing = users::Entity::find().filter(users::Column::Email.eq(&email)).one(&txn).await?;
    let user = match existing {
        Some(user) => {
            claimed = Some(auth.sessions.changing(user.id));
            mark_verified(&txn, auth, user, meta).await?
        }
        None => {
            let user = create_user(&txn, email, identity, now).await?;
            Event::new(Kind::UserCreated, user.id).with("method", provider).record(&txn, auth, meta).await?;
            user
        }
    };
    let account = user::account_row(user.id, provider, &identity.subject, None, now)
        .insert(&txn)
        .await
        .map_err(|err| AuthError::unique_or(err, AuthError::AccountAlreadyLinked))?;
    link::record_linked(&txn, auth, &account, None, meta).await?;
    let (completed, ended_oldest) = session_or_second_step(auth, &txn, &user, provider, None, meta).await?;
    txn.commit().await?;
    let linked_by_email = claimed.is_some();
    for forget in [claimed, ended_oldest].into_iter().flatten() {
        forget.done();
    }
    if linked_by_email {
        link::notify_linked(notice, auth, &user, provider, None);
    }
    Ok(completed)
}

/// The provider is one factor, like a password: a user with two-factor on
/// meets the same second step, if the gate would admit them; anyone else
/// gets a session through the gate. `linked_before`: the link read before
/// the transaction, which must still be there under the user's row.
async fn session_or_second_step(
    auth: &AuthContext,
    txn: &DatabaseTransaction,
    user: &users::Model,
    provider: &str,
    linked_before: Option<&accounts::Model>,
    meta: &ClientMeta,
) -> Result<(Completed, Option<Forget>), AuthError> {
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    if user.two_factor_enabled {
        admission::may_hold_session(auth, user)?;
        let binding = token::generate();
        let method = format!("oauth:{provider}");
        let challenge = second_step::challenge(auth, txn, user, &method, Some(binding.hash)).await?;
        return Ok((Completed::SecondFactor { challenge, binding: binding.secret.into() }, None));
    }
    // As for a password sign-in: a reset (which may remove this link)
    // or a claim that ran meanwhile wins, and one that runs later sees
    // this session.
    let (version, one) = (user.credentials_version, session::Assurance::OneFactor);
    let admitted = admission::admit(txn, auth, user.id, version, Way::Provider, one).await?;
    // Signed in through an existing link read before the transaction:
    // under the user's row now, it must still be there (a reset that
    // removed it, or an unlink, committed meanwhile wins).
    if let Some(account) = linked_before
        && accounts::Entity::find_by_id(account.id).one(txn).await?.is_none()
    {
        return Err(AuthError::Unauthenticated);
    }
    let new = session::create(txn, auth, admitted, meta).await?;
    // (told to the cache by the caller, after the commit)
    let signed = SignedIn { token: new.token, session: new.session, user: user.clone(), device: None };
    Ok((Completed::SignedIn(Box::new(signed)), new.ended_oldest))
}

/// The provider just proved the address belongs to this person. If the
/// existing user had never proved it, whoever registered it may not be them
/// (account pre-hijacking): every way in they set up (password, linked
/// providers, flows in progress, mailed tokens, sessions) is removed.
async fn mark_verified(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user: users::Model,
    meta: &ClientMeta,
) -> Result<users::Model, AuthError> {
    if user.email_verified {
        return Ok(user);
    }
    // The new credentials version first: it waits for a sign-in holding the
    // row, whose session the deletes below then see and remove (or that
    // sign-in sees the new version and does not land).
    user::bump_credentials(conn, user.id).await?;
    let ended = ways_in::adopt(conn, user.id).await?;
    // Without where the owner is: the ended sessions' holder may hear of it.
    events::sessions_ended(conn, auth, user.id, &ended, Ended::Claimed, &ClientMeta::default()).await?;
    tracing::warn!(user_id = %user.id, sessions_ended = ended.len(), "unverified account claimed through a verified provider email");
    Event::new(Kind::UserEmailVerified, user.id).with("by", "provider").record(conn, auth, meta).await?;
    user::mark_email_verified(conn, user.id, auth.clock.now()).await
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
        banned_at: Set(None),
        banned_until: Set(None),
        ban_reason: Set(None),
    }
    .insert(conn)
    .await?;
    tracing::info!(user_id = %user.id, "user registered through OAuth");
    crate::telemetry::AuthEvent::Register.count();
    Ok(user)
}
