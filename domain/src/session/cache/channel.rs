//! How revocations made by other instances reach this one's session cache
//! on PostgreSQL: database triggers (migration 9) `NOTIFY` the id of every
//! user whose row or sessions changed, on commit, whoever changed them
//! (another instance, `authgate cleanup`, an operator's SQL); each instance
//! `LISTEN`s on a connection of its own and stamps that user.
//!
//! Fail safe: until the `LISTEN` is in place, and from the moment the
//! connection is lost, the cache is bypassed and flushed (see
//! `SessionCache::set_live`). A connection can also die silently (a NAT
//! forgets it): every `AUTHGATE_SESSION_CHANNEL_PING` the instance sends
//! itself a ping over its ordinary pool and must hear it on the listening
//! connection within as long again, or it treats the channel as lost.

use std::{
    sync::{Weak, atomic::Ordering::Relaxed},
    time::Duration,
};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::session::cache::{Inner, SessionCache};

/// The channel the triggers notify on.
pub(crate) const CHANNEL: &str = "authgate_sessions";

/// How many of migration 9's triggers exist.
const TRIGGERS: &str = "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname IN \
     ('users_notify_update', 'users_notify_delete', 'sessions_notify_update', 'sessions_notify_delete')";

/// How long connecting and subscribing may take (twice this in all).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts listening for `cache`, checking the channel every `ping`; the
/// task ends when the cache is dropped.
pub(crate) fn spawn(cache: &SessionCache, options: PgConnectOptions, db: DatabaseConnection, ping: Duration) {
    let Some(inner) = cache.inner() else { return };
    let (stop, stopped) = oneshot::channel();
    if let Ok(mut slot) = inner.stop.lock() {
        *slot = Some(stop);
    }
    tokio::spawn(run(std::sync::Arc::downgrade(inner), options, db, ping, stopped));
}

async fn run(
    cache: Weak<Inner>,
    options: PgConnectOptions,
    db: DatabaseConnection,
    ping: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut wait = Duration::from_millis(100);
    loop {
        let ended = tokio::select! {
            _ = &mut stopped => return,
            ended = subscribe_and_listen(&cache, &options, &db, ping) => ended,
        };
        let Some(inner) = cache.upgrade() else { return };
        let was_live = inner.is_live();
        inner.set_live(false);
        match ended {
            Ended::Lost(reason) if was_live => {
                metrics::counter!("authgate_session_channel_lost_total").increment(1);
                tracing::warn!(%reason, "session cache bypassed: the revocation channel was lost; reconnecting");
                wait = Duration::from_millis(100);
            }
            Ended::Lost(reason) | Ended::NotSubscribed(reason) => {
                tracing::warn!(%reason, retry_in = ?wait, "session cache bypassed: cannot listen for revocations yet");
                wait = (wait * 2).min(Duration::from_secs(8));
            }
        }
        drop(inner);
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

enum Ended {
    NotSubscribed(String),
    Lost(String),
}

/// Connects, `LISTEN`s, turns the cache on, then applies notifications
/// until the connection is lost.
async fn subscribe_and_listen(
    cache: &Weak<Inner>,
    options: &PgConnectOptions,
    db: &DatabaseConnection,
    every: Duration,
) -> Ended {
    let subscribed = async {
        // A pool of one, so the listener's reconnection stays ours to decide.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        let triggers: i64 = sqlx::query_scalar(TRIGGERS).fetch_one(&mut listener).await?;
        Ok::<_, sqlx::Error>((listener, triggers))
    };
    let mut listener = match tokio::time::timeout(CONNECT_TIMEOUT * 2, subscribed).await {
        Ok(Ok((listener, 4))) => listener,
        // A database not yet migrated (`AUTHGATE_AUTO_MIGRATE=false`): no
        // instance would announce its changes. Bypassed until it is.
        Ok(Ok((_, found))) => {
            return Ended::NotSubscribed(format!(
                "{found} of the 4 triggers that announce changes exist: apply migration m20261202_000009"
            ));
        }
        Ok(Err(e)) => return Ended::NotSubscribed(e.to_string()),
        Err(_) => return Ended::NotSubscribed("no answer in time".to_owned()),
    };
    match cache.upgrade() {
        Some(inner) => inner.set_live(true),
        None => return Ended::Lost("cache dropped".to_owned()),
    }
    tracing::info!(channel = CHANNEL, "session cache on: listening for revocations");
    let me = Uuid::new_v4().simple().to_string();
    let mut heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(every);
    let unsent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    let payload = notification.payload();
                    if payload == me {
                        heard = tokio::time::Instant::now();
                    } else if let Ok(user_id) = Uuid::parse_str(payload) {
                        let Some(inner) = cache.upgrade() else { return Ended::Lost("cache dropped".to_owned()) };
                        inner.stamp(user_id);
                    }
                }
                Ok(None) => return Ended::Lost("connection closed".to_owned()),
                Err(e) => return Ended::Lost(e.to_string()),
            },
            _ = ping.tick() => {
                // A ping that could not be sent (the database is down for
                // everyone) proves nothing about the channel either way.
                if unsent.swap(false, Relaxed) {
                    heard = tokio::time::Instant::now();
                }
                // A ping is sent every `every` and must be heard within as long again.
                if heard.elapsed() > every * 2 {
                    return Ended::Lost("own ping not heard back".to_owned());
                }
                // Over the ordinary pool, off this loop: notifications keep
                // being applied while it waits for a connection.
                let (db, me, unsent, cache) = (db.clone(), me.clone(), unsent.clone(), cache.clone());
                tokio::spawn(async move {
                    match send_ping(&db, &me).await {
                        Ok(()) => {
                            if let Some(inner) = cache.upgrade() {
                                inner.reached();
                            }
                        }
                        Err(_) => unsent.store(true, Relaxed),
                    }
                });
            }
        }
    }
}

async fn send_ping(db: &DatabaseConnection, me: &str) -> Result<(), sea_orm::DbErr> {
    let notify = Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), me.into()],
    );
    db.execute(notify).await.map(|_| ())
}
