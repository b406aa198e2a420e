//! Single-use tokens mailed to a user: issued with a purpose and an expiry,
//! stored only as a SHA-256, spent atomically.

use std::time::Duration;

use entity::verification_tokens;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::{AuthContext, error::AuthError, token};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    EmailVerification,
    PasswordReset,
}

impl Purpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
        }
    }

    pub(crate) fn ttl(self, auth: &AuthContext) -> Duration {
        match self {
            Self::EmailVerification => auth.config.email_verification_ttl,
            Self::PasswordReset => auth.config.password_reset_ttl,
        }
    }
}

/// A fresh token for `user_id`; earlier unspent tokens of the same purpose
/// stop working. Returns the secret, to be mailed and then forgotten.
pub(crate) async fn issue(auth: &AuthContext, user_id: Uuid, purpose: Purpose) -> Result<String, AuthError> {
    let now = auth.clock.now();
    let token = token::generate();
    let (_turn, txn) = auth.write().await?;
    verification_tokens::Entity::update_many()
        .col_expr(verification_tokens::Column::ConsumedAt, Expr::value(now))
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(verification_tokens::Column::ConsumedAt.is_null())
        .exec(&txn)
        .await?;
    verification_tokens::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(token.hash),
        expires_at: Set(now + purpose.ttl(auth)),
        consumed_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(token.secret)
}

/// Whether `user_id` holds a live (unspent, unexpired) token for `purpose`.
pub(crate) async fn has_live(auth: &AuthContext, user_id: Uuid, purpose: Purpose) -> Result<bool, AuthError> {
    use sea_orm::PaginatorTrait;
    let live = verification_tokens::Entity::find()
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(verification_tokens::Column::ConsumedAt.is_null())
        .filter(verification_tokens::Column::ExpiresAt.gt(auth.clock.now()))
        .count(&auth.db)
        .await?;
    Ok(live > 0)
}

/// The live (unspent, unexpired) token row for `secret`, without spending it.
/// `INVALID_TOKEN` for unknown, expired, spent or wrong-purpose tokens.
pub(crate) async fn peek(
    auth: &AuthContext,
    secret: &str,
    purpose: Purpose,
) -> Result<verification_tokens::Model, AuthError> {
    let hash = token::hash_presented(secret).ok_or(AuthError::InvalidToken)?;
    let row = verification_tokens::Entity::find()
        .filter(verification_tokens::Column::TokenHash.eq(hash))
        .filter(verification_tokens::Column::Purpose.eq(purpose.as_str()))
        .one(&auth.db)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    if row.consumed_at.is_some() || row.expires_at <= auth.clock.now() {
        return Err(AuthError::InvalidToken);
    }
    Ok(row)
}

/// Spends the token in one conditional UPDATE: of two concurrent uses,
/// exactly one changes the row and wins. Returns the token's user.
pub(crate) async fn spend(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    secret: &str,
    purpose: Purpose,
) -> Result<Uuid, AuthError> {
    let row = peek(auth, secret, purpose).await?;
    let now = auth.clock.now();
    let spent = verification_tokens::Entity::update_many()
        .col_expr(verification_tokens::Column::ConsumedAt, Expr::value(now))
        .filter(verification_tokens::Column::Id.eq(row.id))
        .filter(verification_tokens::Column::ConsumedAt.is_null())
        .filter(verification_tokens::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if spent.rows_affected == 1 { Ok(row.user_id) } else { Err(AuthError::InvalidToken) }
}
