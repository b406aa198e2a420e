//! Who may do what beyond their own account. A user holds roles (rows of
//! `user_roles`); a role holds permissions, named `resource:action`; the
//! built-in `admin` holds every one but `user:impersonate_privileged`
//! (acting as another admin), which only `superadmin` adds. [`permits`] is the one function that
//! decides, on roles read from the database for the request that asks: a
//! grant or a revoke, from a resolver or from the command line of another
//! process, counts on the next request. (The signed access tokens' `roles`
//! claim is read with the session, so it may lag by the session cache's
//! lifetime.)

use std::collections::HashMap;

use entity::user_roles;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::{AuthContext, error::AuthError};

/// A permission an admin field needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// `users`, and reading another user's sessions, ways in and activity.
    UserList,
    /// `banUser`, `unbanUser`.
    UserBan,
    /// `impersonateUser`.
    UserImpersonate,
    /// `impersonateUser` of a user who holds a role: separate, so that an
    /// admin cannot become another admin by default.
    UserImpersonatePrivileged,
    /// `resetUserTwoFactor`.
    UserResetTwoFactor,
    /// `revokeUserSessions`.
    SessionRevoke,
    /// `setUserRoles`.
    RoleSet,
    /// `auditEvents`.
    AuditRead,
    /// `createWebhookEndpoint`.
    WebhookManage,
    /// `deleteUser`.
    UserDelete,
    /// `sendUserPasswordReset`.
    UserSendReset,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::UserList,
        Permission::UserBan,
        Permission::UserImpersonate,
        Permission::UserImpersonatePrivileged,
        Permission::UserResetTwoFactor,
        Permission::SessionRevoke,
        Permission::RoleSet,
        Permission::AuditRead,
        Permission::WebhookManage,
        Permission::UserDelete,
        Permission::UserSendReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UserList => "user:list",
            Permission::UserBan => "user:ban",
            Permission::UserImpersonate => "user:impersonate",
            Permission::UserImpersonatePrivileged => "user:impersonate_privileged",
            Permission::UserResetTwoFactor => "user:reset_two_factor",
            Permission::SessionRevoke => "session:revoke",
            Permission::RoleSet => "role:set",
            Permission::AuditRead => "audit:read",
            Permission::WebhookManage => "webhook:manage",
            Permission::UserDelete => "user:delete",
            Permission::UserSendReset => "user:send_reset",
        }
    }
}

/// The role that holds every permission but acting as another admin.
pub const ADMIN: &str = "admin";

/// The built-in roles. An admin cannot become another admin by
/// impersonation unless they are also `superadmin`.
pub const BUILT_IN: [&str; 4] = ["superadmin", ADMIN, "support", "auditor"];

/// Whether the built-in `role` holds `permission`: `superadmin` every one;
/// `admin` every one but `user:impersonate_privileged`; `support` what
/// helps a user back in; `auditor` reading.
pub fn grants(role: &str, permission: Permission) -> bool {
    use Permission::*;
    match role {
        "superadmin" => true,
        ADMIN => permission != UserImpersonatePrivileged,
        "support" => {
            matches!(permission, UserList | SessionRevoke | UserResetTwoFactor | UserSendReset | AuditRead)
        }
        "auditor" => matches!(permission, UserList | AuditRead),
        _ => false,
    }
}

/// Whether `role` is one this server knows (`BAD_USER_INPUT` otherwise:
/// a typo must not be stored as a role that grants nothing).
pub fn is_known(role: &str) -> bool {
    BUILT_IN.contains(&role)
}

/// The one decision: `PERMISSION_DENIED` naming `permission` unless one
/// of `roles` (the signed-in user's, read from the database for this
/// request) grants it. An impersonation session holds nothing: an admin
/// acting as a user acts only as that user, never as an admin.
pub fn permits(roles: &[String], impersonation: bool, permission: Permission) -> Result<(), AuthError> {
    if !impersonation && roles.iter().any(|role| grants(role, permission)) {
        return Ok(());
    }
    Err(AuthError::PermissionDenied(permission.as_str()))
}

/// `PERMISSION_DENIED` naming the first permission that a role in `theirs`
/// grants and none in `mine` does: an admin acts on (or grants, or takes)
/// only what they hold themselves, so an `admin` cannot make, strip, ban
/// or reset a `superadmin`, nor a `support` an `admin`.
pub fn covers(mine: &[String], theirs: &[String]) -> Result<(), AuthError> {
    for permission in Permission::ALL {
        let theirs_holds = theirs.iter().any(|role| grants(role, permission));
        if theirs_holds && !mine.iter().any(|role| grants(role, permission)) {
            return Err(AuthError::PermissionDenied(permission.as_str()));
        }
    }
    Ok(())
}

/// The roles `user_id` holds, sorted.
pub async fn of_user(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<String>, AuthError> {
    Ok(user_roles::Entity::find()
        .filter(user_roles::Column::UserId.eq(user_id))
        .order_by_asc(user_roles::Column::Role)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.role)
        .collect())
}

/// Whether `roles` make their holder an admin (they may set roles): only a
/// superadmin changes such a holder's roles.
pub fn manages_roles(roles: &[String]) -> bool {
    roles.iter().any(|role| grants(role, Permission::RoleSet))
}

/// The roles `user_id` holds now, from the database (not the session cache).
pub async fn of_user_now(auth: &AuthContext, user_id: Uuid) -> Result<Vec<String>, AuthError> {
    of_user(&auth.db, user_id).await
}

/// The roles of each of `user_ids`, sorted: one query for all of them.
pub async fn of_users(
    auth: &AuthContext,
    user_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, sea_orm::DbErr> {
    let rows = user_roles::Entity::find()
        .filter(user_roles::Column::UserId.is_in(user_ids.iter().copied()))
        .order_by_asc(user_roles::Column::Role)
        .all(&auth.db)
        .await?;
    let by_user = super::group_by_user(rows, |row| row.user_id);
    Ok(by_user.into_iter().map(|(id, rows)| (id, rows.into_iter().map(|row| row.role).collect())).collect())
}

/// Replaces `user_id`'s roles with `roles` inside the caller's transaction
/// (which holds the user's row); returns the roles before.
pub(crate) async fn replace(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    roles: &[String],
    granted_by: Option<Uuid>,
) -> Result<Vec<String>, AuthError> {
    use sea_orm::ActiveValue::Set;
    let before = of_user(conn, user_id).await?;
    user_roles::Entity::delete_many().filter(user_roles::Column::UserId.eq(user_id)).exec(conn).await?;
    let now = auth.clock.now();
    let rows: Vec<user_roles::ActiveModel> = roles
        .iter()
        .map(|role| user_roles::ActiveModel {
            user_id: Set(user_id),
            role: Set(role.clone()),
            granted_at: Set(now),
            granted_by: Set(granted_by),
        })
        .collect();
    if !rows.is_empty() {
        user_roles::Entity::insert_many(rows).exec_without_returning(conn).await?;
    }
    Ok(before)
}

/// `roles` checked, without repeats, sorted: `BAD_USER_INPUT` naming the
/// first unknown role.
pub fn normalize(roles: &[String]) -> Result<Vec<String>, AuthError> {
    let mut out: Vec<String> = Vec::new();
    for role in roles {
        let role = role.trim();
        if !is_known(role) {
            return Err(AuthError::bad_input(
                crate::error::Input::Roles,
                format!("unknown role {role:?}; the roles are {}", BUILT_IN.join(", ")),
            ));
        }
        out.push(role.to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_every_permission_and_the_others_only_theirs() {
        for permission in Permission::ALL {
            assert!(grants("superadmin", permission), "{permission:?}");
            let privileged = permission == Permission::UserImpersonatePrivileged;
            assert_eq!(grants(ADMIN, permission), !privileged, "{permission:?}");
        }
        assert!(grants("auditor", Permission::AuditRead));
        assert!(!grants("auditor", Permission::UserBan));
        assert!(!grants("support", Permission::RoleSet));
        assert!(!grants("support", Permission::UserImpersonate));
        assert!(!grants("nobody", Permission::UserList));
    }

    #[test]
    fn an_impersonation_holds_no_permission() {
        let admin = [ADMIN.to_owned()];
        assert!(permits(&admin, false, Permission::UserBan).is_ok());
        assert!(permits(&admin, true, Permission::UserBan).is_err());
        assert!(permits(&["auditor".to_owned()], false, Permission::UserBan).is_err());
        assert!(permits(&[], false, Permission::AuditRead).is_err());
    }

    #[test]
    fn only_what_one_holds_can_be_acted_on() {
        let [superadmin, admin, support] = ["superadmin", "admin", "support"].map(|r| vec![r.to_owned()]);
        assert!(covers(&superadmin, &admin).is_ok());
        assert!(covers(&admin, &support).is_ok());
        assert!(covers(&admin, &[]).is_ok());
        let denied = covers(&admin, &superadmin).unwrap_err();
        assert!(matches!(denied, AuthError::PermissionDenied("user:impersonate_privileged")), "{denied:?}");
        assert!(covers(&support, &admin).is_err());
        assert!(covers(&["auditor".to_owned()], &support).is_err());
    }

    #[test]
    fn unknown_roles_are_refused_and_known_ones_kept_once() {
        let roles = ["support".to_owned(), " admin".to_owned(), "support".to_owned()];
        assert_eq!(normalize(&roles).unwrap(), ["admin", "support"]);
        assert!(normalize(&["Admin".to_owned()]).is_err());
        assert!(normalize(&["root".to_owned()]).is_err());
    }
}
