//! The factors a user adds to an account: a TOTP authenticator (`totp`),
//! recovery codes (`recovery`), passkeys (`passkey`). Checking a code for
//! the second step lives here (`spend_code`): a TOTP code or a recovery
//! code, each accepted at most once.
//!
//! A code is accepted at most once: a TOTP code only for a step newer than
//! the last one accepted, a recovery code only while unused; each decided
//! by a conditional update, so of two requests racing with one code, one
//! wins.

pub mod passkey;
pub mod recovery;
pub mod totp;

use entity::{recovery_codes, totp_credentials};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use crate::{
    AuthContext,
    error::AuthError,
    factors::{
        recovery::recovery_hash,
        totp::{matching_step, open, totp_code},
    },
};

/// The codes `completeSignIn` and `reauthenticate` accept (`extensions.methods`).
pub const METHODS: [&str; 2] = ["totp", "recovery_code"];

/// Checks a second-factor code of `user_id` and spends it (inside the
/// caller's transaction, so it is spent only if what it unlocks happens):
/// a TOTP code of a step newer than the last accepted, or an unused
/// recovery code. `false` for anything else.
pub(crate) async fn spend_code(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    code: &str,
) -> Result<bool, AuthError> {
    let now = auth.clock.now();
    if let Some(hash) = recovery_hash(code) {
        let spent = recovery_codes::Entity::update_many()
            .col_expr(recovery_codes::Column::UsedAt, Expr::value(now))
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .filter(recovery_codes::Column::CodeHash.eq(hash))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .exec(conn)
            .await?;
        if spent.rows_affected == 1 {
            tracing::info!(%user_id, "recovery code used");
        }
        return Ok(spent.rows_affected == 1);
    }
    // Anything else that is not six digits is no code: no look at the secret.
    let Some(code) = totp_code(code) else { return Ok(false) };
    let Some(row) = totp_credentials::Entity::find_by_id(user_id).one(conn).await? else {
        return Ok(false);
    };
    let Some(sealed) = row.secret else { return Ok(false) };
    let Some(step) = matching_step(auth, open(auth, &sealed, user_id)?, &code, now)? else {
        return Ok(false);
    };
    let spent = totp_credentials::Entity::update_many()
        .col_expr(totp_credentials::Column::LastStep, Expr::value(step))
        .filter(totp_credentials::Column::UserId.eq(user_id))
        .filter(totp_credentials::Column::Secret.eq(sealed))
        .filter(
            Condition::any()
                .add(totp_credentials::Column::LastStep.is_null())
                .add(totp_credentials::Column::LastStep.lt(step)),
        )
        .exec(conn)
        .await?;
    if spent.rows_affected == 0 {
        tracing::info!(%user_id, "a TOTP code was replayed");
    }
    Ok(spent.rows_affected == 1)
}

#[cfg(test)]
mod tests {
    use super::{recovery::new_recovery_code, *};

    #[test]
    fn recovery_codes_are_long_and_forgive_case_and_dashes() {
        let (code, stored) = new_recovery_code();
        assert_eq!(code.len(), 14, "{code}");
        assert_ne!(code, new_recovery_code().0);
        let hash = recovery_hash(&code).unwrap();
        assert_eq!(hash, stored, "a presented code finds the stored one");
        assert_eq!(recovery_hash(&code.to_uppercase().replace('-', " ")), Some(hash.clone()));
        assert_eq!(recovery_hash(&code.replace('-', "")), Some(hash));
        assert_eq!(recovery_hash("abcd-efgh-ijk"), None, "11 characters");
        assert_eq!(recovery_hash("abcd-efgh-ijk1"), None, "1 is not base32");
        assert_eq!(recovery_hash("123456"), None, "a TOTP code is not a recovery code");
        assert_eq!(totp_code("123 456").as_deref(), Some("123456"));
        for not_totp in ["12345", "1234567", "abcdef", "12345x", &"9".repeat(10_000)] {
            assert_eq!(totp_code(not_totp), None, "{not_totp:.10}");
        }
    }
}
