//! DataLoaders keyed by user id: however many `User`s or aliases a query
//! touches, each table is read once. Built per request, so nothing is cached
//! across requests (a revoked session disappears at once).

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{accounts, sessions};
use sea_orm::DbErr;
use uuid::Uuid;

use crate::auth::{AuthContext, account, session};

pub struct Loaders {
    pub sessions: DataLoader<SessionsByUser>,
    pub accounts: DataLoader<AccountsByUser>,
}

impl Loaders {
    pub fn new(auth: &AuthContext) -> Self {
        Self {
            sessions: DataLoader::new(SessionsByUser(auth.clone()), tokio::spawn),
            accounts: DataLoader::new(AccountsByUser(auth.clone()), tokio::spawn),
        }
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
        account::for_users(&self.0, keys).await.map_err(Arc::new)
    }
}
