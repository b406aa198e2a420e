//! What an admin reads and sends: the user list and the inputs of the
//! admin mutations.

use async_graphql::{ComplexObject, Context, ID, InputObject, SimpleObject};
use domain::{
    admin::users::{Checked, Cursor, Page},
    error::{AuthError, Input},
    user::roles::Permission,
};

use super::{DateTime, PageInfo, User};
use crate::graphql::{
    GqlResult,
    guard::{Permitted, SignedIn, signed_in},
};

/// Narrows the user list.
#[derive(InputObject, Default)]
pub struct UserFilter {
    /// The start of the email or of the name, any case (`ali` finds
    /// `alice@example.com` and `Alistair`); at most 100 characters.
    pub search: Option<String>,
    /// Only users banned now (`true`), or only those not banned (`false`).
    pub banned: Option<bool>,
    /// Only users holding this role (`admin`, `support`, `auditor`).
    pub role: Option<String>,
}

impl From<UserFilter> for domain::admin::users::Filter {
    fn from(filter: UserFilter) -> Self {
        Self { search: filter.search, banned: filter.banned, role: filter.role }
    }
}

/// One user of a page, with its place in the list.
#[derive(SimpleObject)]
pub struct UserEdge {
    /// Pass it as `after` to continue after this user.
    pub cursor: String,
    /// The user.
    pub node: User,
}

/// A page of users, newest first (Relay-style).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UserConnection {
    /// The users of this page.
    pub edges: Vec<UserEdge>,
    /// Whether more (older) users follow, and the cursor to ask for them.
    pub page_info: PageInfo,
    #[graphql(skip)]
    pub filter: Checked,
}

#[ComplexObject]
impl UserConnection {
    /// How many users match the filter, on every page (counted when asked).
    #[graphql(guard = "SignedIn.and(Permitted(Permission::UserList))")]
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let (auth, current) = signed_in(ctx)?;
        let count = domain::admin::users::count(auth, current, &self.filter).await.gql()?;
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }
}

impl UserConnection {
    pub fn new(page: Page, filter: Checked) -> Self {
        let edges: Vec<UserEdge> = page
            .users
            .into_iter()
            .map(|user| UserEdge { cursor: Cursor::of(&user).encode(), node: User(user) })
            .collect();
        let end_cursor = edges.last().map(|edge| edge.cursor.clone());
        Self { edges, page_info: PageInfo { has_next_page: page.has_next, end_cursor }, filter }
    }
}

/// A ban.
#[derive(InputObject)]
pub struct BanUserInput {
    /// The user to ban (not yourself).
    pub user_id: ID,
    /// Why, for the other admins and the audit log (at most 500 characters).
    pub reason: Option<String>,
    /// When the ban ends by itself (in the future); leave it out for a ban
    /// until `unbanUser`.
    pub until: Option<DateTime>,
}

/// An impersonation.
#[derive(InputObject)]
pub struct ImpersonateUserInput {
    /// The user to act as (not yourself).
    pub user_id: ID,
    /// Why (required, at most 500 characters): recorded, and shown to the
    /// user in their activity.
    pub reason: String,
}

/// A user id from the client: `BAD_USER_INPUT` (`userId`) unless a UUID.
pub fn user_id(id: &ID) -> Result<uuid::Uuid, AuthError> {
    uuid::Uuid::parse_str(id).map_err(|_| AuthError::bad_input(Input::UserId, "not a user id"))
}
