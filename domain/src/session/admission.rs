//! The one admission gate: may this user get a session now?
//!
//! Every way in (registration, password, second step, passkey, provider)
//! ends here, and `session::create` takes an [`Admitted`], which only
//! [`admit`] makes: a new way in that skips the gate does not compile.
//! The same rule ([`may_hold_session`]) decides whether an existing
//! session still counts, so a rule added here (a ban, say) reaches the
//! sessions already out as well as the ones about to be made.

use entity::users;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{AuthContext, error::AuthError, session::Assurance, user};

/// How a user is coming in (what a lost race answers, what the logs say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// `register`: the user row was written in this very transaction.
    Registration,
    /// `login` with email and password.
    Password,
    /// `completeSignIn`: a challenge and a code.
    SecondStep,
    /// `finishPasskeySignIn`.
    Passkey,
    /// A provider's callback.
    Provider,
    /// `impersonateUser`: an admin, as the user.
    Impersonation,
}

/// Every way to a session, by its name (`Way::as_str`): what a test of a
/// rule of the gate (a ban) must try.
pub const WAYS: [&str; 6] =
    ["registration", "password", "second_step", "passkey", "provider", "impersonation"];

impl Way {
    #[cfg(test)]
    const ALL: [Way; 6] = [
        Self::Registration,
        Self::Password,
        Self::SecondStep,
        Self::Passkey,
        Self::Provider,
        Self::Impersonation,
    ];

    /// The method recorded on `session.created`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Password => "password",
            Self::SecondStep => "second_step",
            Self::Passkey => "passkey",
            Self::Provider => "provider",
            Self::Impersonation => "impersonation",
        }
    }

    /// The answer when the user's credentials changed between the check
    /// of the way in and the session (a password change, a reset, a claim,
    /// two-factor turned on or off, a way in removed): what the client would have got had it
    /// come a moment later.
    fn lost_race(self) -> AuthError {
        match self {
            Self::Registration | Self::Password => AuthError::InvalidCredentials,
            Self::SecondStep => AuthError::InvalidToken,
            Self::Passkey => AuthError::PasskeyRefused,
            Self::Provider | Self::Impersonation => AuthError::Unauthenticated,
        }
    }
}

/// Proof that the gate let `user_id` in, inside the transaction that
/// creates the session. Its fields are private: only [`admit`] makes one.
#[derive(Debug)]
pub(crate) struct Admitted {
    user_id: Uuid,
    way: Way,
    assurance: Assurance,
    /// The admin an impersonation acts for, and the admin's session.
    impersonator: Option<(Uuid, Uuid)>,
}

impl Admitted {
    pub(crate) fn user_id(&self) -> Uuid {
        self.user_id
    }

    pub(crate) fn assurance(&self) -> Assurance {
        self.assurance
    }

    pub(crate) fn way(&self) -> Way {
        self.way
    }

    pub(crate) fn impersonator(&self) -> Option<(Uuid, Uuid)> {
        self.impersonator
    }

    /// The session to be made is an impersonation of the user by `admin`,
    /// started from the admin's session `from` (it only ever narrows what
    /// the session may do).
    pub(crate) fn impersonated_by(mut self, admin: Uuid, from: Uuid) -> Self {
        self.impersonator = Some((admin, from));
        self
    }
}

/// Whether `user` may hold a session at all, now: the rule itself, for new
/// sessions (`admit`), for a way in that ends in a second step rather than
/// a session (the challenge goes only to a user the gate would admit), and
/// for every use of an existing session (a cached one included). An
/// address nobody proved gets none while the server requires proof.
pub(crate) fn may_hold_session(auth: &AuthContext, user: &users::Model) -> Result<(), AuthError> {
    not_banned(auth, user)?;
    if auth.config.verification_required() && !user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    Ok(())
}

/// `ACCOUNT_BANNED` while an admin's ban on `user` lasts (a ban with an
/// end lapses by itself at that moment). Part of the rule above; alone for
/// a reset link, which proves the address (and so needs no verification)
/// but must not let a banned user in either.
pub(crate) fn not_banned(auth: &AuthContext, user: &users::Model) -> Result<(), AuthError> {
    match (user.banned_at, user.banned_until) {
        (Some(_), None) => Err(AuthError::AccountBanned { until: None }),
        (Some(_), Some(until)) if until > auth.clock.now() => {
            Err(AuthError::AccountBanned { until: Some(until) })
        }
        _ => Ok(()),
    }
}

/// Whether `admin` (their row and roles as they are now) may act as a user
/// holding `target_roles`: not banned, holding `user:impersonate`, and for a
/// user who holds a role, `user:impersonate_privileged` and every
/// permission that user holds. The rule when an impersonation starts and
/// on every use of one: an admin banned or demoted meanwhile, or a role
/// granted to the user meanwhile, ends it.
pub(crate) fn may_impersonate(
    auth: &AuthContext,
    admin: &users::Model,
    admin_roles: &[String],
    target_roles: &[String],
) -> Result<(), AuthError> {
    use crate::user::roles::{self, Permission};
    not_banned(auth, admin)?;
    roles::permits(admin_roles, false, Permission::UserImpersonate)?;
    if !target_roles.is_empty() {
        roles::permits(admin_roles, false, Permission::UserImpersonatePrivileged)?;
        roles::covers(admin_roles, target_roles)?;
    }
    Ok(())
}

/// Whether `user` is banned now (the admin's view of `not_banned`).
pub fn is_banned(auth: &AuthContext, user: &users::Model) -> bool {
    not_banned(auth, user).is_err()
}

/// `admit` without the rule: holds the user's row on `version` (the lost
/// race answered as `way` does). For a way that must prove more (a second
/// step's code) under the hold before the rule may speak.
pub(crate) async fn hold(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    version: i64,
    way: Way,
) -> Result<(), AuthError> {
    if !user::lock_user(conn, user_id, Some(version)).await? {
        tracing::info!(%user_id, ?way, "a sign-in lost a race with a change of credentials");
        return Err(way.lost_race());
    }
    Ok(())
}

/// The gate, inside the transaction that will create the session: the
/// user's row held on the credentials `version` the way in was checked
/// against (read before the check, or carried by a challenge), then the
/// rule, on the row as it is under that hold (not as it was read before).
/// A change that committed meanwhile wins (the way in answers as if it
/// came later); one that comes after waits for this commit and then
/// sees, and ends, the new session.
pub(crate) async fn admit(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    version: i64,
    way: Way,
    assurance: Assurance,
) -> Result<Admitted, AuthError> {
    use sea_orm::EntityTrait;
    hold(conn, user_id, version, way).await?;
    let user = users::Entity::find_by_id(user_id).one(conn).await?.ok_or_else(|| way.lost_race())?;
    may_hold_session(auth, &user)?;
    Ok(Admitted { user_id, way, assurance, impersonator: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_is_named_in_ways() {
        assert_eq!(Way::ALL.map(Way::as_str), WAYS);
    }
}
