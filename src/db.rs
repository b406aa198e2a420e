//! Connecting to SQLite or PostgreSQL with pools we configure ourselves
//! (SQLite pragmas, pool limits), handed to SeaORM.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::{
    Connection,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::{Config, redact_url};

pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url.as_str();
    let shown = redact_url(url);
    if url.starts_with("sqlite:") {
        connect_sqlite(config).await.with_context(|| format!("cannot open {shown}"))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        connect_postgres(config).await.with_context(|| format!("cannot connect to {shown}"))
    } else {
        anyhow::bail!("unsupported DATABASE_URL {shown}: use sqlite:// or postgres://")
    }
}

async fn connect_sqlite(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let options = SqliteConnectOptions::from_str(&config.database_url)?
        .create_if_missing(true)
        // WAL lets readers run beside the one writer; NORMAL is durable in WAL mode.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        // A local file cannot hang up: no ping round trip on every checkout.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    tracing::info!(
        file = %pool.connect_options().get_filename().display(),
        pool = config.db_max_connections,
        "connected to SQLite"
    );
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

async fn connect_postgres(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let options = PgConnectOptions::from_str(&config.database_url)?;
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        // Close idle connections before a serverless provider drops them under us.
        .idle_timeout(Duration::from_secs(240))
        .max_lifetime(Duration::from_secs(30 * 60))
        // Ping only connections that sat idle (the ones a proxy or a suspended
        // compute may have dropped): a busy pool pays no extra round trip.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(30) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options.clone())
        .await?;
    tracing::info!(
        host = options.get_host(),
        database = options.get_database().unwrap_or("(default)"),
        pool = config.db_max_connections,
        "connected to PostgreSQL"
    );
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("database migration failed")
}
