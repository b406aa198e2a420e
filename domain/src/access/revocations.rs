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
pub struct Page {
    pub entries: Vec<Revocation>,
    pub next: String,
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
    let keep = keys::ttl(auth) + chrono::Duration::from_std(keys::LEEWAY).unwrap_or_default();
    auth.clock.now() - keep
}

/// Just before the first event still within the horizon: where a
/// verifier without a cursor starts.
async fn start(auth: &AuthContext) -> Result<Position, AuthError> {
    let first = events::Entity::find()
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
    let last = events::Entity::find()
        .order_by_desc(events::Column::Tx)
        .order_by_desc(events::Column::Id)
        .one(&auth.db)
        .await?;
    Ok(last.map(|e| Position::of(&e)).unwrap_or_default())
}

/// Up to `limit` entries after `after` (from the start of the horizon
/// without one).
pub async fn after(auth: &AuthContext, after: Option<&str>, limit: usize) -> Result<Page, AuthError> {
    let mut from = match after {
        Some(cursor) => parse_cursor(cursor)?,
        None => start(auth).await?,
    };
    let limit = limit.clamp(1, MAX_PAGE);
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
                    return Ok(Page { entries, next: cursor_of(from) });
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(Page { entries, next: cursor_of(from) })
}

/// The feed's entry for `event`, if it is a session's end still within the horizon.
pub fn entry(auth: &AuthContext, event: &events::Model, horizon: DateTime<Utc>) -> Option<Revocation> {
    if event.kind != Kind::SessionRevoked.as_str() || event.occurred_at < horizon {
        return None;
    }
    let keep = keys::ttl(auth) + chrono::Duration::from_std(keys::LEEWAY).unwrap_or_default();
    Some(Revocation {
        cursor: cursor_of(Position::of(event)),
        sid: event.session_id?,
        sub: event.subject_user_id?,
        revoked_at: event.occurred_at,
        expires_at: event.occurred_at + keep,
    })
}

/// Whether `presented` is one of `AUTHGATE_SERVICE_KEYS` (digests compared
/// in constant time).
pub fn is_service_key(auth: &AuthContext, presented: &str) -> bool {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    let presented = Sha256::digest(presented.as_bytes());
    auth.config.service_keys.iter().fold(false, |found, key| {
        let key = Sha256::digest(key.expose_secret().as_bytes());
        let same = key.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        found | same
    })
}
