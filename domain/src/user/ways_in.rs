//! "Another way in?": counting a user's ways in, and removing them all
//! (deletion, and adopting an account whose address nobody had proved).

use entity::{accounts, passkeys, users};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::{error::AuthError, user, user::USER_TABLES};

/// Removes every way into `user_id`'s account: its sign-in methods, the
/// OAuth flows that would link to it, mailed tokens and sessions (every
/// row of `USER_TABLES`). Explicit deletes, not only ON DELETE CASCADE:
/// correct even where a connection runs with foreign keys off. Returns how
/// the sessions that ended (the caller records their end).
pub(crate) async fn remove_ways_in(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<Uuid>, AuthError> {
    use sea_orm::{
        QuerySelect,
        sea_query::{Alias, Expr, Query},
    };
    let sessions_ended: Vec<Uuid> = entity::sessions::Entity::find()
        .select_only()
        .column(entity::sessions::Column::Id)
        .filter(entity::sessions::Column::UserId.eq(user_id))
        .into_tuple()
        .all(conn)
        .await?;
    for (table, column) in USER_TABLES {
        let delete = Query::delete()
            .from_table(Alias::new(table))
            .and_where(Expr::col(Alias::new(column)).eq(user_id))
            .to_owned();
        conn.execute(conn.get_database_backend().build(&delete)).await?;
    }
    // With its authenticator gone, two-factor is off (a claimed account's
    // owner must not meet a second step set up by whoever registered it).
    user::set_two_factor(conn, user_id, false).await?;
    Ok(sessions_ended)
}

/// An account whose address was never proved is adopted by the person
/// who just proved it (a reset link, a provider that vouches for it):
/// whoever registered it may have been someone else. Every way in they set
/// up goes (`remove_ways_in`), and so do the name and picture they chose
/// (a picture URL on their server would tell them when the owner looks).
/// A ban stays: a banned user who never proved their address must not lift
/// it with a reset link to their own mailbox (an admin deletes a
/// squatter's account instead, or unbans the owner after a look).
/// The caller has started a new credentials version first (which holds
/// the user's row: no session of theirs is created meanwhile). Returns the
/// sessions that ended.
pub(crate) async fn adopt(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<Uuid>, AuthError> {
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

/// The caller's passkeys, oldest first.
pub async fn passkeys_of(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<passkeys::Model>, AuthError> {
    Ok(passkeys::Entity::find()
        .filter(passkeys::Column::UserId.eq(user_id))
        .order_by_asc(passkeys::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// How many ways into the account `user_id` has: sign-in methods
/// (password, providers) and passkeys.
pub(crate) async fn count(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, AuthError> {
    let methods = accounts::Entity::find().filter(accounts::Column::UserId.eq(user_id)).count(conn).await?;
    let passkeys = passkeys::Entity::find().filter(passkeys::Column::UserId.eq(user_id)).count(conn).await?;
    Ok(methods + passkeys)
}
