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
use sea_orm::{
    ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use tokio::sync::broadcast;

use super::read::{self, Position};
use crate::{AuthContext, error::AuthError};

/// How often the poller reads the record while someone listens.
pub const TICK: Duration = Duration::from_millis(50);
/// Events a slow subscriber may fall behind by before it catches up from
/// the database.
const BUFFER: usize = 1024;

pub struct Live {
    sender: broadcast::Sender<Arc<events::Model>>,
    running: AtomicBool,
}

impl Default for Live {
    fn default() -> Self {
        Self { sender: broadcast::channel(BUFFER).0, running: AtomicBool::new(false) }
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
    loop {
        if live.sender.receiver_count() == 0 {
            live.running.store(false, Ordering::SeqCst);
            // A subscriber that came meanwhile saw it running: stay.
            if live.sender.receiver_count() == 0 || live.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        match read::after(&auth.db, at, 500).await {
            Ok(batch) => {
                for event in batch {
                    at = Position::of(&event);
                    let _ = live.sender.send(Arc::new(event));
                }
            }
            Err(e) => e.report(),
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Where the record ends now, among events no running transaction can
/// still add before (see `read::after`).
async fn latest(conn: &impl ConnectionTrait) -> Result<Position, AuthError> {
    let mut query = events::Entity::find();
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        query = query.filter(Expr::cust("tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"));
    }
    let last =
        query.order_by_desc(events::Column::Tx).order_by_desc(events::Column::Id).limit(1).one(conn).await?;
    Ok(last.as_ref().map(Position::of).unwrap_or_default())
}
