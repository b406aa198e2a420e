//! DataLoaders keyed by user id: however many `User`s or aliases a query
//! touches, each table is read once. Built per request, so nothing is cached
//! across requests (a revoked session disappears at once).

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use async_graphql::dataloader::{DataLoader, Loader};
use domain::{AuthContext, factors, session, user};
use entity::{accounts, passkeys, sessions};
use sea_orm::DbErr;
use uuid::Uuid;

/// Made when a request first asks for sessions, accounts, passkeys or roles: most requests
/// (`me { id email }`) never do.
pub struct Loaders {
    auth: AuthContext,
    sessions: OnceLock<DataLoader<SessionsByUser>>,
    accounts: OnceLock<DataLoader<AccountsByUser>>,
    passkeys: OnceLock<DataLoader<PasskeysByUser>>,
    roles: OnceLock<DataLoader<RolesByUser>>,
}

impl Loaders {
    pub fn new(auth: &AuthContext) -> Self {
        Self {
            auth: auth.clone(),
            sessions: OnceLock::new(),
            accounts: OnceLock::new(),
            passkeys: OnceLock::new(),
            roles: OnceLock::new(),
        }
    }

    pub fn sessions(&self) -> &DataLoader<SessionsByUser> {
        self.sessions.get_or_init(|| DataLoader::new(SessionsByUser(self.auth.clone()), tokio::spawn))
    }

    pub fn accounts(&self) -> &DataLoader<AccountsByUser> {
        self.accounts.get_or_init(|| DataLoader::new(AccountsByUser(self.auth.clone()), tokio::spawn))
    }

    pub fn passkeys(&self) -> &DataLoader<PasskeysByUser> {
        self.passkeys.get_or_init(|| DataLoader::new(PasskeysByUser(self.auth.clone()), tokio::spawn))
    }

    pub fn roles(&self) -> &DataLoader<RolesByUser> {
        self.roles.get_or_init(|| DataLoader::new(RolesByUser(self.auth.clone()), tokio::spawn))
    }
}

pub struct SessionsByUser(AuthContext);

impl Loader<Uuid> for SessionsByUser {
    type Value = Vec<sessions::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        session::live_for_users(&self.0, keys).await.map_err(Arc::new)
    }
}

pub struct AccountsByUser(AuthContext);

impl Loader<Uuid> for AccountsByUser {
    type Value = Vec<accounts::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        user::for_users(&self.0, keys).await.map_err(Arc::new)
    }
}

pub struct PasskeysByUser(AuthContext);

impl Loader<Uuid> for PasskeysByUser {
    type Value = Vec<passkeys::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        factors::passkey::of_users(&self.0, keys).await.map_err(Arc::new)
    }
}

pub struct RolesByUser(AuthContext);

impl Loader<Uuid> for RolesByUser {
    type Value = Vec<String>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        user::roles::of_users(&self.0, keys).await.map_err(Arc::new)
    }
}
