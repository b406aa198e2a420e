//! The admin's user list: newest first, paged by a cursor on
//! `(created_at, id)` (a user who signs up while an admin pages sorts
//! before the first page and never shifts the pages after it), searched by
//! the start of the email or the name, narrowed to the banned or to a role.

use chrono::{DateTime, Utc};
use entity::{user_roles, users};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
    sea_query::{Expr, Func, LikeExpr, Query, SimpleExpr},
};
use uuid::Uuid;

use super::acting;
use crate::{
    AuthContext,
    error::{AuthError, Input},
    session::CurrentSession,
    user::roles::{self, Permission},
};

/// Which users.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The start of the email or of the name, any case.
    pub search: Option<String>,
    /// Only users banned now (`true`) or not (`false`).
    pub banned: Option<bool>,
    /// Only holders of this role.
    pub role: Option<String>,
}

/// Where a page ends: the last user's `(created_at, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn of(user: &users::Model) -> Self {
        Self { created_at: user.created_at, id: user.id }
    }

    /// `<nanoseconds>.<uuid>`: opaque to clients (nanoseconds: SQLite
    /// keeps the clock's whole precision, and the comparison is exact).
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.timestamp_nanos_opt().unwrap_or_default(), self.id)
    }

    pub fn decode(text: &str) -> Result<Self, AuthError> {
        let bad = || AuthError::bad_input(Input::After, "not a cursor of this list");
        let (nanos, id) = text.split_once('.').ok_or_else(bad)?;
        let created_at = nanos.parse::<i64>().map(DateTime::from_timestamp_nanos).map_err(|_| bad())?;
        Ok(Self { created_at, id: Uuid::parse_str(id).map_err(|_| bad())? })
    }
}

/// A page of users and whether more follow.
pub struct Page {
    pub users: Vec<users::Model>,
    pub has_next: bool,
}

/// At most this many users per page.
pub const MAX_PAGE: u64 = 100;

/// The longest search text.
const MAX_SEARCH: usize = 100;

/// A checked filter: the only way to one is `checked`.
#[derive(Clone, Debug)]
pub struct Checked {
    condition: Condition,
}

/// Checks `filter` (`BAD_USER_INPUT` on `search` or `role`) and makes its condition.
pub fn checked(auth: &AuthContext, filter: Filter) -> Result<Checked, AuthError> {
    let mut condition = Condition::all();
    // ASCII case folding, as the emails are stored (and as SQLite's `lower`).
    if let Some(search) = filter.search.map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        if search.chars().count() > MAX_SEARCH || search.chars().any(char::is_control) {
            return Err(AuthError::bad_input(Input::Search, format!("at most {MAX_SEARCH} characters")));
        }
        condition = condition.add(starts_with(auth, &search));
    }
    if let Some(banned) = filter.banned {
        let now = auth.clock.now();
        let banned_now = Condition::all().add(users::Column::BannedAt.is_not_null()).add(
            Condition::any()
                .add(users::Column::BannedUntil.is_null())
                .add(users::Column::BannedUntil.gt(now)),
        );
        condition = condition.add(if banned { banned_now } else { banned_now.not() });
    }
    if let Some(role) = filter.role {
        if !roles::is_known(&role) {
            return Err(AuthError::bad_input(Input::Role, "not a role of this server"));
        }
        let holders = Query::select()
            .column(user_roles::Column::UserId)
            .from(user_roles::Entity)
            .and_where(user_roles::Column::Role.eq(role))
            .to_owned();
        condition = condition.add(users::Column::Id.in_subquery(holders));
    }
    Ok(Checked { condition })
}

/// The email or the lower-cased name starts with `prefix` (lower-cased),
/// in a form each database serves from an index: PostgreSQL turns a
/// `LIKE 'p%'` into a range on its pattern indexes; SQLite compares bytes,
/// so a range up to the prefix followed by the highest code point is it.
fn starts_with(auth: &AuthContext, prefix: &str) -> Condition {
    let name = || Expr::expr(SimpleExpr::from(Func::lower(Expr::col(users::Column::Name))));
    if auth.db.get_database_backend() == DatabaseBackend::Postgres {
        let escaped: String = prefix
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = || LikeExpr::new(format!("{escaped}%")).escape('\\');
        Condition::any().add(Expr::col(users::Column::Email).like(pattern())).add(name().like(pattern()))
    } else {
        let end = format!("{prefix}\u{10FFFF}");
        Condition::any()
            .add(users::Column::Email.gte(prefix).and(users::Column::Email.lt(end.as_str())))
            .add(name().gte(prefix).and(name().lt(end)))
    }
}

/// A page of users matching `filter`, newest first, after `after`. Needs
/// `user:list`.
pub async fn page(
    auth: &AuthContext,
    current: &CurrentSession,
    filter: &Checked,
    first: u64,
    after: Option<Cursor>,
) -> Result<Page, AuthError> {
    acting(auth, current, Permission::UserList).await?;
    let first = first.clamp(1, MAX_PAGE);
    let mut users = select(filter, first + 1, after).all(&auth.db).await?;
    let has_next = users.len() as u64 > first;
    users.truncate(first as usize);
    Ok(Page { users, has_next })
}

/// The statement of a page: `limit` users matching `filter` after `after`,
/// newest first (public so that the benchmark can show its plan).
pub fn select(filter: &Checked, limit: u64, after: Option<Cursor>) -> Select<users::Entity> {
    let mut query = users::Entity::find().filter(filter.condition.clone());
    if let Some(after) = after {
        // `created_at <= x` alone gives the index a place to start; the
        // rest orders the users of the same instant by id.
        query = query.filter(users::Column::CreatedAt.lte(after.created_at)).filter(
            Condition::any()
                .add(users::Column::CreatedAt.lt(after.created_at))
                .add(users::Column::Id.lt(after.id)),
        );
    }
    query.order_by_desc(users::Column::CreatedAt).order_by_desc(users::Column::Id).limit(limit)
}

/// How many users match `filter`. Needs `user:list`.
pub async fn count(auth: &AuthContext, current: &CurrentSession, filter: &Checked) -> Result<u64, AuthError> {
    acting(auth, current, Permission::UserList).await?;
    Ok(users::Entity::find().filter(filter.condition.clone()).count(&auth.db).await?)
}
