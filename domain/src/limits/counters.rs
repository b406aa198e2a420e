//! Where rate-limit counters live: the database by default (works on SQLite
//! and PostgreSQL), or Redis when `REDIS_URL` is set. Either way every
//! instance shares them. A store that cannot be reached fails closed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::rate_limits;
use redis::aio::ConnectionManager;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict, Query},
};

use crate::error::AuthError;

#[async_trait::async_trait]
pub(crate) trait CounterStore: Send + Sync + 'static {
    /// Adds one to the counter of `key` in the window of `window_secs` opened
    /// at `start` (unix seconds) and returns the new count.
    async fn increment(
        &self,
        key: &str,
        start: i64,
        window_secs: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, AuthError>;

    /// Forgets the counters of `key`.
    async fn clear(&self, key: &str, start: i64) -> Result<(), AuthError>;
}

/// Counters in the `rate_limits` table: one atomic upsert per attempt.
pub(crate) struct DbCounters(pub DatabaseConnection);

#[async_trait::async_trait]
impl CounterStore for DbCounters {
    async fn increment(
        &self,
        key: &str,
        start: i64,
        _window_secs: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, AuthError> {
        use rate_limits::Column;
        let insert = Query::insert()
            .into_table(rate_limits::Entity)
            .columns([Column::Key, Column::WindowStart, Column::Count, Column::ExpiresAt])
            .values_panic([key.into(), start.into(), 1i64.into(), expires_at.into()])
            .on_conflict(
                OnConflict::columns([Column::Key, Column::WindowStart])
                    .value(Column::Count, Expr::col((rate_limits::Entity, Column::Count)).add(1))
                    .to_owned(),
            )
            .returning_col(Column::Count)
            .to_owned();
        let statement = self.0.get_database_backend().build(&insert);
        let row = self
            .0
            .query_one(statement)
            .await?
            .ok_or_else(|| AuthError::internal("counting an attempt", "the upsert returned no row"))?;
        let count: i64 = row.try_get("", "count")?;
        Ok(count.max(0) as u64)
    }

    async fn clear(&self, key: &str, _start: i64) -> Result<(), AuthError> {
        rate_limits::Entity::delete_many().filter(rate_limits::Column::Key.eq(key)).exec(&self.0).await?;
        Ok(())
    }
}

/// Counters in Redis: `INCR` and `EXPIREAT` in one transaction; keys
/// vanish by themselves when their window ends.
pub(crate) struct RedisCounters {
    prefix: String,
    /// One manager for every request: it connects on first use, and
    /// reconnects by itself after a failure, one attempt for all callers.
    connection: ConnectionManager,
}

/// How long a counter may take, connection included: past it the guarded
/// operation fails closed (`SERVICE_UNAVAILABLE`) rather than holding a
/// sign-in while Redis is down, refused or silently dropping packets.
const DEADLINE: Duration = Duration::from_secs(1);

impl RedisCounters {
    pub(crate) fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        // redis-rs retries a connection six times with backoff by default
        // (about ten seconds); the deadline above bounds each use anyway.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200))
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { prefix: prefix.to_owned(), connection })
    }

    fn key(&self, key: &str, start: i64) -> String {
        format!("{}{key}:{start}", self.prefix)
    }

    /// Runs `command` within the deadline.
    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Pipeline) -> Result<T, AuthError> {
        let mut conn = self.connection.clone();
        match tokio::time::timeout(DEADLINE, command.query_async(&mut conn)).await {
            Ok(answer) => answer.map_err(unavailable),
            Err(_) => {
                tracing::warn!(deadline = ?DEADLINE, "redis unavailable: no answer within the deadline");
                Err(AuthError::ServiceUnavailable)
            }
        }
    }
}

fn unavailable(e: redis::RedisError) -> AuthError {
    tracing::warn!(error = %e, "redis unavailable");
    AuthError::ServiceUnavailable
}

#[async_trait::async_trait]
impl CounterStore for RedisCounters {
    async fn increment(
        &self,
        key: &str,
        start: i64,
        window_secs: i64,
        _expires_at: DateTime<Utc>,
    ) -> Result<u64, AuthError> {
        let key = self.key(key, start);
        let mut pipe = redis::pipe();
        pipe.atomic().incr(&key, 1).expire_at(&key, start + window_secs).ignore();
        let (count,): (u64,) = self.run(&pipe).await?;
        Ok(count)
    }

    async fn clear(&self, key: &str, start: i64) -> Result<(), AuthError> {
        let mut pipe = redis::pipe();
        pipe.del(self.key(key, start)).ignore();
        self.run::<()>(&pipe).await
    }
}
