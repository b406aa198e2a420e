//! Verify authgate's access tokens in your own service, without calling
//! authgate on each request, and still refuse the tokens of sessions that
//! ended.
//!
//! ```no_run
//! # async fn run() -> Result<(), authgate_verify::StartError> {
//! use authgate_verify::{Config, Verifier};
//! let verifier = Verifier::start(
//!     Config::new("https://auth.example.com", "https://api.example.com")
//!         .service_key(std::env::var("AUTHGATE_SERVICE_KEY").unwrap()),
//! )
//! .await?;
//! match verifier.verify("eyJ…").await {
//!     Ok(claims) => println!("user {} in session {}", claims.sub, claims.sid),
//!     Err(refused) => println!("refused: {refused}"),
//! }
//! # Ok(()) }
//! ```
//!
//! What a token must be to pass: signed by a key of the published key set
//! (`/.well-known/jwks.json`) with that key's own algorithm (`ES256`, or
//! `RS256` for an RSA key; never `none` or an HMAC), `typ: at+jwt`, `iss`
//! authgate's, `aud` yours, `exp`/`nbf` within a small leeway, and its
//! session (`sid`) not ended. The sessions that ended come from authgate's
//! revocation feed (`/revocations`, behind a service key), followed as a
//! stream; when it has not said it is current (a heartbeat, less the lag
//! it reports) for longer than `max_silence` (30 s), every token is
//! refused (fail closed: the verifier can no longer know which sessions
//! ended).

mod feed;
mod keys;
mod token;

#[cfg(feature = "axum")]
pub mod axum;

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

pub use token::{Audience, Claims};

/// How the verifier reaches authgate and what it requires of a token.
#[derive(Clone)]
pub struct Config {
    url: String,
    issuer: String,
    audience: String,
    service_key: Option<String>,
    follow_revocations: bool,
    leeway: Duration,
    max_silence: Duration,
    refetch_every: Duration,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// Never shows the service key.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("service_key", &self.service_key.as_ref().map(|_| "[redacted]"))
            .field("follow_revocations", &self.follow_revocations)
            .field("leeway", &self.leeway)
            .field("max_silence", &self.max_silence)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// authgate at `url` (its `AUTHGATE_PUBLIC_URL`, which is also the
    /// tokens' `iss`), tokens for `audience` (one of its
    /// `AUTHGATE_JWT_AUDIENCES`). Set a `service_key` to follow the
    /// revocation feed: `start` refuses to run without one unless told
    /// `without_revocations`.
    pub fn new(url: impl Into<String>, audience: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        Config {
            issuer: url.clone(),
            url,
            audience: audience.into(),
            service_key: None,
            follow_revocations: true,
            leeway: Duration::from_secs(60),
            max_silence: Duration::from_secs(30),
            refetch_every: Duration::from_secs(2),
            clock: Arc::new(|| chrono::Utc::now().timestamp()),
        }
    }

    /// The `iss` tokens carry, when authgate is reached at another address
    /// than its public one (an internal name).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into().trim_end_matches('/').to_owned();
        self
    }

    /// One of authgate's `AUTHGATE_SERVICE_KEYS`: the revocation feed is read with it.
    pub fn service_key(mut self, key: impl Into<String>) -> Self {
        self.service_key = Some(key.into());
        self
    }

    /// Tokens of ended sessions pass until they expire: only for a service
    /// that accepts that (no service key, no feed).
    pub fn without_revocations(mut self) -> Self {
        self.follow_revocations = false;
        self
    }

    /// How far `exp` and `nbf` may be off (clock skew): 60 s by default and
    /// at most (authgate keeps a session's end in the feed 60 s past its
    /// tokens' lifetime; a verifier starting later with more leeway would
    /// accept a token whose end it never heard of).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(Duration::from_secs(60));
        self
    }

    /// How long the feed may go without saying it is current (heartbeats
    /// come every 5 s, less the lag it reports) before every token is
    /// refused: 30 s by default. A revocation missed while the feed is
    /// cut costs at most this; so does an outage of authgate, in refusals.
    /// It should stay below authgate's `AUTHGATE_JWT_TTL` (5 minutes),
    /// past which the feed adds nothing to a token's own expiry.
    pub fn max_silence(mut self, silence: Duration) -> Self {
        self.max_silence = silence;
        self
    }

    /// At most one fetch of the key set per `every` for tokens naming an
    /// unknown `kid` (2 s by default): a flood of made-up kids costs
    /// authgate one request per interval.
    pub fn refetch_every(mut self, every: Duration) -> Self {
        self.refetch_every = every;
        self
    }

    /// The time in Unix seconds (tests move it; the system clock by default).
    pub fn clock(mut self, now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }
}

/// Why a token was refused. Each is a `401` (`invalid_token`) in the axum
/// layer, but for `Unavailable`, which is a `503`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no bearer token")]
    Missing,
    #[error("not a JWT: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("typ must be at+jwt")]
    Type,
    #[error("signed by an unknown key")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("issued by another issuer")]
    Issuer,
    #[error("issued for another audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("its session has ended")]
    SessionEnded,
    /// The feed has been silent too long: which sessions ended is unknown.
    #[error("cannot verify now: {0}")]
    Unavailable(&'static str),
}

/// Why `Verifier::start` could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the key set at {url}: {reason}")]
    Keys { url: String, reason: String },
    #[error("the revocation feed at {url}: {reason}")]
    Feed { url: String, reason: String },
    #[error(
        "a service key is needed to follow the revocation feed (Config::service_key), or say Config::without_revocations"
    )]
    NoServiceKey,
}

/// A running verifier: cheap to clone, one per service. Its background
/// tasks (the key set's refresh, the feed) end when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    keys: RwLock<keys::KeySet>,
    /// When the last fetch of the key set for an unknown kid ended (one at a time).
    refetched: tokio::sync::Mutex<Option<Instant>>,
    feed: feed::State,
    /// Tokens whose signature was checked: their kid, the key, the claims.
    seen: RwLock<Seen>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

type Seen = std::collections::HashMap<String, (String, Arc<keys::Key>, Arc<Claims>)>;
/// Tokens remembered at most.
const SEEN: usize = 4096;

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }
}

/// How long `start` waits for the feed to catch up.
const START_WITHIN: Duration = Duration::from_secs(10);

/// Waits until the feed has caught up (its first heartbeat), a refusal
/// that will not change, or `START_WITHIN`.
async fn ready(inner: &Inner) -> Result<(), StartError> {
    let fail = |reason: String| StartError::Feed { url: feed::url_of(&inner.config.url), reason };
    let mut start = inner.feed.start.subscribe();
    let settled = start.wait_for(|s| !matches!(s, feed::Start::Trying(_)));
    let state = match tokio::time::timeout(START_WITHIN, settled).await {
        Ok(Ok(state)) => state.clone(),
        _ => inner.feed.start.borrow().clone(),
    };
    match state {
        feed::Start::Ready => Ok(()),
        feed::Start::Refused(reason) => Err(fail(reason)),
        feed::Start::Trying(reason) => {
            Err(fail(format!("not caught up within 10 s ({})", reason.as_deref().unwrap_or("no answer yet"))))
        }
    }
}

impl Verifier {
    /// Fetches the key set and catches up with the feed (every session
    /// that ended while its tokens may live), then follows both in the
    /// background. Fails if either cannot be read now.
    pub async fn start(config: Config) -> Result<Verifier, StartError> {
        if config.follow_revocations && config.service_key.is_none() {
            return Err(StartError::NoServiceKey);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| StartError::Keys { url: config.url.clone(), reason: e.to_string() })?;
        let set = keys::fetch(&http, &config.url, None)
            .await
            .map_err(|reason| StartError::Keys { url: keys::url_of(&config.url), reason })?;
        let set = set.unwrap_or_default();
        let inner = Arc::new(Inner {
            keys: RwLock::new(set),
            refetched: tokio::sync::Mutex::new(None),
            feed: feed::State::new(),
            seen: RwLock::default(),
            tasks: Mutex::new(Vec::new()),
            http,
            config,
        });
        let mut tasks = vec![tokio::spawn(keys::refresh(Arc::downgrade(&inner))).abort_handle()];
        if inner.config.follow_revocations {
            tasks.push(tokio::spawn(feed::follow(Arc::downgrade(&inner))).abort_handle());
        }
        *inner.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        if inner.config.follow_revocations {
            ready(&inner).await?;
        }
        Ok(Verifier { inner })
    }

    /// The token's claims if it passes every check (see the crate's docs).
    pub async fn verify(&self, token: &str) -> Result<Claims, Refused> {
        let inner = &self.inner;
        let claims = match self.seen(token) {
            Some(claims) => claims,
            None => {
                let parsed = token::Parsed::new(token)?;
                let key = match self.key(&parsed.header.kid) {
                    Some(key) => key,
                    None => {
                        keys::refetch_for_unknown(inner).await;
                        self.key(&parsed.header.kid).ok_or(Refused::UnknownKey)?
                    }
                };
                let claims = Arc::new(parsed.claims(&key, &inner.config)?);
                self.remember(token, parsed.header.kid, key, claims.clone());
                claims
            }
        };
        token::check_times(&claims, &inner.config, (inner.config.clock)())?;
        if inner.keys.read().unwrap_or_else(|e| e.into_inner()).stale() {
            return Err(Refused::Unavailable("the key set could not be revalidated for too long"));
        }
        if inner.config.follow_revocations {
            if inner.feed.silent_for() > inner.config.max_silence {
                return Err(Refused::Unavailable("the revocation feed has been silent too long"));
            }
            if inner.feed.ended(&claims.sid) {
                return Err(Refused::SessionEnded);
            }
        }
        Ok(Claims::clone(&claims))
    }

    /// The claims of `token` if its signature was checked before with the
    /// key the set still holds under its kid (the same bytes verify the
    /// same way): a service sees each token many times, and the signature
    /// is most of a verification's cost.
    fn seen(&self, token: &str) -> Option<Arc<Claims>> {
        let seen = self.inner.seen.read().unwrap_or_else(|e| e.into_inner());
        let (kid, key, claims) = seen.get(token)?;
        let current = self.key(kid)?;
        Arc::ptr_eq(key, &current).then(|| claims.clone())
    }

    fn remember(&self, token: &str, kid: String, key: Arc<keys::Key>, claims: Arc<Claims>) {
        let mut seen = self.inner.seen.write().unwrap_or_else(|e| e.into_inner());
        // Bounded: full, it starts over (tokens live minutes; the next
        // request of each re-checks its signature once).
        if seen.len() >= SEEN {
            seen.clear();
        }
        seen.insert(token.to_owned(), (kid, key, claims));
    }

    fn key(&self, kid: &str) -> Option<Arc<keys::Key>> {
        self.inner.keys.read().unwrap_or_else(|e| e.into_inner()).get(kid)
    }

    /// The kids of the keys it accepts now.
    pub fn kids(&self) -> Vec<String> {
        self.inner.keys.read().unwrap_or_else(|e| e.into_inner()).kids()
    }

    /// The feed's cursor: where it would resume.
    pub fn cursor(&self) -> Option<String> {
        self.inner.feed.cursor()
    }
}

#[cfg(test)]
mod tests;
