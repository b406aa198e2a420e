//! Sessions: created at sign-in, resolved from a presented token, extended
//! when used (sliding), revoked at sign-out.

pub mod admission;
pub mod cache;
pub(crate) mod change;
pub mod live;
pub mod step_up;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{sessions, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    events::{Ended, Event, Kind},
    session::{admission::Admitted, cache::Ticket},
    token, user,
    user::lock_user,
};

/// What the session cache holds, and whether it serves from memory (on,
/// and, on PostgreSQL, listening for revocations): for the metrics.
pub fn cache_state(auth: &AuthContext) -> (u64, bool) {
    (auth.sessions.approximate_len(), auth.sessions.is_live())
}

/// First in a change made through a session: holds the user's row on the
/// credentials version the session was read with, and checks the session
/// still lives. A reset, claim or password change that committed since
/// wins: the change answers `UNAUTHENTICATED`, as it would a moment later
/// (a thief's request in flight does not land after the owner's reset).
pub(crate) async fn hold_session(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    current: &CurrentSession,
) -> Result<(), AuthError> {
    let user_id = current.user.id;
    if !lock_user(conn, user_id, Some(current.user.credentials_version)).await?
        || !is_alive(conn, auth, user_id, current.session.id).await?
    {
        tracing::info!(%user_id, "a change lost a race with a change of credentials or the session's end");
        return Err(AuthError::Unauthenticated);
    }
    Ok(())
}

/// A live session and its user, as resolved from a request's token.
#[derive(Clone, Debug)]
pub struct CurrentSession {
    pub session: sessions::Model,
    pub user: users::Model,
    /// The user's roles as read with the session (the access tokens'
    /// `roles` claim); permission checks read them afresh (`user::roles`).
    pub roles: Vec<String>,
    /// Where this request came from (recorded on the events it causes).
    pub meta: ClientMeta,
    /// The expiry was just extended: a cookie client should get a fresh `Max-Age`.
    pub refreshed: bool,
}

/// A new session: the secret token goes to the client once.
pub(crate) struct NewSession {
    pub token: String,
    pub session: sessions::Model,
    /// Set when older sessions of the user were ended to stay within
    /// `AUTHGATE_MAX_SESSIONS_PER_USER`: it forgets the user in the session
    /// cache when the caller's `NewSession` goes out of scope, which is
    /// after the caller's commit.
    pub ended_oldest: Option<cache::Forget>,
}

impl NewSession {
    /// After the caller's commit: the token and the row, and the cache told
    /// of the sessions ended to stay within the cap.
    pub(crate) fn committed(self) -> (String, sessions::Model) {
        if let Some(forget) = self.ended_oldest {
            forget.done();
        }
        (self.token, self.session)
    }
}

/// The expiry of a session signed in at `created_at` and used at `now`:
/// `now + ttl`, but never past the absolute maximum age.
fn expiry(auth: &AuthContext, created_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let sliding = now + auth.config.session_ttl;
    if auth.config.session_max_age.is_zero() {
        sliding
    } else {
        sliding.min(created_at + auth.config.session_max_age)
    }
}

/// How many factors a session's sign-in proved (`Session.assuranceLevel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Assurance {
    /// A password, or a provider's word.
    OneFactor = 1,
    /// One of those and a second factor (a TOTP or recovery code).
    TwoFactors = 2,
}

/// The longest an impersonation session lives.
pub const IMPERSONATION_TTL: chrono::Duration = chrono::Duration::hours(1);

/// A new session for the user the gate let in (`admission::admit`, in
/// the same transaction), proved with the assurance it names, now.
#[instrument(skip_all, fields(user_id = %admitted.user_id()))]
pub(crate) async fn create(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    admitted: Admitted,
    meta: &ClientMeta,
) -> Result<NewSession, AuthError> {
    let (user_id, assurance) = (admitted.user_id(), admitted.assurance());
    let now = auth.clock.now();
    let token = token::generate();
    let impersonator = admitted.impersonator();
    // An impersonation lasts an hour at most and is never extended (`slide`).
    let expires_at = match impersonator {
        Some(_) => expiry(auth, now, now).min(now + IMPERSONATION_TTL),
        None => expiry(auth, now, now),
    };
    let session = sessions::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        token_hash: Set(token.hash),
        expires_at: Set(expires_at),
        created_at: Set(now),
        updated_at: Set(now),
        ip_address: Set(meta.ip_address.clone()),
        user_agent: Set(meta.user_agent.clone()),
        authenticated_at: Set(now),
        assurance_level: Set(assurance as i16),
        method: Set(Some(admitted.way().as_str().to_owned())),
        impersonator_id: Set(impersonator.map(|(admin, _)| admin)),
        impersonator_session_id: Set(impersonator.map(|(_, from)| from)),
    }
    .insert(conn)
    .await?;
    let event = Event::new(Kind::SessionCreated, user_id);
    let event = match impersonator {
        Some((admin, _)) => event.by(admin).impersonated_by(Some(admin)),
        None => event,
    };
    event
        .session(session.id)
        .with("method", admitted.way().as_str())
        .with("assurance", assurance as i16)
        .record(conn, auth, meta)
        .await?;
    // An impersonation never costs the user one of their own sessions.
    let ended = match impersonator {
        Some(_) => 0,
        None => end_oldest_beyond_cap(conn, auth, user_id, meta).await?,
    };
    let ended_oldest = (ended > 0).then(|| auth.sessions.changing(user_id));
    Ok(NewSession { token: token.secret, session, ended_oldest })
}

/// Ends the user's oldest sessions beyond `AUTHGATE_MAX_SESSIONS_PER_USER`
/// (inside the sign-in's transaction, which holds the user's row: two
/// sign-ins at once count each other). Returns how many ended.
async fn end_oldest_beyond_cap(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    meta: &ClientMeta,
) -> Result<u64, AuthError> {
    use sea_orm::QuerySelect;
    let cap = auth.config.max_sessions_per_user;
    if cap == 0 {
        return Ok(0);
    }
    let beyond: Vec<Uuid> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(user_id))
        .order_by_desc(sessions::Column::CreatedAt)
        .order_by_desc(sessions::Column::Id)
        .offset(cap)
        .limit(1000)
        .into_tuple()
        .all(conn)
        .await?;
    if beyond.is_empty() {
        return Ok(0);
    }
    let ended = ended(conn, auth, user_id, &beyond, Ended::Limit, meta).await?;
    tracing::info!(%user_id, ended, "oldest sessions ended: at most {cap} per user");
    Ok(ended)
}

/// Resolves a presented token to a live session and its user, extending
/// the session when it is due. From the session cache when it holds the
/// token (no database round trip), else one indexed query. `UNAUTHENTICATED`
/// when the token is malformed, unknown, expired or revoked.
#[instrument(skip_all)]
pub async fn authenticate(
    auth: &AuthContext,
    token: &str,
    meta: ClientMeta,
) -> Result<CurrentSession, AuthError> {
    let hash = token::hash_presented(token).ok_or(AuthError::Unauthenticated)?;
    let cache = &auth.sessions;
    // The ticket of the read the answer comes from: an entry keeps its own.
    let (session, user, roles, ticket, hit) = match cache.get(&hash) {
        Some(cached) => {
            (cached.session.clone(), cached.user.clone(), cached.roles.clone(), cached.ticket(), true)
        }
        None if cache.recently_unreachable() && cache.during_outage(&hash).is_some() => {
            return outage_answer(auth, &hash, meta);
        }
        None => {
            let ticket = cache.ticket();
            match find(auth, &hash).await {
                Ok((session, user, roles)) => {
                    cache.reached();
                    (session, user, roles, ticket, false)
                }
                Err(AuthError::Unauthenticated) => {
                    cache.reached();
                    cache.remove(&hash);
                    return Err(AuthError::Unauthenticated);
                }
                Err(e) => {
                    if !out_of_reach(auth, &e, ticket).await {
                        return Err(e);
                    }
                    cache.unreachable();
                    return outage_answer(auth, &hash, meta).map_err(|_| e);
                }
            }
        }
    };
    let now = auth.clock.now();
    // Checked on every use, cached or not: a cached session expires on time.
    if session.expires_at <= now {
        return Err(AuthError::Unauthenticated);
    }
    // The gate's rule holds for sessions already out too (a session of an
    // unproved address made before verification became required, say).
    if admission::may_hold_session(auth, &user).is_err() {
        return Err(AuthError::Unauthenticated);
    }
    let mut current = CurrentSession { session, user, roles, meta, refreshed: false };
    slide(auth, &mut current, now).await?;
    if !hit || current.refreshed {
        let read = (current.session.clone(), current.user.clone(), current.roles.clone());
        auth.sessions.put(hash, read, ticket);
    }
    Ok(current)
}

/// Whether `e` means the database is out of reach, which alone opens the
/// outage grace: a saturated pool (a flood answered while this request
/// waited, or every connection held by long work) must not make memory
/// answer for sessions revoked elsewhere. Without a grace nothing hangs on
/// it. A pool timeout with no answer meanwhile is checked with a fresh
/// connection beside the pool, one probe at a time (a request that finds
/// one running counts the pool as busy); one that answers counts as the
/// database answering, so later waits need no probe.
async fn out_of_reach(auth: &AuthContext, e: &AuthError, ticket: Ticket) -> bool {
    let cache = &auth.sessions;
    if !cache.has_grace() || !e.database_unreachable(cache.reached_since(ticket)) {
        return false;
    }
    if !e.is_pool_timeout() {
        return true;
    }
    let Some(_probe) = cache.probe() else { return false };
    if crate::db::answers(&auth.db, std::time::Duration::from_secs(1)).await {
        cache.reached();
        return false;
    }
    true
}

/// While the database cannot be reached: the cached session, if the outage
/// grace allows it (`AUTHGATE_SESSION_CACHE_OUTAGE_GRACE`), still checked
/// for expiry and verification; never extended (that is a write).
fn outage_answer(auth: &AuthContext, hash: &[u8], meta: ClientMeta) -> Result<CurrentSession, AuthError> {
    let cached = auth.sessions.during_outage(hash).ok_or(AuthError::ServiceUnavailable)?;
    let (session, user, roles) = (cached.session.clone(), cached.user.clone(), cached.roles.clone());
    if session.expires_at <= auth.clock.now() || admission::may_hold_session(auth, &user).is_err() {
        return Err(AuthError::Unauthenticated);
    }
    metrics::counter!("authgate_session_cache_outage_answers_total").increment(1);
    Ok(CurrentSession { session, user, roles, meta, refreshed: false })
}

/// The session stored for a token hash, with its user and their roles:
/// one statement (a cold `me` costs one round trip), the roles gathered by
/// a subquery (role names hold no comma: only known ones are stored).
async fn find(
    auth: &AuthContext,
    hash: &[u8],
) -> Result<(sessions::Model, users::Model, Vec<String>), AuthError> {
    use sea_orm::{FromQueryResult, QuerySelect, QueryTrait};
    let backend = auth.db.get_database_backend();
    let roles = match backend {
        sea_orm::DbBackend::Postgres => {
            "(SELECT string_agg(role, ',') FROM user_roles WHERE user_roles.user_id = sessions.user_id)"
        }
        _ => "(SELECT group_concat(role, ',') FROM user_roles WHERE user_roles.user_id = sessions.user_id)",
    };
    let statement = sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(hash.to_vec()))
        .find_also_related(users::Entity)
        .column_as(Expr::cust(roles), "roles")
        .build(backend);
    let row = auth.db.query_one(statement).await?.ok_or(AuthError::Unauthenticated)?;
    let session = sessions::Model::from_query_result(&row, "A_")?;
    let user = users::Model::from_query_result_optional(&row, "B_")?.ok_or(AuthError::Unauthenticated)?;
    let roles: Option<String> = row.try_get("", "roles")?;
    let mut roles: Vec<String> =
        roles.map(|list| list.split(',').map(str::to_owned).collect()).unwrap_or_default();
    roles.sort();
    if session.impersonator_id.is_some() && !impersonation_goes_on(auth, &session, &roles).await? {
        end_refused_impersonation(auth, &session).await?;
        return Err(AuthError::Unauthenticated);
    }
    Ok((session, user, roles))
}

/// An impersonation session counts only while its admin may still start
/// it (`admission::may_impersonate`, on the admin as they are now) and the
/// admin's session that started it lives: a few more reads, on
/// impersonation sessions alone.
async fn impersonation_goes_on(
    auth: &AuthContext,
    session: &sessions::Model,
    target_roles: &[String],
) -> Result<bool, AuthError> {
    let Some(admin) = session.impersonator_id else { return Ok(true) };
    let parent_lives = match session.impersonator_session_id {
        Some(from) => is_alive(&auth.db, auth, admin, from).await?,
        None => false,
    };
    let Some(row) = users::Entity::find_by_id(admin).one(&auth.db).await?.filter(|_| parent_lives) else {
        tracing::info!(%admin, "an impersonation ended: its admin's session or account is gone");
        return Ok(false);
    };
    let admin_roles = user::roles::of_user(&auth.db, admin).await?;
    if let Err(why) = admission::may_impersonate(auth, &row, &admin_roles, target_roles) {
        tracing::info!(%admin, ?why, "an impersonation ended: its admin may no longer act as the user");
        return Ok(false);
    }
    Ok(true)
}

/// Ends an impersonation found no longer allowed, recording its end (the
/// revocation feed and the user's activity hear of it).
async fn end_refused_impersonation(auth: &AuthContext, session: &sessions::Model) -> Result<(), AuthError> {
    let forget = auth.sessions.changing(session.user_id);
    let (_turn, txn) = auth.write().await?;
    let deleted = sessions::Entity::delete_by_id(session.id).exec(&txn).await?.rows_affected;
    if deleted == 1 {
        let (owner, admin, origin) = (session.user_id, session.impersonator_id, ClientMeta::default());
        crate::events::impersonation_ended(&txn, auth, owner, session.id, admin, None, Ended::Admin, &origin)
            .await?;
    }
    txn.commit().await?;
    forget.done();
    Ok(())
}

/// Whether `session_id` of `user_id` still counts for a live stream: it
/// lives, and, for an impersonation, its admin may still act as the user.
pub(crate) async fn still_counts(
    auth: &AuthContext,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<bool, AuthError> {
    let Some(session) = sessions::Entity::find_by_id(session_id)
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::ExpiresAt.gt(auth.clock.now()))
        .one(&auth.db)
        .await?
    else {
        return Ok(false);
    };
    if session.impersonator_id.is_none() {
        return Ok(true);
    }
    let roles = user::roles::of_user(&auth.db, user_id).await?;
    if impersonation_goes_on(auth, &session, &roles).await? {
        return Ok(true);
    }
    end_refused_impersonation(auth, &session).await?;
    Ok(false)
}

/// Extends the session when due: at most one write per session per
/// `update_age`, so reads stay reads. A session that is gone by then
/// (revoked by another instance a moment ago) is not one.
async fn slide(
    auth: &AuthContext,
    current: &mut CurrentSession,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let session = &mut current.session;
    // An impersonation ends when it was set to, however busy.
    if session.impersonator_id.is_some() {
        return Ok(());
    }
    let due = (now - session.updated_at).to_std().is_ok_and(|age| age >= auth.config.session_update_age);
    let extended = expiry(auth, session.created_at, now);
    if !(due && extended > session.expires_at) {
        return Ok(());
    }
    let updated = sessions::Entity::update_many()
        .col_expr(sessions::Column::ExpiresAt, Expr::value(extended))
        .col_expr(sessions::Column::UpdatedAt, Expr::value(now))
        .filter(sessions::Column::Id.eq(session.id))
        .exec(&auth.db)
        .await?;
    if updated.rows_affected == 0 {
        auth.sessions.forget_user(current.user.id);
        return Err(AuthError::Unauthenticated);
    }
    session.expires_at = extended;
    session.updated_at = now;
    current.refreshed = true;
    Ok(())
}

/// Whether `session_id` is a live session of `user_id` (an OAuth link
/// checks that the session that began it still is).
pub(crate) async fn is_alive(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<bool, AuthError> {
    use sea_orm::PaginatorTrait;
    let live = sessions::Entity::find_by_id(session_id)
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::ExpiresAt.gt(auth.clock.now()))
        .count(conn)
        .await?;
    Ok(live == 1)
}

/// Ends one session of the caller's (`logout` when it is the current one);
/// `false` when they have no such session.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn revoke(
    auth: &AuthContext,
    current: &CurrentSession,
    session_id: Uuid,
) -> Result<bool, AuthError> {
    let user_id = current.user.id;
    if let (true, Some(admin)) = (session_id == current.session.id, current.session.impersonator_id) {
        return end_impersonation(auth, current, admin).await;
    }
    // Signing the user out of their own devices is not an impersonation's
    // to do (an admin has `revokeUserSessions`, recorded as theirs).
    if session_id != current.session.id {
        step_up::own_session(current)?;
    }
    let forget = auth.sessions.changing(user_id);
    let why = if session_id == current.session.id { Ended::SignedOut } else { Ended::Revoked };
    let event = Event::session_ended(user_id, session_id, why);
    // Not under the user's row (that is one more write on the busiest
    // change there is; measured): a sign-out racing another end of the same
    // session (a password change ending the others) may record that end
    // twice; readers key on the session id.
    let ended = event.record_deleting_session(&auth.db, auth, &current.meta).await?;
    auth.checkpoints.reach("revoke:deleted").await;
    forget.done();
    Ok(ended)
}

/// The admin signs out of an impersonation: the session ends, and the
/// user's activity shows the impersonation's end beside it.
async fn end_impersonation(
    auth: &AuthContext,
    current: &CurrentSession,
    admin: Uuid,
) -> Result<bool, AuthError> {
    let (user_id, session_id) = (current.user.id, current.session.id);
    let forget = auth.sessions.changing(user_id);
    let (_turn, txn) = auth.write().await?;
    let deleted = sessions::Entity::delete_by_id(session_id).exec(&txn).await?.rows_affected;
    if deleted == 0 {
        return Ok(false);
    }
    let (admin, meta) = (Some(admin), &current.meta);
    crate::events::impersonation_ended(&txn, auth, user_id, session_id, admin, admin, Ended::SignedOut, meta)
        .await?;
    txn.commit().await?;
    forget.done();
    Ok(true)
}

/// Signs the caller out everywhere but the current session; returns how many sessions ended.
pub async fn revoke_all_but_current(auth: &AuthContext, current: &CurrentSession) -> Result<u64, AuthError> {
    step_up::own_session(current)?;
    let user_id = current.user.id;
    let forget = auth.sessions.changing(user_id);
    let (_turn, txn) = auth.write().await?;
    // Held so that a sign-in in flight lands before (and is ended) or after.
    lock_user(&txn, user_id, None).await?;
    let ended =
        revoke_others(&txn, auth, user_id, Some(current.session.id), Ended::Revoked, &current.meta).await?;
    txn.commit().await?;
    forget.done();
    Ok(ended)
}

/// Ends every session of `user_id` but `keep`, recording each, inside the
/// caller's transaction, which holds the user's row (no session of theirs
/// is created meanwhile); the caller forgets the user in the session cache
/// after its commit. Returns how many.
#[instrument(skip_all, fields(user_id = %user_id))]
pub(crate) async fn revoke_others(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    keep: Option<Uuid>,
    why: Ended,
    meta: &ClientMeta,
) -> Result<u64, AuthError> {
    use sea_orm::QuerySelect;
    let mut find = sessions::Entity::find().select_only().column(sessions::Column::Id);
    find = find.filter(sessions::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        find = find.filter(sessions::Column::Id.ne(keep));
    }
    let ids: Vec<Uuid> = find.into_tuple().all(conn).await?;
    ended(conn, auth, user_id, &ids, why, meta).await
}

/// Deletes the sessions `ids` of `user_id` and records each one's end.
pub(crate) async fn ended(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    ids: &[Uuid],
    why: Ended,
    meta: &ClientMeta,
) -> Result<u64, AuthError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let deleted = sessions::Entity::delete_many()
        .filter(sessions::Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    crate::events::sessions_ended(conn, auth, user_id, ids, why, meta).await?;
    Ok(deleted.rows_affected)
}

/// The live sessions of each user, newest first: one query for all of them.
pub async fn live_for_users(
    auth: &AuthContext,
    user_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<sessions::Model>>, DbErr> {
    let rows = sessions::Entity::find()
        .filter(sessions::Column::UserId.is_in(user_ids.iter().copied()))
        .filter(sessions::Column::ExpiresAt.gt(auth.clock.now()))
        .order_by_desc(sessions::Column::CreatedAt)
        .order_by_desc(sessions::Column::Id)
        .all(&auth.db)
        .await?;
    Ok(user::group_by_user(rows, |row| row.user_id))
}

/// Records that `session_id` proved the user's presence now (with
/// `assurance`, never lowering it). `false` when the session is gone.
pub(crate) async fn proved_presence(
    conn: &impl ConnectionTrait,
    session: &sessions::Model,
    now: DateTime<Utc>,
    assurance: Assurance,
) -> Result<bool, AuthError> {
    let level = (assurance as i16).max(session.assurance_level);
    let updated = sessions::Entity::update_many()
        .col_expr(sessions::Column::AuthenticatedAt, Expr::value(now))
        .col_expr(sessions::Column::AssuranceLevel, Expr::value(level))
        .filter(sessions::Column::Id.eq(session.id))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}
