//! DataLoaders keyed by user id: however many `User`s or aliases a query
//! touches, each table is read once. Built per request, so nothing is cached
//! across requests (a revoked session disappears at once).

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use async_graphql::dataloader::{DataLoader, Loader};
use domain::{AuthContext, session, user};
use entity::{accounts, sessions};
use sea_orm::DbErr;
use uuid::Uuid;

/// Made when a request first asks for sessions or accounts: most requests
/// (`me { id email }`) never do.
pub struct Loaders {
    auth: AuthContext,
    sessions: OnceLock<DataLoader<SessionsByUser>>,
    accounts: OnceLock<DataLoader<AccountsByUser>>,
}

impl Loaders {
    pub fn new(auth: &AuthContext) -> Self {
        Self { auth: auth.clone(), sessions: OnceLock::new(), accounts: OnceLock::new() }
    }

    pub fn sessions(&self) -> &DataLoader<SessionsByUser> {
        self.sessions.get_or_init(|| DataLoader::new(SessionsByUser(self.auth.clone()), tokio::spawn))
    }

    pub fn accounts(&self) -> &DataLoader<AccountsByUser> {
        self.accounts.get_or_init(|| DataLoader::new(AccountsByUser(self.auth.clone()), tokio::spawn))
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
