//! The revocation feed: every session that ended while tokens of it can
//! still be alive, read from the event record (`session.revoked`: every
//! way a session ends records one), in commit order, after a cursor. A
//! verifier that resumes from the last cursor it saw misses nothing. An
//! entry leaves the feed once every token of its session has expired
//! (`AUTHGATE_JWT_TTL` + `keys::LEEWAY` after the end); a session's own
//! expiry needs no entry (its tokens expire with it).

use chrono::{DateTime, Utc};
use entity::events;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::keys;
use crate::{
    AuthContext,
    error::{AuthError, Input},
    events::{
        Kind,
        read::{self, Position},
    },
};

/// One ended session.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// Where this entry is in the feed: resume after it.
    pub cursor: String,
    pub sid: Uuid,
    pub sub: Uuid,
    pub revoked_at: DateTime<Utc>,
    /// After this, no token of the session verifies anyway.
    pub expires_at: DateTime<Utc>,
}

/// A page of the feed and the cursor to ask after next.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub entries: Vec<Revocation>,
    pub next: String,
    /// Whether the page reached the end of the record (else ask again now).
    pub complete: bool,
}

/// Events read per query; at most this many queries per page.
const BATCH: u64 = 500;
const BATCHES: usize = 20;
/// Entries per page at most.
pub const MAX_PAGE: usize = 1000;

pub fn cursor_of(position: Position) -> String {
    format!("{}-{}", position.tx, position.id)
}

pub fn parse_cursor(text: &str) -> Result<Position, AuthError> {
    let bad = || AuthError::bad_input(Input::After, "not a cursor of this feed");
    let (tx, id) = text.split_once('-').ok_or_else(bad)?;
    Ok(Position { tx: tx.parse().map_err(|_| bad())?, id: id.parse().map_err(|_| bad())? })
}

/// How far back the feed reaches now.
fn horizon(auth: &AuthContext) -> DateTime<Utc> {
    auth.clock.now() - keys::token_afterlife(auth)
}

/// Just before the first event still within the horizon: where a
/// verifier without a cursor starts.
async fn start(auth: &AuthContext) -> Result<Position, AuthError> {
    // Among final events only (PostgreSQL): a transaction still running
    // may commit an end below a position read past it.
    let first = read::only_final(events::Entity::find(), &auth.db)
        .filter(events::Column::OccurredAt.gte(horizon(auth)))
        .order_by_asc(events::Column::Tx)
        .order_by_asc(events::Column::Id)
        .one(&auth.db)
        .await?;
    Ok(match first {
        Some(event) => Position { tx: event.tx, id: event.id - 1 },
        None => latest(auth).await?,
    })
}

/// The end of the record (nothing within the horizon: start there).
async fn latest(auth: &AuthContext) -> Result<Position, AuthError> {
    let last = read::only_final(events::Entity::find(), &auth.db)
        .order_by_desc(events::Column::Tx)
        .order_by_desc(events::Column::Id)
        .one(&auth.db)
        .await?;
    Ok(last.map(|e| Position::of(&e)).unwrap_or_default())
}

/// Up to `limit` entries after `after` (from the start of the horizon
/// without one).
pub async fn after(auth: &AuthContext, after: Option<&str>, limit: usize) -> Result<Page, AuthError> {
    let from = match after {
        Some(cursor) => parse_cursor(cursor)?,
        None => start(auth).await?,
    };
    let (entries, at, complete) = page_after(auth, from, limit.clamp(1, MAX_PAGE)).await?;
    Ok(Page { entries, next: cursor_of(at), complete })
}

/// Up to `limit` entries after `from`, where the read stopped, and whether
/// it reached the end of the record.
async fn page_after(
    auth: &AuthContext,
    mut from: Position,
    limit: usize,
) -> Result<(Vec<Revocation>, Position, bool), AuthError> {
    let horizon = horizon(auth);
    let mut entries = Vec::new();
    for _ in 0..BATCHES {
        let batch = read::after(&auth.db, from, BATCH).await?;
        let full = batch.len() as u64 == BATCH;
        for event in batch {
            from = Position::of(&event);
            if let Some(entry) = entry(auth, &event, horizon) {
                entries.push(entry);
                if entries.len() == limit {
                    return Ok((entries, from, false));
                }
            }
        }
        if !full {
            return Ok((entries, from, true));
        }
    }
    Ok((entries, from, false))
}

/// What the feed's stream sends.
#[derive(Debug)]
pub enum Sent {
    Entry(Revocation),
    /// Nothing ended lately (or the catch-up is done): the feed is alive,
    /// this is where it stands, and every session that ended longer than
    /// `lag` ago has been sent.
    Heartbeat {
        next: String,
        lag: std::time::Duration,
    },
}

/// How often a quiet stream says it is alive (a verifier that hears
/// nothing for longer than a token's lifetime refuses every token).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// The feed as it grows: what is after `after` (the start of the horizon
/// without one), then each session's end as it is committed, in commit
/// order, with a heartbeat when quiet. Listening starts before the catch-up
/// read, so nothing committed in between is missed; a listener that falls
/// behind catches up from the database.
pub async fn follow(
    auth: &AuthContext,
    after: Option<&str>,
) -> Result<impl futures_util::Stream<Item = Sent> + use<>, AuthError> {
    let from = match after {
        Some(cursor) => parse_cursor(cursor)?,
        None => start(auth).await?,
    };
    let receiver = auth.live.subscribe(auth);
    // Until the poller knows where it stands, what it broadcasts may start
    // past where the catch-up ends: refused (the verifier retries) rather
    // than a gap.
    if !auth.live.positioned().await {
        return Err(AuthError::ServiceUnavailable);
    }
    let following = Following {
        auth: auth.clone(),
        at: from,
        receiver,
        pending: Default::default(),
        catching_up: true,
        heartbeat_at: tokio::time::Instant::now() + HEARTBEAT,
    };
    Ok(futures_util::stream::unfold(following, |mut f| async move {
        let sent = f.next().await?;
        Some((sent, f))
    }))
}

struct Following {
    auth: AuthContext,
    /// The last event read (sent or not).
    at: Position,
    receiver: tokio::sync::broadcast::Receiver<std::sync::Arc<events::Model>>,
    pending: std::collections::VecDeque<Revocation>,
    catching_up: bool,
    heartbeat_at: tokio::time::Instant,
}

impl Following {
    async fn next(&mut self) -> Option<Sent> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Some(Sent::Entry(entry));
            }
            if self.catching_up {
                match page_after(&self.auth, self.at, MAX_PAGE).await {
                    Ok((entries, at, done)) => {
                        self.at = at;
                        self.pending.extend(entries);
                        self.catching_up = !done;
                        if done {
                            // Caught up: a heartbeat as soon as nothing is
                            // pending tells the verifier it is current.
                            self.heartbeat_at = tokio::time::Instant::now();
                        }
                    }
                    Err(e) => {
                        // The stream ends; the verifier reconnects from its cursor.
                        e.report();
                        return None;
                    }
                }
                continue;
            }
            match tokio::time::timeout_at(self.heartbeat_at, self.receiver.recv()).await {
                Err(_quiet) => {
                    self.heartbeat_at = tokio::time::Instant::now() + HEARTBEAT;
                    let lag = self.auth.live.lag();
                    return Some(Sent::Heartbeat { next: cursor_of(self.at), lag });
                }
                Ok(Ok(event)) => {
                    let at = Position::of(&event);
                    if at <= self.at {
                        continue;
                    }
                    self.at = at;
                    if let Some(entry) = entry(&self.auth, &event, horizon(&self.auth)) {
                        return Some(Sent::Entry(entry));
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => self.catching_up = true,
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    }
}

/// The feed's entry for `event`, if it is a session's end still within the horizon.
pub fn entry(auth: &AuthContext, event: &events::Model, horizon: DateTime<Utc>) -> Option<Revocation> {
    if event.kind != Kind::SessionRevoked.as_str() || event.occurred_at < horizon {
        return None;
    }
    Some(Revocation {
        cursor: cursor_of(Position::of(event)),
        sid: event.session_id?,
        sub: event.subject_user_id?,
        revoked_at: event.occurred_at,
        expires_at: event.occurred_at + keys::token_afterlife(auth),
    })
}

/// Whether `presented` is one of `AUTHGATE_SERVICE_KEYS` (their digests
/// compared in constant time).
pub fn is_service_key(auth: &AuthContext, presented: &str) -> bool {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let presented = Sha256::digest(presented.as_bytes());
    auth.config.service_keys.iter().any(|key| {
        let key = Sha256::digest(key.expose_secret().as_bytes());
        bool::from(key.as_slice().ct_eq(presented.as_slice()))
    })
}
