//! Sign-up and sign-in with email and password.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{accounts, users, verification_tokens};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use tracing::instrument;
use uuid::Uuid;

use super::{
    AuthContext, CREDENTIAL_PROVIDER, ClientMeta,
    admission::{self, Way},
    device::Device,
    limits::{self, Rule},
    recovery, second_step,
    session::{self, Assurance, CurrentSession},
    step_up::{self, Presence},
    validate,
};
use crate::{
    error::{AuthError, Input},
    jobs::{Lane, Slot},
    mail::templates,
};

/// A user who just signed in, with the session's secret token.
pub struct SignedIn {
    pub token: String,
    pub session: entity::sessions::Model,
    pub user: users::Model,
    /// The device cookie to give the client (password sign-ins): it proved
    /// it knows this account's password.
    pub device: Option<Device>,
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

/// Creates the user, its `credential` account and a first session, atomically.
///
/// When addresses must be verified first, the user and its password are
/// created and the link is mailed, but no session: `EMAIL_NOT_VERIFIED`.
/// In privacy mode a taken address answers exactly that too (after the
/// same work), and its owner is mailed instead of the caller being told.
#[instrument(skip_all, fields(user_id))]
pub async fn register(
    auth: &AuthContext,
    input: Registration,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    limits::hit(auth, Rule::RegisterIp, &limits::ip_subject(meta)).await?;
    let email = validate::email_for_signup(&input.email, Input::Email)?;
    validate::new_password(&input.password, &email, auth.config.password_min_score, Input::Password)?;
    let name = validate::profile_name(input.name)?;
    // Per target address and for the whole server: probing which addresses
    // have an account (EMAIL_TAKEN) costs an attacker the same everywhere.
    limits::hit(auth, Rule::RegisterEmail, &email).await?;
    limits::hit(auth, Rule::RegisterGlobal, "all").await?;
    // Hash before opening the transaction: no connection is held for ~50 ms of CPU.
    let password_hash = auth.hasher.hash(input.password).await?;

    let now = auth.clock.now();
    let user_id = Uuid::new_v4();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    // The verification link's place, before anything is written (a taken
    // address waits for it alike, so waiting tells nothing).
    let link = auth.jobs.reserve(Lane::Links).await;
    let txn = auth.db.begin().await?;
    let inserted = users::ActiveModel {
        id: Set(user_id),
        email: Set(email.clone()),
        name: Set(name),
        image: Set(None),
        email_verified: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        credentials_version: Set(0),
        two_factor_enabled: Set(false),
    }
    .insert(&txn)
    .await
    // The unique index on `users.email` is the duplicate check: no racy SELECT.
    .map_err(|err| AuthError::unique_or(err, AuthError::EmailTaken));
    let user = match inserted {
        Ok(user) => user,
        Err(AuthError::EmailTaken) if auth.config.register_privacy => {
            drop(txn);
            tracing::info!("registration with a taken address; owner notified");
            auth.mail.send(templates::registration_attempted(&email, &auth.config.app_url));
            return Err(AuthError::EmailNotVerified);
        }
        Err(e) => return Err(e),
    };
    credential_account(user_id, password_hash, now).insert(&txn).await?;
    // The account exists either way; a session only if the gate admits it
    // (no session until the address is proved, when the server requires it).
    let admitted = admission::admit(&txn, auth, user_id, 0, Way::Registration, Assurance::OneFactor).await;
    let new = match admitted {
        Ok(admitted) => Some(session::create(&txn, auth, admitted, meta).await?),
        Err(AuthError::EmailNotVerified) => None,
        Err(e) => return Err(e),
    };
    txn.commit().await?;
    tracing::info!(signed_in = new.is_some(), "user registered");
    metrics::counter!("authgate_auth_events_total", "event" => "register").increment(1);
    recovery::queue_verification(link, auth, &user);
    let (token, session) = new.ok_or(AuthError::EmailNotVerified)?.committed();
    let device = Some(Device::issue(&user.email, user.credentials_version));
    Ok(SignedIn { token, session, user, device })
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
        created_at: Set(now),
        updated_at: Set(now),
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
            metrics::counter!("authgate_auth_events_total", "event" => "login_failure").increment(1);
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
    let txn = auth.db.begin().await?;
    let admitted =
        admission::admit(&txn, auth, user.id, user.credentials_version, Way::Password, Assurance::OneFactor)
            .await?;
    let new = session::create(&txn, auth, admitted, meta).await?;
    txn.commit().await?;
    let (token, session) = new.committed();
    counters.clear(auth).await?;
    tracing::info!(trusted_device = counters.device.is_some(), "login succeeded");
    metrics::counter!("authgate_auth_events_total", "event" => "login_success").increment(1);
    let device = Some(counters.device_for(&user));
    Ok(SignedIn { token, session, user, device })
}

/// Stores a just-proved password again at today's argon2 cost (the
/// settings changed since it was stored), unless it changed meanwhile.
/// A failure is logged: the sign-in itself succeeded.
async fn rehash_password(auth: &AuthContext, account_id: Uuid, old: &str, password: String) {
    use sea_orm::sea_query::Expr;
    let stored = match auth.hasher.hash(password).await {
        Ok(hash) => accounts::Entity::update_many()
            .col_expr(accounts::Column::PasswordHash, Expr::value(hash))
            .col_expr(accounts::Column::UpdatedAt, Expr::value(auth.clock.now()))
            .filter(accounts::Column::Id.eq(account_id))
            .filter(accounts::Column::PasswordHash.eq(old))
            .exec(&auth.db)
            .await
            .map_err(AuthError::from),
        Err(e) => Err(e),
    };
    match stored {
        Ok(_) => tracing::info!("password stored again at today's argon2 cost"),
        Err(e) => {
            e.report();
            tracing::warn!(error = %e, "password not rehashed");
        }
    }
}

/// A random sample of the stored password hashes (not the newest: those
/// are the active users', already rehashed, while dormant accounts keep
/// the old cost), for the hasher to check unknown emails at the cost most
/// of them have.
pub async fn calibrate_dummy(auth: &AuthContext) -> Result<(), AuthError> {
    use sea_orm::{
        QuerySelect,
        sea_query::{Expr, Func, SimpleExpr},
    };
    let sample: Vec<Option<String>> = accounts::Entity::find()
        .select_only()
        .column(accounts::Column::PasswordHash)
        .filter(accounts::Column::ProviderId.eq(CREDENTIAL_PROVIDER))
        .filter(Expr::col(accounts::Column::PasswordHash).is_not_null())
        .order_by(SimpleExpr::FunctionCall(Func::random()), sea_orm::Order::Asc)
        .limit(1000)
        .into_tuple()
        .all(&auth.db)
        .await?;
    auth.hasher.calibrate(&sample.into_iter().flatten().collect::<Vec<_>>()).await
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
    let live = super::verification::has_live(auth, user.id, super::verification::Purpose::EmailVerification);
    if !live.await? {
        // Over the mail limit (or the counter unreachable) no link goes out;
        // the answer does not change.
        match limits::hit(auth, Rule::MailAccount, &user.email).await {
            Ok(()) => recovery::queue_verification(auth.jobs.reserve(Lane::Links).await, auth, user),
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

/// The per-account counters one sign-in attempt counts against: either
/// per trusted device (a client that signed in to this account under its
/// current credentials) or, for any other client, per account from that
/// address and per account from everywhere. A device is not held back by
/// the account-wide ceiling, which anyone can exhaust to lock the owner
/// out. Wrong passwords and wrong second-factor codes count alike; only a
/// completed sign-in clears them.
pub struct LoginCounters {
    device: Option<Device>,
    account: String,
    account_ip: String,
}

impl LoginCounters {
    /// For the account `account_key` names (a normalised address), tried
    /// from `ip` by the client `meta` describes; `user` when it exists.
    pub fn new(account_key: &str, ip: &str, meta: &ClientMeta, user: Option<&users::Model>) -> Self {
        let device = meta
            .device
            .as_ref()
            .filter(|d| user.is_some_and(|u| d.trusted_for(&u.email, u.credentials_version)))
            .cloned();
        Self { device, account: account_key.to_owned(), account_ip: format!("{account_key}|{ip}") }
    }

    pub async fn hit(&self, auth: &AuthContext) -> Result<(), AuthError> {
        match &self.device {
            Some(device) => limits::hit(auth, Rule::LoginDevice, &device.nonce).await,
            None => {
                limits::hit(auth, Rule::LoginAccountIp, &self.account_ip).await?;
                limits::hit(auth, Rule::LoginAccount, &self.account).await
            }
        }
    }

    pub async fn clear(&self, auth: &AuthContext) -> Result<(), AuthError> {
        match &self.device {
            Some(device) => limits::clear(auth, Rule::LoginDevice, &device.nonce).await,
            None => {
                limits::clear(auth, Rule::LoginAccountIp, &self.account_ip).await?;
                limits::clear(auth, Rule::LoginAccount, &self.account).await
            }
        }
    }

    /// A second-factor code for `user_id`: counted like a password and, but
    /// for the owner's trusted device, against a tighter per-account budget
    /// (a 6-digit code is far easier to guess than a password).
    pub async fn hit_code(&self, auth: &AuthContext, user_id: Uuid) -> Result<(), AuthError> {
        self.hit(auth).await?;
        match self.device {
            Some(_) => Ok(()),
            None => limits::hit(auth, Rule::SecondFactorAccount, &user_id.to_string()).await,
        }
    }

    /// A sign-in completed with a second factor: every budget it spent is whole again.
    pub async fn clear_code(&self, auth: &AuthContext, user_id: Uuid) -> Result<(), AuthError> {
        self.clear(auth).await?;
        limits::clear(auth, Rule::SecondFactorAccount, &user_id.to_string()).await
    }

    /// The device cookie for a completed password sign-in: the one it came
    /// with, or a new one.
    pub fn device_for(&self, user: &users::Model) -> Device {
        self.device.clone().unwrap_or_else(|| Device::issue(&user.email, user.credentials_version))
    }
}

/// Holds `user_id`'s row until the transaction ends (a write that changes
/// nothing visible: a row lock on PostgreSQL, the write lock on SQLite),
/// if its credentials are still `version` (any version when `None`).
/// `false` when the row is gone or its credentials changed since.
pub async fn lock_user(
    conn: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    version: Option<i64>,
) -> Result<bool, AuthError> {
    use sea_orm::sea_query::Expr;
    let mut update = users::Entity::update_many()
        .col_expr(users::Column::CredentialsVersion, Expr::col(users::Column::CredentialsVersion).into())
        .filter(users::Column::Id.eq(user_id));
    if let Some(version) = version {
        update = update.filter(users::Column::CredentialsVersion.eq(version));
    }
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// First in a change made through a session: holds the user's row on the
/// credentials version the session was read with, and checks the session
/// still lives. A reset, claim or password change that committed since
/// wins: the change answers `UNAUTHENTICATED`, as it would a moment later
/// (a thief's request in flight does not land after the owner's reset).
pub async fn hold_session(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    current: &CurrentSession,
) -> Result<(), AuthError> {
    let user_id = current.user.id;
    if !lock_user(conn, user_id, Some(current.user.credentials_version)).await?
        || !session::is_alive(conn, auth, user_id, current.session.id).await?
    {
        tracing::info!(%user_id, "a change lost a race with a change of credentials or the session's end");
        return Err(AuthError::Unauthenticated);
    }
    Ok(())
}

/// Starts a new credentials version for `user_id` (a password change, a
/// reset, a claim): sign-ins that checked the old password no longer land.
/// First in its transaction, so it waits for a sign-in holding the row.
pub async fn bump_credentials(conn: &impl sea_orm::ConnectionTrait, user_id: Uuid) -> Result<(), AuthError> {
    use sea_orm::sea_query::Expr;
    users::Entity::update_many()
        .col_expr(users::Column::CredentialsVersion, Expr::col(users::Column::CredentialsVersion).add(1))
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
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
pub(super) async fn credential_of(
    auth: &AuthContext,
    user_id: Uuid,
) -> Result<Option<accounts::Model>, AuthError> {
    Ok(accounts::Entity::find()
        .filter(accounts::Column::UserId.eq(user_id))
        .filter(accounts::Column::ProviderId.eq(CREDENTIAL_PROVIDER))
        .one(&auth.db)
        .await?)
}

/// `account` if `password` is its password; `INVALID_CREDENTIALS` otherwise.
pub(super) async fn verify(
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
        return Err(AuthError::bad_input(
            Input::NewPassword,
            "the new password must differ from the current one",
        ));
    }
    validate::new_password(
        &change.new_password,
        &current.user.email,
        auth.config.password_min_score,
        Input::NewPassword,
    )?;
    step_up::require(auth, current, Presence::PasswordGiven)?;
    let user_id = current.user.id;
    limits::hit(auth, Rule::PasswordAccount, &user_id.to_string()).await?;
    let account = check_password(auth, user_id, change.current_password).await?;
    let hash = auth.hasher.hash(change.new_password).await?;
    let notice = notice_slot(auth).await;
    auth.checkpoints.reach("change_password:hashed").await;
    let forget = auth.sessions.changing(user_id);
    let txn = auth.db.begin().await?;
    hold_session(&txn, auth, current).await?;
    bump_credentials(&txn, user_id).await?;
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
    // A reset link mailed before the change would undo it.
    verification_tokens::Entity::delete_many()
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.eq(super::verification::Purpose::PasswordReset.as_str()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    forget.done();
    tracing::info!(revoked, "password changed");
    notify(notice, auth, &current.user, Notice::PasswordChanged, Some(current.session.id));
    Ok(revoked)
}

/// Removes the user with its sessions, accounts and tokens, in one
/// transaction, after checking the password. A user without one (signed up
/// through a provider) needs a session that proved presence recently
/// instead; with two-factor on, both need two factors (step-up,
/// `REAUTHENTICATION_REQUIRED` otherwise).
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn delete(auth: &AuthContext, current: &CurrentSession, password: String) -> Result<(), AuthError> {
    let user_id = current.user.id;
    limits::hit(auth, Rule::PasswordAccount, &user_id.to_string()).await?;
    // The password proves presence by itself; without one, a recent proof.
    if let Some(credential) = credential_of(auth, user_id).await? {
        step_up::require(auth, current, Presence::PasswordGiven)?;
        verify(auth, Some(credential), password).await?;
    } else {
        step_up::require(auth, current, Presence::Recent)?;
    }
    let forget = auth.sessions.changing(user_id);
    let txn = auth.db.begin().await?;
    hold_session(&txn, auth, current).await?;
    remove_ways_in(&txn, user_id).await?;
    users::Entity::delete_by_id(user_id).exec(&txn).await?;
    txn.commit().await?;
    forget.done();
    tracing::info!("account deleted");
    Ok(())
}

/// Every table holding rows of one user besides `users`, with the column
/// naming the user: the one list deletion and a claim go by (a test holds
/// it to the database's foreign keys, so a new table cannot be missed).
pub const USER_TABLES: [(&str, &str); 9] = [
    ("accounts", "user_id"),
    ("passkeys", "user_id"),
    ("passkey_challenges", "user_id"),
    ("totp_credentials", "user_id"),
    ("recovery_codes", "user_id"),
    ("sign_in_challenges", "user_id"),
    ("oauth_flows", "link_user_id"),
    ("verification_tokens", "user_id"),
    ("sessions", "user_id"),
];

/// Removes every way into `user_id`'s account: its sign-in methods, the
/// OAuth flows that would link to it, mailed tokens and sessions (every
/// row of `USER_TABLES`). Explicit deletes, not only ON DELETE CASCADE:
/// correct even where a connection runs with foreign keys off. Returns how
/// many sessions ended.
pub async fn remove_ways_in(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, AuthError> {
    use sea_orm::sea_query::{Alias, Expr, Query};
    let mut sessions_ended = 0;
    for (table, column) in USER_TABLES {
        let delete = Query::delete()
            .from_table(Alias::new(table))
            .and_where(Expr::col(Alias::new(column)).eq(user_id))
            .to_owned();
        let removed = conn.execute(conn.get_database_backend().build(&delete)).await?.rows_affected();
        if table == "sessions" {
            sessions_ended = removed;
        }
    }
    // With its authenticator gone, two-factor is off (a claimed account's
    // owner must not meet a second step set up by whoever registered it).
    super::two_factor::set_enabled(conn, user_id, false).await?;
    Ok(sessions_ended)
}

/// An account whose address was never proved is adopted by the person
/// who just proved it (a reset link, a provider that vouches for it):
/// whoever registered it may have been someone else. Every way in they set
/// up goes (`remove_ways_in`), and so do the name and picture they chose
/// (a picture URL on their server would tell them when the owner looks).
/// The caller has started a new credentials version first.
pub async fn adopt(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, AuthError> {
    use sea_orm::sea_query::Expr;
    let ended = remove_ways_in(conn, user_id).await?;
    users::Entity::update_many()
        .col_expr(users::Column::Name, Expr::value(Option::<String>::None))
        .col_expr(users::Column::Image, Expr::value(Option::<String>::None))
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(ended)
}

/// Marks the user's email verified (a mailed link, a reset, or a provider
/// that vouches for it).
pub async fn mark_email_verified(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<users::Model, AuthError> {
    let user = users::ActiveModel {
        id: Set(user_id),
        email_verified: Set(true),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(user.update(conn).await?)
}

/// What a notice to the owner is about.
pub enum Notice {
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
pub fn notify(slot: Slot, auth: &AuthContext, user: &users::Model, notice: Notice, by: Option<Uuid>) {
    if !user.email_verified {
        return tracing::info!(user_id = %user.id, notice = %notice.key(), "no notice to an address nobody proved");
    }
    let (worker, user) = (auth.clone(), user.clone());
    slot.run(async move {
        if let Err(e) = send_notice(&worker, &user, notice, by).await {
            e.report();
            tracing::warn!(error = %e, "account notice not sent");
        }
    });
}

/// A place for a notice, reserved before the change it will tell of.
pub async fn notice_slot(auth: &AuthContext) -> Slot {
    auth.jobs.reserve(Lane::Notices).await
}

async fn send_notice(
    auth: &AuthContext,
    user: &users::Model,
    notice: Notice,
    by: Option<Uuid>,
) -> Result<(), AuthError> {
    let WaysIn { labels: methods, identity } = ways_in(auth, user.id).await?;
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
    let passkeys = super::passkey::of_user(&auth.db, user_id).await?;
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
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn set_password(
    auth: &AuthContext,
    current: &CurrentSession,
    password: String,
) -> Result<(), AuthError> {
    let user = &current.user;
    validate::new_password(&password, &user.email, auth.config.password_min_score, Input::NewPassword)?;
    step_up::require_to_add(auth, current)?;
    limits::hit(auth, Rule::PasswordAccount, &user.id.to_string()).await?;
    if credential_of(auth, user.id).await?.is_some() {
        return Err(AuthError::PasswordAlreadySet);
    }
    let hash = auth.hasher.hash(password).await?;
    let notice = notice_slot(auth).await;
    // The credential account's id is the user's: the unique (provider,
    // account) index refuses a second one, even from a concurrent request.
    credential_account(user.id, hash, auth.clock.now())
        .insert(&auth.db)
        .await
        .map_err(|err| AuthError::unique_or(err, AuthError::PasswordAlreadySet))?;
    tracing::info!("password set");
    notify(notice, auth, user, Notice::MethodAdded("A password".to_owned()), Some(current.session.id));
    Ok(())
}
