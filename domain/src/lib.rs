//! authgate's domain: the auth services, the database, mail, settings and
//! errors. It knows nothing of GraphQL or HTTP (Cargo enforces it: this
//! crate does not depend on the server crate, nor on axum or
//! async-graphql); the server crate calls in, never the other way.

// Infrastructure, read by every room.
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod token;

// The rooms. Each imports only rooms before it in this order, bottom
// first (`tests/api/layers.rs` checks; ARCHITECTURE.md draws them):
// order: events, webhooks, user, limits, notices, session, access, factors, mailed, sign_in, account, admin, cleanup.
pub mod access;
pub mod account;
pub mod admin;
pub mod cleanup;
pub mod events;
pub mod factors;
pub mod limits;
pub mod mailed;
pub mod notices;
pub mod session;
pub mod sign_in;
pub mod user;
pub mod webhooks;

use std::sync::Arc;

pub use context::{AuthContext, Checkpoints, ClientMeta, Services};
use sea_orm::DatabaseConnection;

use crate::{clock::Clock, config::Config, jobs::Jobs, mail::Postman};

/// The services over a connected database, with a given mailer (tests
/// capture mail this way). The settings must be validated.
pub fn services(
    db: DatabaseConnection,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    mail: Postman,
) -> anyhow::Result<AuthContext> {
    let hasher = user::hasher::PasswordHasher::new(&config)
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
    let limiter = limits::Limiter::from_config(&config, &db)?;
    Ok(AuthContext::new(Services {
        db: db.clone(),
        writers: db::Writers::for_database(&db),
        config: config.clone(),
        clock,
        hasher: Arc::new(hasher),
        mail,
        jobs: Jobs::start(),
        limiter,
        oauth: Arc::new(sign_in::oauth::OAuth::from_config(&config)?),
        keys: Arc::new(keys::Keys::from_config(&config)?),
        checkpoints: Default::default(),
        sessions: session::cache::SessionCache::start(&config, &db)?,
        live: Default::default(),
        signing: Default::default(),
        webauthn: Arc::new(factors::passkey::relying_party(&config)?),
    }))
}

/// What `authgate serve` does before it listens: checks unknown emails
/// at the cost most stored hashes have, and checks that every sealed
/// secret (two-factor, webhook endpoints) opens. A server key rotated without `AUTHGATE_SECRET_KEY_PREVIOUS`
/// (or a lost key) fails here, once, with the reason, instead of as an
/// internal error at every two-factor sign-in.
pub async fn preflight(auth: &AuthContext) -> anyhow::Result<()> {
    user::credential::calibrate_dummy(auth).await.inspect_err(|e| e.report())?;
    let unopened = factors::totp::unopenable_secrets(auth).await.inspect_err(|e| e.report())?;
    anyhow::ensure!(
        unopened == 0,
        "{unopened} two-factor secrets do not open with AUTHGATE_SECRET_KEY nor AUTHGATE_SECRET_KEY_PREVIOUS: \
         set the key they were sealed with as AUTHGATE_SECRET_KEY_PREVIOUS and run `authgate reseal` \
         (docs/sign-in.md, \"Rotating AUTHGATE_SECRET_KEY\"); started as it is, each of those users would fail at the code step"
    );
    let unopened = webhooks::secrets::unopenable(auth).await.inspect_err(|e| e.report())?;
    anyhow::ensure!(
        unopened == 0,
        "{unopened} webhook endpoints hold a secret that opens with neither AUTHGATE_SECRET_KEY nor \
         AUTHGATE_SECRET_KEY_PREVIOUS: set the key they were sealed with as AUTHGATE_SECRET_KEY_PREVIOUS and run \
         `authgate reseal`; started as it is, every delivery to them would fail"
    );
    let unopened = access::keys::unopenable(auth).await.inspect_err(|e| e.report())?;
    anyhow::ensure!(
        unopened == 0,
        "{unopened} access-token signing keys open with neither AUTHGATE_SECRET_KEY nor AUTHGATE_SECRET_KEY_PREVIOUS: \
         set the key they were sealed with as AUTHGATE_SECRET_KEY_PREVIOUS and run `authgate reseal`, or revoke them \
         (`authgate keys revoke <kid>`); started as it is, every accessToken would fail"
    );
    access::keys::ensure(auth).await.inspect_err(|e| e.report())?;
    Ok(())
}
