//! A TestApp: the real router over a real, freshly migrated database —
//! a temporary SQLite file, or a PostgreSQL database created for the test
//! (from `TEST_DATABASE_URL`) and dropped afterwards; both are copies of
//! a template migrated once (`template.rs`).

#![allow(dead_code)]

pub mod authenticator;
pub mod oidc;
mod template;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use authgate::http::AppState;
use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
};
use domain::{clock::ManualClock, config::Config};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use tower::ServiceExt;

/// Where a TestApp keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// PostgreSQL, connected directly (`TEST_DATABASE_URL`).
    Postgres,
    /// The same PostgreSQL behind PgBouncer in transaction mode
    /// (`TEST_PGBOUNCER_URL`, started by `.ci/pgbouncer.sh`).
    PgBouncer,
}

pub struct TestApp {
    pub backend: Backend,
    pub router: Router,
    pub state: AppState,
    pub clock: ManualClock,
    /// SQL of every statement the app ran, in order (see `take_statements`).
    statements: Arc<Mutex<Vec<String>>>,
    url: String,
    pub outbox: tempfile::TempDir,
    guard: DbGuard,
    /// As `authgate serve` holds it (SQLite).
    _lock: Option<std::fs::File>,
}

enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime we may block: use a thread of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    // Said, not swallowed (a panic in a drop would abort): a
                    // database left behind is named in the test's output.
                    let dropped = async {
                        let mut conn = PgConnection::connect(&admin_url).await?;
                        conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                            .await
                    };
                    if let Err(e) = dropped.await {
                        eprintln!("LEFT BEHIND: test database {name} was not dropped: {e}");
                    }
                    Some(())
                })
            })
            .join();
        }
    }
}

/// Settings for tests: cheap argon2 so the suite is fast (the cost does
/// not change any behaviour under test).
pub fn test_config(url: &str) -> Config {
    let mut config = Config::for_database(url);
    config.argon2_memory_kib = 256;
    config.argon2_iterations = 1;
    config.db_max_connections = 5;
    // One fixed key for every instance in a test (as in a real deployment).
    config.secret_key = Some("dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=".into());
    config.jwt_audiences = vec!["https://api.example.com".into()];
    config.service_keys = vec![SERVICE_KEY.into()];
    config
}

/// Whether python3 can import `modules` (the independent libraries some
/// tests check our output with). Outside CI a missing one is said and the
/// test skips; in CI it is a failure (`.ci/run` installs them).
pub fn python_has(modules: &str, package: &str) -> bool {
    let probe = std::process::Command::new("python3").args(["-c", &format!("import {modules}")]).output();
    if probe.is_ok_and(|out| out.status.success()) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs python3 with {package} (.ci/run installs it): not skipped"
    );
    eprintln!("SKIPPED: python3 with {package} is missing (pip install '{package}')");
    false
}

/// The service key every test server accepts for `/revocations`.
pub const SERVICE_KEY: &str = "test-service-key-aaaaaaaaaaaaaaaaaaaaaaaa";

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn sqlite_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("test.db");
        std::fs::copy(template::sqlite().await, &file).expect("copy the template database");
        // The template is read-only; its copy is the test's own.
        let mut writable = std::fs::metadata(&file).expect("copy").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut writable, 0o600);
        std::fs::set_permissions(&file, writable).expect("make the copy writable");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        Self::start(&url, Backend::Sqlite, DbGuard::Sqlite(dir), tweak).await
    }

    /// `None` when `TEST_DATABASE_URL` is unset, outside CI; in CI that is a failure.
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(|_| {}).await
    }

    pub async fn postgres_with(tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let admin_url = required_env("TEST_DATABASE_URL")?;
        Some(Self::fresh_postgres(&admin_url, &admin_url, Backend::Postgres, tweak).await)
    }

    /// The app talks to its database through PgBouncer in transaction mode;
    /// the test database is created and dropped over the direct connection.
    pub async fn pgbouncer_with(tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let admin_url = required_env("TEST_DATABASE_URL")?;
        let pooler_url = required_env("TEST_PGBOUNCER_URL")?;
        Some(Self::fresh_postgres(&admin_url, &pooler_url, Backend::PgBouncer, tweak).await)
    }

    /// A fresh app on `backend`; `None` if that backend is not configured (outside CI).
    pub async fn on_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite_with(tweak).await),
            Backend::Postgres => Self::postgres_with(tweak).await,
            Backend::PgBouncer => Self::pgbouncer_with(tweak).await,
        }
    }

    /// Another fresh app on the same kind of backend, with other settings.
    pub async fn sibling(&self, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::on_with(self.backend, tweak).await.expect("the backend this app runs on")
    }

    async fn fresh_postgres(
        admin_url: &str,
        app_url: &str,
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let name = format!("authgate_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            PgConnection::connect(admin_url).await.expect("TEST_DATABASE_URL must reach a PostgreSQL server");
        let template = template::postgres(admin_url).await;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#).as_str())
            .await
            .expect("create test database");
        let url = with_database(app_url, &name);
        let guard = DbGuard::Postgres { admin_url: admin_url.to_owned(), name };
        Self::start(&url, backend, guard, tweak).await
    }

    async fn start(url: &str, backend: Backend, guard: DbGuard, tweak: impl FnOnce(&mut Config)) -> Self {
        let outbox = tempfile::tempdir().expect("outbox dir");
        let mut config = test_config(url);
        config.outbox_dir = outbox.path().to_owned();
        if let (Backend::PgBouncer, DbGuard::Postgres { admin_url, name }) = (backend, &guard) {
            // LISTEN needs the server itself: the pooler cannot carry it.
            config.database_listen_url = Some(with_database(admin_url, name).into());
        }
        tweak(&mut config);
        let mut db = domain::db::connect(&config).await.expect("connect");
        domain::db::migrate(&db).await.expect("migrate");
        let statements = Arc::new(Mutex::new(Vec::new()));
        let recorder = statements.clone();
        db.set_metric_callback(move |info| {
            recorder.lock().unwrap().push(info.statement.sql.clone());
        });
        let clock = ManualClock::new();
        let _lock = domain::session::cache::lock_database(&config).expect("database lock");
        let state = authgate::state(db, config, Arc::new(clock.clone())).expect("state");
        wait_until_live(&state).await;
        let router = authgate::app(state.clone());
        Self { backend, router, state, clock, statements, url: url.to_owned(), outbox, guard, _lock }
    }

    /// This app, or (on SQLite) a fresh one with the session cache off, so
    /// that a second instance may share its database: on SQLite a second
    /// process must not run beside one with the cache (see
    /// `cache::lock_sqlite`); PostgreSQL instances keep their caches
    /// in step through LISTEN/NOTIFY.
    pub async fn shareable(self) -> Self {
        match self.backend {
            Backend::Sqlite => self.sibling(|c| c.session_cache_ttl = std::time::Duration::ZERO).await,
            Backend::Postgres | Backend::PgBouncer => self,
        }
    }

    /// Another server instance (own pool, own state) on the same database.
    pub async fn second_instance(&self) -> Router {
        self.second_instance_with(|_| {}).await
    }

    /// Another instance on the same database, with other settings.
    pub async fn second_instance_with(&self, tweak: impl FnOnce(&mut Config)) -> Router {
        authgate::app(self.second_state(tweak).await)
    }

    /// Another instance's state (its session cache listening, when on).
    pub async fn second_state(&self, tweak: impl FnOnce(&mut Config)) -> AppState {
        let mut config = test_config(&self.url);
        config.outbox_dir = self.outbox.path().to_owned();
        config.database_listen_url = self.state.auth.config.database_listen_url.clone();
        config.session_cache_ttl = self.state.auth.config.session_cache_ttl;
        tweak(&mut config);
        let db = domain::db::connect(&config).await.expect("connect");
        // Would a second `authgate serve` start here? (Released at once.)
        domain::session::cache::lock_database(&config).expect("a second server on this database");
        let state = authgate::state(db, config, Arc::new(self.clock.clone())).expect("state");
        wait_until_live(&state).await;
        state
    }

    /// Messages in the outbox (oldest first) whose headers match `to` and `subject`.
    pub fn mails(&self, to: &str, subject: &str) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.outbox.path())
            .expect("outbox")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| decode_quoted_printable(&std::fs::read_to_string(p).expect("mail")))
            .filter(|m| m.contains(&format!("To: {to}")) && m.contains(&format!("Subject: {subject}")))
            .collect()
    }

    /// Waits (at most 20 s) until `count` such messages are in the outbox.
    /// Mails go out in the background, behind argon2 work on a machine that
    /// may be building beside the suite; only a failing test waits it out.
    pub async fn wait_for_mails(&self, to: &str, subject: &str, count: usize) -> Vec<String> {
        for _ in 0..400 {
            let mails = self.mails(to, subject);
            // Exactly: a duplicate or an extra mail is a failure, not a pass.
            assert!(
                mails.len() <= count,
                "expected {count} mail(s) to {to} about {subject:?}, found {}",
                mails.len()
            );
            if mails.len() == count {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("expected {count} mail(s) to {to} about {subject:?}, found {}", self.mails(to, subject).len());
    }

    /// The token in the newest such message (waiting for the `count`th).
    pub async fn mailed_token(&self, to: &str, subject: &str, count: usize) -> String {
        let mails = self.wait_for_mails(to, subject, count).await;
        token_in(mails.last().expect("a mail"))
    }

    /// The statements run since the last call.
    /// Statements run since the last call, without the session channel's
    /// own pings (`SELECT pg_notify`, every few seconds on PostgreSQL).
    pub fn take_statements(&self) -> Vec<String> {
        let all = std::mem::take(&mut *self.statements.lock().unwrap());
        all.into_iter().filter(|sql| !sql.contains("pg_notify")).collect()
    }

    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use domain::clock::Clock;
        self.clock.now()
    }

    pub fn database_url(&self) -> &str {
        &self.url
    }

    pub fn db(&self) -> &DatabaseConnection {
        self.state.auth.db()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend != Backend::Sqlite
    }

    pub fn post(&self) -> Call<'_> {
        Call::new(self, Method::POST, "/graphql")
    }

    /// A request to another router (e.g. `second_instance`).
    pub fn post_to<'a>(&'a self, router: &Router) -> Call<'a> {
        let mut call = self.post();
        call.router = Some(router.clone());
        call
    }

    /// POST with a bearer token.
    pub async fn authed(&self, token: &str, query: &str, variables: Value) -> Reply {
        self.post().graphql(query, variables).bearer(token).send().await
    }

    /// The caller's live sessions as `(id, current)`, newest first.
    pub async fn sessions(&self, token: &str) -> Vec<(String, bool)> {
        let reply = self.authed(token, MY_SESSIONS, json!({})).await;
        let list = reply.body["data"]["me"]["sessions"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", reply.body))
            .clone();
        list.iter().map(|s| (str_of(&s["id"]), s["current"].as_bool().unwrap())).collect()
    }

    /// Holds every request that reaches the service checkpoint `point`
    /// until released: a race made deterministic (once per app).
    pub fn hold_at(&self, point: &'static str) -> Hold {
        let hold = Hold {
            reached: Arc::new(tokio::sync::Notify::new()),
            release: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let (reached, release) = (hold.reached.clone(), hold.release.clone());
        let installed = self.state.auth.checkpoints().install(Arc::new(move |at| {
            let (reached, release) = (reached.clone(), release.clone());
            Box::pin(async move {
                if at == point {
                    reached.notify_one();
                    let _ = release.acquire().await.map(|permit| permit.forget());
                }
            })
        }));
        assert!(installed, "one hold per app");
        hold
    }

    pub fn get(&self, uri: &str) -> Call<'_> {
        Call::new(self, Method::GET, uri)
    }

    /// POST a GraphQL document with variables as JSON, without credentials.
    pub async fn gql(&self, query: &str, variables: Value) -> Reply {
        self.post().graphql(query, variables).send().await
    }

    /// Registers a user; returns the session token and the user's id.
    pub async fn register(&self, email: &str, password: &str) -> (String, String) {
        let reply = self.gql(REGISTER, json!({ "input": { "email": email, "password": password } })).await;
        let payload = &reply.body["data"]["register"];
        assert!(payload.is_object(), "register failed: {}", reply.body);
        (str_of(&payload["token"]), str_of(&payload["user"]["id"]))
    }

    /// `register`, then the address proved with the mailed link (as its
    /// owner would): an account that may add factors and ways in.
    pub async fn register_verified(&self, email: &str, password: &str) -> (String, String) {
        let (token, id) = self.register(email, password).await;
        self.verify_address(&token).await;
        (token, id)
    }

    /// Proves the address of the session `token`'s user with the link
    /// mailed at registration; nothing when it is proved already.
    pub async fn verify_address(&self, token: &str) {
        let me = self.authed(token, "{ me { email emailVerified } }", json!({})).await;
        if me.body["data"]["me"]["emailVerified"] == true {
            return;
        }
        let email = str_of(&me.body["data"]["me"]["email"]);
        assert!(!email.is_empty(), "{}", me.body);
        let link = self.mailed_token(&email, "Confirm your email address", 1).await;
        let verify = "mutation V($t: String!) { verifyEmail(token: $t) { emailVerified } }";
        let reply = self.gql(verify, json!({ "t": link })).await;
        assert_eq!(reply.body["data"]["verifyEmail"]["emailVerified"], true, "{}", reply.body);
    }

    /// Sets a user's `email_verified` behind the server's back (test set-up
    /// for states an older release could leave), and forgets the user in
    /// this instance's session cache as a change through the API would.
    pub async fn set_verified(&self, user_id: &str, verified: bool) {
        use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};
        let id: uuid::Uuid = user_id.parse().expect("a user id");
        entity::users::Entity::update_many()
            .col_expr(entity::users::Column::EmailVerified, Expr::value(verified))
            .filter(entity::users::Column::Id.eq(id))
            .exec(self.db())
            .await
            .expect("update");
        self.state.auth.sessions().forget_user(id);
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.gql(LOGIN, json!({ "input": { "email": email, "password": password } })).await
    }

    /// Resets the password of `email` through the mailed link (the first
    /// reset mail to it); asserts that it succeeded.
    pub async fn reset_password_by_mail(&self, email: &str, new: &str) {
        self.gql("mutation R($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": email })).await;
        let link = self.mailed_token(email, "Reset your password", 1).await;
        let vars = json!({ "input": { "token": link, "newPassword": new } });
        let done =
            self.gql("mutation P($input: ResetPasswordInput!) { resetPassword(input: $input) }", vars).await;
        assert_eq!(done.body["data"]["resetPassword"], true, "{}", done.body);
    }

    /// `changePassword` for the session `token`; asserts that it succeeded.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) {
        let change = "mutation C($input: ChangePasswordInput!) { changePassword(input: $input) }";
        let vars = json!({ "input": { "currentPassword": current, "newPassword": new } });
        let reply = self.authed(token, change, vars).await;
        assert_eq!(reply.body["data"]["changePassword"], true, "{}", reply.body);
    }

    pub async fn me(&self, token: &str) -> Reply {
        self.post().graphql(ME, json!({})).bearer(token).send().await
    }

    pub async fn count<E: EntityTrait>(&self, _entity: E) -> u64
    where
        E::Model: Sync,
    {
        E::find().count(self.db()).await.expect("count")
    }

    pub async fn execute_sql(&self, sql: &str) {
        self.db().execute_unprepared(sql).await.expect("sql");
    }
}

/// The mutations of the checked-in schema, sorted (for the tests that
/// prove each is classified: the cache, the event record).
pub fn mutations_in_schema() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdl = std::fs::read_to_string(root.join("schema.graphql")).unwrap();
    let schema = apollo_compiler::Schema::parse_and_validate(sdl, "schema.graphql").unwrap();
    let apollo_compiler::schema::ExtendedType::Object(mutation) = &schema.types["MutationRoot"] else {
        panic!("MutationRoot is an object type")
    };
    let mut fields: Vec<String> = mutation.fields.keys().map(|f| f.to_string()).collect();
    fields.sort();
    fields
}

/// A service checkpoint holding requests (see `TestApp::hold_at`).
pub struct Hold {
    reached: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
}

impl Hold {
    /// Waits until a request is held at the checkpoint: at most 10 s, then
    /// fails (a request that never gets there would hang the test instead).
    pub async fn reached(&self) {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.reached.notified())
            .await
            .expect("no request reached the checkpoint within 10 s");
    }

    /// Lets `n` held (or future) requests go on.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

/// Waits (at most 10 s) until the session cache serves: on PostgreSQL it
/// starts bypassed until its LISTEN is in place.
pub async fn wait_until_live(state: &AppState) {
    let cache = &state.auth.sessions();
    for _ in 0..1000 {
        if !cache.is_on() || cache.is_live() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the session cache did not start listening in 10 s");
}

/// The variable's value; `None` when unset outside CI, a failure in CI
/// (a service suite may never be skipped there).
///
/// A skipped variant still reports `ok` (libtest has no runtime "ignored"),
/// so the first skip for each variable says so once, on stderr directly:
/// `eprintln!` would be captured and shown only for failures.
pub fn required_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) => Some(value),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI must set {var}: its suite may not be skipped");
            static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
            let mut said = SAID.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !said.iter().any(|v| v == var) {
                said.push(var.to_owned());
                let note = format!(
                    "\nSKIPPED: {var} is unset, so every test variant that needs it reports `ok` \
                     without running. Set it (see docs/development.md, \"Testing\") or run with CI=true to require it.\n"
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
            }
            None
        }
    }
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{}/{name}{query}", &base[..end])
}

/// Undoes quoted-printable (soft line breaks, `=XX`), so a test reads
/// the message as a mail client shows it.
pub fn decode_quoted_printable(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if bytes[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let Some(hex) = raw.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(hex);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the first `?token=` link in a message.
pub fn token_in(mail: &str) -> String {
    let start = mail.find("?token=").expect("a link with a token") + "?token=".len();
    mail[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}")).to_owned()
}

/// One HTTP request to the router (`tower::ServiceExt::oneshot`), as if from 127.0.0.1.
pub struct Call<'a> {
    app: &'a TestApp,
    router: Option<Router>,
    peer: SocketAddr,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl<'a> Call<'a> {
    fn new(app: &'a TestApp, method: Method, uri: &str) -> Self {
        Self {
            app,
            router: None,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            method,
            uri: uri.to_owned(),
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }

    pub fn graphql(self, query: &str, variables: Value) -> Self {
        self.json(&json!({ "query": query, "variables": variables }))
    }

    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json").raw(body.to_string())
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// As if the TCP peer were `ip`.
    pub fn peer_ip(mut self, ip: &str) -> Self {
        self.peer = SocketAddr::new(ip.parse().expect("ip"), 40000);
        self
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn forwarded_for(self, hops: &str) -> Self {
        self.header("x-forwarded-for", hops)
    }

    pub fn cookie(self, token: &str) -> Self {
        self.header("cookie", &format!("theme=dark; session_token={token}"))
    }

    /// Sends to `router` instead of the app's own.
    pub async fn send_to(mut self, router: &Router) -> Reply {
        self.router = Some(router.clone());
        self.send().await
    }

    pub async fn send(self) -> Reply {
        let graphql = self.uri.starts_with("/graphql");
        let mut request = Request::builder().method(self.method).uri(self.uri);
        *request.headers_mut().expect("builder") = self.headers;
        let mut request = request.body(Body::from(self.body)).expect("request");
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let router = self.router.unwrap_or_else(|| self.app.router.clone());
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // An answer that is not JSON is `null` here, so a check such as
        // `body["data"].is_null()` would pass on an error page: the GraphQL
        // endpoint (but for GraphiQL's page) and anything labelled JSON
        // must parse.
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let must_parse = content_type.contains("json") || (graphql && !content_type.starts_with("text/html"));
        let body = match serde_json::from_str(&text) {
            Ok(body) => body,
            Err(e) if must_parse && !text.is_empty() => {
                panic!("{status}: the answer is not JSON ({e}): {text:.300}")
            }
            Err(_) => Value::Null,
        };
        Reply { status, headers, body, text }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn field(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["field"].as_str()
    }

    pub fn set_cookie(&self) -> Option<String> {
        self.headers.get(header::SET_COOKIE).map(|v| v.to_str().expect("ascii").to_owned())
    }

    pub fn content_type(&self) -> &str {
        self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

pub const REGISTER: &str = "mutation Register($input: RegisterInput!) { register(input: $input) { token expiresAt user { id email name image emailVerified createdAt updatedAt } } }";
pub const LOGIN: &str =
    "mutation Login($input: LoginInput!) { login(input: $input) { token expiresAt user { id email } } }";
pub const ME: &str = "query Me { me { id email name emailVerified createdAt updatedAt } }";
pub const LOGOUT: &str = "mutation Logout { logout }";
pub const MY_SESSIONS: &str = "query MySessions { me { id sessions { id createdAt expiresAt ipAddress userAgent current } accounts { id providerId accountId createdAt } } }";

/// Asks `check` every `every` until it holds, for at most `bound`;
/// whether it did. For what the server does on its own schedule (a
/// background round, a reconnection); a failing test waits out the bound.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    bound: std::time::Duration,
    every: std::time::Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() >= bound {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A test's whole run, bounded: a checkpoint nothing reaches, or a lock
/// never released, fails the test after two minutes instead of hanging CI.
pub async fn within(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(std::time::Duration::from_secs(120), test)
        .await
        .expect("the test did not finish within 120 s (a hold nothing released?)");
}

/// Runs each named async test fn of a `Backend` on SQLite, PostgreSQL and
/// PgBouncer (for tests that make their own app, with settings of their own).
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::common::Backend;

                #[tokio::test]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name(Backend::Postgres).await;
                }

                #[tokio::test]
                async fn pgbouncer() {
                    super::$name(Backend::PgBouncer).await;
                }
            }
        )*
    };
}

/// Runs each named async test fn on SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::common::within(super::$name($crate::common::TestApp::sqlite().await)).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(app) = $crate::common::TestApp::postgres().await {
                        $crate::common::within(super::$name(app)).await;
                    }
                }

                #[tokio::test]
                async fn pgbouncer() {
                    if let Some(app) = $crate::common::TestApp::on_with($crate::common::Backend::PgBouncer, |_| {}).await {
                        $crate::common::within(super::$name(app)).await;
                    }
                }
            }
        )*
    };
}

/// Runs each named async test fn on SQLite only: for tests whose subject is
/// the HTTP or GraphQL layer (media types, CSRF proof, input rules,
/// document limits), where the database only stores what the
/// `both_backends!` tests already cover on every backend.
#[macro_export]
macro_rules! sqlite_only {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::common::within(super::$name($crate::common::TestApp::sqlite().await)).await;
                }
            }
        )*
    };
}
