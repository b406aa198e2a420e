//! argon2id hashing on a bounded pool of blocking threads: a login never
//! stalls the async runtime, and a flood of logins cannot queue unbounded
//! work (each hash holds `m` KiB of memory while it runs).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::SaltString,
};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use crate::{config::Config, error::AuthError};

pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// Hashes running at once (one per core by default).
    running: Arc<Semaphore>,
    /// Hashes running or waiting; when exhausted we answer SERVICE_UNAVAILABLE.
    admitted: Arc<Semaphore>,
    /// A hash of a random password: unknown emails are verified against it so
    /// they cost the same time as known ones.
    dummy_hash: String,
    verifications: AtomicU64,
}

impl PasswordHasher {
    pub fn new(config: &Config) -> Result<Self, argon2::Error> {
        let params =
            Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let workers = config.hash_concurrency();
        let salt = SaltString::generate(&mut OsRng);
        let random = crate::auth::token::generate().secret;
        let dummy_hash = argon2
            .hash_password(random.as_bytes(), &salt)
            .map_err(|_| argon2::Error::AlgorithmInvalid)?
            .to_string();
        Ok(Self {
            argon2,
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + config.hash_queue)),
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=...`) for a password that passed the policy.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2.hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                AuthError::Internal
            })
        })
        .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there
    /// is none, so both cases take one full verification.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, AuthError> {
        let argon2 = self.argon2.clone();
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.clone());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self
            .run(move || {
                PasswordHash::new(&phc)
                    .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(matched && known)
    }

    /// Full verifications done so far (known and unknown accounts alike).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!("password hashing queue full; shedding load");
            AuthError::ServiceUnavailable
        })?;
        let _running =
            self.running.clone().acquire_owned().await.map_err(|_| AuthError::ServiceUnavailable)?;
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            AuthError::Internal
        })
    }
}
