//! The TOTP authenticator (RFC 6238: SHA-1, 6 digits, 30 s, one step
//! either side): setting it up, confirming it (which turns two-factor on),
//! turning it off, and its secrets sealed at rest.

use chrono::{DateTime, Utc};
use entity::{recovery_codes, totp_credentials};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext,
    error::{AuthError, Input},
    events::Kind,
    factors::recovery::replace_recovery_codes,
    limits,
    limits::Rule,
    notices::Notice,
    session,
    session::{Assurance, CurrentSession, change::Change, step_up, step_up::Presence},
    user,
};

/// What an authenticator app needs: shown once, while setting up.
pub struct Setup {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/…`
    pub uri: String,
    /// The URI as a QR code.
    pub qr_code_svg: String,
}

/// The RFC 6238 generator for `secret` (`account` names it in the app).
pub(crate) fn totp(auth: &AuthContext, secret: Vec<u8>, account: &str) -> Result<totp_rs::Totp, AuthError> {
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(account.replace(':', "."))
        .with_issuer(Some(auth.config.totp_issuer.as_str()))
        .build()
        .map_err(|e| AuthError::internal("the TOTP generator refused its settings", e))
}

/// Starts (or restarts) setting up an authenticator for the caller: a new
/// secret, kept encrypted as the pending one until a code confirms it.
/// Needs a recent sign-in (step-up). A confirmed authenticator stays in use
/// until a new one is confirmed.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn start_setup(auth: &AuthContext, current: &CurrentSession) -> Result<Setup, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    step_up::require_to_add(auth, current)?;
    let user = &current.user;
    limits::hit(auth, Rule::FactorChangeAccount, &user.id.to_string()).await?;
    let mut secret = vec![0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let generator = totp(auth, secret.clone(), &user.email)?;
    let sealed = seal(auth, &secret, user.id)?;
    let now = auth.clock.now();
    let row = totp_credentials::ActiveModel {
        user_id: Set(user.id),
        secret: Set(None),
        pending_secret: Set(Some(sealed)),
        last_step: Set(None),
        confirmed_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    totp_credentials::Entity::insert(row)
        .on_conflict(
            OnConflict::column(totp_credentials::Column::UserId)
                .update_columns([
                    totp_credentials::Column::PendingSecret,
                    totp_credentials::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&auth.db)
        .await?;
    let uri = generator.to_url().map_err(|e| AuthError::internal("an otpauth URI", e))?;
    let qr_code_svg = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| AuthError::internal("the setup's QR code", e))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    tracing::info!("two-factor setup started");
    Ok(Setup { secret: generator.secret().to_base32(), uri, qr_code_svg })
}

/// Confirms the pending setup with a current code from the app: two-factor
/// is on, the caller's session counts as two factors, and the recovery
/// codes (new ones, replacing any) are returned, the only time they are
/// shown. A wrong code is `BAD_USER_INPUT` (field `code`).
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn confirm_setup(
    auth: &AuthContext,
    current: &CurrentSession,
    code: &str,
) -> Result<Vec<String>, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    let user = &current.user;
    if !user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    limits::hit(auth, Rule::PasswordAccount, &user.id.to_string()).await?;
    let row = totp_credentials::Entity::find_by_id(user.id).one(&auth.db).await?;
    let pending = row.and_then(|r| r.pending_secret).ok_or_else(|| {
        AuthError::bad_input(Input::Code, "no authenticator is being set up: call startTotpSetup first")
    })?;
    let secret = open(auth, &pending, user.id)?;
    let now = auth.clock.now();
    let wrong = || AuthError::bad_input(Input::Code, "the code is not the authenticator's current one");
    let code = totp_code(code).ok_or_else(wrong)?;
    let step = matching_step(auth, secret, &code, now)?.ok_or_else(wrong)?;
    let change = Change::begin_noticed(auth, current).await?;
    let txn = change.txn();
    // Only the setup that was read: a restart meanwhile wins.
    let confirmed = totp_credentials::Entity::update_many()
        .col_expr(totp_credentials::Column::Secret, Expr::value(pending.clone()))
        .col_expr(totp_credentials::Column::PendingSecret, Expr::value(Option::<String>::None))
        .col_expr(totp_credentials::Column::LastStep, Expr::value(step))
        .col_expr(totp_credentials::Column::ConfirmedAt, Expr::value(now))
        .col_expr(totp_credentials::Column::UpdatedAt, Expr::value(now))
        .filter(totp_credentials::Column::UserId.eq(user.id))
        .filter(totp_credentials::Column::PendingSecret.eq(pending))
        .exec(txn)
        .await?;
    if confirmed.rows_affected != 1 {
        return Err(AuthError::bad_input(
            Input::Code,
            "the setup was restarted meanwhile: use the new secret",
        ));
    }
    user::set_two_factor(txn, user.id, true).await?;
    // A new credentials version: devices trusted before (whose trust
    // skips the per-account code budget) must earn it again with a code,
    // and sign-ins half-way under the old factors do not land.
    user::bump_credentials(txn, user.id).await?;
    let codes = replace_recovery_codes(txn, user.id, now).await?;
    // The code just proved the second factor for this session.
    session::proved_presence(txn, &current.session, current.session.authenticated_at, Assurance::TwoFactors)
        .await?;
    change.record(Kind::TwoFactorEnabled, &[("method", "totp".into())]).await?;
    let committed = change.commit().await?;
    tracing::info!("two-factor turned on");
    committed.notify(Notice::TwoFactorOn).await;
    Ok(codes)
}

/// Turns two-factor off: the secret, a pending setup, the recovery codes
/// and half-finished sign-ins go. `false` when it was not on (a pending
/// setup is removed all the same). Step-up.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn disable(auth: &AuthContext, current: &CurrentSession) -> Result<bool, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    step_up::require(auth, current, Presence::Recent)?;
    let user_id = current.user.id;
    // Not counted against the factor-change budget: an intruder who spent
    // it must not keep the owner from turning their authenticator off.
    // The user's row first: a confirmTotpSetup racing this one is wholly
    // before or after it (not a factor removed under a two-factor flag).
    let change = Change::begin_noticed(auth, current).await?;
    let was_on = remove(change.txn(), user_id).await?;
    if was_on {
        // As for turning it on: trust earned under the old factors ends
        // (not when nothing changed: a loop of calls must not keep ending
        // the owner's sign-ins in progress).
        user::bump_credentials(change.txn(), user_id).await?;
        change.record(Kind::TwoFactorDisabled, &[("method", "totp".into())]).await?;
    }
    let committed = change.commit().await?;
    if was_on {
        tracing::info!("two-factor turned off");
        committed.notify(Notice::TwoFactorOff).await;
    }
    Ok(was_on)
}

/// Removes every trace of a second factor of `user_id` (inside the
/// caller's transaction); whether it was on.
pub(crate) async fn remove(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<bool, AuthError> {
    let was_on = user::set_two_factor(conn, user_id, false).await?;
    totp_credentials::Entity::delete_by_id(user_id).exec(conn).await?;
    recovery_codes::Entity::delete_many()
        .filter(recovery_codes::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    entity::sign_in_challenges::Entity::delete_many()
        .filter(entity::sign_in_challenges::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(was_on)
}

/// A presented TOTP code without its spaces, if it is six digits.
pub(crate) fn totp_code(code: &str) -> Option<String> {
    let code: String = code.chars().filter(|c| *c != ' ').take(7).collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The step a well-formed `code` is the TOTP code of (now, or one step
/// either side).
pub(crate) fn matching_step(
    auth: &AuthContext,
    secret: Vec<u8>,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, AuthError> {
    let time = u64::try_from(now.timestamp()).map_err(|e| AuthError::internal("a time before 1970", e))?;
    Ok(totp(auth, secret, "")?.check(code, time).map(|step| step as i64))
}

fn seal(auth: &AuthContext, secret: &[u8], user_id: Uuid) -> Result<String, AuthError> {
    auth.keys
        .sealer
        .seal(secret, user_id.as_bytes())
        .map_err(|e| AuthError::internal(&format!("sealing the TOTP secret of user {user_id}"), e))
}

pub(crate) fn open(auth: &AuthContext, sealed: &str, user_id: Uuid) -> Result<Vec<u8>, AuthError> {
    // Fails for a rotated key removed too early, or a row copied between users.
    auth.keys
        .sealer
        .open(sealed, user_id.as_bytes())
        .map(|(plain, _)| plain)
        .map_err(|e| AuthError::internal(&format!("the TOTP secret of user {user_id} does not open"), e))
}

/// How many stored TOTP secrets (confirmed or pending) no configured key
/// opens. `authgate serve` refuses to start when there is one: a server
/// key rotated without `AUTHGATE_SECRET_KEY_PREVIOUS` (or a lost key)
/// must fail once, at start-up, with the reason, not as an internal error
/// at every two-factor sign-in.
/// Only confirmed secrets count (a pending one from an abandoned setup
/// fails nobody's sign-in), read a page at a time.
pub(crate) async fn unopenable_secrets(auth: &AuthContext) -> Result<u64, AuthError> {
    use sea_orm::{PaginatorTrait, QueryOrder};
    let mut pages = totp_credentials::Entity::find()
        .filter(totp_credentials::Column::Secret.is_not_null())
        .order_by_asc(totp_credentials::Column::UserId)
        .paginate(&auth.db, 1000);
    let mut unopened = 0;
    while let Some(rows) = pages.fetch_and_next().await? {
        for row in rows {
            let Some(sealed) = &row.secret else { continue };
            if auth.keys.sealer.open(sealed, row.user_id.as_bytes()).is_err() {
                unopened += 1;
            }
        }
    }
    Ok(unopened)
}

/// Re-encrypts every TOTP secret (confirmed and pending) sealed under a
/// previous key with the current one (`authgate reseal`). Returns how many
/// rows were re-encrypted and how many hold a secret no configured key
/// opens (left as they are).
pub async fn reseal_all(auth: &AuthContext) -> Result<(u64, u64), AuthError> {
    use crate::keys::Resealed;
    use totp_credentials::Column;
    let (mut resealed, mut unopened) = (0, 0);
    for row in totp_credentials::Entity::find().all(&auth.db).await? {
        let mut update = totp_credentials::Entity::update_many()
            .col_expr(Column::UpdatedAt, Expr::value(auth.clock.now()))
            .filter(Column::UserId.eq(row.user_id));
        let mut moved = false;
        for (column, value) in [(Column::Secret, &row.secret), (Column::PendingSecret, &row.pending_secret)] {
            let Some(sealed) = value else { continue };
            let resealing = auth.keys.sealer.reseal(sealed, row.user_id.as_bytes());
            match resealing.map_err(|e| AuthError::internal("sealing a TOTP secret", e))? {
                Resealed::Current => {}
                Resealed::Moved(fresh) => {
                    // Only the value read: a concurrent change (a new setup) wins.
                    update = update.col_expr(column, Expr::value(fresh)).filter(column.eq(sealed.clone()));
                    moved = true;
                }
                Resealed::Unopenable => unopened += 1,
            }
        }
        if moved {
            resealed += update.exec(&auth.db).await?.rows_affected;
        }
    }
    Ok((resealed, unopened))
}
