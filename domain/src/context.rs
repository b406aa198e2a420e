//! What every service is given: the shared services (`AuthContext`), the
//! checkpoints tests hold requests at, and where a request came from
//! (`ClientMeta`).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    clock::Clock, config::Config, jobs::Jobs, limits::device, mail::Postman, session::cache, sign_in::oauth,
};

/// What every service needs: the database, the settings, the time, the
/// hasher. One allocation shared by every request: a clone is one atomic
/// increment (it was a dozen, on every request, in the profile).
#[derive(Clone)]
pub struct AuthContext(Arc<Services>);

impl AuthContext {
    pub(crate) fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Services {
    /// Begins a transaction that writes, in its turn (`db::Writers`); the
    /// turn is held until it is dropped, after the commit.
    pub(crate) async fn write(
        &self,
    ) -> Result<(crate::db::WriteTurn, sea_orm::DatabaseTransaction), sea_orm::DbErr> {
        self.writers.begin(&self.db).await
    }
}

impl std::ops::Deref for AuthContext {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of an `AuthContext`.
pub struct Services {
    pub(crate) db: DatabaseConnection,
    /// Turns for write transactions (SQLite's one writer).
    pub(crate) writers: crate::db::Writers,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub(crate) hasher: Arc<crate::user::hasher::PasswordHasher>,
    pub(crate) mail: Postman,
    pub(crate) jobs: Jobs,
    pub(crate) limiter: crate::limits::Limiter,
    pub(crate) oauth: Arc<oauth::OAuth>,
    pub keys: Arc<crate::keys::Keys>,
    pub(crate) checkpoints: Checkpoints,
    /// Live sessions in memory (`SessionCache::off()` when turned off).
    pub(crate) sessions: cache::SessionCache,
    /// The record as it grows, for live subscribers.
    pub(crate) live: crate::events::live::Live,
    /// The keys access tokens are signed with, as last read.
    pub(crate) signing: crate::access::keys::KeyRing,
    /// The WebAuthn relying party (passkeys).
    pub(crate) webauthn: Arc<webauthn_rs::Webauthn>,
}

type Hook = Arc<dyn Fn(&'static str) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Named points inside a service (such as between a login's password check
/// and its session insert) where a test can hold a request, to make a race
/// deterministic instead of timing it with sleeps. Nothing is installed in
/// production: reaching a point is one atomic load.
#[derive(Clone, Default)]
pub struct Checkpoints(Arc<std::sync::OnceLock<Hook>>);

impl Checkpoints {
    #[cfg(any(test, feature = "test-support"))]
    /// Runs `hook` at every point reached from now on (once per process).
    pub fn install(&self, hook: Hook) -> bool {
        self.0.set(hook).is_ok()
    }

    pub(crate) async fn reach(&self, point: &'static str) {
        if let Some(hook) = self.0.get() {
            hook(point).await;
        }
    }
}

/// Where a sign-in came from, recorded on the session.
#[derive(Clone, Debug, Default)]
pub struct ClientMeta {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id` (recorded on events, to find its logs).
    pub request_id: Option<String>,
    /// A device cookie whose signature checked out (for any account).
    pub device: Option<device::Device>,
    /// The `signin_binding` cookie an OAuth callback set with a challenge.
    pub sign_in_binding: Option<secrecy::SecretString>,
}
