//! Where rate-limit counters live: the database by default (works on SQLite
//! and PostgreSQL), or Redis when `REDIS_URL` is set. Either way every
//! instance shares them. A store that cannot be reached fails closed.

use chrono::{DateTime, Utc};
use entity::rate_limits;
use redis::aio::ConnectionManager;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict, Query},
};
use tokio::sync::OnceCell;

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
    client: redis::Client,
    prefix: String,
    /// Connected on first use; reconnects by itself after a failure.
    connection: OnceCell<ConnectionManager>,
}

impl RedisCounters {
    pub(crate) fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        Ok(Self { client: redis::Client::open(url)?, prefix: prefix.to_owned(), connection: OnceCell::new() })
    }

    async fn connection(&self) -> Result<ConnectionManager, AuthError> {
        // Fail fast, and so closed: redis-rs retries a first connection six
        // times with backoff (about ten seconds against a refused port),
        // which would hold every sign-in that long during an outage.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(std::time::Duration::from_millis(500))
            .set_connection_timeout(Some(std::time::Duration::from_secs(1)));
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .cloned()
            .map_err(unavailable)
    }

    fn key(&self, key: &str, start: i64) -> String {
        format!("{}{key}:{start}", self.prefix)
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
        let mut conn = self.connection().await?;
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire_at(&key, start + window_secs)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(count)
    }

    async fn clear(&self, key: &str, start: i64) -> Result<(), AuthError> {
        let mut conn = self.connection().await?;
        redis::cmd("DEL").arg(self.key(key, start)).query_async::<()>(&mut conn).await.map_err(unavailable)
    }
}
