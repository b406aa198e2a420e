//! The published key set: fetched at start, revalidated when its cache
//! lifetime ends (`ETag`), and fetched again (at most once per
//! `refetch_every`) for a token that names a kid it does not know.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};

use crate::{Inner, Refused};

/// A public key pinned to its algorithm.
pub(crate) struct Key {
    pub alg: String,
    public: Public,
}

enum Public {
    Es256(UnparsedPublicKey<Vec<u8>>),
    Rs256(signature::RsaPublicKeyComponents<Vec<u8>>),
}

impl Key {
    pub(crate) fn verify(&self, signed: &[u8], signature: &[u8]) -> Result<(), Refused> {
        let verified = match &self.public {
            Public::Es256(key) => key.verify(signed, signature),
            Public::Rs256(key) => key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, signature),
        };
        verified.map_err(|_| Refused::Signature)
    }

    /// A key of the set, or `None` for one this verifier cannot pin (no
    /// kid, another curve or algorithm, a key for encryption).
    fn from_jwk(jwk: &serde_json::Value) -> Option<(String, Key)> {
        let field = |name: &str| jwk.get(name).and_then(|v| v.as_str());
        let bytes = |name: &str| field(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        let kid = field("kid")?.to_owned();
        if field("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let (alg, public) = match (field("kty")?, field("alg")) {
            ("EC", None | Some("ES256")) if field("crv") == Some("P-256") => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let point = [&[4u8][..], &x, &y].concat();
                ("ES256", Public::Es256(UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)))
            }
            ("RSA", None | Some("RS256")) => {
                ("RS256", Public::Rs256(signature::RsaPublicKeyComponents { n: bytes("n")?, e: bytes("e")? }))
            }
            _ => return None,
        };
        Some((kid, Key { alg: alg.to_owned(), public }))
    }
}

pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    etag: Option<String>,
    /// How long the set may be used before it is revalidated.
    max_age: Option<Duration>,
    /// When authgate last said this is the set (fetched, or `304`).
    pub(crate) validated: Instant,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet { by_kid: HashMap::new(), etag: None, max_age: None, validated: Instant::now() }
    }
}

impl KeySet {
    pub(crate) fn get(&self, kid: &str) -> Option<Arc<Key>> {
        self.by_kid.get(kid).cloned()
    }

    /// Whether the set went unconfirmed for so long (authgate unreachable)
    /// that a key it revoked meanwhile could still be trusted: then no
    /// token is.
    pub(crate) fn stale(&self) -> bool {
        self.validated.elapsed() > self.lifetime() + STALE_GRACE
    }

    /// How long it is used before it is revalidated: its `max-age`, within bounds.
    fn lifetime(&self) -> Duration {
        self.max_age.unwrap_or(LONGEST).clamp(SHORTEST, LONGEST)
    }

    pub(crate) fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.by_kid.keys().cloned().collect();
        kids.sort();
        kids
    }

    pub(crate) fn parse(
        body: &[u8],
        etag: Option<String>,
        max_age: Option<Duration>,
    ) -> Result<KeySet, String> {
        let set: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| "not a JSON key set".to_owned())?;
        let keys = set.get("keys").and_then(|k| k.as_array()).ok_or("no \"keys\" in the key set")?;
        let by_kid = keys.iter().filter_map(Key::from_jwk).map(|(kid, key)| (kid, Arc::new(key))).collect();
        Ok(KeySet { by_kid, etag, max_age, validated: Instant::now() })
    }
}

pub(crate) fn url_of(base: &str) -> String {
    format!("{base}/.well-known/jwks.json")
}

/// Revalidated at least this often whatever the server says, and at most
/// this often (a `max-age=0` must not make a busy loop).
const LONGEST: Duration = Duration::from_secs(3600);
const SHORTEST: Duration = Duration::from_secs(10);
/// After a failed fetch, the next try.
const RETRY: Duration = Duration::from_secs(10);
/// How long past its lifetime an unconfirmed set is still used.
const STALE_GRACE: Duration = Duration::from_secs(3600);

/// The key set, or `None` when it has not changed since `etag`.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    base: &str,
    etag: Option<&str>,
) -> Result<Option<KeySet>, String> {
    let mut request = http.get(url_of(base)).timeout(Duration::from_secs(10));
    if let Some(etag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let response = request.send().await.map_err(|e| e.without_url().to_string())?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let header =
        |name| response.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
    let etag = header(reqwest::header::ETAG).map(str::to_owned);
    let max_age = header(reqwest::header::CACHE_CONTROL).and_then(max_age);
    let body = response.bytes().await.map_err(|e| e.without_url().to_string())?;
    KeySet::parse(&body, etag, max_age).map(Some)
}

pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|s| s.parse().ok())
        .map(Duration::from_secs)
}

/// Replaces the set with a newer one (kept when unchanged or unreachable).
async fn reload(inner: &Inner) -> Result<(), String> {
    let etag = inner.keys.read().unwrap_or_else(|e| e.into_inner()).etag.clone();
    let fetched = fetch(&inner.http, &inner.config.url, etag.as_deref()).await?;
    let mut keys = inner.keys.write().unwrap_or_else(|e| e.into_inner());
    match fetched {
        Some(set) => *keys = set,
        None => keys.validated = Instant::now(),
    }
    Ok(())
}

/// Revalidates the set whenever its cache lifetime ends, for as long as
/// the verifier lives: a key authgate revoked leaves within that lifetime.
pub(crate) async fn refresh(inner: Weak<Inner>) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            inner.keys.read().unwrap_or_else(|e| e.into_inner()).lifetime()
        };
        tokio::time::sleep(wait).await;
        loop {
            let Some(inner) = inner.upgrade() else { return };
            match reload(&inner).await {
                Ok(()) => break,
                Err(reason) => {
                    tracing::warn!(%reason, "authgate's key set could not be fetched; the old one is kept")
                }
            }
            drop(inner);
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Fetches the set for a kid it lacks, unless a fetch ended within
/// `refetch_every` or while the caller waited (then it looks again and
/// refuses). One fetch at a time: a queue of callers with made-up kids
/// costs one fetch, however slow authgate is.
pub(crate) async fn refetch_for_unknown(inner: &Inner) {
    let asked = Instant::now();
    let mut ended = inner.refetched.lock().await;
    if ended.is_some_and(|at| at >= asked || at.elapsed() < inner.config.refetch_every) {
        return;
    }
    if let Err(reason) = reload(inner).await {
        tracing::warn!(%reason, "authgate's key set could not be fetched for an unknown kid");
    }
    *ended = Some(Instant::now());
}
