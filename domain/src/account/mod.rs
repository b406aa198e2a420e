//! Changes to an account through its own session: the password (change,
//! set one), deleting the account, the profile.

pub mod profile;

use entity::{accounts, users, verification_tokens};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::instrument;

use crate::{
    AuthContext,
    error::{AuthError, Input},
    events::{Ended, Event, Kind},
    limits,
    limits::Rule,
    mailed::tokens,
    notices::{Notice, notice_slot, notify},
    session::{CurrentSession, change::Change, step_up, step_up::Presence},
    user::{
        bump_credentials,
        credential::{check_password, credential_of, verify},
        credential_account, validate,
        ways_in::remove_ways_in,
    },
};

pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
    pub revoke_other_sessions: bool,
}

/// Sets a new password after checking the current one; ends the user's
/// other sessions unless asked not to. Returns how many were ended.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn change_password(
    auth: &AuthContext,
    current: &CurrentSession,
    change: PasswordChange,
) -> Result<u64, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    if change.new_password == change.current_password {
        return Err(AuthError::bad_input(
            Input::NewPassword,
            "the new password must differ from the current one",
        ));
    }
    validate::new_password(
        &change.new_password,
        &current.user.email,
        auth.config.password_min_score,
        Input::NewPassword,
    )?;
    step_up::require(auth, current, Presence::PasswordGiven)?;
    let user_id = current.user.id;
    limits::hit(auth, Rule::PasswordAccount, &user_id.to_string()).await?;
    let account = check_password(auth, user_id, change.current_password).await?;
    let hash = auth.hasher.hash(change.new_password).await?;
    let revoke_other_sessions = change.revoke_other_sessions;
    auth.checkpoints.reach("change_password:hashed").await;
    let change = Change::begin_noticed(auth, current).await?;
    let txn = change.txn();
    bump_credentials(txn, user_id).await?;
    accounts::ActiveModel {
        id: Set(account.id),
        password_hash: Set(Some(hash)),
        updated_at: Set(auth.clock.now()),
        ..Default::default()
    }
    .update(txn)
    .await?;
    let revoked =
        if revoke_other_sessions { change.end_sessions(false, Ended::CredentialsChanged).await? } else { 0 };
    change.record(Kind::UserPasswordChanged, &[("other_sessions_ended", revoked.into())]).await?;
    // A reset link mailed before the change would undo it.
    verification_tokens::Entity::delete_many()
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.eq(tokens::Purpose::PasswordReset.as_str()))
        .exec(txn)
        .await?;
    change.commit().await?.notify(Notice::PasswordChanged).await;
    tracing::info!(revoked, "password changed");
    Ok(revoked)
}

/// Removes the user with its sessions, accounts and tokens, in one
/// transaction, after checking the password. A user without one (signed up
/// through a provider) needs a session that proved presence recently
/// instead; with two-factor on, both need two factors (step-up,
/// `REAUTHENTICATION_REQUIRED` otherwise).
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn delete(auth: &AuthContext, current: &CurrentSession, password: String) -> Result<(), AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    let user_id = current.user.id;
    limits::hit(auth, Rule::PasswordAccount, &user_id.to_string()).await?;
    // The password proves presence by itself; without one, a recent proof.
    if let Some(credential) = credential_of(auth, user_id).await? {
        step_up::require(auth, current, Presence::PasswordGiven)?;
        verify(auth, Some(credential), password).await?;
    } else {
        step_up::require(auth, current, Presence::Recent)?;
    }
    let change = Change::begin(auth, current).await?;
    let ended = remove_ways_in(change.txn(), user_id).await?;
    users::Entity::delete_by_id(user_id).exec(change.txn()).await?;
    change.sessions_ended(&ended, Ended::Deleted).await?;
    change.record(Kind::UserDeleted, &[]).await?;
    change.commit().await?;
    tracing::info!("account deleted");
    Ok(())
}

/// Gives a password to a user who has none (signed up through OAuth).
/// `PASSWORD_ALREADY_SET` when one exists: that is `changePassword`'s job.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn set_password(
    auth: &AuthContext,
    current: &CurrentSession,
    password: String,
) -> Result<(), AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    let user = &current.user;
    validate::new_password(&password, &user.email, auth.config.password_min_score, Input::NewPassword)?;
    step_up::require_to_add(auth, current)?;
    limits::hit(auth, Rule::PasswordAccount, &user.id.to_string()).await?;
    if credential_of(auth, user.id).await?.is_some() {
        return Err(AuthError::PasswordAlreadySet);
    }
    let hash = auth.hasher.hash(password).await?;
    let notice = notice_slot(auth).await;
    // The credential account's id is the user's: the unique (provider,
    // account) index refuses a second one, even from a concurrent request.
    let (_turn, txn) = auth.write().await?;
    credential_account(user.id, hash, auth.clock.now())
        .insert(&txn)
        .await
        .map_err(|err| AuthError::unique_or(err, AuthError::PasswordAlreadySet))?;
    Event::new(Kind::UserPasswordChanged, user.id)
        .session(current.session.id)
        .with("first_password", true)
        .record(&txn, auth, &current.meta)
        .await?;
    txn.commit().await?;
    tracing::info!("password set");
    notify(notice, auth, user, Notice::MethodAdded("A password".to_owned()), Some(current.session.id));
    Ok(())
}
