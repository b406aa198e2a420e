//! Live sessions kept in memory, so a session check costs no database
//! round trip, and the rules that keep a revoked session out of it.
//!
//! Correctness rests on one comparison. Every entry remembers the moment
//! its database read *began* (a `Ticket`); every change to a user stamps
//! that user with the moment it was *committed* (`forget_user`); a flush
//! stamps everything. An entry is served only if its read began after
//! every stamp that applies to it. So a read that raced a revocation (began
//! before the commit, finished after the stamp) is never served, without
//! any lock between readers and writers.
//!
//! Stamps come from this instance's own services (after their commit, before
//! the mutation answers) and, on PostgreSQL, from the other instances
//! through its `channel` (`LISTEN/NOTIFY`). While that channel is down
//! the cache is bypassed (`live` is false) and flushed when it comes back.
//! With an outage grace (opt-in), entries outlive the channel: while the
//! database cannot be reached at all, `during_outage` still answers from
//! them, for at most the grace after the database last answered.
//!
//! On SQLite there is no channel: a serving process takes a lock next to
//! the database file, so a second one cannot start beside one with the
//! cache on (see `lock_database`).

pub mod channel;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use entity::{sessions, users};
use uuid::Uuid;

use crate::config::Config;

/// When a database read began, in the cache's own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// A session as it was read, and when that read began.
pub(crate) struct Cached {
    pub session: sessions::Model,
    pub user: users::Model,
    /// The user's roles (for the access tokens' `roles` claim).
    pub roles: Vec<String>,
    loaded: Ticket,
}

impl Cached {
    /// When the read this entry holds began.
    pub(crate) fn ticket(&self) -> Ticket {
        self.loaded
    }
}

/// The cache, or nothing when it is off, and what tells the event
/// record's live poller that a user or session changed (here or, through
/// the channel, on another instance): it reads at once instead of at its
/// next tick, so a sign-out reaches the revocation feed in milliseconds.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct SessionCache(Option<Arc<Inner>>, Arc<tokio::sync::Notify>);

pub(crate) struct Inner {
    /// Token hash → the session read for it.
    entries: moka::sync::Cache<Vec<u8>, Arc<Cached>>,
    /// User → when it last changed. Kept as long as an entry can live, so
    /// an entry older than a stamp never outlives the stamp.
    stamps: moka::sync::Cache<Uuid, u64>,
    /// The newest of all stamps: an entry read after it needs no lookup in
    /// `stamps` (the common case, and a hash lookup saved per request).
    latest_stamp: AtomicU64,
    /// When everything was last thrown away.
    flushed: AtomicU64,
    /// Whether changes made by other instances reach this one (always on
    /// SQLite, where there are none; on PostgreSQL, while subscribed).
    live: AtomicBool,
    epoch: Instant,
    /// Added to the time since `epoch`: moved only by tests (`advance`),
    /// so a test of the TTL need not sleep through it.
    skipped: AtomicU64,
    ttl: Duration,
    /// How long after the database last answered an entry may still be
    /// served while it cannot be reached (zero: never).
    grace: Duration,
    /// When the database last answered, and last could not be reached.
    reached: AtomicU64,
    unreachable: AtomicU64,
    /// A probe of the database beside the pool is running (`probe`).
    probing: AtomicBool,
    /// Dropped with the cache: ends the listening task.
    pub(crate) stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// The cache's second field: woken by every stamp.
    changed: Arc<tokio::sync::Notify>,
}

impl SessionCache {
    /// A cache that keeps nothing.
    pub(crate) fn off() -> Self {
        Self(None, Default::default())
    }

    /// A cache of at most `entries` sessions, each served for at most `ttl`.
    /// `live`: whether it may serve at once (no channel to wait for).
    pub(crate) fn new(entries: u64, ttl: Duration, grace: Duration, live: bool) -> Self {
        // Kept past `ttl` only to be served during an outage.
        let kept = ttl.saturating_add(grace);
        let changed = Arc::new(tokio::sync::Notify::new());
        let inner = Inner {
            entries: moka::sync::Cache::builder().max_capacity(entries).time_to_live(kept).build(),
            stamps: moka::sync::Cache::builder().time_to_live(kept).build(),
            latest_stamp: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            live: AtomicBool::new(live),
            epoch: Instant::now(),
            skipped: AtomicU64::new(0),
            ttl,
            grace,
            reached: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            stop: std::sync::Mutex::new(None),
            changed: changed.clone(),
        };
        Self(Some(Arc::new(inner)), changed)
    }

    /// The cache the configuration asks for, on this database: off when
    /// `AUTHGATE_SESSION_CACHE_TTL` or `_ENTRIES` is 0, or when only a
    /// transaction pooler is known on PostgreSQL (warned).
    pub(crate) fn start(config: &Config, db: &sea_orm::DatabaseConnection) -> anyhow::Result<Self> {
        let on = config.session_cache_enabled();
        let (entries, ttl) = (config.session_cache_entries, config.session_cache_ttl);
        let grace = config.session_cache_outage_grace;
        if !on {
            return Ok(Self::off());
        }
        if crate::db::sqlite_file(config).is_some() {
            return Ok(Self::new(entries, ttl, grace, true));
        }
        let Some(options) = crate::db::listen_options(config)? else {
            tracing::warn!(
                "session cache off: DATABASE_URL is a transaction-mode pooler, which cannot carry \
                 LISTEN; set AUTHGATE_DATABASE_LISTEN_URL to the database's direct address to turn it on"
            );
            return Ok(Self::off());
        };
        let cache = Self::new(entries, ttl, grace, false);
        channel::spawn(&cache, options, db.clone(), config.session_channel_ping);
        Ok(cache)
    }

    /// Moves the cache's clock on by `by` (tests: an entry's age without
    /// the wait).
    #[cfg(any(test, feature = "test-support"))]
    pub fn advance(&self, by: Duration) {
        if let Some(inner) = &self.0 {
            inner.skipped.fetch_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX), SeqCst);
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn inner(&self) -> Option<&Arc<Inner>> {
        self.0.as_ref()
    }

    /// Take before reading a session from the database; hand to `put`.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.0.as_ref().map_or(0, |inner| inner.now()))
    }

    /// The session read for `hash`, if it is still known to be current.
    pub(crate) fn get(&self, hash: &[u8]) -> Option<Arc<Cached>> {
        let inner = self.0.as_ref()?;
        let cached = inner.entries.get(hash)?;
        inner.current(&cached).then_some(cached)
    }

    /// Keeps what a read that began at `ticket` found (unless something
    /// changed since it began, or the channel is down).
    pub(crate) fn put(
        &self,
        hash: Vec<u8>,
        read: (sessions::Model, users::Model, Vec<String>),
        ticket: Ticket,
    ) {
        let Some(inner) = &self.0 else { return };
        let (session, user, roles) = read;
        let cached = Arc::new(Cached { session, user, roles, loaded: ticket });
        if inner.current(&cached) {
            inner.entries.insert(hash, cached);
        }
    }

    /// The database answered a read: the outage grace counts from here.
    pub(crate) fn reached(&self) {
        if let Some(inner) = &self.0 {
            inner.reached.store(inner.now(), SeqCst);
            inner.unreachable.store(0, SeqCst);
        }
    }

    /// Whether an outage may be answered from memory at all (on, with a
    /// grace): only then is it worth telling an outage from a busy pool.
    pub(crate) fn has_grace(&self) -> bool {
        self.0.as_ref().is_some_and(|inner| !inner.grace.is_zero())
    }

    /// The right to probe the database beside the pool, if no other
    /// request holds it: one probe at a time, the others count as busy.
    pub(crate) fn probe(&self) -> Option<Probe> {
        let inner = self.0.as_ref()?;
        (!inner.probing.swap(true, SeqCst)).then(|| Probe(inner.clone()))
    }

    /// Whether the database answered a read that began after `ticket`.
    pub(crate) fn reached_since(&self, ticket: Ticket) -> bool {
        self.0.as_ref().is_some_and(|inner| inner.reached.load(SeqCst) > ticket.0)
    }

    /// The database could not be reached (a check fell back on the grace).
    pub(crate) fn unreachable(&self) {
        if let Some(inner) = &self.0 {
            inner.unreachable.store(inner.now(), SeqCst);
        }
    }

    /// Whether the database failed to answer within the last second: a
    /// check then tries the grace first instead of waiting for the pool's
    /// acquire timeout on every request.
    pub(crate) fn recently_unreachable(&self) -> bool {
        self.0.as_ref().is_some_and(|inner| {
            let at = inner.unreachable.load(SeqCst);
            at != 0 && inner.now() - at < 1_000_000_000
        })
    }

    /// While the database cannot be reached: the entry for `hash` if the
    /// outage grace allows it (on, the database answered within the grace,
    /// nothing known to have changed for the user since the read, and the
    /// entry younger than `ttl` + grace).
    pub(crate) fn during_outage(&self, hash: &[u8]) -> Option<Arc<Cached>> {
        let inner = self.0.as_ref().filter(|inner| !inner.grace.is_zero())?;
        let now = inner.now();
        if now - inner.reached.load(SeqCst) >= inner.grace.as_nanos() as u64 {
            return None;
        }
        let cached = inner.entries.get(hash)?;
        let Ticket(loaded) = cached.loaded;
        let kept = inner.ttl.saturating_add(inner.grace).as_nanos() as u64;
        let unchanged = loaded > inner.flushed.load(SeqCst)
            && inner.unchanged_for(loaded, &cached)
            && now - loaded < kept;
        unchanged.then_some(cached)
    }

    /// The database says `hash` names no session: not even an outage may
    /// bring the entry back.
    pub(crate) fn remove(&self, hash: &[u8]) {
        if let Some(inner) = &self.0 {
            inner.entries.invalidate(hash);
        }
    }

    /// Something about `user_id` or one of its sessions changed (and is
    /// committed): nothing read before now is served for them again.
    pub fn forget_user(&self, user_id: Uuid) {
        if let Some(inner) = &self.0 {
            inner.stamp(user_id);
        }
    }

    /// A change to `user_id` (or one of its sessions) is about to be
    /// written. Take it before the transaction begins and call `done`
    /// right after the commit: the user is forgotten then. A request
    /// cancelled part-way (a client gone, a deadline) drops it instead,
    /// perhaps while its commit is still on the wire: the user is forgotten
    /// at once and nothing read for them is served for one TTL after, so
    /// a change that lands a moment later is not hidden either.
    pub(crate) fn changing(&self, user_id: Uuid) -> Forget {
        Forget { cache: self.clone(), user_id, settled: false }
    }

    /// Woken after each committed change to a user or a session (the
    /// event record's live poller waits on it).
    pub(crate) fn changed(&self) -> &tokio::sync::Notify {
        &self.1
    }

    /// Whether the cache is serving (on, and its channel up).
    pub fn is_live(&self) -> bool {
        self.0.as_ref().is_some_and(|inner| inner.live.load(SeqCst))
    }

    /// Sessions held (approximate; for metrics and tests).
    pub fn len(&self) -> u64 {
        self.0.as_ref().map_or(0, |inner| {
            inner.entries.run_pending_tasks();
            inner.entries.entry_count()
        })
    }

    /// Sessions held, as last counted (no upkeep, no lock: what a public
    /// `/metrics` scrape may ask for as often as it likes).
    pub(crate) fn approximate_len(&self) -> u64 {
        self.0.as_ref().map_or(0, |inner| inner.entries.entry_count())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The one probe running (`SessionCache::probe`); lets the next one go when dropped.
pub(crate) struct Probe(Arc<Inner>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.probing.store(false, SeqCst);
    }
}

/// Forgets its user in the session cache (`SessionCache::changing`).
#[must_use = "dropped at once, it forgets before the change is committed"]
pub(crate) struct Forget {
    cache: SessionCache,
    user_id: Uuid,
    /// `done` was called: the change is committed (or never will be).
    settled: bool,
}

impl Forget {
    /// The change is committed: forget the user now.
    pub(crate) fn done(mut self) {
        self.settled = true;
    }
}

impl Drop for Forget {
    fn drop(&mut self) {
        let Some(inner) = &self.cache.0 else {
            self.cache.1.notify_one();
            return;
        };
        inner.stamp(self.user_id);
        if !self.settled {
            inner.stamp_until(self.user_id, inner.ttl);
        }
    }
}

impl Inner {
    fn now(&self) -> u64 {
        // Nanoseconds since the cache began; +1 so no ticket is 0 (the
        // "never" of `flushed` and of missing stamps).
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        since.saturating_add(self.skipped.load(SeqCst)).saturating_add(1)
    }

    fn current(&self, cached: &Cached) -> bool {
        let Ticket(loaded) = cached.loaded;
        self.live.load(SeqCst)
            && loaded > self.flushed.load(SeqCst)
            && self.unchanged_for(loaded, cached)
            && self.now() - loaded < self.ttl.as_nanos() as u64
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(SeqCst)
    }

    /// Whether nothing that `cached` stands on changed after `loaded`: its
    /// user, and for an impersonation its admin too (a ban, a role taken,
    /// the admin's own session ended re-read it).
    fn unchanged_for(&self, loaded: u64, cached: &Cached) -> bool {
        self.unchanged_since(loaded, cached.user.id)
            && cached.session.impersonator_id.is_none_or(|admin| self.unchanged_since(loaded, admin))
    }

    /// Whether no change to `user_id` was stamped after `loaded`.
    fn unchanged_since(&self, loaded: u64, user_id: Uuid) -> bool {
        loaded > self.latest_stamp.load(SeqCst) || loaded > self.stamps.get(&user_id).unwrap_or(0)
    }

    pub(crate) fn stamp(&self, user_id: Uuid) {
        self.stamp_at(user_id, self.now());
    }

    /// A stamp `ahead` in the future: nothing read for the user until then
    /// is served (a change may still land meanwhile).
    fn stamp_until(&self, user_id: Uuid, ahead: Duration) {
        let at = self.now().saturating_add(u64::try_from(ahead.as_nanos()).unwrap_or(u64::MAX));
        self.stamp_at(user_id, at);
    }

    fn stamp_at(&self, user_id: Uuid, at: u64) {
        // The map first, then the summary: a reader that sees the new
        // summary finds the stamp in the map. A stamp never moves back.
        let kept = self
            .stamps
            .entry(user_id)
            .and_upsert_with(|old| old.map_or(at, |old| old.into_value().max(at)))
            .into_value();
        self.latest_stamp.fetch_max(kept, SeqCst);
        self.changed.notify_one();
    }

    pub(crate) fn flush(&self) {
        self.flushed.store(self.now(), SeqCst);
        self.entries.invalidate_all();
    }

    /// The channel went down (bypass, and forget unless an outage grace
    /// may still need the entries) or came up (start empty: what was missed
    /// while it was down is unknown).
    pub(crate) fn set_live(&self, live: bool) {
        if live {
            self.flush();
            self.live.store(true, SeqCst);
        } else {
            self.live.store(false, SeqCst);
            if self.grace.is_zero() {
                self.flush();
            }
        }
    }

    pub(crate) fn reached(&self) {
        self.reached.store(self.now(), SeqCst);
    }
}

/// SQLite has no channel between processes: a second server on the same
/// file could revoke a session this one would go on serving. So a serving
/// process (`authgate serve`; not `cleanup` or `migrate`, which end no
/// live session) locks `<database>.authgate-lock` for as long as it runs:
/// exclusively with the cache on, shared without it. Servers without the
/// cache may share a file; one with the cache runs alone, and a second
/// fails to start, naming the file. `None` on PostgreSQL.
pub fn lock_database(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    match crate::db::sqlite_file(config) {
        Some(file) => lock_sqlite(&file, config.session_cache_enabled()),
        None => Ok(None),
    }
}

fn lock_sqlite(database: &std::path::Path, cache_on: bool) -> anyhow::Result<Option<std::fs::File>> {
    let name = database.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(None);
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".authgate-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", std::path::Path::new(&path).display()))?;
    let locked = if cache_on { file.try_lock() } else { file.try_lock_shared() };
    match locked {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) if cache_on => anyhow::bail!(
            "another authgate process uses {}: with the session cache on, a process needs its \
             SQLite database to itself (or set AUTHGATE_SESSION_CACHE_TTL=0 on every process that shares it)",
            database.display()
        ),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another authgate process uses {} with the session cache on: stop it, or set \
             AUTHGATE_SESSION_CACHE_TTL=0 there too",
            database.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", std::path::Path::new(&path).display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(user_id: Uuid) -> (sessions::Model, users::Model) {
        let now = chrono::Utc::now();
        let session = sessions::Model {
            id: Uuid::new_v4(),
            user_id,
            token_hash: vec![1],
            expires_at: now,
            created_at: now,
            updated_at: now,
            ip_address: None,
            user_agent: None,
            authenticated_at: now,
            assurance_level: 1,
            method: None,
            impersonator_id: None,
            impersonator_session_id: None,
        };
        let user = users::Model {
            id: user_id,
            email: "u@example.com".into(),
            name: None,
            image: None,
            email_verified: true,
            created_at: now,
            updated_at: now,
            credentials_version: 0,
            two_factor_enabled: false,
            banned_at: None,
            banned_until: None,
            ban_reason: None,
        };
        (session, user)
    }

    /// A change settled with `done` lets reads that began after it be
    /// served; one dropped unsettled (a request cancelled, its commit
    /// perhaps still on the wire) keeps the user out of the cache for a TTL.
    #[test]
    fn a_change_dropped_unsettled_keeps_its_user_out_for_a_ttl() {
        let cache = SessionCache::new(100, Duration::from_secs(60), Duration::ZERO, true);
        let (settled, cancelled) = (Uuid::new_v4(), Uuid::new_v4());
        cache.changing(settled).done();
        drop(cache.changing(cancelled));
        for (user_id, hash, served) in [(settled, vec![1u8], true), (cancelled, vec![2u8], false)] {
            let ticket = cache.ticket();
            let (session, user) = rows(user_id);
            cache.put(hash.clone(), (session, user, Vec::new()), ticket);
            assert_eq!(cache.get(&hash).is_some(), served, "read after the change of {user_id}");
        }
    }

    #[test]
    fn an_in_memory_database_needs_no_lock() {
        for name in [":memory:", ""] {
            assert!(lock_sqlite(std::path::Path::new(name), true).unwrap().is_none(), "{name:?}");
        }
    }
}
