//! The handles the integration tests reach inside the domain. Built only
//! with the `test-support` feature, which the server crate's
//! dev-dependency turns on for `cargo test`; `cargo build --release` (of
//! the server, or of the server and the benchmark) has none of it.
//! Everything else a test does goes through HTTP.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    AuthContext, Checkpoints, jobs::Jobs, mail::Postman, session::cache::SessionCache,
    user::hasher::PasswordHasher,
};

impl AuthContext {
    /// The database, for a test's own reads and writes (rows to assert,
    /// rows an older release could have left).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The password hasher (its cost and the verifications it ran).
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    /// The session cache (whether it holds and listens).
    pub fn sessions(&self) -> &SessionCache {
        &self.sessions
    }

    /// Where a test holds a request (`Checkpoints::install`).
    pub fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// The background lanes (`Jobs::drained`).
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The mailer (`Postman::in_flight`).
    pub fn mail(&self) -> &Postman {
        &self.mail
    }
}
