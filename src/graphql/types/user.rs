//! What `me` answers: the user, their sessions, sign-in methods and
//! passkeys. Resolvers of a user's private fields answer only to that
//! user's own session, or to an admin's with `user:list` (`guard::reader`).

use async_graphql::{Context, ID, Object};
use domain::error::AuthError;
use entity::{accounts, sessions, users};

use super::{DateTime, SecurityEventConnection, page_args};
use crate::graphql::{GqlResult, guard::reader, loaders::Loaders};

pub struct User(pub users::Model);

/// A person who can sign in.
#[Object]
impl User {
    /// Stable unique identifier (a UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The sign-in email, trimmed and lower-cased.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Display name, if the user gave one.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// Avatar URL (http or https), if any.
    async fn image(&self) -> Option<&str> {
        self.0.image.as_deref()
    }

    /// Whether the user proved they own the email address.
    async fn email_verified(&self) -> bool {
        self.0.email_verified
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the profile last changed.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }

    /// Whether sign-in needs a second factor (a TOTP or recovery code).
    async fn two_factor_enabled(&self) -> bool {
        self.0.two_factor_enabled
    }

    /// The roles the user holds (`admin`, `support`, `auditor`), sorted.
    /// Visible to the user's own session and to admins with `user:list`:
    /// empty for anyone else.
    async fn roles(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        if reader(ctx, self.0.id).await.gql()?.is_none() {
            return Ok(Vec::new());
        }
        let rows = ctx.data::<Loaders>()?.roles().load_one(self.0.id).await;
        Ok(rows.map_err(AuthError::from).gql()?.unwrap_or_default())
    }

    /// Whether an admin's ban keeps the user out now (a ban with an end
    /// lapses by itself). Visible to admins with `user:list`: `false` for
    /// anyone else.
    async fn banned(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.ban_visible(ctx).await? && self.banned_now(ctx)?)
    }

    /// When the ban ends; `null` when not banned or banned until lifted.
    /// Visible to admins with `user:list`.
    async fn banned_until(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime>> {
        let shown = self.ban_visible(ctx).await? && self.banned_now(ctx)?;
        Ok(self.0.banned_until.filter(|_| shown).map(DateTime))
    }

    /// The admin's reason for the ban, if they gave one. Visible to admins
    /// with `user:list`.
    async fn ban_reason(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let shown = self.ban_visible(ctx).await? && self.banned_now(ctx)?;
        Ok(self.0.ban_reason.as_deref().filter(|_| shown))
    }

    /// The user's live (unexpired, unrevoked) sessions, newest first. Visible
    /// to the user's own session and to admins with `user:list`: empty for
    /// anyone else (a `User` returned by `verifyEmail` may be read without a
    /// session).
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        let Some(current) = reader(ctx, self.0.id).await.gql()? else {
            return Ok(Vec::new());
        };
        let rows = ctx.data::<Loaders>()?.sessions().load_one(self.0.id).await;
        let rows = rows.map_err(AuthError::from).gql()?.unwrap_or_default();
        Ok(rows.into_iter().map(|row| Session { current: row.id == current.session.id, row }).collect())
    }

    /// The user's passkeys, oldest first. Visible to the user's own
    /// session and to admins with `user:list`: empty for anyone else.
    async fn passkeys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Passkey>> {
        if reader(ctx, self.0.id).await.gql()?.is_none() {
            return Ok(Vec::new());
        }
        let rows = ctx.data::<Loaders>()?.passkeys().load_one(self.0.id).await;
        let rows = rows.map_err(AuthError::from).gql()?.unwrap_or_default();
        Ok(rows.into_iter().map(Passkey).collect())
    }

    /// The ways this user can sign in (`providerId` `"credential"` is email
    /// and password). Visible to the user's own session and to admins with
    /// `user:list`: empty for anyone else.
    async fn accounts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Account>> {
        if reader(ctx, self.0.id).await.gql()?.is_none() {
            return Ok(Vec::new());
        }
        let rows = ctx.data::<Loaders>()?.accounts().load_one(self.0.id).await;
        let rows = rows.map_err(AuthError::from).gql()?.unwrap_or_default();
        Ok(rows.into_iter().map(Account).collect())
    }

    /// The account's security activity, newest first: sign-ins (method,
    /// address, device), refused attempts, password and factor changes,
    /// sessions ended, admins' actions on it. `first`: 1 to 100 (20 when
    /// omitted); `after`: the `endCursor` of the page before. Visible to
    /// the user's own session and to admins with `user:list`: empty for
    /// anyone else.
    async fn activity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Events per page: 1 to 100 (20 when omitted).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
    ) -> async_graphql::Result<SecurityEventConnection> {
        let (first, after) = page_args(first, after.as_deref()).gql()?;
        if reader(ctx, self.0.id).await.gql()?.is_none() {
            return Ok(SecurityEventConnection::from(domain::events::read::Page {
                events: Vec::new(),
                has_next: false,
            }));
        };
        let auth = ctx.data::<domain::AuthContext>()?;
        let filter = domain::events::read::Filter { user_id: Some(self.0.id), ..Default::default() };
        Ok(domain::events::read::newest_first(auth, &filter, first, after).await.gql()?.into())
    }
}

impl User {
    /// Ban details are for admins only (a banned user has no session).
    async fn ban_visible(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        use domain::user::roles::Permission;
        match crate::graphql::guard::permitted(ctx, Permission::UserList).await {
            Ok(_) => Ok(true),
            Err(AuthError::Unauthenticated | AuthError::PermissionDenied(_)) => Ok(false),
            Err(e) => Err(crate::graphql::codes::to_graphql(&e)),
        }
    }

    fn banned_now(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let auth = ctx.data::<domain::AuthContext>()?;
        Ok(domain::session::admission::is_banned(auth, &self.0))
    }
}

pub struct Session {
    row: sessions::Model,
    current: bool,
}

/// A signed-in device or browser.
#[Object]
impl Session {
    /// Pass it to `revokeSession` to sign that device out.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// When the session was signed in.
    async fn created_at(&self) -> DateTime {
        DateTime(self.row.created_at)
    }

    /// When it ends unless used again (never past 30 days after sign-in by default).
    async fn expires_at(&self) -> DateTime {
        DateTime(self.row.expires_at)
    }

    /// The client's address at sign-in (an impersonation's, the admin's,
    /// is shown to admins only).
    async fn ip_address(&self, ctx: &Context<'_>) -> Option<&str> {
        self.shown(ctx, self.row.ip_address.as_deref()).await
    }

    /// The client's `User-Agent` at sign-in (an impersonation's is shown to
    /// admins only).
    async fn user_agent(&self, ctx: &Context<'_>) -> Option<&str> {
        self.shown(ctx, self.row.user_agent.as_deref()).await
    }

    /// Whether this is the session making the request.
    async fn current(&self) -> bool {
        self.current
    }

    /// The last time this session proved the user's presence: its sign-in
    /// or a `reauthenticate`. Step-up operations need it recent.
    async fn authenticated_at(&self) -> DateTime {
        DateTime(self.row.authenticated_at)
    }

    /// 1: signed in with one factor (a password or a provider); 2: with
    /// two (a second-factor code as well).
    async fn assurance_level(&self) -> i32 {
        i32::from(self.row.assurance_level)
    }

    /// The admin acting as the user in this session (an impersonation:
    /// an hour at most, never extended); `null` for the user's own.
    async fn impersonator_id(&self) -> Option<ID> {
        self.row.impersonator_id.map(|id| ID(id.to_string()))
    }
}

impl Session {
    async fn shown<'a>(&self, ctx: &Context<'_>, value: Option<&'a str>) -> Option<&'a str> {
        if self.row.impersonator_id.is_some() && !crate::graphql::guard::sees_as_admin(ctx).await {
            return None;
        }
        value
    }
}

pub struct Passkey(pub entity::passkeys::Model);

/// A passkey (WebAuthn credential) that signs the user in.
#[Object]
impl Passkey {
    /// Stable unique identifier (a UUID), for `removePasskey`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The name given at registration, if any.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// When it was registered.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When it last signed in or proved presence; `null` if never.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
}

pub struct Account(accounts::Model);

/// A way to sign in, linked to a user.
#[Object]
impl Account {
    /// Identifier of the link.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// `"credential"` for email and password, else the OAuth provider's name.
    async fn provider_id(&self) -> &str {
        &self.0.provider_id
    }

    /// The user's id at the provider (for `credential`, the user's own id).
    async fn account_id(&self) -> &str {
        &self.0.account_id
    }

    /// When the sign-in method was linked.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}
