//! An admin acting as a user, to see what they see: a new session of the
//! user, marked with the admin (`sessions.impersonator_id`), an hour at
//! most and never extended. Inside it the user's credentials, factors,
//! roles and the account's existence are off limits (`step_up::own_session`),
//! it holds no permission (so it cannot impersonate again, nor reach an
//! admin field), and its access tokens name the admin (`act`). The user
//! sees it start and end in their activity.

use entity::users;
use uuid::Uuid;

use super::{acting_destructively, someone_else};
use crate::{
    AuthContext,
    error::{AuthError, Input},
    events::{Event, Kind},
    session::{
        self, Assurance, CurrentSession,
        admission::{self, Way},
    },
    user::roles::{self, Permission},
};

/// A new impersonation session: its token, once, and whose it is.
pub struct Impersonation {
    pub token: String,
    pub session: entity::sessions::Model,
    pub user: users::Model,
}

/// Starts an impersonation of `user_id` for `reason` (recorded, shown in
/// the user's activity). Needs `user:impersonate` and a recent sign-in;
/// a user who holds any role also needs `user:impersonate_privileged`.
/// The target passes the admission gate like any way in: a banned user
/// answers `ACCOUNT_BANNED`.
pub async fn start(
    auth: &AuthContext,
    current: &CurrentSession,
    user_id: Uuid,
    reason: &str,
) -> Result<Impersonation, AuthError> {
    let acting = acting_destructively(auth, current, Permission::UserImpersonate).await?;
    someone_else(&acting, user_id)?;
    let reason = super::reason(Some(reason.to_owned()))?
        .ok_or_else(|| AuthError::bad_input(Input::Reason, "say why (it is shown to the user)"))?;
    let (turn, txn) = auth.write().await?;
    // The user's row held first, and read under the hold: the version the
    // gate holds it on is the one there now (a password change that
    // committed a moment ago is no lost race).
    let target = super::hold_target(&txn, user_id).await?;
    let (version, one) = (target.credentials_version, Assurance::OneFactor);
    // The rule every use of the session applies again: the admin's roles
    // and the user's, read under the hold (a grant that committed
    // meanwhile is seen).
    let admin_roles = roles::of_user(&txn, current.user.id).await?;
    let target_roles = roles::of_user(&txn, user_id).await?;
    if let Err(denied) = admission::may_impersonate(auth, &current.user, &admin_roles, &target_roles) {
        tracing::info!(%user_id, admin = %acting.current.user.id, "impersonation refused");
        return Err(denied);
    }
    let admitted = admission::admit(&txn, auth, user_id, version, Way::Impersonation, one)
        .await?
        .impersonated_by(current.user.id, current.session.id);
    let new = session::create(&txn, auth, admitted, &current.meta).await?;
    Event::new(Kind::ImpersonationStarted, user_id)
        .by(current.user.id)
        .impersonated_by(Some(current.user.id))
        .session(new.session.id)
        .with("reason", reason)
        .with("expires_at", new.session.expires_at.to_rfc3339())
        .record(&txn, auth, &current.meta)
        .await?;
    let user = super::reread(&txn, user_id).await?;
    txn.commit().await?;
    drop(turn);
    let (token, session) = new.committed();
    tracing::info!(%user_id, admin = %current.user.id, session_id = %session.id, "impersonation started");
    Ok(Impersonation { token, session, user })
}
