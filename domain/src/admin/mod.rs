//! What an admin does to other users' accounts: list them, ban and unban,
//! end their sessions, reset their two-factor, set their roles, and act as
//! them (impersonation). Every action starts with [`acting`], which reads
//! the admin's roles afresh and applies the one rule (`user::roles::permits`);
//! the destructive ones also need a recent sign-in (step-up). Every action
//! records its event, the admin as actor, in its own transaction.

pub mod impersonate;
pub mod users;

use chrono::{DateTime, Utc};
use entity::users as user_rows;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    error::{AuthError, Input},
    events::{self, Ended, Event, Kind},
    factors, notices,
    session::{
        CurrentSession,
        step_up::{self, Presence},
    },
    user::{
        self,
        roles::{self, Permission},
        validate,
    },
};

/// Proof that the session's user held `permission` when the action began.
/// Its field is private: only [`acting`] makes one.
pub struct Acting<'a> {
    pub current: &'a CurrentSession,
}

/// The admin behind `current`, if they hold `permission` now (their roles
/// read from the database, not from the session cache); `PERMISSION_DENIED`
/// otherwise, and always in an impersonation.
pub async fn acting<'a>(
    auth: &AuthContext,
    current: &'a CurrentSession,
    permission: Permission,
) -> Result<Acting<'a>, AuthError> {
    let held = roles::of_user(&auth.db, current.user.id).await?;
    if let Err(denied) = roles::permits(&held, current.session.impersonator_id.is_some(), permission) {
        tracing::info!(user_id = %current.user.id, permission = permission.as_str(), "permission denied");
        return Err(denied);
    }
    Ok(Acting { current })
}

/// `acting` for a destructive action: also a recent sign-in, with two
/// factors when the admin has them (`REAUTHENTICATION_REQUIRED`).
pub async fn acting_destructively<'a>(
    auth: &AuthContext,
    current: &'a CurrentSession,
    permission: Permission,
) -> Result<Acting<'a>, AuthError> {
    let acting = acting(auth, current, permission).await?;
    step_up::require(auth, current, Presence::Recent)?;
    Ok(acting)
}

/// What an admin sends to ban a user.
pub struct Ban {
    pub user_id: Uuid,
    pub reason: Option<String>,
    pub until: Option<DateTime<Utc>>,
}

/// The longest reason kept.
const MAX_REASON: usize = 500;

fn reason(text: Option<String>) -> Result<Option<String>, AuthError> {
    let text = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    match text {
        Some(t)
            if t.chars().count() > MAX_REASON || t.chars().any(|c| c.is_control() || validate::spoofs(c)) =>
        {
            Err(AuthError::bad_input(Input::Reason, format!("at most {MAX_REASON} characters, on one line")))
        }
        t => Ok(t),
    }
}

/// Another user than the admin: an admin who bans, resets or
/// impersonates themselves locks themselves out or learns nothing.
fn someone_else(acting: &Acting<'_>, user_id: Uuid) -> Result<(), AuthError> {
    if acting.current.user.id == user_id {
        return Err(AuthError::bad_input(Input::UserId, "not on your own account"));
    }
    Ok(())
}

/// A change to `user_id` by the admin: the user's row held (`NotFound`:
/// `BAD_USER_INPUT` on `userId`), the session cache settled after commit.
async fn hold_target(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<user_rows::Model, AuthError> {
    if !user::lock_user(conn, user_id, None).await? {
        return Err(AuthError::bad_input(Input::UserId, "no such user"));
    }
    user_rows::Entity::find_by_id(user_id)
        .one(conn)
        .await?
        .ok_or_else(|| AuthError::bad_input(Input::UserId, "no such user"))
}

/// `PERMISSION_DENIED` unless the admin still holds `permission` and holds
/// every permission the user `user_id` holds, both read inside the
/// change's transaction (an admin demoted a moment ago acts no more; an
/// admin acts on nobody above them).
async fn outranks(
    conn: &impl ConnectionTrait,
    acting: &Acting<'_>,
    user_id: Uuid,
    permission: Permission,
) -> Result<(), AuthError> {
    let mine = roles::of_user(conn, acting.current.user.id).await?;
    roles::permits(&mine, false, permission)?;
    let theirs = roles::of_user(conn, user_id).await?;
    roles::covers(&mine, &theirs)
}

/// The user's row as the admin's change left it (under its hold).
async fn reread(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<user_rows::Model, AuthError> {
    user_rows::Entity::find_by_id(user_id)
        .one(conn)
        .await?
        .ok_or_else(|| AuthError::internal("an admin's change", "the user's row vanished under its hold"))
}

/// Ends every session of `user_id` for `why`, by the admin, recording
/// each (inside the caller's transaction, which holds the user's row), and
/// the impersonations `user_id` runs as an admin (each recorded about its
/// user, whose cache entries the returned guards forget after the commit).
/// Returns how many of the user's own sessions ended.
async fn end_sessions(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    acting: &Acting<'_>,
    user_id: Uuid,
    why: Ended,
) -> Result<(u64, Vec<crate::session::cache::Forget>), AuthError> {
    use entity::sessions;
    use sea_orm::QuerySelect;
    let rows: Vec<(Uuid, Uuid)> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .column(sessions::Column::UserId)
        .filter(
            sea_orm::Condition::any()
                .add(sessions::Column::UserId.eq(user_id))
                .add(sessions::Column::ImpersonatorId.eq(user_id)),
        )
        .into_tuple()
        .all(conn)
        .await?;
    if rows.is_empty() {
        return Ok((0, Vec::new()));
    }
    sessions::Entity::delete_many()
        .filter(sessions::Column::Id.is_in(rows.iter().map(|(id, _)| *id)))
        .exec(conn)
        .await?;
    let (admin, meta) = (Some(acting.current.user.id), &acting.current.meta);
    let own: Vec<Uuid> = rows.iter().filter(|(_, owner)| *owner == user_id).map(|(id, _)| *id).collect();
    events::sessions_ended_by(conn, auth, user_id, &own, why, admin, meta).await?;
    let mut forget = Vec::new();
    for (id, owner) in rows.iter().filter(|(_, owner)| *owner != user_id) {
        // About the impersonated user: an admin's doing, not their ban.
        events::impersonation_ended(conn, auth, *owner, *id, Some(user_id), admin, Ended::Admin, meta)
            .await?;
        forget.push(auth.sessions.changing(*owner));
    }
    Ok((own.len() as u64, forget))
}

/// After a change of `user_id`'s roles: the impersonations they run (their
/// standing changed) and the impersonations of them (they may now outrank
/// the admin) end, recorded, by `actor` (`None`: the command line).
async fn end_impersonations(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    actor: Option<Uuid>,
    meta: &ClientMeta,
) -> Result<Vec<crate::session::cache::Forget>, AuthError> {
    use entity::sessions;
    use sea_orm::QuerySelect;
    let rows: Vec<(Uuid, Uuid, Option<Uuid>)> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .column(sessions::Column::UserId)
        .column(sessions::Column::ImpersonatorId)
        .filter(
            sea_orm::Condition::any().add(sessions::Column::ImpersonatorId.eq(user_id)).add(
                sea_orm::Condition::all()
                    .add(sessions::Column::UserId.eq(user_id))
                    .add(sessions::Column::ImpersonatorId.is_not_null()),
            ),
        )
        .into_tuple()
        .all(conn)
        .await?;
    let mut forget = Vec::new();
    for (id, owner, admin) in rows {
        sessions::Entity::delete_by_id(id).exec(conn).await?;
        events::impersonation_ended(conn, auth, owner, id, admin, actor, Ended::Admin, meta).await?;
        forget.push(auth.sessions.changing(owner));
    }
    Ok(forget)
}

/// Settles the cache guards of the impersonated users after the commit.
fn settle(forget: Vec<crate::session::cache::Forget>) {
    forget.into_iter().for_each(crate::session::cache::Forget::done);
}

/// Bans a user: every session ends at once (here, on every instance
/// through the session cache's channel, and for every verifier through
/// the revocation feed), and the admission gate refuses every way in
/// until `until` (or until `unban`). Needs `user:ban` and a recent sign-in.
pub async fn ban(
    auth: &AuthContext,
    current: &CurrentSession,
    ban: Ban,
) -> Result<user_rows::Model, AuthError> {
    let acting = acting_destructively(auth, current, Permission::UserBan).await?;
    someone_else(&acting, ban.user_id)?;
    let reason = reason(ban.reason)?;
    let now = auth.clock.now();
    if ban.until.is_some_and(|until| until <= now) {
        return Err(AuthError::bad_input(
            Input::Until,
            "a ban must end in the future (or never: leave it out)",
        ));
    }
    let forget = auth.sessions.changing(ban.user_id);
    let (_turn, txn) = auth.write().await?;
    hold_target(&txn, ban.user_id).await?;
    outranks(&txn, &acting, ban.user_id, Permission::UserBan).await?;
    user_rows::Entity::update_many()
        .col_expr(user_rows::Column::BannedAt, Expr::value(Some(now)))
        .col_expr(user_rows::Column::BannedUntil, Expr::value(ban.until))
        .col_expr(user_rows::Column::BanReason, Expr::value(reason.clone()))
        .col_expr(user_rows::Column::UpdatedAt, Expr::value(now))
        .filter(user_rows::Column::Id.eq(ban.user_id))
        .exec(&txn)
        .await?;
    let (ended, others) = end_sessions(&txn, auth, &acting, ban.user_id, Ended::Banned).await?;
    // The reason stays on the user's row, for admins: the event is the
    // user's to read too.
    Event::new(Kind::UserBanned, ban.user_id)
        .by(current.user.id)
        .with("until", ban.until.map(|t| t.to_rfc3339()))
        .with("sessions_ended", ended)
        .record(&txn, auth, &current.meta)
        .await?;
    let user = reread(&txn, ban.user_id).await?;
    txn.commit().await?;
    forget.done();
    settle(others);
    tracing::info!(user_id = %ban.user_id, admin = %current.user.id, sessions_ended = ended, "user banned");
    Ok(user)
}

/// Lifts a ban (the sessions it ended stay ended). Needs `user:ban` and a
/// recent sign-in (a stolen admin session must not undo bans).
pub async fn unban(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
) -> Result<user_rows::Model, AuthError> {
    let acting = acting_destructively(auth, current, Permission::UserBan).await?;
    let forget = auth.sessions.changing(user_id);
    let (_turn, txn) = auth.write().await?;
    let before = hold_target(&txn, user_id).await?;
    outranks(&txn, &acting, user_id, Permission::UserBan).await?;
    if before.banned_at.is_none() {
        return Ok(before);
    }
    let none: Option<DateTime<Utc>> = None;
    user_rows::Entity::update_many()
        .col_expr(user_rows::Column::BannedAt, Expr::value(none))
        .col_expr(user_rows::Column::BannedUntil, Expr::value(none))
        .col_expr(user_rows::Column::BanReason, Expr::value(Option::<String>::None))
        .col_expr(user_rows::Column::UpdatedAt, Expr::value(auth.clock.now()))
        .filter(user_rows::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    Event::new(Kind::UserUnbanned, user_id).by(current.user.id).record(&txn, auth, &current.meta).await?;
    let user = reread(&txn, user_id).await?;
    txn.commit().await?;
    forget.done();
    tracing::info!(%user_id, admin = %current.user.id, "user unbanned");
    Ok(user)
}

/// Ends every session of a user; how many. Needs `session:revoke`.
pub async fn revoke_sessions(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
) -> Result<u64, AuthError> {
    let acting = acting(auth, current, Permission::SessionRevoke).await?;
    let forget = auth.sessions.changing(user_id);
    let (_turn, txn) = auth.write().await?;
    hold_target(&txn, user_id).await?;
    outranks(&txn, &acting, user_id, Permission::SessionRevoke).await?;
    let (ended, others) = end_sessions(&txn, auth, &acting, user_id, Ended::Admin).await?;
    txn.commit().await?;
    forget.done();
    settle(others);
    tracing::info!(%user_id, admin = %current.user.id, ended, "sessions ended by an admin");
    Ok(ended)
}

/// For a user who lost their authenticator and recovery codes: removes
/// both, ends every session and challenge, and mails the user. `false`
/// when two-factor was off (nothing changed, nobody mailed). Needs
/// `user:reset_two_factor` and a recent sign-in.
pub async fn reset_two_factor(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
) -> Result<bool, AuthError> {
    let acting = acting_destructively(auth, current, Permission::UserResetTwoFactor).await?;
    someone_else(&acting, user_id)?;
    let notice = notices::notice_slot(auth).await;
    let forget = auth.sessions.changing(user_id);
    let (turn, txn) = auth.write().await?;
    let target = hold_target(&txn, user_id).await?;
    outranks(&txn, &acting, user_id, Permission::UserResetTwoFactor).await?;
    let was_on = factors::totp::remove(&txn, user_id).await?;
    if !was_on {
        return Ok(false);
    }
    // Trust earned under the old factors ends, and so do sign-ins in flight.
    user::bump_credentials(&txn, user_id).await?;
    let (ended, others) = end_sessions(&txn, auth, &acting, user_id, Ended::Admin).await?;
    Event::new(Kind::TwoFactorDisabled, user_id)
        .by(current.user.id)
        .with("method", "totp")
        .with("by", "admin")
        .record(&txn, auth, &current.meta)
        .await?;
    txn.commit().await?;
    drop(turn);
    forget.done();
    settle(others);
    tracing::info!(%user_id, admin = %current.user.id, sessions_ended = ended, "two-factor reset by an admin");
    notices::notify(notice, auth, &target, notices::Notice::TwoFactorReset, None);
    Ok(true)
}

/// Replaces a user's roles; the user and their roles after. Needs
/// `role:set` and a recent sign-in; not on one's own account (an admin
/// cannot drop the last admin by mistake; the command line can).
pub async fn set_roles(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
    wanted: &[String],
) -> Result<(user_rows::Model, Vec<String>), AuthError> {
    let acting = acting_destructively(auth, current, Permission::RoleSet).await?;
    someone_else(&acting, user_id)?;
    let wanted = roles::normalize(wanted)?;
    let forget = auth.sessions.changing(user_id);
    let (_turn, txn) = auth.write().await?;
    let user = hold_target(&txn, user_id).await?;
    // Only what the admin holds may be given or taken: an admin makes no
    // superadmin, and strips none.
    let mine = roles::of_user(&txn, current.user.id).await?;
    roles::permits(&mine, false, Permission::RoleSet)?;
    let held = roles::of_user(&txn, user_id).await?;
    roles::covers(&mine, &held)?;
    roles::covers(&mine, &wanted)?;
    // Changing the roles of another admin is a superadmin's: an admin who
    // could strip a peer could then act as them.
    if roles::manages_roles(&held) {
        roles::permits(&mine, false, Permission::UserImpersonatePrivileged)?;
    }
    let before = roles::replace(&txn, auth, user_id, &wanted, Some(current.user.id)).await?;
    let mut others = Vec::new();
    if before != wanted {
        touch(&txn, auth, user_id).await?;
        others = end_impersonations(&txn, auth, user_id, Some(current.user.id), &current.meta).await?;
        Event::new(Kind::UserRolesChanged, user_id)
            .by(current.user.id)
            .with("before", before)
            .with("after", wanted.clone())
            .record(&txn, auth, &current.meta)
            .await?;
    }
    txn.commit().await?;
    forget.done();
    settle(others);
    Ok((user, wanted))
}

/// Deletes a user, as their own `deleteAccount` does: every session (and
/// every impersonation they run) ends, every way in and row of theirs
/// goes. Needs `user:delete` and a recent sign-in; not one's own account,
/// nor anyone above the admin.
pub async fn delete_user(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
) -> Result<(), AuthError> {
    let acting = acting_destructively(auth, current, Permission::UserDelete).await?;
    someone_else(&acting, user_id)?;
    let forget = auth.sessions.changing(user_id);
    let (_turn, txn) = auth.write().await?;
    hold_target(&txn, user_id).await?;
    outranks(&txn, &acting, user_id, Permission::UserDelete).await?;
    let (ended, others) = end_sessions(&txn, auth, &acting, user_id, Ended::Deleted).await?;
    user::ways_in::remove_ways_in(&txn, user_id).await?;
    user_rows::Entity::delete_by_id(user_id).exec(&txn).await?;
    Event::new(Kind::UserDeleted, user_id)
        .by(current.user.id)
        .with("sessions_ended", ended)
        .record(&txn, auth, &current.meta)
        .await?;
    txn.commit().await?;
    forget.done();
    settle(others);
    tracing::info!(%user_id, admin = %current.user.id, "user deleted by an admin");
    Ok(())
}

/// Mails the user a password reset link (as `requestPasswordReset` would,
/// within the same per-address mail limit), for a user who cannot get
/// one themselves. Needs `user:send_reset`.
pub async fn send_reset_link(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
) -> Result<(), AuthError> {
    let acting = acting(auth, current, Permission::UserSendReset).await?;
    let user = user_rows::Entity::find_by_id(user_id)
        .one(&auth.db)
        .await?
        .ok_or_else(|| AuthError::bad_input(Input::UserId, "no such user"))?;
    // Before the transaction: the limiter may write (SQLite's one writer).
    crate::limits::hit(auth, crate::config::Rule::MailAccount, &user.email).await?;
    let (turn, txn) = auth.write().await?;
    hold_target(&txn, user_id).await?;
    outranks(&txn, &acting, user_id, Permission::UserSendReset).await?;
    Event::new(Kind::UserResetLinkSent, user_id)
        .by(current.user.id)
        .record(&txn, auth, &current.meta)
        .await?;
    txn.commit().await?;
    drop(turn);
    crate::mailed::reset::send_password_reset(auth, &user.email).await
}

/// Marks the user's row changed and, on PostgreSQL, tells every instance's
/// session cache at commit (which holds the roles for the tokens' claim).
/// Said outright: the row's trigger speaks only when a column differs, and
/// `updated_at` may not (two changes in one clock tick).
async fn touch(conn: &impl ConnectionTrait, auth: &AuthContext, user_id: Uuid) -> Result<(), AuthError> {
    user_rows::Entity::update_many()
        .col_expr(user_rows::Column::UpdatedAt, Expr::value(auth.clock.now()))
        .filter(user_rows::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    let backend = conn.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        let channel = crate::session::cache::channel::CHANNEL;
        let notify = sea_orm::Statement::from_sql_and_values(
            backend,
            "SELECT pg_notify($1, $2)",
            [channel.into(), user_id.to_string().into()],
        );
        conn.execute(notify).await?;
    }
    Ok(())
}

/// The command line's grant (`add`) or revoke of one role, by email: the
/// operator, so no permission is asked. Whether anything changed.
pub async fn grant_from_command_line(
    auth: &AuthContext,
    email: &str,
    role: &str,
    add: bool,
) -> Result<bool, AuthError> {
    let wanted = roles::normalize(&[role.to_owned()])?;
    let email = email.trim().to_lowercase();
    let (_turn, txn) = auth.write().await?;
    let user = user_rows::Entity::find()
        .filter(user_rows::Column::Email.eq(email))
        .one(&txn)
        .await?
        .ok_or_else(|| AuthError::bad_input(Input::Email, "no user with this email"))?;
    let forget = auth.sessions.changing(user.id);
    hold_target(&txn, user.id).await?;
    let before = roles::of_user(&txn, user.id).await?;
    let mut after = before.clone();
    after.retain(|r| r != &wanted[0]);
    if add {
        after.push(wanted[0].clone());
        after.sort();
    }
    if after == before {
        return Ok(false);
    }
    roles::replace(&txn, auth, user.id, &after, None).await?;
    touch(&txn, auth, user.id).await?;
    let others = end_impersonations(&txn, auth, user.id, None, &ClientMeta::default()).await?;
    Event::new(Kind::UserRolesChanged, user.id)
        .by_server()
        .with("before", before)
        .with("after", after)
        .with("by", "command_line")
        .record(&txn, auth, &ClientMeta::default())
        .await?;
    txn.commit().await?;
    forget.done();
    settle(others);
    Ok(true)
}

/// Every role held, as `(email, role)`, by email (`authgate admin list`).
pub async fn holders(auth: &AuthContext) -> Result<Vec<(String, String)>, AuthError> {
    use sea_orm::QueryOrder;
    let rows = entity::user_roles::Entity::find()
        .find_also_related(user_rows::Entity)
        .order_by_asc(entity::user_roles::Column::Role)
        .all(&auth.db)
        .await?;
    let mut out: Vec<(String, String)> =
        rows.into_iter().filter_map(|(role, user)| Some((user?.email, role.role))).collect();
    out.sort();
    Ok(out)
}
