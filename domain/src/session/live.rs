//! A session following its user's events as they happen (the
//! `securityEvents` subscription). It ends with the session: when the
//! session is signed out or revoked (the event that says so is the last
//! one sent), when the account is deleted, and when a periodic check finds
//! the session gone (expired, or ended in a way that left no event of its
//! own): a thief's session ended by the owner hears nothing more.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use entity::events;
use futures_util::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use uuid::Uuid;

use super::CurrentSession;
use crate::{AuthContext, error::AuthError, events::Kind};

/// How often a quiet subscription checks that its session still lives.
const RECHECK: Duration = Duration::from_secs(5);
/// At most this many older events are sent on resuming (`after`).
const BACKLOG: u64 = 100;

struct Following {
    auth: AuthContext,
    user_id: Uuid,
    session_id: Uuid,
    receiver: Receiver<Arc<events::Model>>,
    /// Counted among the user's open streams while this lives.
    _counted: crate::events::live::Stream,
    pending: VecDeque<events::Model>,
    sent: HashSet<i64>,
    done: bool,
    /// When to check that the session lives (however busy the record is).
    check_at: tokio::time::Instant,
}

/// The user's events from now on, after the events since `after` (an
/// event id it saw last: nothing is missed across a reconnect, within the
/// last 100).
pub async fn follow(
    auth: &AuthContext,
    current: &CurrentSession,
    after: Option<i64>,
) -> Result<impl Stream<Item = events::Model> + use<>, AuthError> {
    // Listening first, then the user's latest events: one committed in
    // between is in both, and sent once. Those already committed are not
    // news (the poller may still be behind them: it waits for older
    // transactions), only those after `after` are sent, oldest first.
    let counted = auth.live.open(auth, current.user.id)?;
    let receiver = auth.live.subscribe(auth);
    if !auth.live.positioned().await {
        return Err(AuthError::ServiceUnavailable);
    }
    let recent = latest(auth, current.user.id).await?;
    let sent = recent.iter().map(|e| e.id).collect();
    let pending = match after {
        Some(after) => recent.into_iter().rev().filter(|e| e.id > after).collect(),
        None => VecDeque::new(),
    };
    let following = Following {
        auth: auth.clone(),
        user_id: current.user.id,
        session_id: current.session.id,
        receiver,
        _counted: counted,
        pending,
        sent,
        done: false,
        check_at: tokio::time::Instant::now() + RECHECK,
    };
    Ok(futures_util::stream::unfold(following, |mut f| async move {
        let event = f.next().await?;
        Some((event, f))
    }))
}

/// The user's latest events, newest first.
async fn latest(auth: &AuthContext, user_id: Uuid) -> Result<Vec<events::Model>, AuthError> {
    Ok(events::Entity::find()
        .filter(events::Column::SubjectUserId.eq(user_id))
        .order_by_desc(events::Column::Id)
        .limit(BACKLOG)
        .all(&auth.db)
        .await?)
}

async fn since(auth: &AuthContext, user_id: Uuid, after: i64) -> Result<VecDeque<events::Model>, AuthError> {
    Ok(events::Entity::find()
        .filter(events::Column::SubjectUserId.eq(user_id))
        .filter(events::Column::Id.gt(after))
        .order_by_asc(events::Column::Id)
        .limit(BACKLOG)
        .all(&auth.db)
        .await?
        .into())
}

impl Following {
    async fn next(&mut self) -> Option<events::Model> {
        if self.done {
            return None;
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.done = self.ends_here(&event);
                return Some(event);
            }
            // Due however busy the record is (a ready receiver would win the race below).
            if tokio::time::Instant::now() >= self.check_at && !self.still_alive().await {
                return None;
            }
            let received = tokio::time::timeout_at(self.check_at, self.receiver.recv()).await;
            match received {
                Ok(Ok(event)) => {
                    if event.subject_user_id == Some(self.user_id) && self.sent.insert(event.id) {
                        self.pending.push_back((*event).clone());
                    }
                }
                // Too slow a reader: catch up from the database.
                Ok(Err(RecvError::Lagged(_))) => {
                    if !self.still_alive().await {
                        return None;
                    }
                    let last = self.sent.iter().max().copied().unwrap_or(0);
                    let missed = since(&self.auth, self.user_id, last).await.ok()?;
                    self.pending.extend(missed.into_iter().filter(|e| self.sent.insert(e.id)));
                }
                Ok(Err(RecvError::Closed)) => return None,
                Err(_due) => {
                    if !self.still_alive().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Whether the session lives (a database error counts as alive: the
    /// next check decides); schedules the next check.
    async fn still_alive(&mut self) -> bool {
        self.check_at = tokio::time::Instant::now() + RECHECK;
        super::still_counts(&self.auth, self.user_id, self.session_id).await.unwrap_or(true)
    }

    /// The last event this subscription sends: its own session ended, or
    /// the account is gone.
    fn ends_here(&self, event: &events::Model) -> bool {
        (event.kind == Kind::SessionRevoked.as_str() && event.session_id == Some(self.session_id))
            || event.kind == Kind::UserDeleted.as_str()
    }
}
