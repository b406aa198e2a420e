//! The record as it grows, for live subscribers: one poller per instance
//! follows it in commit order (`read::after`, so a late commit is not
//! skipped) while anyone listens, and broadcasts each event. One query per
//! tick however many subscribers there are; every instance reads the
//! same database, so a change made on another instance arrives as well.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use entity::events;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, QuerySelect};
use tokio::sync::broadcast;

use super::read::{self, Position};
use crate::{AuthContext, error::AuthError};

/// How often the poller reads the record while someone listens (and at
/// once after a change to a user or session, at most once per `GAP`).
pub const TICK: Duration = Duration::from_millis(50);
const GAP: Duration = Duration::from_millis(10);
/// Events a slow subscriber may fall behind by before it catches up from
/// the database.
const BUFFER: usize = 1024;
/// Events read per tick at most.
const BATCH: u64 = 500;
/// Held-back events followed at most (a stall holding more is long seen).
const HELD_SEEN: u64 = 1000;

/// Streams one user may hold open at once (each holds a connection and
/// checks its session now and then).
pub const STREAMS_PER_USER: usize = 5;

pub struct Live {
    sender: broadcast::Sender<Arc<events::Model>>,
    running: AtomicBool,
    /// The poller knows where the record ends: what commits from now on is broadcast.
    positioned: tokio::sync::watch::Sender<bool>,
    streams: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, usize>>,
    /// Every event committed before this was broadcast (the poller's last
    /// complete read, or when a running transaction began holding one back).
    complete_at: std::sync::Mutex<tokio::time::Instant>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            running: AtomicBool::new(false),
            positioned: tokio::sync::watch::channel(false).0,
            streams: Default::default(),
            complete_at: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }
}

/// One of a user's open streams, counted until dropped.
pub struct Stream {
    auth: AuthContext,
    user_id: uuid::Uuid,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut streams = self.auth.live.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = streams.get_mut(&self.user_id) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.user_id);
            }
        }
    }
}

impl Live {
    /// Counts a stream of `user_id`: `RATE_LIMITED` past `STREAMS_PER_USER`.
    pub(crate) fn open(&self, auth: &AuthContext, user_id: uuid::Uuid) -> Result<Stream, AuthError> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let open = streams.entry(user_id).or_default();
        if *open >= STREAMS_PER_USER {
            return Err(AuthError::RateLimited { retry_after: 5 });
        }
        *open += 1;
        Ok(Stream { auth: auth.clone(), user_id })
    }

    /// How far behind the broadcast may be: an event committed longer ago
    /// than this has been sent. Grows while the database cannot be read or
    /// a running transaction holds a committed event back (PostgreSQL).
    pub fn lag(&self) -> Duration {
        self.complete_at.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    fn complete_at(&self, at: tokio::time::Instant) {
        *self.complete_at.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Waits (at most 2 s) until the poller knows where the record ends;
    /// whether it does.
    pub(crate) async fn positioned(&self) -> bool {
        let mut ready = self.positioned.subscribe();
        matches!(
            tokio::time::timeout(Duration::from_secs(2), ready.wait_for(|ready| *ready)).await,
            Ok(Ok(_))
        )
    }
}

impl Live {
    /// A receiver of every event committed from now on (the poller starts
    /// if it is not running).
    pub(crate) fn subscribe(&self, auth: &AuthContext) -> broadcast::Receiver<Arc<events::Model>> {
        let receiver = self.sender.subscribe();
        if !self.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(poll(auth.clone()));
        }
        receiver
    }
}

/// Follows the record while anyone listens, then stops.
async fn poll(auth: AuthContext) {
    let live = &auth.live;
    let mut at = loop {
        match latest(&auth.db).await {
            Ok(at) => break at,
            Err(e) => {
                e.report();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    live.complete_at(tokio::time::Instant::now());
    live.positioned.send_replace(true);
    // The events running transactions hold back, each with when the
    // poller first saw it held: the oldest sighting is how far behind it is.
    let mut held: std::collections::HashMap<Position, tokio::time::Instant> = Default::default();
    let mut started = tokio::time::Instant::now();
    loop {
        if live.sender.receiver_count() == 0 {
            live.positioned.send_replace(false);
            live.running.store(false, Ordering::SeqCst);
            // A subscriber that came meanwhile saw it running: stay.
            if live.sender.receiver_count() == 0 || live.running.swap(true, Ordering::SeqCst) {
                return;
            }
            live.positioned.send_replace(true);
        }
        let previous = std::mem::replace(&mut started, tokio::time::Instant::now());
        match read::after(&auth.db, at, BATCH).await {
            Ok(batch) => {
                let full = batch.len() as u64 == BATCH;
                for event in batch {
                    at = Position::of(&event);
                    let _ = live.sender.send(Arc::new(event));
                }
                match read::held_back(&auth.db, HELD_SEEN).await {
                    Ok((now_held, oldest)) => {
                        // First seen now, it may have been held since the
                        // previous read began.
                        held = now_held
                            .into_iter()
                            .map(|p| (p, held.get(&p).copied().unwrap_or(previous)))
                            .collect();
                        // And by the database's record of when it occurred:
                        // what this poller never saw (it started later, or
                        // past the first `HELD_SEEN`) still counts.
                        let recorded = oldest.and_then(|at| (auth.clock.now() - at).to_std().ok());
                        let recorded = recorded.and_then(|age| started.checked_sub(age));
                        let complete = held.values().copied().chain(recorded).chain([started]).min();
                        if !full {
                            live.complete_at(complete.unwrap_or(started));
                        }
                    }
                    Err(e) => e.report(),
                }
            }
            Err(e) => e.report(),
        }
        // At the next tick, or at once when a user or session changed
        // (here, or on another instance through the session channel); at
        // most one read per `GAP` however many changes come.
        tokio::time::sleep(GAP).await;
        tokio::select! {
            _ = tokio::time::sleep(TICK - GAP) => {}
            _ = auth.sessions.changed().notified() => {}
        }
    }
}

/// Where the record ends now, among events no running transaction can
/// still add before (see `read::after`).
async fn latest(conn: &impl ConnectionTrait) -> Result<Position, AuthError> {
    let last = read::only_final(events::Entity::find(), conn)
        .order_by_desc(events::Column::Tx)
        .order_by_desc(events::Column::Id)
        .limit(1)
        .one(conn)
        .await?;
    Ok(last.as_ref().map(Position::of).unwrap_or_default())
}
