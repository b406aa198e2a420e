//! The keys access tokens are signed with, kept in the database (private
//! halves sealed with the server key) and held in memory by each instance,
//! read again every `RELOAD_EVERY`.
//!
//! A key's life: published in the JWKS from its creation; signing from
//! `signs_from` (a rotation's new key `PUBLISH_LEAD` later, so that every
//! instance and every verifier's JWKS cache has it before its first
//! token); once a newer key signs, published until its last token has
//! expired (`AUTHGATE_JWT_TTL` + `LEEWAY`). A revoked key is out at once:
//! not published, not used. No key that signs (the first start, or every
//! key revoked): one is made that signs at once (verifiers fetch the JWKS
//! again for a `kid` they do not know).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::signing_keys::{self, Column};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};

use super::jwt::{Alg, Signer};
use crate::{AuthContext, error::AuthError, keys::Resealed};

/// How often an instance reads the keys again (a rotation or revocation
/// made elsewhere reaches it within this).
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// The JWKS's `Cache-Control: max-age`.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// How long before it signs a rotated key is published.
pub const PUBLISH_LEAD: Duration = Duration::from_secs(300 + 2 * 10);
/// Clock skew allowed to verifiers: a retired key stays this much longer.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// One key as this instance holds it.
#[derive(Clone, Debug)]
pub struct Key {
    pub kid: String,
    pub alg: Alg,
    pub generation: i32,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    jwk: serde_json::Value,
    /// `None` when no configured server key opens it.
    signer: Option<Arc<Signer>>,
}

/// What a key is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Published, not signing yet.
    Next,
    Signing,
    /// Published until its last token has expired.
    Retired,
    /// No longer published.
    Gone,
    Revoked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Next => "next",
            State::Signing => "signing",
            State::Retired => "retired",
            State::Gone => "gone",
            State::Revoked => "revoked",
        }
    }
}

/// The keys, newest generation first, and when they were read.
#[derive(Default)]
struct Ring {
    read_at: Option<DateTime<Utc>>,
    keys: Vec<Key>,
}

/// This instance's keys.
#[derive(Default)]
pub(crate) struct KeyRing {
    ring: std::sync::RwLock<Arc<Ring>>,
    reading: tokio::sync::Mutex<()>,
    /// One key made at a time here (an RSA key costs a second of CPU): a
    /// burst of requests finding no signer makes one, not one each.
    making: tokio::sync::Mutex<()>,
}

impl Ring {
    /// Each key with what it is doing at `now` (`afterlife`: `token_afterlife`).
    /// A key that began signing retires every older key from then on, even
    /// if it was revoked later: revoking the signer never brings an older
    /// key back (that one may be the most exposed); `signer` makes a new one.
    /// Each algorithm's keys are a chain of their own.
    fn states(&self, now: DateTime<Utc>, afterlife: chrono::Duration) -> Vec<(&Key, State)> {
        // Per algorithm, the earliest start among newer keys that did sign:
        // when each older key retired.
        let mut newer_starts: [Option<DateTime<Utc>>; Alg::ALL.len()] = Default::default();
        let mut states = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let newer_start = &mut newer_starts[key.alg.index()];
            let state = if key.revoked_at.is_some() {
                State::Revoked
            } else if key.signs_from > now {
                State::Next
            } else if let Some(retired) = *newer_start {
                if now < retired + afterlife { State::Retired } else { State::Gone }
            } else {
                State::Signing
            };
            let signed =
                key.signs_from <= now && key.revoked_at.is_none_or(|revoked| key.signs_from <= revoked);
            if signed {
                *newer_start = Some(newer_start.map_or(key.signs_from, |start| start.min(key.signs_from)));
            }
            states.push((key, state));
        }
        states
    }

    /// The `alg` key in `state` at `now` (a chain has one signing key and
    /// at most one next).
    fn find(&self, now: DateTime<Utc>, afterlife: chrono::Duration, alg: Alg, state: State) -> Option<&Key> {
        self.states(now, afterlife).into_iter().find(|(k, s)| k.alg == alg && *s == state).map(|(k, _)| k)
    }

    /// The generation after `alg`'s newest.
    fn next_generation(&self, alg: Alg) -> i32 {
        self.keys.iter().filter(|k| k.alg == alg).map(|k| k.generation + 1).max().unwrap_or(1)
    }
}

impl KeyRing {
    fn now_ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The keys as last read, read again first when older than `RELOAD_EVERY`.
    async fn fresh(&self, auth: &AuthContext) -> Result<Arc<Ring>, AuthError> {
        let now = auth.clock.now();
        // A read "in the future" (the clock set back) is stale too.
        let stale = |ring: &Ring| {
            ring.read_at.is_none_or(|at| (now - at).to_std().map_or(true, |age| age >= RELOAD_EVERY))
        };
        let ring = self.now_ring();
        if !stale(&ring) {
            return Ok(ring);
        }
        let _reading = self.reading.lock().await;
        let ring = self.now_ring();
        if !stale(&ring) {
            return Ok(ring);
        }
        let ring = Arc::new(read(auth).await?);
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring.clone();
        Ok(ring)
    }

    /// Forgets what was read (after this instance changed the keys).
    pub(crate) fn forget(&self) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Ring::default());
    }
}

async fn read(auth: &AuthContext) -> Result<Ring, AuthError> {
    let rows = signing_keys::Entity::find().order_by_desc(Column::Generation).all(&auth.db).await?;
    let keys = rows
        .into_iter()
        // A key of an algorithm this version does not know is left alone.
        .filter_map(|row| Some((Alg::parse(&row.alg)?, row)))
        .map(|(alg, row)| {
            let signer = auth
                .keys
                .sealer
                .open(&row.private_key, row.kid.as_bytes())
                .ok()
                .and_then(|(pkcs8, _)| Signer::from_pkcs8(alg, &pkcs8).ok())
                .map(Arc::new);
            Key {
                alg,
                jwk: serde_json::from_str(&row.public_jwk).unwrap_or_default(),
                kid: row.kid,
                generation: row.generation,
                created_at: row.created_at,
                signs_from: row.signs_from,
                revoked_at: row.revoked_at,
                signer,
            }
        })
        .collect();
    Ok(Ring { read_at: Some(auth.clock.now()), keys })
}

/// The `alg` key that signs now; made when there is none.
pub(crate) async fn signer(auth: &AuthContext, alg: Alg) -> Result<Arc<Signer>, AuthError> {
    for _ in 0..2 {
        let ring = auth.signing.fresh(auth).await?;
        let now = auth.clock.now();
        match ring.find(now, token_afterlife(auth), alg, State::Signing) {
            Some(key) => {
                let signer = key.signer.clone().ok_or_else(|| {
                    AuthError::internal(
                        "signing an access token",
                        format!("signing key {} does not open with the configured server key", key.kid),
                    )
                })?;
                return Ok(signer);
            }
            None => {
                let _making = auth.signing.making.lock().await;
                // Another request may have made it while this one waited
                // (`add` forgets the ring: this reads it again then).
                let ring = auth.signing.fresh(auth).await?;
                if ring.find(now, token_afterlife(auth), alg, State::Signing).is_none() {
                    // The generation after the newest read: instances that
                    // found none at once all add the same one, and one wins.
                    add(auth, alg, now, ring.next_generation(alg)).await?;
                }
            }
        }
    }
    Err(AuthError::internal("signing an access token", "no signing key after making one"))
}

pub(crate) fn ttl(auth: &AuthContext) -> chrono::Duration {
    chrono::Duration::from_std(auth.config.jwt_ttl).unwrap_or(chrono::Duration::minutes(5))
}

/// How long after a key retires, or a session ends, one of its tokens may
/// still be accepted somewhere: the lifetime and the verifiers' leeway.
pub(crate) fn token_afterlife(auth: &AuthContext) -> chrono::Duration {
    ttl(auth) + chrono::Duration::from_std(LEEWAY).unwrap_or_default()
}

/// Adds `generation` (the one after the newest read), signing from
/// `signs_from`. Instances adding the same generation at once add one
/// (the unique index); the others' inserts change nothing. Returns the
/// key's `kid`, or `None` when another made that generation first.
async fn add(
    auth: &AuthContext,
    alg: Alg,
    signs_from: DateTime<Utc>,
    generation: i32,
) -> Result<Option<String>, AuthError> {
    // An RSA key takes a while to make: off the request threads.
    let made = tokio::task::spawn_blocking(move || Signer::generate(alg))
        .await
        .map_err(|e| AuthError::internal("making a signing key", e))?;
    let (pkcs8, signer) = made.map_err(|e| AuthError::internal("making a signing key", e))?;
    let (kid, jwk) = (signer.kid().to_owned(), signer.public_jwk());
    let sealed = auth
        .keys
        .sealer
        .seal(&pkcs8, kid.as_bytes())
        .map_err(|e| AuthError::internal("sealing a signing key", e))?;
    let row = signing_keys::ActiveModel {
        kid: Set(kid.clone()),
        alg: Set(alg.as_str().to_owned()),
        generation: Set(generation),
        public_jwk: Set(jwk.to_string()),
        private_key: Set(sealed),
        created_at: Set(auth.clock.now()),
        signs_from: Set(signs_from),
        revoked_at: Set(None),
    };
    let inserted = signing_keys::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([Column::Alg, Column::Generation])
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec_without_returning(&auth.db)
        .await?;
    auth.signing.forget();
    let added = matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n == 1);
    if added {
        tracing::info!(%kid, alg = alg.as_str(), generation, "signing key added");
    }
    Ok(added.then_some(kid))
}

/// The algorithms this server signs with: ES256, and RS256 when some
/// audience takes it (`AUTHGATE_JWT_RS256_AUDIENCES`).
pub fn algorithms(auth: &AuthContext) -> Vec<Alg> {
    let rsa = auth.config.jwt_rs256_audiences.iter().any(|aud| !aud.trim().is_empty());
    Alg::ALL.into_iter().filter(|alg| *alg == Alg::Es256 || rsa).collect()
}

/// Makes the first signing key of each algorithm in use when there is none
/// (`authgate serve` at start-up; instances starting together make one).
pub async fn ensure(auth: &AuthContext) -> Result<(), AuthError> {
    for alg in algorithms(auth) {
        signer(auth, alg).await?;
    }
    Ok(())
}

/// A new `alg` key, published now and signing after `PUBLISH_LEAD` (the current
/// one signs until then). `None` when a rotation is already under way (a
/// key published and not signing yet): instances or operators rotating at
/// once rotate to one key.
pub async fn rotate(auth: &AuthContext, alg: Alg) -> Result<Option<String>, AuthError> {
    auth.signing.forget();
    let ring = auth.signing.fresh(auth).await?;
    let now = auth.clock.now();
    if ring.find(now, token_afterlife(auth), alg, State::Next).is_some() {
        return Ok(None);
    }
    let lead = chrono::Duration::from_std(PUBLISH_LEAD).unwrap_or_default();
    add(auth, alg, now + lead, ring.next_generation(alg)).await
}

/// Takes a key out at once (no longer published nor used): for a key that
/// may have leaked. Tokens it signed stop verifying once verifiers fetch
/// the JWKS again. `false` for an unknown or already revoked `kid`.
pub async fn revoke(auth: &AuthContext, kid: &str) -> Result<bool, AuthError> {
    let updated = signing_keys::Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(auth.clock.now()))
        .filter(Column::Kid.eq(kid))
        .filter(Column::RevokedAt.is_null())
        .exec(&auth.db)
        .await?;
    auth.signing.forget();
    Ok(updated.rows_affected == 1)
}

/// Every key and what it is doing, newest first.
pub async fn list(auth: &AuthContext) -> Result<Vec<(Key, State)>, AuthError> {
    auth.signing.forget();
    let ring = auth.signing.fresh(auth).await?;
    Ok(ring
        .states(auth.clock.now(), token_afterlife(auth))
        .into_iter()
        .map(|(k, s)| (k.clone(), s))
        .collect())
}

/// The JWK Set as served, and its entity tag.
pub struct KeySet {
    pub body: String,
    pub etag: String,
}

/// The JWK Set: every key published now.
pub async fn jwks(auth: &AuthContext) -> Result<KeySet, AuthError> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest, Sha256};
    let ring = auth.signing.fresh(auth).await?;
    let keys: Vec<&serde_json::Value> = ring
        .states(auth.clock.now(), token_afterlife(auth))
        .into_iter()
        // Every algorithm with keys, whatever this instance's settings: in a
        // rolling change another instance may still sign with it.
        .filter(|(_, s)| matches!(s, State::Next | State::Signing | State::Retired))
        .map(|(k, _)| &k.jwk)
        .collect();
    let body = serde_json::json!({ "keys": keys }).to_string();
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&Sha256::digest(body.as_bytes())[..16]));
    Ok(KeySet { body, etag })
}

/// Keys that could sign (signing or next) and that no configured server
/// key opens: `authgate serve` refuses to start with one.
pub(crate) async fn unopenable(auth: &AuthContext) -> Result<u64, AuthError> {
    auth.signing.forget();
    let ring = auth.signing.fresh(auth).await?;
    let states = ring.states(auth.clock.now(), token_afterlife(auth));
    Ok(states.iter().filter(|(k, s)| matches!(s, State::Next | State::Signing) && k.signer.is_none()).count()
        as u64)
}

/// Re-encrypts every private key sealed under a previous server key with
/// the current one; returns how many moved and how many open with no key.
pub async fn reseal_all(auth: &AuthContext) -> Result<(u64, u64), AuthError> {
    let (mut resealed, mut unopened) = (0, 0);
    for row in signing_keys::Entity::find().all(&auth.db).await? {
        let resealing = auth.keys.sealer.reseal(&row.private_key, row.kid.as_bytes());
        match resealing.map_err(|e| AuthError::internal("sealing a signing key", e))? {
            Resealed::Current => {}
            Resealed::Moved(fresh) => {
                resealed += signing_keys::Entity::update_many()
                    .col_expr(Column::PrivateKey, Expr::value(fresh))
                    .filter(Column::Kid.eq(row.kid.clone()))
                    .filter(Column::PrivateKey.eq(row.private_key.clone()))
                    .exec(&auth.db)
                    .await?
                    .rows_affected;
            }
            Resealed::Unopenable => unopened += 1,
        }
    }
    auth.signing.forget();
    Ok((resealed, unopened))
}
