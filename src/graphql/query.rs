use async_graphql::{Context, Object};
use domain::{
    AuthContext,
    error::{AuthError, Input},
    events::{Kind, read::Filter},
    user::roles::Permission,
};

use super::{
    GqlResult,
    guard::{Permitted, SignedIn, signed_in},
    types::{AuditEventFilter, SecurityEventConnection, User, UserConnection, UserFilter, page_args},
};

pub struct QueryRoot;

/// Read the signed-in user.
///
/// Errors carry `extensions.code`: `UNAUTHENTICATED` (no live session),
/// `SERVICE_UNAVAILABLE` (database unreachable; retry), `INTERNAL_SERVER_ERROR`.
#[Object]
impl QueryRoot {
    /// The signed-in user. `UNAUTHENTICATED` without a live session.
    #[graphql(guard = "SignedIn")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let (_, current) = signed_in(ctx)?;
        Ok(User(current.user.clone()))
    }

    /// Every user, newest first, narrowed by `filter`: a page of `first`
    /// (1 to 100, 20 when omitted) after the cursor `after`; `totalCount`
    /// counts every match. A user's `sessions`, `accounts`, `passkeys`,
    /// `roles`, `activity` and ban are visible here. Needs `user:list`
    /// (`PERMISSION_DENIED`). `BAD_USER_INPUT`: `first` out of range,
    /// `after` not a cursor of this list, `search` over 100 characters,
    /// `role` unknown.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserList))")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Search, banned, role.")] filter: Option<UserFilter>,
        #[graphql(desc = "Users per page: 1 to 100 (20 when omitted).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        use domain::admin::users;
        let (auth, current) = signed_in(ctx)?;
        // The same bounds as every page; the user list's own cursor.
        let (first, _) = page_args(first, None).gql()?;
        let after = after.as_deref().map(users::Cursor::decode).transpose().gql()?;
        let filter = users::checked(auth, filter.unwrap_or_default().into()).gql()?;
        let page = users::page(auth, current, &filter, first, after).await.gql()?;
        Ok(UserConnection::new(page, filter))
    }

    /// The audit log: every account's events, newest first, narrowed by
    /// `filter`. Needs `audit:read` (`PERMISSION_DENIED`; `authgate events
    /// export` reads it from the command line). `first`: 1 to 100.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::AuditRead))")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the log: a type, a user, a time range.")] filter: Option<AuditEventFilter>,
        #[graphql(desc = "Events per page: 1 to 100 (20 when omitted).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
    ) -> async_graphql::Result<SecurityEventConnection> {
        let (auth, _) = signed_in(ctx)?;
        let (first, after) = page_args(first, after.as_deref()).gql()?;
        let filter = audit_filter(filter.unwrap_or_default()).gql()?;
        Ok(domain::events::read::newest_first(auth, &filter, first, after).await.gql()?.into())
    }

    /// Names of the OAuth providers this server offers (for `startOAuth`),
    /// sorted; empty when none is configured.
    async fn providers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        Ok(domain::sign_in::oauth::providers(ctx.data::<AuthContext>()?))
    }
}

fn audit_filter(filter: AuditEventFilter) -> Result<Filter, AuthError> {
    if let Some(kind) = &filter.kind
        && Kind::parse(kind).is_none()
    {
        return Err(AuthError::bad_input(Input::EventType, format!("unknown event type {kind:?}")));
    }
    let user_id = match filter.user_id {
        Some(id) => Some(
            uuid::Uuid::parse_str(&id).map_err(|_| AuthError::bad_input(Input::UserId, "not a user id"))?,
        ),
        None => None,
    };
    Ok(Filter {
        kind: filter.kind,
        user_id,
        after: filter.after.map(|t| t.0),
        before: filter.before.map(|t| t.0),
    })
}
