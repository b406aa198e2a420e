//! The ways to a session: a password (`register`, `password`), the second
//! step (`second_step`), a passkey (`passkey`), a provider (`oauth`).
//! Each ends in `session::admission::admit`, the one gate. Proving
//! presence again for a session is `reauthenticate`.

pub mod oauth;
pub mod passkey;
pub mod password;
pub mod reauthenticate;
pub mod register;
pub mod second_step;

use entity::users;
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    limits,
    limits::{Rule, device::Device},
};

/// A user who just signed in, with the session's secret token.
pub struct SignedIn {
    pub token: String,
    pub session: entity::sessions::Model,
    pub user: users::Model,
    /// The device cookie to give the client (password sign-ins): it proved
    /// it knows this account's password.
    pub device: Option<Device>,
}

/// The per-account counters one sign-in attempt counts against: either
/// per trusted device (a client that signed in to this account under its
/// current credentials) or, for any other client, per account from that
/// address and per account from everywhere. A device is not held back by
/// the account-wide ceiling, which anyone can exhaust to lock the owner
/// out. Wrong passwords and wrong second-factor codes count alike; only a
/// completed sign-in clears them.
pub(crate) struct LoginCounters {
    device: Option<Device>,
    account: String,
    account_ip: String,
}

impl LoginCounters {
    /// For the account `account_key` names (a normalised address), tried
    /// from `ip` by the client `meta` describes; `user` when it exists.
    pub(crate) fn new(account_key: &str, ip: &str, meta: &ClientMeta, user: Option<&users::Model>) -> Self {
        let device = meta
            .device
            .as_ref()
            .filter(|d| user.is_some_and(|u| d.trusted_for(u.id, u.credentials_version)))
            .cloned();
        Self { device, account: account_key.to_owned(), account_ip: format!("{account_key}|{ip}") }
    }

    pub(crate) async fn hit(&self, auth: &AuthContext) -> Result<(), AuthError> {
        match &self.device {
            Some(device) => limits::hit(auth, Rule::LoginDevice, &device.nonce).await,
            None => {
                limits::hit(auth, Rule::LoginAccountIp, &self.account_ip).await?;
                limits::hit(auth, Rule::LoginAccount, &self.account).await
            }
        }
    }

    pub(crate) async fn clear(&self, auth: &AuthContext) -> Result<(), AuthError> {
        match &self.device {
            Some(device) => limits::clear(auth, Rule::LoginDevice, &device.nonce).await,
            None => {
                limits::clear(auth, Rule::LoginAccountIp, &self.account_ip).await?;
                limits::clear(auth, Rule::LoginAccount, &self.account).await
            }
        }
    }

    /// A second-factor code for `user_id`: counted like a password and, but
    /// for the owner's trusted device, against a tighter per-account budget
    /// (a 6-digit code is far easier to guess than a password).
    pub(crate) async fn hit_code(&self, auth: &AuthContext, user_id: Uuid) -> Result<(), AuthError> {
        self.hit(auth).await?;
        match self.device {
            Some(_) => Ok(()),
            None => limits::hit(auth, Rule::SecondFactorAccount, &user_id.to_string()).await,
        }
    }

    /// A sign-in completed with a second factor: every budget it spent is whole again.
    pub(crate) async fn clear_code(&self, auth: &AuthContext, user_id: Uuid) -> Result<(), AuthError> {
        self.clear(auth).await?;
        limits::clear(auth, Rule::SecondFactorAccount, &user_id.to_string()).await
    }

    /// The device cookie for a completed password sign-in: the one it came
    /// with, or a new one.
    pub(crate) fn device_for(&self, user: &users::Model) -> Device {
        self.device.clone().unwrap_or_else(|| Device::issue(user.id, user.credentials_version))
    }
}
