//! The bottom room: a user's row and what hangs off it. Holding the row
//! on a credentials version, starting a new one, the sign-in methods
//! (`accounts`) of users, the one list of tables that hold a user's rows.
//! Imports no other room.

pub mod credential;
pub mod hasher;
pub mod roles;
pub mod validate;
pub mod ways_in;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{accounts, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use uuid::Uuid;

use crate::{AuthContext, config::CREDENTIAL_PROVIDER, error::AuthError};

/// Rows keyed by their user, in their original order (for the DataLoaders).
pub(crate) fn group_by_user<T>(
    rows: Vec<T>,
    user_of: impl Fn(&T) -> uuid::Uuid,
) -> HashMap<uuid::Uuid, Vec<T>> {
    let mut by_user: HashMap<uuid::Uuid, Vec<T>> = HashMap::new();
    for row in rows {
        by_user.entry(user_of(&row)).or_default().push(row);
    }
    by_user
}

/// The email-and-password sign-in method of a user: `account_id` is the user's id.
pub(crate) fn credential_account(
    user_id: Uuid,
    password_hash: String,
    now: DateTime<Utc>,
) -> accounts::ActiveModel {
    account_row(user_id, CREDENTIAL_PROVIDER, &user_id.to_string(), Some(password_hash), now)
}

/// A sign-in method row. Provider tokens are never stored: authgate needs
/// them only during the OAuth callback, and a token it does not keep cannot leak.
pub(crate) fn account_row(
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

/// Holds `user_id`'s row until the transaction ends (a write that changes
/// nothing visible: a row lock on PostgreSQL, the write lock on SQLite),
/// if its credentials are still `version` (any version when `None`).
/// `false` when the row is gone or its credentials changed since.
pub(crate) async fn lock_user(
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

/// Starts a new credentials version for `user_id` (a password change, a
/// reset, a claim): sign-ins that checked the old password no longer land.
/// First in its transaction, so it waits for a sign-in holding the row.
pub(crate) async fn bump_credentials(
    conn: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
) -> Result<(), AuthError> {
    use sea_orm::sea_query::Expr;
    users::Entity::update_many()
        .col_expr(users::Column::CredentialsVersion, Expr::col(users::Column::CredentialsVersion).add(1))
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Every table holding rows of one user besides `users`, with the column
/// naming the user: the one list deletion and a claim go by (a test holds
/// it to the database's foreign keys, so a new table cannot be missed).
pub const USER_TABLES: [(&str, &str); 10] = [
    ("accounts", "user_id"),
    ("passkeys", "user_id"),
    ("passkey_challenges", "user_id"),
    ("totp_credentials", "user_id"),
    ("recovery_codes", "user_id"),
    ("sign_in_challenges", "user_id"),
    ("oauth_flows", "link_user_id"),
    ("verification_tokens", "user_id"),
    ("sessions", "user_id"),
    ("user_roles", "user_id"),
];

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
    Ok(group_by_user(rows, |row| row.user_id))
}

/// Sets `users.two_factor_enabled`; whether it was on before.
pub(crate) async fn set_two_factor(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    on: bool,
) -> Result<bool, AuthError> {
    let changed = users::Entity::update_many()
        .col_expr(users::Column::TwoFactorEnabled, Expr::value(on))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::TwoFactorEnabled.eq(!on))
        .exec(conn)
        .await?;
    // Turning on: a change means it was off. Turning off: a change means it was on.
    Ok((changed.rows_affected == 1) != on)
}
