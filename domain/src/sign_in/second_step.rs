//! The second step of a sign-in for a user with two-factor on. The first
//! factor (a password, a provider) ends in a challenge instead of a
//! session; `completeSignIn` trades the challenge and a code for one.
//!
//! A challenge is stored only as SHA-256, lives 5 minutes, is spent by the
//! sign-in it completes, and dies after 5 codes: each attempt is claimed by
//! a conditional update *before* its code is checked, so even codes sent
//! all at once get 5 checks, not more. Every attempt also counts against
//! the account's sign-in limits, like a wrong password, and only a
//! completed sign-in clears them.

use entity::{sign_in_challenges, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use secrecy::ExposeSecret;
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    factors, limits,
    limits::Rule,
    session,
    session::{Assurance, admission, admission::Way},
    sign_in::{LoginCounters, SignedIn},
    token,
};

/// A challenge's lifetime.
pub const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(5);

/// Codes one challenge accepts before it ends.
pub(crate) const MAX_ATTEMPTS: i32 = 5;

/// The first factor was the password (the completed sign-in gets a device cookie).
pub const PASSWORD: &str = "password";

/// A new challenge for `user` after its first factor (`method`: `password`
/// or `oauth:<provider>`): the secret for the client, shown once. With
/// `browser` (the hash of a value only one browser holds), only a request
/// from that browser completes it.
pub async fn challenge(
    auth: &AuthContext,
    conn: &impl ConnectionTrait,
    user: &users::Model,
    method: &str,
    browser: Option<Vec<u8>>,
) -> Result<secrecy::SecretString, AuthError> {
    let now = auth.clock.now();
    let token = token::generate();
    sign_in_challenges::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user.id),
        token_hash: Set(token.hash),
        method: Set(method.to_owned()),
        credentials_version: Set(user.credentials_version),
        browser_hash: Set(browser),
        attempts: Set(0),
        expires_at: Set(now + CHALLENGE_TTL),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    crate::telemetry::AuthEvent::SecondFactorRequired.count();
    Ok(token.secret.into())
}

/// Finishes a sign-in: `challenge` from `SECOND_FACTOR_REQUIRED` and a
/// current TOTP code or an unused recovery code. A session with two
/// factors, or `INVALID_CREDENTIALS` for a wrong code; `INVALID_TOKEN` for
/// a challenge that is unknown, expired, spent or out of attempts, or
/// issued before the password changed.
#[instrument(skip_all, fields(user_id))]
pub async fn complete(
    auth: &AuthContext,
    challenge: &str,
    code: &str,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    let ip = limits::ip_subject(meta);
    limits::hit(auth, Rule::LoginIp, &ip).await?;
    let hash = token::hash_presented(challenge).ok_or(AuthError::InvalidToken)?;
    let now = auth.clock.now();
    let found = sign_in_challenges::Entity::find()
        .filter(sign_in_challenges::Column::TokenHash.eq(hash))
        .find_also_related(users::Entity)
        .one(&auth.db)
        .await?;
    let (found, user) = match found {
        Some((found, Some(user))) if found.expires_at > now && found.attempts < MAX_ATTEMPTS => (found, user),
        _ => return Err(AuthError::InvalidToken),
    };
    // A challenge from a provider's callback is this browser's alone: one
    // read from the URL (history, a `Referer`, a log) is no use elsewhere.
    if let Some(expected) = &found.browser_hash
        && meta.sign_in_binding.as_ref().and_then(|b| token::hash_presented(b.expose_secret())).as_ref()
            != Some(expected)
    {
        tracing::info!("a provider's challenge presented without its browser's cookie");
        return Err(AuthError::InvalidToken);
    }
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    let counters = LoginCounters::new(&user.email, &ip, meta, Some(&user));
    counters.hit_code(auth, user.id).await?;
    // Claim the attempt before checking its code.
    let claimed = sign_in_challenges::Entity::update_many()
        .col_expr(
            sign_in_challenges::Column::Attempts,
            Expr::col(sign_in_challenges::Column::Attempts).add(1),
        )
        .filter(sign_in_challenges::Column::Id.eq(found.id))
        .filter(sign_in_challenges::Column::Attempts.lt(MAX_ATTEMPTS))
        .exec(&auth.db)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(AuthError::InvalidToken);
    }
    auth.checkpoints.reach("complete_sign_in:attempt_claimed").await;
    // Writes first: SQLite takes its write lock at once (a transaction that
    // reads and then writes can fail busy at the upgrade), and a wrong code
    // rolls them back. The challenge is spent by this sign-in and no other,
    // and the credentials it was issued under must still be the user's (a
    // reset meanwhile ends it).
    let (turn, txn) = auth.write().await?;
    let spent = sign_in_challenges::Entity::delete_many()
        .filter(sign_in_challenges::Column::Id.eq(found.id))
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(AuthError::InvalidToken);
    }
    // The user's row first (the order every change of factors takes), then
    // the code, then the gate's rule: what the gate says (a ban) is told
    // only to someone who proved the second factor too.
    let version = found.credentials_version;
    admission::hold(&txn, user.id, version, Way::SecondStep).await?;
    if !factors::spend_code(&txn, auth, user.id, code).await? {
        tracing::info!(attempt = found.attempts + 1, "second factor wrong");
        crate::telemetry::AuthEvent::SecondFactorFailure.count();
        drop(txn);
        crate::events::sign_in_refused(auth, &user, "second_step", meta);
        return Err(AuthError::InvalidCredentials);
    }
    let admitted =
        admission::admit(&txn, auth, user.id, version, Way::SecondStep, Assurance::TwoFactors).await?;
    let new = session::create(&txn, auth, admitted, meta).await?;
    txn.commit().await?;
    drop(turn);
    let (token, session) = new.committed();
    counters.clear_code(auth, user.id).await?;
    tracing::info!(first_factor = %found.method, "sign-in completed with a second factor");
    crate::telemetry::AuthEvent::LoginSuccess.count();
    let device = (found.method == PASSWORD).then(|| counters.device_for(&user));
    Ok(SignedIn { token, session, user, device })
}
