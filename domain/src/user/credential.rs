//! The password as a way in: the user's `credential` account, checking a
//! password against it (in constant work whether or not there is one),
//! upgrading a stored hash to the configured cost.

use entity::accounts;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::{AuthContext, config::CREDENTIAL_PROVIDER, error::AuthError, user::validate};

/// The user's `credential` account, if `password` is its password;
/// `INVALID_CREDENTIALS` otherwise (also when the user has no password).
pub(crate) async fn check_password(
    auth: &AuthContext,
    user_id: Uuid,
    password: String,
) -> Result<accounts::Model, AuthError> {
    verify(auth, credential_of(auth, user_id).await?, password).await
}

/// The user's `credential` account (their password), if they have one.
pub(crate) async fn credential_of(
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
pub(crate) async fn verify(
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

/// Stores a just-proved password again at today's argon2 cost (the
/// settings changed since it was stored), unless it changed meanwhile.
/// A failure is logged: the sign-in itself succeeded.
pub(crate) async fn rehash_password(auth: &AuthContext, account_id: Uuid, old: &str, password: String) {
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
pub(crate) async fn calibrate_dummy(auth: &AuthContext) -> Result<(), AuthError> {
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
