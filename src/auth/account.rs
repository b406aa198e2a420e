//! Sign-up and sign-in with email and password.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{accounts, users, verification_tokens};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, SqlErr,
    TransactionTrait,
};
use tracing::instrument;
use uuid::Uuid;

use super::{
    AuthContext, CREDENTIAL_PROVIDER, ClientMeta,
    limits::{self, Rule},
    recovery,
    session::{self, CurrentSession},
    validate,
};
use crate::{error::AuthError, mail::templates};

/// A user who just signed in, with the session's secret token.
pub struct SignedIn {
    pub token: String,
    pub session: entity::sessions::Model,
    pub user: users::Model,
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

/// Creates the user, its `credential` account and a first session, atomically.
#[instrument(skip_all, fields(user_id))]
pub async fn register(
    auth: &AuthContext,
    input: Registration,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    limits::hit(auth, Rule::RegisterIp, limits::ip_subject(meta.ip_address.as_deref())).await?;
    let email = validate::email_for_signup(&input.email, "email")?;
    validate::new_password(&input.password, &email, auth.config.password_min_score, "password")?;
    let name = validate::profile_name(input.name)?;
    // Hash before opening the transaction: no connection is held for ~50 ms of CPU.
    let password_hash = auth.hasher.hash(input.password).await?;

    let now = auth.clock.now();
    let user_id = Uuid::new_v4();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let txn = auth.db.begin().await?;
    let user = users::ActiveModel {
        id: Set(user_id),
        email: Set(email),
        name: Set(name),
        image: Set(None),
        email_verified: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(email_taken)?;
    credential_account(user_id, password_hash, now).insert(&txn).await?;
    let new = session::create(&txn, auth, user_id, meta).await?;
    txn.commit().await?;
    tracing::info!("user registered");
    metrics::counter!("authgate_auth_events_total", "event" => "register").increment(1);
    recovery::queue_verification(auth, &user);
    Ok(SignedIn { token: new.token, session: new.session, user })
}

/// The email-and-password sign-in method of a user: `account_id` is the user's id.
pub fn credential_account(user_id: Uuid, password_hash: String, now: DateTime<Utc>) -> accounts::ActiveModel {
    account_row(user_id, CREDENTIAL_PROVIDER, &user_id.to_string(), Some(password_hash), now)
}

/// A sign-in method row. Provider tokens are never stored: authgate needs
/// them only during the OAuth callback, and a token it does not keep cannot leak.
pub fn account_row(
    user_id: Uuid,
    provider: &str,
    account_id: &str,
    password_hash: Option<String>,
    now: DateTime<Utc>,
) -> accounts::ActiveModel {
    accounts::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        provider_id: Set(provider.to_owned()),
        account_id: Set(account_id.to_owned()),
        password_hash: Set(password_hash),
        access_token: Set(None),
        refresh_token: Set(None),
        id_token: Set(None),
        access_token_expires_at: Set(None),
        refresh_token_expires_at: Set(None),
        scope: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The unique index on `users.email` is the duplicate check: no racy SELECT.
fn email_taken(err: DbErr) -> AuthError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AuthError::EmailTaken,
        _ => err.into(),
    }
}

/// Signs in with email and password. Unknown email and wrong password give the
/// same error after the same work (one argon2 verification).
#[instrument(skip_all, fields(user_id))]
pub async fn login(
    auth: &AuthContext,
    email: &str,
    password: String,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    // Every attempt counts, before any work: per address, per account from
    // that address, and per account from everywhere (a success resets both).
    let ip = limits::ip_subject(meta.ip_address.as_deref());
    let account = validate::normalize_email(email);
    let account_key: String = match &account {
        Some(email) => email.clone(),
        None => email.trim().to_lowercase().chars().take(254).collect(),
    };
    let account_ip_key = format!("{account_key}|{ip}");
    limits::hit(auth, Rule::LoginIp, ip).await?;
    limits::hit(auth, Rule::LoginAccountIp, &account_ip_key).await?;
    limits::hit(auth, Rule::LoginAccount, &account_key).await?;
    // Over-long passwords never reach argon2 (a 1 MB password must not cost a hash).
    if password.chars().count() > validate::PASSWORD_MAX {
        return Err(AuthError::InvalidCredentials);
    }
    let email = account.ok_or(AuthError::InvalidCredentials)?;
    let found = accounts::Entity::find()
        .filter(accounts::Column::ProviderId.eq(CREDENTIAL_PROVIDER))
        .find_also_related(users::Entity)
        .filter(users::Column::Email.eq(email))
        .one(&auth.db)
        .await?;
    let (stored_hash, user) = match found {
        Some((account, Some(user))) => (account.password_hash, Some(user)),
        _ => (None, None),
    };
    let matched = auth.hasher.verify(password, stored_hash).await?;
    let user = match user {
        Some(user) if matched => user,
        _ => {
            tracing::info!("login failed");
            metrics::counter!("authgate_auth_events_total", "event" => "login_failure").increment(1);
            return Err(AuthError::InvalidCredentials);
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // Checked after the password, so it tells nothing to someone without it.
    if auth.config.require_email_verification && !user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    let new = session::create(&auth.db, auth, user.id, meta).await?;
    limits::clear(auth, Rule::LoginAccountIp, &account_ip_key).await?;
    limits::clear(auth, Rule::LoginAccount, &account_key).await?;
    tracing::info!("login succeeded");
    metrics::counter!("authgate_auth_events_total", "event" => "login_success").increment(1);
    Ok(SignedIn { token: new.token, session: new.session, user })
}

/// The user's `credential` account, if `password` is its password;
/// `INVALID_CREDENTIALS` otherwise (also when the user has no password).
async fn check_password(
    auth: &AuthContext,
    user_id: Uuid,
    password: String,
) -> Result<accounts::Model, AuthError> {
    verify(auth, credential_of(auth, user_id).await?, password).await
}

/// The user's `credential` account (their password), if they have one.
async fn credential_of(auth: &AuthContext, user_id: Uuid) -> Result<Option<accounts::Model>, AuthError> {
    Ok(accounts::Entity::find()
        .filter(accounts::Column::UserId.eq(user_id))
        .filter(accounts::Column::ProviderId.eq(CREDENTIAL_PROVIDER))
        .one(&auth.db)
        .await?)
}

/// `account` if `password` is its password; `INVALID_CREDENTIALS` otherwise.
async fn verify(
    auth: &AuthContext,
    account: Option<accounts::Model>,
    password: String,
) -> Result<accounts::Model, AuthError> {
    if password.chars().count() > validate::PASSWORD_MAX {
        return Err(AuthError::InvalidCredentials);
    }
    let stored = account.as_ref().and_then(|a| a.password_hash.clone());
    match account {
        Some(account) if auth.hasher.verify(password, stored).await? => Ok(account),
        _ => Err(AuthError::InvalidCredentials),
    }
}

pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
    pub revoke_other_sessions: bool,
}

/// Sets a new password after checking the current one; ends the user's
/// other sessions unless asked not to. Returns how many were ended.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn change_password(
    auth: &AuthContext,
    current: &CurrentSession,
    change: PasswordChange,
) -> Result<u64, AuthError> {
    if change.new_password == change.current_password {
        return Err(AuthError::bad_input("newPassword", "the new password must differ from the current one"));
    }
    validate::new_password(
        &change.new_password,
        &current.user.email,
        auth.config.password_min_score,
        "newPassword",
    )?;
    let user_id = current.user.id;
    limits::hit(auth, Rule::PasswordAccount, &user_id.to_string()).await?;
    let account = check_password(auth, user_id, change.current_password).await?;
    let hash = auth.hasher.hash(change.new_password).await?;
    let txn = auth.db.begin().await?;
    accounts::ActiveModel {
        id: Set(account.id),
        password_hash: Set(Some(hash)),
        updated_at: Set(auth.clock.now()),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    let revoked = if change.revoke_other_sessions {
        session::revoke_others(&txn, user_id, Some(current.session.id)).await?
    } else {
        0
    };
    txn.commit().await?;
    tracing::info!(revoked, "password changed");
    Ok(revoked)
}

/// How recent a sign-in must be to delete an account that has no password.
const FRESH_SIGN_IN_MINUTES: i64 = 10;

/// Removes the user with its sessions, accounts and tokens, in one
/// transaction, after checking the password. A user without one (signed up
/// through a provider) proves it is them by a sign-in of the last 10
/// minutes instead (`REAUTHENTICATION_REQUIRED` otherwise).
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn delete(auth: &AuthContext, current: &CurrentSession, password: String) -> Result<(), AuthError> {
    let user_id = current.user.id;
    limits::hit(auth, Rule::PasswordAccount, &user_id.to_string()).await?;
    if let Some(credential) = credential_of(auth, user_id).await? {
        verify(auth, Some(credential), password).await?;
    } else if auth.clock.now() - current.session.created_at > chrono::Duration::minutes(FRESH_SIGN_IN_MINUTES)
    {
        return Err(AuthError::ReauthenticationRequired);
    }
    let txn = auth.db.begin().await?;
    // Explicit deletes, not only ON DELETE CASCADE: correct even where a
    // connection runs with foreign keys off.
    verification_tokens::Entity::delete_many()
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    session::revoke_others(&txn, user_id, None).await?;
    accounts::Entity::delete_many().filter(accounts::Column::UserId.eq(user_id)).exec(&txn).await?;
    users::Entity::delete_by_id(user_id).exec(&txn).await?;
    txn.commit().await?;
    tracing::info!("account deleted");
    Ok(())
}

/// The sign-in methods of each user, oldest first: one query for all of them.
pub async fn for_users(
    auth: &AuthContext,
    user_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<accounts::Model>>, DbErr> {
    let rows = accounts::Entity::find()
        .filter(accounts::Column::UserId.is_in(user_ids.iter().copied()))
        .order_by_asc(accounts::Column::CreatedAt)
        .all(&auth.db)
        .await?;
    Ok(super::group_by_user(rows, |row| row.user_id))
}

/// Gives a password to a user who has none (signed up through OAuth).
/// `PASSWORD_ALREADY_SET` when one exists: that is `changePassword`'s job.
#[instrument(skip_all, fields(user_id = %user.id))]
pub async fn set_password(
    auth: &AuthContext,
    user: &users::Model,
    password: String,
) -> Result<(), AuthError> {
    validate::new_password(&password, &user.email, auth.config.password_min_score, "newPassword")?;
    limits::hit(auth, Rule::PasswordAccount, &user.id.to_string()).await?;
    if credential_of(auth, user.id).await?.is_some() {
        return Err(AuthError::PasswordAlreadySet);
    }
    let hash = auth.hasher.hash(password).await?;
    // The credential account's id is the user's: the unique (provider,
    // account) index refuses a second one, even from a concurrent request.
    credential_account(user.id, hash, auth.clock.now()).insert(&auth.db).await.map_err(|err| {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => AuthError::PasswordAlreadySet,
            _ => err.into(),
        }
    })?;
    tracing::info!("password set");
    auth.mail.send(templates::sign_in_method_added(&user.email, &auth.config.app_url, "A password"));
    Ok(())
}
