//! Ten single-use recovery codes, made when two-factor is turned on and
//! replaced on demand; stored as hashes.

use chrono::{DateTime, Utc};
use entity::{recovery_codes, users};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext,
    error::AuthError,
    events::Kind,
    limits,
    limits::Rule,
    notices::Notice,
    session::{CurrentSession, change::Change, step_up, step_up::Presence},
};

/// How many recovery codes a user gets.
pub(crate) const RECOVERY_CODES: usize = 10;

/// New recovery codes, replacing all earlier ones (used or not). Step-up;
/// `TWO_FACTOR_NOT_ENABLED` when two-factor is off.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn regenerate_recovery_codes(
    auth: &AuthContext,
    current: &CurrentSession,
) -> Result<Vec<String>, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    step_up::require(auth, current, Presence::Recent)?;
    let user_id = current.user.id;
    limits::hit(auth, Rule::FactorChangeAccount, &user_id.to_string()).await?;
    // Read inside the transaction, after a write that holds the user's row:
    // a concurrent `disableTwoFactor` is wholly before or after.
    let change = Change::begin_noticed(auth, current).await?;
    let txn = change.txn();
    let on = users::Entity::find_by_id(user_id).one(txn).await?.is_some_and(|u| u.two_factor_enabled);
    if !on {
        return Err(AuthError::TwoFactorNotEnabled);
    }
    let codes = replace_recovery_codes(txn, user_id, auth.clock.now()).await?;
    change.record(Kind::RecoveryCodesRegenerated, &[]).await?;
    change.commit().await?.notify(Notice::RecoveryCodesReplaced).await;
    tracing::info!("recovery codes replaced");
    Ok(codes)
}

/// Ten new codes of 60 random bits each (`xxxx-xxxx-xxxx`, lower-case
/// base32), stored as SHA-256.
pub(crate) async fn replace_recovery_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<String>, AuthError> {
    recovery_codes::Entity::delete_many()
        .filter(recovery_codes::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    let (codes, hashes): (Vec<String>, Vec<Vec<u8>>) =
        (0..RECOVERY_CODES).map(|_| new_recovery_code()).unzip();
    let rows = hashes.into_iter().map(|hash| recovery_codes::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        code_hash: Set(hash),
        used_at: Set(None),
        created_at: Set(now),
    });
    recovery_codes::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(codes)
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new code as shown (`xxxx-xxxx-xxxx`) and as stored.
pub(crate) fn new_recovery_code() -> (String, Vec<u8>) {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let normal: String = (0..12).map(|_| ALPHABET[rng.gen_range(0..32)] as char).collect();
    let shown = [&normal[..4], &normal[4..8], &normal[8..]].join("-");
    (shown, Sha256::digest(normal.as_bytes()).to_vec())
}

/// The stored form of a presented recovery code: case, spaces and dashes
/// do not matter; anything but 12 base32 characters is no code of ours.
pub(crate) fn recovery_hash(code: &str) -> Option<Vec<u8>> {
    let normal: String =
        code.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_lowercase()).collect();
    let well_formed = normal.len() == 12 && normal.bytes().all(|b| ALPHABET.contains(&b));
    well_formed.then(|| Sha256::digest(normal.as_bytes()).to_vec())
}
