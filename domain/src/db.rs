//! Connecting to SQLite or PostgreSQL with pools we configure ourselves
//! (SQLite pragmas, serverless-friendly pool limits, start-up retry),
//! handed to SeaORM.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::{
    Connection,
    postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgSslMode},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::{Config, ExposeSecret, redact_url};

/// How long a SQLite writer waits for the lock before `database is locked`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url.expose_secret();
    let shown = redact_url(url);
    if url.starts_with("sqlite:") {
        connect_sqlite(config).await.with_context(|| format!("cannot open {shown}"))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        connect_postgres(config).await
    } else {
        anyhow::bail!("unsupported DATABASE_URL {shown}: use sqlite:// or postgres://")
    }
}

async fn connect_sqlite(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let options = SqliteConnectOptions::from_str(config.database_url.expose_secret())?
        .create_if_missing(true)
        // WAL lets readers run beside the one writer; NORMAL is durable in WAL mode.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
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

/// Connection-string parameters sqlx does not take, handled here instead of
/// being dropped silently.
struct Extras {
    channel_binding: Option<String>,
    pgbouncer: bool,
}

/// Splits `channel_binding` and `pgbouncer` off the URL's query.
fn split_extras(url: &str) -> (String, Extras) {
    let mut extras = Extras { channel_binding: None, pgbouncer: false };
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), extras);
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "channel_binding" => {
                    extras.channel_binding = Some(value.to_owned());
                    false
                }
                "pgbouncer" => {
                    extras.pgbouncer = value == "true";
                    false
                }
                _ => true,
            }
        })
        .collect();
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (url, extras)
}

async fn connect_postgres(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let shown = redact_url(config.database_url.expose_secret());
    let (url, extras) = split_extras(config.database_url.expose_secret());
    let options =
        PgConnectOptions::from_str(&url).with_context(|| format!("invalid DATABASE_URL {shown}"))?;
    if let Some(mode) = &extras.channel_binding {
        // sqlx authenticates with SCRAM-SHA-256 but cannot bind it to the TLS
        // channel (SCRAM-SHA-256-PLUS). Neon accepts that; say so instead of pretending.
        tracing::warn!(
            channel_binding = %mode,
            "channel_binding is not supported by the driver: authenticating with SCRAM-SHA-256 \
             without channel binding; TLS still follows sslmode"
        );
    }
    // sqlx names its prepared statements: behind a transaction-mode pooler
    // that only works when the pooler tracks them (PgBouncer >= 1.21 with
    // max_prepared_statements > 0, as Neon's `-pooler` endpoints run).
    let pooled = extras.pgbouncer || options.get_host().contains("-pooler");
    if pooled {
        tracing::info!(
            "transaction-mode pooler: it must support prepared statements \
             (PgBouncer >= 1.21 with max_prepared_statements > 0; Neon's pooler does)"
        );
    }
    let pool_options = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .min_connections(config.db_min_connections)
        .acquire_timeout(config.db_acquire_timeout)
        // Close idle connections before a serverless provider drops them under us.
        .idle_timeout(config.db_idle_timeout)
        .max_lifetime(config.db_max_lifetime)
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
        });
    let pool = connect_with_retry(pool_options, options.clone(), config, &shown).await?;
    tracing::info!(
        host = options.get_host(),
        port = options.get_port(),
        database = options.get_database().unwrap_or("(default)"),
        tls = ssl_mode(options.get_ssl_mode()),
        pool = config.db_max_connections,
        transaction_pooler = pooled,
        "connected to PostgreSQL"
    );
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

fn ssl_mode(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// While the database is unreachable or cold, retry with exponential backoff
/// and jitter until `db_connect_deadline`; errors that waiting cannot fix
/// (authentication, a missing database, TLS) end it at once. Each attempt
/// is one plain connection, so its error says what went wrong (a pool would
/// only report that it timed out).
async fn connect_with_retry(
    pool: PgPoolOptions,
    options: PgConnectOptions,
    config: &Config,
    shown: &str,
) -> anyhow::Result<PgPool> {
    use backon::Retryable;
    let started = std::time::Instant::now();
    // A cold serverless compute may take several seconds to answer at all.
    let patience = config.db_acquire_timeout.max(Duration::from_secs(10));
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let attempt = || async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(patience, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Ok(())
            }
            Ok(Err(error)) => {
                let (class, retry, hint) = classify(&error);
                Err(Failed { class, retry, hint, error: error.to_string() })
            }
            Err(_) => Err(Failed {
                class: "timeout",
                retry: true,
                hint: "the server did not answer in time",
                error: format!("no answer in {patience:?}"),
            }),
        }
    };
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(8))
        .without_max_times();
    let deadline = config.db_connect_deadline;
    let reached = attempt
        .retry(backoff)
        .when(|failed| failed.retry)
        // The deadline counts the attempts too (each may wait `patience`):
        // past it, stop; before it, a jittered wait (0.75–1.25×) cut to the
        // time left, then one more attempt.
        .adjust(|_, wait| {
            let left = deadline.saturating_sub(started.elapsed());
            let jitter = rand::random::<f64>() * 0.5 + 0.75;
            wait.filter(|_| !left.is_zero()).map(|wait| wait.mul_f64(jitter).min(left))
        })
        .notify(|failed, wait| {
            let (class, error) = (failed.class, &failed.error);
            tracing::warn!(class, error = %error, retry_in = ?wait, "database not reachable yet");
        })
        .await;
    if let Err(Failed { class, hint, error, .. }) = reached {
        anyhow::bail!(
            "cannot connect to {shown} after {} attempt(s) in {:.1?}: {class}: {error} ({hint})",
            attempts.into_inner(),
            started.elapsed()
        );
    }
    Ok(pool.connect_with(options).await?)
}

/// One failed connection attempt, classified.
struct Failed {
    class: &'static str,
    retry: bool,
    hint: &'static str,
    error: String,
}

/// Whether the database answers a fresh connection beside the pool (a
/// `SELECT 1` within `within`). A pool whose every connection is held by
/// long work looks, from a request that waited for one, just like a
/// database whose connects hang; this tells them apart. A SQLite file is
/// always there.
pub(crate) async fn answers(db: &DatabaseConnection, within: Duration) -> bool {
    use sqlx::{ConnectOptions, Connection};
    let DatabaseConnection::SqlxPostgresPoolConnection(_) = db else { return true };
    let options = db.get_postgres_connection_pool().connect_options();
    let probe = async {
        let mut conn = match options.connect().await {
            Ok(conn) => conn,
            // "too many clients": the server is there, only full.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => return Some(true),
            Err(_) => return None,
        };
        let answered = sqlx::query("SELECT 1").execute(&mut conn).await.is_ok();
        let _ = conn.close().await;
        Some(answered)
    };
    tokio::time::timeout(within, probe).await.ok().flatten().unwrap_or(false)
}

/// The class of a connection error, whether waiting may help, and a hint.
pub(crate) fn classify(error: &sqlx::Error) -> (&'static str, bool, &'static str) {
    match error {
        sqlx::Error::Io(e) => {
            if rustls_rejected_certificate(e) {
                ("tls", false, "the server's certificate did not verify: check sslrootcert and the host name")
            } else if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ("tcp connection refused", true, "is PostgreSQL running and listening on that host and port?")
            } else if e.kind() == std::io::ErrorKind::TimedOut {
                ("timeout", true, "is the host reachable from here?")
            } else if name_not_resolved(e) {
                ("dns", true, "check the host name in DATABASE_URL")
            } else {
                ("network", true, "the connection failed or was reset")
            }
        }
        sqlx::Error::Tls(_) => ("tls", false, "check sslmode and sslrootcert; does the server offer TLS?"),
        sqlx::Error::PoolTimedOut => ("timeout", true, "the server did not answer in time"),
        sqlx::Error::Configuration(_) => ("configuration", false, "check DATABASE_URL"),
        sqlx::Error::Database(e) => match e.code().as_deref() {
            Some("28P01" | "28000") => ("authentication", false, "check the user name and password"),
            Some("3D000") => ("database does not exist", false, "create it or fix the name in DATABASE_URL"),
            Some("57P03" | "53300") => ("server not ready", true, "the server is starting or full"),
            _ => ("database error", false, "see the message"),
        },
        _ => ("connection", true, "see the message"),
    }
}

/// rustls's quirk: a server certificate it cannot verify reaches us as a
/// plain I/O error, marked only by its message. (Tested end to end in
/// `outage::verify_full_accepts_the_right_certificate_and_refuses_another`.)
fn rustls_rejected_certificate(e: &std::io::Error) -> bool {
    e.to_string().contains("certificate")
}

/// The resolver's quirk: a host name that does not resolve is an I/O error
/// of kind `Other`, told apart only by the message getaddrinfo gives.
fn name_not_resolved(e: &std::io::Error) -> bool {
    let text = e.to_string();
    text.contains("lookup") || text.contains("resolve") || text.contains("not known")
}

/// The SQLite file `DATABASE_URL` names (`None` for PostgreSQL).
pub(crate) fn sqlite_file(config: &Config) -> Option<std::path::PathBuf> {
    let url = config.database_url.expose_secret();
    let options = url.starts_with("sqlite:").then(|| SqliteConnectOptions::from_str(url).ok())??;
    Some(options.get_filename().to_owned())
}

/// Where the session cache listens for other instances' revocations:
/// `AUTHGATE_DATABASE_LISTEN_URL`, else `DATABASE_URL` (a Neon `-pooler`
/// host becomes its direct host, as Neon names them). `None` when only a
/// transaction-mode pooler is known: it cannot carry `LISTEN` (a session's
/// `LISTEN` ends with its transaction's server connection).
pub(crate) fn listen_options(config: &Config) -> anyhow::Result<Option<PgConnectOptions>> {
    let given = config.database_listen_url.as_ref();
    let url = given.unwrap_or(&config.database_url).expose_secret();
    let (stripped, extras) = split_extras(url);
    let mut options = PgConnectOptions::from_str(&stripped)
        .with_context(|| format!("invalid AUTHGATE_DATABASE_LISTEN_URL {}", redact_url(url)))?;
    if given.is_none() {
        let host = options.get_host().to_owned();
        if host.contains("-pooler") {
            options = options.host(&host.replacen("-pooler", "", 1));
        } else if extras.pgbouncer {
            return Ok(None);
        }
    }
    Ok(Some(options.application_name("authgate-listener")))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("database migration failed")
}

/// Whether the database answers a ping within `within` (`/health/ready`).
pub async fn ready(auth: &crate::AuthContext, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, auth.db.ping()).await, Ok(Ok(())))
}

/// The pool's connections: (open, idle), for the metrics.
pub fn pool_stats(auth: &crate::AuthContext) -> (u32, u32) {
    use sea_orm::ConnectionTrait;
    let db = &auth.db;
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        sea_orm::DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {

    /// On SQLite a second write transaction waits for the first's turn to
    /// end (it would otherwise wait in SQLite's busy sleeps).
    #[tokio::test]
    async fn sqlite_write_transactions_take_turns() {
        use super::Writers;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let writers = Writers::for_database(&db);
        let (first, txn) = writers.begin(&db).await.unwrap();
        let (w, d) = (writers.clone(), db.clone());
        let second = tokio::spawn(async move { w.begin(&d).await.map(|(turn, _)| turn.0.is_some()) });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!second.is_finished(), "waits for the first turn");
        txn.rollback().await.unwrap();
        drop(first);
        assert!(second.await.unwrap().unwrap(), "then has its own turn");
    }
    use super::{listen_options, split_extras};
    use crate::config::Config;

    #[test]
    fn neon_parameters_are_taken_off_the_url() {
        let (url, extras) = split_extras(
            "postgresql://alice:p%40ss@ep-x-pooler.eu.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
        );
        assert_eq!(url, "postgresql://alice:p%40ss@ep-x-pooler.eu.aws.neon.tech/neondb?sslmode=require");
        assert_eq!(extras.channel_binding.as_deref(), Some("require"));
        let (url, extras) = split_extras("postgres://h/db?pgbouncer=true");
        assert_eq!((url.as_str(), extras.pgbouncer), ("postgres://h/db", true));
    }

    #[test]
    fn the_listener_reaches_the_server_past_a_pooler() {
        let neon = Config::for_database("postgres://a:b@ep-x-pooler.eu.aws.neon.tech/db?sslmode=require");
        let options = listen_options(&neon).unwrap().expect("derived");
        assert_eq!(options.get_host(), "ep-x.eu.aws.neon.tech");
        let pooler = Config::for_database("postgres://a@127.0.0.1:6432/db?pgbouncer=true");
        assert!(listen_options(&pooler).unwrap().is_none(), "no LISTEN through a transaction pooler");
        let mut direct = pooler.clone();
        direct.database_listen_url = Some("postgres://a@127.0.0.1:5432/db".into());
        assert_eq!(listen_options(&direct).unwrap().expect("given").get_port(), 5432);
    }
}

/// SQLite takes one writer at a time; a second one waits in SQLite's busy
/// handler, which sleeps 1, 2, 5, … 100 ms between tries (measured: a
/// sign-out's transaction under 16 concurrent ones went from 2744 to 986
/// per second, p99 136 ms). Write transactions of this process take turns
/// here instead and are woken the moment the previous one ends. PostgreSQL
/// locks rows, not the database: no turns there.
#[derive(Clone, Default)]
pub(crate) struct Writers(Option<std::sync::Arc<tokio::sync::Mutex<()>>>);

/// A write transaction's turn: held until the transaction has ended.
pub(crate) struct WriteTurn(#[allow(dead_code)] Option<tokio::sync::OwnedMutexGuard<()>>);

impl Writers {
    pub(crate) fn for_database(db: &DatabaseConnection) -> Self {
        use sea_orm::ConnectionTrait;
        match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => Self(Some(Default::default())),
            _ => Self(None),
        }
    }

    /// Waits for this process's turn to write (SQLite) and begins the
    /// transaction. A turn not given within SQLite's own busy timeout is
    /// not waited for any longer (a transaction that began another inside
    /// it would otherwise wait for itself): SQLite's lock still keeps it
    /// correct.
    pub(crate) async fn begin(
        &self,
        db: &DatabaseConnection,
    ) -> Result<(WriteTurn, sea_orm::DatabaseTransaction), sea_orm::DbErr> {
        use sea_orm::TransactionTrait;
        let turn = match &self.0 {
            Some(gate) => tokio::time::timeout(SQLITE_BUSY_TIMEOUT, gate.clone().lock_owned()).await.ok(),
            None => None,
        };
        Ok((WriteTurn(turn), db.begin().await?))
    }
}
