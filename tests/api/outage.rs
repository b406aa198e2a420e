//! PostgreSQL going away and coming back, through a fault-injecting TCP
//! proxy between authgate and the database.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use domain::config::ExposeSecret;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::common::{TestApp, str_of};

/// Forwards loopback connections to PostgreSQL; can delay, cut and stall them.
pub struct Proxy {
    pub addr: SocketAddr,
    /// New connections are held, never forwarded (a hung network).
    pub stall: Arc<AtomicBool>,
    /// New connections are closed at once (a server that is down).
    pub refuse: Arc<AtomicBool>,
    /// Open connections stop forwarding, without a word to either side (a
    /// NAT that forgot them); what they sent meanwhile follows once thawed.
    pub freeze: Arc<AtomicBool>,
    /// Milliseconds to wait before forwarding the next connection (a cold start).
    delay_ms: Arc<AtomicU64>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy in front of `TEST_DATABASE_URL`'s server (`None` outside CI without one).
    pub async fn for_postgres() -> Option<Self> {
        let (upstream, _) = postgres()?;
        Some(Self::start("127.0.0.1:0", upstream).await)
    }

    /// A proxy in front of any loopback server (authgate itself, for a verifier).
    pub async fn in_front_of(upstream: SocketAddr) -> Self {
        Self::start("127.0.0.1:0", upstream).await
    }

    async fn start(listen: &str, upstream: SocketAddr) -> Self {
        Self::serve(TcpListener::bind(listen).await.expect("proxy bind"), upstream)
    }

    /// A proxy on a listener the caller bound (and held) itself.
    fn serve(listener: TcpListener, upstream: SocketAddr) -> Self {
        let addr = listener.local_addr().unwrap();
        let (stall, delay_ms) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (freeze, refuse) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, d, f, l, r) =
            (stall.clone(), delay_ms.clone(), freeze.clone(), links.clone(), refuse.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if r.load(Ordering::SeqCst) {
                    continue;
                }
                let (stall, frozen, delay) = (s.clone(), f.clone(), d.swap(0, Ordering::SeqCst));
                let link = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if stall.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let ((client_in, client_out), (server_in, server_out)) =
                            (client.into_split(), server.into_split());
                        tokio::join!(
                            forward(client_in, server_out, frozen.clone()),
                            forward(server_in, client_out, frozen)
                        );
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Self { addr, stall, refuse, freeze, delay_ms, links, accept }
    }

    /// Cuts every open connection.
    pub fn cut_all(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// Copies one direction until either side closes; holds (never drops)
/// what it read while `frozen`.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut_all();
        self.accept.abort();
    }
}

/// Waits (at most 5 s) until the session cache has noticed its listening
/// connection is gone and stopped answering from memory.
async fn wait_until_bypassed(app: &TestApp) {
    for _ in 0..500 {
        if !app.state.auth.sessions().is_live() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the session cache still serves 5 s after its connection was cut");
}

/// The PostgreSQL server of `TEST_DATABASE_URL`, and that URL.
fn postgres() -> Option<(SocketAddr, String)> {
    let url = crate::common::required_env("TEST_DATABASE_URL")?;
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("TEST_DATABASE_URL");
    let host = if options.get_host() == "localhost" { "127.0.0.1" } else { options.get_host() };
    let addr = format!("{host}:{}", options.get_port()).parse().expect("a numeric host in TEST_DATABASE_URL");
    Some((addr, url))
}

/// `url` with its host and port replaced by `addr`.
pub fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{tail}")
}

fn config(url: &str) -> domain::config::Config {
    let mut config = crate::common::test_config(url);
    config.db_acquire_timeout = Duration::from_secs(1);
    config.db_connect_deadline = Duration::from_secs(20);
    config
}

#[tokio::test]
async fn startup_waits_for_a_database_that_is_not_there_yet() {
    let Some((upstream, url)) = postgres() else { return };
    // The port is held (bound, not listening: connections are refused) so
    // that nothing else can take it before the database "comes up" on it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Proxy::serve(socket.listen(64).expect("listen"), upstream)
    });
    let started = Instant::now();
    let db = domain::db::connect(&config(&via(&url, format!("127.0.0.1:{port}").parse().unwrap())))
        .await
        .expect("connects once the database answers");
    assert!(started.elapsed() >= Duration::from_millis(1400), "it waited: {:?}", started.elapsed());
    db.ping().await.unwrap();
    drop(opener.await.unwrap());
}

#[tokio::test]
async fn a_cold_start_delay_is_waited_out() {
    let Some((upstream, url)) = postgres() else { return };
    let proxy = Proxy::start("127.0.0.1:0", upstream).await;
    proxy.delay_ms.store(2000, Ordering::SeqCst);
    let started = Instant::now();
    let mut settings = config(&via(&url, proxy.addr));
    settings.db_acquire_timeout = Duration::from_secs(5);
    let db = domain::db::connect(&settings).await.expect("connects after the delay");
    assert!(started.elapsed() >= Duration::from_secs(2));
    db.ping().await.unwrap();
}

#[tokio::test]
async fn startup_gives_up_with_a_clear_message_and_no_password() {
    // Held, not listening, for the whole test: refused, and nobody else's.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let mut settings = config(&format!("postgres://alice:s3cr3t-pw@127.0.0.1:{port}/db"));
    settings.db_connect_deadline = Duration::from_secs(1);
    let started = Instant::now();
    let error = format!("{:#}", domain::db::connect(&settings).await.expect_err("nothing listens"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.contains("tcp connection refused"), "{error}");
    assert!(error.contains("alice:***@127.0.0.1"), "{error}");
    assert!(!error.contains("s3cr3t-pw"), "the password leaked: {error}");
}

#[tokio::test]
async fn errors_that_waiting_cannot_fix_fail_at_once() {
    let Some((_, url)) = postgres() else { return };
    let missing =
        format!("{}/authgate_no_such_database_{}", url.rsplit_once('/').unwrap().0, std::process::id());
    let started = Instant::now();
    let error = format!("{:#}", domain::db::connect(&config(&missing)).await.expect_err("no such database"));
    assert!(started.elapsed() < Duration::from_secs(5), "no retrying: {:?}", started.elapsed());
    assert!(error.contains("database does not exist"), "{error}");
}

#[tokio::test]
async fn an_outage_fails_fast_and_service_resumes() {
    let Some((upstream, _)) = postgres() else { return };
    let proxy = Proxy::start("127.0.0.1:0", upstream).await;
    let app = TestApp::postgres_with(|c| {
        c.database_url = via(c.database_url.expose_secret(), proxy.addr).into();
        c.db_acquire_timeout = Duration::from_secs(1);
    })
    .await
    .expect("postgres");
    let (token, _) = app.register("outage@example.com", "it will come back").await;
    assert!(app.me(&token).await.body["data"]["me"].is_object());

    proxy.stall.store(true, Ordering::SeqCst);
    proxy.cut_all();
    // The session cache listens through the proxy too: once it has noticed
    // the cut (a moment), nothing is answered from memory.
    wait_until_bypassed(&app).await;
    let started = Instant::now();
    let down = app.me(&token).await;
    assert_eq!(down.code(), Some("SERVICE_UNAVAILABLE"), "{}", down.body);
    assert!(started.elapsed() < Duration::from_secs(4), "failed fast: {:?}", started.elapsed());
    assert!(!down.text.contains("postgres"), "no internals: {}", down.text);
    assert_eq!(app.get("/readyz").send().await.status, 503);
    let metrics = app.get("/metrics").send().await.text;
    assert!(metrics.contains("authgate_db_unavailable_total{cause="), "{metrics}");
    let login = app.login("outage@example.com", "it will come back").await;
    assert_eq!(
        login.code(),
        Some("SERVICE_UNAVAILABLE"),
        "a login never reports success without its session"
    );

    proxy.stall.store(false, Ordering::SeqCst);
    proxy.cut_all();
    let mut back = None;
    for _ in 0..50 {
        let reply = app.me(&token).await;
        if reply.body["data"]["me"].is_object() {
            back = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "service resumed without a restart");
    assert_eq!(app.get("/readyz").send().await.status, 200);
}

/// `AUTHGATE_SESSION_CACHE_OUTAGE_GRACE`: while the database cannot be
/// reached, a signed-in user's `me` keeps working from memory, for at most
/// the grace after the database last answered; nothing that writes does.
#[tokio::test]
async fn with_an_outage_grace_cached_sessions_outlast_a_cut() {
    let Some((upstream, _)) = postgres() else { return };
    let proxy = Proxy::start("127.0.0.1:0", upstream).await;
    // Long enough for the in-grace checks below (three of them wait out the
    // 1 s acquire timeout) on a loaded machine.
    let grace = Duration::from_secs(10);
    let app = TestApp::postgres_with(|c| {
        c.database_url = via(c.database_url.expose_secret(), proxy.addr).into();
        c.db_acquire_timeout = Duration::from_secs(1);
        c.session_cache_outage_grace = grace;
        // Sessions end 30 s (server clock) after sign-in: well within what
        // the cache keeps, so an answer from memory must check the expiry itself.
        c.session_ttl = Duration::from_secs(30);
        // Verified addresses required: an answer from memory checks that too.
        c.require_email_verification = true;
    })
    .await
    .expect("postgres");
    let password = "it will come back";
    let input = json!({ "input": { "email": "grace@example.com", "password": password } });
    app.gql(crate::common::REGISTER, input).await;
    let link = app.mailed_token("grace@example.com", "Confirm your email address", 1).await;
    let verify = "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }";
    assert_eq!(
        app.gql(verify, json!({ "t": link })).await.body["data"]["verifyEmail"]["emailVerified"],
        true
    );
    let token = str_of(&app.login("grace@example.com", password).await.body["data"]["login"]["token"]);
    let never_used = str_of(&app.login("grace@example.com", password).await.body["data"]["login"]["token"]);
    // A second user, whose sign-out will be tried during the outage.
    let input = json!({ "input": { "email": "leaving@example.com", "password": password } });
    app.gql(crate::common::REGISTER, input).await;
    let link = app.mailed_token("leaving@example.com", "Confirm your email address", 1).await;
    app.gql(verify, json!({ "t": link })).await;
    let leaving = str_of(&app.login("leaving@example.com", password).await.body["data"]["login"]["token"]);
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "grace@example.com");
    assert_eq!(app.me(&leaving).await.body["data"]["me"]["email"], "leaving@example.com");

    proxy.stall.store(true, Ordering::SeqCst);
    proxy.cut_all();
    wait_until_bypassed(&app).await;
    for attempt in 0..3 {
        let reply = app.me(&token).await;
        assert_eq!(
            reply.body["data"]["me"]["email"], "grace@example.com",
            "attempt {attempt}: {}",
            reply.body
        );
    }
    let login = app.login("grace@example.com", password).await;
    assert_eq!(login.code(), Some("SERVICE_UNAVAILABLE"), "a login needs the database");
    let logout = app.authed(&leaving, crate::common::LOGOUT, json!({})).await;
    assert_eq!(logout.code(), Some("SERVICE_UNAVAILABLE"), "so does anything that writes");
    // A write tried during the outage may have landed unseen: memory no
    // longer answers for that user (fail closed), and still for others.
    assert_eq!(app.me(&leaving).await.code(), Some("SERVICE_UNAVAILABLE"), "forgotten after a write");
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "grace@example.com");
    assert_eq!(app.me(&never_used).await.code(), Some("SERVICE_UNAVAILABLE"), "a session not in memory");
    // Answered from memory, still checked: past its expiry (the server's
    // clock, not the grace's) a session is refused, outage or not.
    app.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "expired during the outage");

    // Past the grace by the cache's own clock (moved on, not slept through).
    app.state.auth.sessions().advance(grace);
    let late = app.me(&token).await;
    assert_eq!(late.code(), Some("SERVICE_UNAVAILABLE"), "not past the grace: {}", late.body);

    proxy.stall.store(false, Ordering::SeqCst);
    let mut back = false;
    for _ in 0..100 {
        if app.login("grace@example.com", password).await.body["data"]["login"].is_object() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "service resumed");
}

#[tokio::test]
async fn a_reset_during_registration_leaves_nothing_half_written() {
    let Some(app) = TestApp::postgres().await else { return };
    // The reset lands inside the transaction every time: the session row,
    // the last of the three writes, kills its own connection (the user and
    // the password account are already written in the transaction).
    app.execute_sql(
        "CREATE FUNCTION reset_here() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$",
    )
    .await;
    app.execute_sql("CREATE TRIGGER reset_on_session BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION reset_here()")
        .await;
    let input = json!({ "input": { "email": "halfway@example.com", "password": "a fine password" } });
    let reply = app.gql(crate::common::REGISTER, input.clone()).await;
    assert_eq!(reply.code(), Some("SERVICE_UNAVAILABLE"), "{}", reply.body);
    let rows = || async {
        use entity::{accounts, sessions, users};
        (app.count(users::Entity).await, app.count(accounts::Entity).await, app.count(sessions::Entity).await)
    };
    assert_eq!(rows().await, (0, 0, 0), "none of it");
    // Nothing half written holds the address: the same registration succeeds.
    app.execute_sql("DROP TRIGGER reset_on_session ON sessions").await;
    let reply = app.gql(crate::common::REGISTER, input).await;
    assert!(reply.body["data"]["register"]["token"].is_string(), "{}", reply.body);
    assert_eq!(rows().await, (1, 1, 1), "all of it");
}

/// Whether this connection's session runs over TLS.
async fn encrypted(db: &sea_orm::DatabaseConnection) -> bool {
    let query = sea_orm::Statement::from_string(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    let row = sea_orm::ConnectionTrait::query_one(db, query).await.unwrap().unwrap();
    row.try_get::<bool>("", "ssl").unwrap()
}

#[tokio::test]
async fn tls_is_used_when_required() {
    let Some((_, url)) = postgres() else { return };
    let secure =
        if url.contains('?') { format!("{url}&sslmode=require") } else { format!("{url}?sslmode=require") };
    let db = domain::db::connect(&config(&secure)).await.expect("the local server offers TLS");
    assert!(encrypted(&db).await, "the session is encrypted");
}

#[tokio::test]
async fn requiring_tls_from_a_server_without_it_fails_clearly() {
    // A server that declines TLS: it answers the SSLRequest with 'N'.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    let started = Instant::now();
    let error = format!(
        "{:#}",
        domain::db::connect(&config(&format!("postgres://postgres@{addr}/postgres?sslmode=require")))
            .await
            .expect_err("TLS is required")
    );
    assert!(started.elapsed() < Duration::from_secs(5), "no retrying: {:?}", started.elapsed());
    assert!(error.contains("tls"), "{error}");
    assert!(error.to_lowercase().contains("does not support tls") || error.contains("TLS"), "{error}");
}

/// `TEST_TLS_DATABASE_URL`: a server whose certificate a test CA signed
/// (`.ci/pg-tls.sh`), with `sslmode=verify-full&sslrootcert=<that CA>`.
fn tls_database() -> Option<String> {
    crate::common::required_env("TEST_TLS_DATABASE_URL")
}

#[tokio::test]
async fn verify_full_accepts_the_right_certificate_and_refuses_another() {
    let Some(url) = tls_database() else {
        eprintln!("TEST_TLS_DATABASE_URL unset: skipping verify-full");
        return;
    };
    let db = domain::db::connect(&config(&url)).await.expect("the certificate verifies against its CA");
    assert!(encrypted(&db).await);

    // The same server checked against a CA that did not sign its
    // certificate (made beside the right one by `.ci/pg-tls.sh`; it must
    // exist, or this would pass on a missing file).
    let (base, ca) = url.split_once("sslrootcert=").expect("sslrootcert in TEST_TLS_DATABASE_URL");
    let ca = ca.split('&').next().unwrap_or(ca);
    let other = std::path::Path::new(ca).with_file_name("other-ca.pem");
    let pem = std::fs::read_to_string(&other).unwrap_or_else(|e| panic!("{}: {e}", other.display()));
    assert!(pem.contains("BEGIN CERTIFICATE"), "{}", other.display());
    let wrong = format!("{base}sslrootcert={}", other.display());
    let started = Instant::now();
    let error = format!("{:#}", domain::db::connect(&config(&wrong)).await.expect_err("an unknown CA"));
    assert!(started.elapsed() < Duration::from_secs(5), "no retrying: {:?}", started.elapsed());
    assert!(error.contains("tls"), "{error}");
    assert!(error.contains("UnknownIssuer") || error.to_lowercase().contains("unknown issuer"), "{error}");
}
