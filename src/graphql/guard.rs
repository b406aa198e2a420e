//! The request's credentials, as the HTTP layer found them, resolved to a
//! live session once per request. Every field that acts for a signed-in
//! user carries `#[graphql(guard = "SignedIn")]` (an admin field adds
//! `Permitted(permission)`), and its resolver takes the
//! session the guard resolved with `signed_in`. What enforces the guard is
//! `layers::every_resolver_acting_for_a_user_has_the_guard` (it reads the
//! resolvers) and `security::every_operation_but_the_public_ones_needs_a_session`
//! (it calls every field without a session). Besides, `signed_in` only
//! hands out a session already resolved in this request: called alone, a
//! field missing its guard fails (`INTERNAL_SERVER_ERROR`, logged); beside
//! another field that resolved the request's session it would not fail,
//! but it never gets a session other than the one of this request's token.

use async_graphql::Context;
use domain::{
    AuthContext, ClientMeta,
    error::AuthError,
    session::{self, CurrentSession},
    user::roles::{self, Permission},
};
use tokio::sync::OnceCell;

use crate::graphql::effects::{self, Effect};

/// How the token arrived: a refreshed cookie session gets a new cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Cookie,
}

#[derive(Clone, Debug)]
pub struct PresentedToken {
    /// The secret as presented (possibly malformed); never logged.
    pub value: String,
    pub source: TokenSource,
}

/// Put into each request's data by the HTTP layer.
#[derive(Default)]
pub struct RequestAuth {
    token: Option<PresentedToken>,
    session: OnceCell<CurrentSession>,
    /// The session's user's roles, read from the database once per request
    /// that asks (an admin field, another user's private fields).
    roles: OnceCell<Vec<String>>,
}

impl RequestAuth {
    pub fn new(token: Option<PresentedToken>) -> Self {
        Self { token, session: OnceCell::new(), roles: OnceCell::new() }
    }
}

/// How the request's token came: a cookie client's new session is a cookie.
pub fn token_source(ctx: &Context<'_>) -> Option<TokenSource> {
    ctx.data::<RequestAuth>().ok()?.token.as_ref().map(|token| token.source)
}

/// `PERMISSION_DENIED` unless the caller's session holds `permission`
/// (`roles::permits` on the roles read afresh for this request).
pub async fn permitted<'a>(
    ctx: &Context<'a>,
    permission: Permission,
) -> Result<&'a CurrentSession, AuthError> {
    let current = current_session(ctx).await?;
    let request = ctx.data::<RequestAuth>().map_err(|_| AuthError::Unauthenticated)?;
    let auth = ctx
        .data::<AuthContext>()
        .map_err(|e| AuthError::internal("the schema has no AuthContext", e.message))?;
    let held = request.roles.get_or_try_init(|| roles::of_user_now(auth, current.user.id)).await?;
    if let Err(denied) = roles::permits(held, current.session.impersonator_id.is_some(), permission) {
        tracing::info!(user_id = %current.user.id, permission = permission.as_str(), "permission denied");
        return Err(denied);
    }
    Ok(current)
}

/// The caller's live session, resolved on first use and cached for the
/// rest of the request. `UNAUTHENTICATED` without one.
pub async fn current_session<'a>(ctx: &Context<'a>) -> Result<&'a CurrentSession, AuthError> {
    let request = ctx.data::<RequestAuth>().map_err(|_| AuthError::Unauthenticated)?;
    let auth = ctx
        .data::<AuthContext>()
        .map_err(|e| AuthError::internal("the schema has no AuthContext", e.message))?;
    let token = request.token.as_ref().ok_or(AuthError::Unauthenticated)?;
    request
        .session
        .get_or_try_init(|| async {
            let current = session::authenticate(auth, &token.value, client_meta(ctx)).await?;
            if current.refreshed && token.source == TokenSource::Cookie {
                // Keep the cookie's Max-Age equal to the session's remaining lifetime.
                let (token, expires_at) = (token.value.clone(), current.session.expires_at);
                effects::record(ctx, Effect::SessionCookie { token, expires_at });
            }
            Ok(current)
        })
        .await
}

/// The guard of every field that acts for a signed-in user: resolves the
/// caller's session (kept for the rest of the request) or answers
/// `UNAUTHENTICATED` before the resolver runs.
pub struct SignedIn;

impl async_graphql::Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        current_session(ctx).await.map(|_| ()).map_err(|e| super::codes::to_graphql(&e))
    }
}

/// The guard of every admin field, after `SignedIn`: the session's user
/// must hold the permission, else `PERMISSION_DENIED` naming it.
pub struct Permitted(pub Permission);

impl async_graphql::Guard for Permitted {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        permitted(ctx, self.0).await.map(|_| ()).map_err(|e| super::codes::to_graphql(&e))
    }
}

/// The services and the session `SignedIn` resolved: the start of every
/// resolver behind that guard. When no session was resolved in this
/// request (the guard is missing), this refuses (a bug, logged) rather
/// than resolve one itself.
pub fn signed_in<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a AuthContext, &'a CurrentSession)> {
    let auth = ctx.data::<AuthContext>()?;
    let current =
        ctx.data::<RequestAuth>().ok().and_then(|request| request.session.get()).ok_or_else(|| {
            let field = ctx.path_node.map(|node| node.field_name().to_owned()).unwrap_or_default();
            let missing = AuthError::internal("a resolver acting for a user has no SignedIn guard", field);
            super::codes::to_graphql(&missing)
        })?;
    Ok((auth, current))
}

/// The caller's session when it belongs to `user_id`; `None` for anyone
/// else, with or without a session (a database failure is still an error).
pub async fn own_session<'a>(
    ctx: &Context<'a>,
    user_id: uuid::Uuid,
) -> Result<Option<&'a CurrentSession>, AuthError> {
    match current_session(ctx).await {
        Ok(current) if current.user.id == user_id => Ok(Some(current)),
        Ok(_) | Err(AuthError::Unauthenticated) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the caller may read what only admins see (`user:list`); `false`
/// without a session, and when the database cannot say.
pub async fn sees_as_admin(ctx: &Context<'_>) -> bool {
    permitted(ctx, Permission::UserList).await.is_ok()
}

/// The caller's session when it may read `user_id`'s private fields: the
/// user's own, or an admin's with `user:list`; `None` for anyone else.
pub async fn reader<'a>(
    ctx: &Context<'a>,
    user_id: uuid::Uuid,
) -> Result<Option<&'a CurrentSession>, AuthError> {
    if let Some(own) = own_session(ctx, user_id).await? {
        return Ok(Some(own));
    }
    match permitted(ctx, Permission::UserList).await {
        Ok(admin) => Ok(Some(admin)),
        Err(AuthError::Unauthenticated | AuthError::PermissionDenied(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the request came from (address, user agent), as the HTTP layer saw it.
pub fn client_meta(ctx: &Context<'_>) -> ClientMeta {
    ctx.data_opt::<ClientMeta>().cloned().unwrap_or_default()
}
