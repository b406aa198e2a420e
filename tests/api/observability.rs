//! Metrics, request ids, and logs that never carry a secret.

use std::sync::{Arc, Mutex};

use domain::config::ExposeSecret;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::common::{LOGOUT, TestApp, str_of, token_in};

#[tokio::test]
async fn metrics_expose_the_listed_series_after_a_login() {
    let app = TestApp::sqlite().await;
    let (token, _) = app.register("metrics@example.com", "measure twice, cut once").await;
    app.login("metrics@example.com", "measure twice, cut once").await;
    app.login("metrics@example.com", "not the password").await;
    app.authed(&token, LOGOUT, json!({})).await;
    let reply = app.get("/metrics").send().await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type().starts_with("text/plain"));
    for series in [
        r#"authgate_graphql_request_duration_seconds_bucket{operation="mutation:login",outcome="ok""#,
        r#"operation="mutation:login",outcome="INVALID_CREDENTIALS""#,
        r#"authgate_auth_events_total{event="register"}"#,
        r#"authgate_auth_events_total{event="login_success"}"#,
        r#"authgate_auth_events_total{event="login_failure"}"#,
        r#"authgate_auth_events_total{event="logout"}"#,
        "authgate_password_hash_duration_seconds_bucket",
        r#"authgate_db_pool_connections{state="idle"}"#,
        r#"authgate_db_pool_connections{state="in_use"}"#,
        "authgate_http_requests_in_flight",
    ] {
        assert!(reply.text.contains(series), "missing {series} in\n{}", reply.text);
    }
}

/// The value of one series in Prometheus text (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Counters and gauges move by exactly what requests do. The readings come
/// from a recorder local to this test's thread (a `tokio::test` runtime has
/// one), so other tests' requests never reach them.
#[tokio::test]
async fn metrics_move_by_exactly_what_requests_do() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let read = |series: &str| sample(&handle.render(), series);
    let app = TestApp::sqlite().await;
    let (email, password) = ("deltas@example.com", "measure twice, cut once");
    app.register(email, password).await;

    let failures = r#"authgate_auth_events_total{event="login_failure"}"#;
    let successes = r#"authgate_auth_events_total{event="login_success"}"#;
    let refused = r#"authgate_graphql_request_duration_seconds_count{operation="mutation:login",outcome="INVALID_CREDENTIALS"}"#;
    let (failed, succeeded, timed) = (read(failures), read(successes), read(refused));
    assert_eq!(app.login(email, "not the password").await.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(
        (read(failures) - failed, read(successes) - succeeded, read(refused) - timed),
        (1.0, 0.0, 1.0)
    );
    assert!(app.login(email, password).await.body["data"]["login"].is_object());
    assert_eq!((read(failures) - failed, read(successes) - succeeded), (1.0, 1.0));

    // A login held inside the service is in flight; once answered, it is not.
    let in_flight = "authgate_http_requests_in_flight";
    assert_eq!(read(in_flight), 0.0);
    let hold = app.hold_at("login:password_checked");
    let watch = async {
        hold.reached().await;
        let during = read(in_flight);
        hold.release(1);
        during
    };
    let (reply, during) = tokio::join!(app.login(email, password), watch);
    assert!(reply.body["data"]["login"].is_object(), "{}", reply.body);
    assert_eq!((during, read(in_flight)), (1.0, 0.0));

    // A connection taken from the pool shows as in use at the next scrape,
    // and as idle once given back (connections go back to the pool a moment
    // after their holder lets go: each reading waits, boundedly, for it).
    let in_use = r#"authgate_db_pool_connections{state="in_use"}"#;
    app.wait_for_mails(email, "Confirm your email address", 1).await;
    let settles_at = |value: f64| {
        let (app, read) = (&app, &read);
        async move {
            for _ in 0..200 {
                assert_eq!(app.get("/metrics").send().await.status, 200);
                if read(in_use) == value {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            false
        }
    };
    assert!(settles_at(0.0).await, "an idle server uses no connection: {}", handle.render());
    let txn = sea_orm::TransactionTrait::begin(app.db()).await.unwrap();
    assert!(settles_at(1.0).await, "one taken: {}", handle.render());
    txn.rollback().await.unwrap();
    assert!(settles_at(0.0).await, "given back: {}", handle.render());
}

/// Anonymous garbage must not create metric series: a document naming
/// fields the schema does not have is labelled `invalid`, whatever it names.
#[tokio::test]
async fn unknown_fields_add_no_metric_series() {
    let app = TestApp::sqlite().await;
    let series = |text: &str| {
        text.lines().filter(|l| l.starts_with("authgate_graphql_request_duration_seconds_count")).count()
    };
    app.gql("{ stillUnknownField }", json!({})).await;
    app.gql("mutation { stillUnknownMutation }", json!({})).await;
    app.gql("{ unparsable", json!({})).await;
    let before = series(&app.get("/metrics").send().await.text);
    for i in 0..1000 {
        let reply = app.gql(&format!("{{ garbage{i:04}x }}"), json!({})).await;
        assert_eq!(reply.code(), Some("GRAPHQL_VALIDATION_FAILED"), "{}", reply.body);
    }
    for i in 0..20 {
        app.gql(&format!("mutation {{ garbage{i:04}y }}"), json!({})).await;
        app.gql(&format!("query Named{i} {{ garbage{i:04}z }}"), json!({})).await;
    }
    let text = app.get("/metrics").send().await.text;
    assert!(!text.contains("garbage"), "a client-chosen name became a label");
    assert!(text.contains(r#"operation="invalid""#), "{text}");
    // Other tests share the process-wide recorder and may add their own
    // (bounded) series meanwhile; 1 040 distinct documents must add none.
    let added = series(&text) - before;
    assert!(added <= 30, "{added} series added by 1040 distinct unknown fields");
}

#[tokio::test]
async fn request_ids_are_honoured_or_made() {
    let app = TestApp::sqlite().await;
    let echoed = app.get("/healthz").header("x-request-id", "client-42.a_b:c").send().await;
    assert_eq!(echoed.headers["x-request-id"], "client-42.a_b:c");
    let made = app.get("/healthz").send().await;
    let id = made.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    for bad in ["has space", &"x".repeat(200), "<script>"] {
        let replaced = app.get("/healthz").header("x-request-id", bad).send().await;
        assert_ne!(replaced.headers["x-request-id"], bad, "a hostile id is not echoed");
    }
}

/// Everything logged, at every level, with the thread that logged it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Chunk>>>);

/// One write, and the thread that made it.
type Chunk = (std::thread::ThreadId, Vec<u8>);

impl Captured {
    /// Every line, from every test: what must never appear is looked for here.
    fn all(&self) -> String {
        let chunks = self.0.lock().unwrap();
        chunks.iter().map(|(_, bytes)| String::from_utf8_lossy(bytes)).collect()
    }

    /// The lines logged on this thread: a `tokio::test` runs its requests,
    /// and the tasks they spawn, on its own thread, so what must appear is
    /// looked for here, not in other tests' lines.
    fn mine(&self) -> String {
        let here = std::thread::current().id();
        let chunks = self.0.lock().unwrap();
        chunks.iter().filter(|(id, _)| *id == here).map(|(_, bytes)| String::from_utf8_lossy(bytes)).collect()
    }
}

/// Writes for one thread.
struct Writer(Captured);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0).0.lock().unwrap().push((std::thread::current().id(), buf.to_vec()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Writer;

    fn make_writer(&'a self) -> Self::Writer {
        Writer(self.clone())
    }
}

/// Installs, once for this test binary, a global subscriber at the most
/// verbose setting an operator can choose, writing into memory, as `main`
/// does: with the `log` bridge, so crates that log through `log` (reqwest,
/// for one) are captured too. (A thread-local subscriber misses events
/// whose callsites other test threads registered first.) It records only
/// while a test holds the returned guard: once the last one drops it, the
/// filter is set to `off` and the buffer emptied, so the tests that run
/// later neither format trace events nor fill memory.
fn capture() -> (Captured, Recording) {
    use tracing_subscriber::{prelude::*, reload, util::SubscriberInitExt};
    type Handle = reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;
    static LOGS: std::sync::OnceLock<(Captured, Handle)> = std::sync::OnceLock::new();
    let (logs, handle) = LOGS
        .get_or_init(|| {
            let logs = Captured::default();
            let (filter, handle) = reload::Layer::new(tracing_subscriber::EnvFilter::new("off"));
            tracing_subscriber::registry()
                .with(filter)
                .with(tracing_subscriber::fmt::layer().with_writer(logs.clone()).with_ansi(false))
                .try_init()
                .expect("no other global subscriber or log logger");
            (logs, handle)
        })
        .clone();
    let mut active = RECORDING.lock().unwrap();
    if *active == 0 {
        handle.reload(authgate::log_filter("trace,sea_orm=trace")).expect("the filter reloads");
    }
    *active += 1;
    (logs.clone(), Recording { logs, handle })
}

/// How many tests are recording.
static RECORDING: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// While held, the global subscriber records (see `capture`).
struct Recording {
    logs: Captured,
    handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        let mut active = RECORDING.lock().unwrap_or_else(|e| e.into_inner());
        *active -= 1;
        if *active == 0 {
            let _ = self.handle.reload(tracing_subscriber::EnvFilter::new("off"));
            (self.logs.0).lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

#[tokio::test]
async fn logs_never_contain_passwords_tokens_or_the_database_password() {
    let (logs, _recording) = capture();

    // Local PostgreSQL trusts loopback, so any password in the URL connects.
    let db_password = "db-pw-7f3a9c";
    let app = match TestApp::postgres_with(|c| {
        c.database_url = c
            .database_url
            .expose_secret()
            .replacen("://postgres@", &format!("://postgres:{db_password}@"), 1)
            .into();
    })
    .await
    {
        Some(app) => app,
        None => TestApp::sqlite().await,
    };
    let (first, second) = ("first password 1a2b3c", "second password 4d5e6f");
    let (token, _) = app.register("logs@example.com", first).await;
    app.me(&token).await;
    let login = app.login("logs@example.com", first).await;
    let token2 = str_of(&login.body["data"]["login"]["token"]);
    app.login("logs@example.com", "wrong password 9z8y7x").await;
    app.gql("mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": "logs@example.com" }))
        .await;
    let mails = app.wait_for_mails("logs@example.com", "Reset your password", 1).await;
    let reset = token_in(&mails[0]);
    let verify = token_in(&app.wait_for_mails("logs@example.com", "Confirm your email address", 1).await[0]);
    let done = app
        .gql(
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
            json!({ "i": { "token": reset, "newPassword": second } }),
        )
        .await;
    assert_eq!(done.body["data"]["resetPassword"], true);
    app.authed(&token2, LOGOUT, json!({})).await;
    // A malformed input quoting a secret: answered, never logged.
    app.gql(
        "mutation($i: LoginInput!) { login(input: $i) { token } }",
        json!({ "i": [{ "email": "x@example.com", "password": "shape secret 3c2b1a" }] }),
    )
    .await;

    // Two-factor: the secret, the codes, the recovery codes, the challenge.
    let (tf_token, _) = app.register_verified("logs-2fa@example.com", first).await;
    let setup = app.authed(&tf_token, crate::two_factor::START_SETUP, json!({})).await;
    let totp_secret = str_of(&setup.body["data"]["startTotpSetup"]["secret"]);
    let confirm_code = crate::two_factor::code_at(&totp_secret, app.clock_now());
    let confirmed = app.authed(&tf_token, crate::two_factor::CONFIRM, json!({ "code": confirm_code })).await;
    let recovery: Vec<String> =
        confirmed.body["data"]["confirmTotpSetup"].as_array().expect("codes").iter().map(str_of).collect();
    let login = app.login("logs-2fa@example.com", first).await;
    let challenge = str_of(&login.body["errors"][0]["extensions"]["challenge"]);
    let completed = crate::two_factor::complete(&app, &challenge, &recovery[0]).await;
    let tf_session = str_of(&completed.body["data"]["completeSignIn"]["token"]);
    assert!(!tf_session.is_empty(), "{}", completed.body);
    // A replayed code (the one that confirmed the setup) is refused and said.
    let login = app.login("logs-2fa@example.com", first).await;
    let replay_challenge = str_of(&login.body["errors"][0]["extensions"]["challenge"]);
    let replayed = crate::two_factor::complete(&app, &replay_challenge, &confirm_code).await;
    assert_eq!(replayed.code(), Some("INVALID_CREDENTIALS"), "{}", replayed.body);

    // OAuth: the client secret, the state, the code, the PKCE verifier, the
    // provider's tokens, and the session it ends in.
    let mock = crate::common::oidc::MockProvider::start().await;
    let oauth_app = TestApp::sqlite_with(|c| c.oauth = vec![mock.oidc_config("mock")]).await;
    let started = crate::oauth::start(&oauth_app, "mock").await;
    let state = started.cookie.clone().expect("state cookie");
    let back = crate::oauth::at_provider(&started.url).await;
    let signed_in = crate::oauth::callback(&oauth_app, &back, Some(&state)).await;
    let oauth_session = crate::oauth::session_token(&signed_in).expect("signed in through the provider");
    let provider_secrets = mock.secrets();
    assert_eq!(provider_secrets.len(), 4, "code, verifier, access token, ID token: {provider_secrets:?}");

    // SMTP with credentials (the sink takes any): the password, and the
    // base64 of the AUTH PLAIN exchange.
    let (port, inbox) = crate::smtp::smtp_sink().await;
    let smtp_password = "smtp-pw-5e6f7a";
    let smtp_app = TestApp::sqlite_with(|c| {
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = port;
        c.smtp_tls = domain::config::SmtpTls::None;
        c.smtp_username = Some("mailer".into());
        c.smtp_password = Some(smtp_password.to_owned().into());
    })
    .await;
    smtp_app.register("smtp-logs@example.com", first).await;
    let mut auth_line = None;
    for _ in 0..100 {
        auth_line = inbox.lock().unwrap().first().and_then(|m| m.auth.first().cloned());
        if auth_line.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let auth_line = auth_line.expect("the mail went out with credentials within 5 s");
    let smtp_credentials = auth_line.rsplit(' ').next().unwrap().to_owned();

    // A database that cannot be reached, named by a URL with a password.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let unreachable_password = "unreachable-pw-2b3c";
    let mut settings =
        crate::common::test_config(&format!("postgres://alice:{unreachable_password}@127.0.0.1:{port}/db"));
    settings.db_connect_deadline = std::time::Duration::from_secs(1);
    domain::db::connect(&settings).await.expect_err("nothing listens");

    // Expired rows removed: said, with the counts.
    app.clock.advance(chrono::Duration::days(40));
    let removed = domain::cleanup::run_once(&app.state.auth).await.expect("cleanup");
    assert!(removed.sessions > 0, "{removed:?}");

    let mine = logs.mine();
    assert!(mine.contains("login failed") && mine.contains("password reset"), "logs were captured:\n{mine}");
    assert!(mine.contains("a TOTP code was replayed") && mine.contains("expired data removed"), "{mine}");
    assert!(mine.contains("second factor required") && mine.contains("recovery code used"), "{mine}");
    assert!(mine.contains("mail sent") && mine.contains("database not reachable yet"), "{mine}");
    assert!(mine.contains("starting new connection"), "records logged through `log` were captured:\n{mine}");
    if app.is_postgres() {
        assert!(mine.contains("connected to PostgreSQL"), "the database with a password was connected to");
    }
    let text = logs.all();
    // (The 6-digit code is not looked for: any timestamp may contain it.)
    for secret in [&totp_secret, &challenge, &tf_session].into_iter().chain(&recovery) {
        assert!(!text.contains(secret.as_str()), "a two-factor secret reached the logs: {secret}");
    }
    for secret in [&state, &oauth_session, &smtp_credentials].into_iter().chain(&provider_secrets) {
        assert!(!text.contains(secret.as_str()), "an OAuth or SMTP secret reached the logs: {secret}");
    }
    for secret in [
        first,
        second,
        "wrong password 9z8y7x",
        "shape secret 3c2b1a",
        &token,
        &token2,
        &reset,
        &verify,
        db_password,
        unreachable_password,
        crate::common::oidc::CLIENT_SECRET,
        smtp_password,
    ] {
        assert!(!text.contains(secret), "a secret reached the logs: {secret}");
    }
    let hash_line = text.lines().find(|l| l.contains("$argon2id$"));
    assert!(hash_line.is_none(), "a password hash reached the logs: {hash_line:?}");
}

/// A provider's `error` and `error_description` come from the query
/// string: logged escaped, they cannot forge a log line.
#[tokio::test]
async fn provider_errors_cannot_forge_log_lines() {
    let (logs, _recording) = capture();
    let mock = crate::common::oidc::MockProvider::start().await;
    let app = TestApp::sqlite_with(|c| c.oauth = vec![mock.oidc_config("mock")]).await;
    let start = "mutation { startOAuth(provider: \"mock\") }";
    let started = app.gql(start, json!({})).await;
    let url = url::Url::parse(&str_of(&started.body["data"]["startOAuth"])).expect("authorization URL");
    let state = url.query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
    let forged = "1970-01-01T00:00:00.000000Z  INFO authgate: forged-entry-4711";
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("state", &state)
        .append_pair("error", &format!("access_denied\n{forged}"))
        .append_pair("error_description", &format!("nope\r\n{forged}"))
        .finish();
    let reply = app
        .get(&format!("/auth/callback/mock?{query}"))
        .header("cookie", &format!("oauth_state={state}"))
        .send()
        .await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    let mine = logs.mine();
    assert!(mine.contains("forged-entry-4711"), "the provider's words were logged:\n{mine}");
    let forged_lines = logs.all().lines().filter(|l| l.starts_with("1970-01-01")).count();
    assert_eq!(forged_lines, 0, "a forged line:\n{}", logs.all());
}

/// With `AUTHGATE_METRICS_BIND`, `/metrics` leaves the public router and is
/// served by its own (which `main` binds to the private address).
#[tokio::test]
async fn metrics_can_move_off_the_public_address() {
    let app = TestApp::sqlite_with(|c| c.metrics_bind = Some("127.0.0.1:0".parse().unwrap())).await;
    assert_eq!(app.get("/metrics").send().await.status, 404, "not on the public address");
    let private = authgate::http::metrics_router(app.state.clone());
    let reply = app.get("/metrics").send_to(&private).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.contains("authgate_http_requests_in_flight"), "{}", reply.text);
}

/// A database failure reaches the client as `SERVICE_UNAVAILABLE` with a
/// generic message, and is counted where it leaves the server, by cause:
/// a pool that stayed busy is `pool_timeout`, a pool that is gone is
/// `connection`. (The recorder is shared by the whole test process, so
/// counts are compared before and after.)
#[tokio::test]
async fn database_failures_are_counted_by_cause_and_shown_generically() {
    use sea_orm::TransactionTrait;
    let count = |text: &str, cause: &str| -> f64 {
        let series = format!("authgate_db_unavailable_total{{cause=\"{cause}\"}}");
        text.lines()
            .filter(|l| l.starts_with(&series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let app = TestApp::sqlite_with(|c| {
        c.db_max_connections = 1;
        c.db_acquire_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let (token, _) = app.register("busy@example.com", "a pool of one connection").await;

    let before = app.get("/metrics").send().await.text;
    let holding = app.db().begin().await.unwrap();
    let busy = app.me(&token).await;
    drop(holding);
    assert_eq!(busy.code(), Some("SERVICE_UNAVAILABLE"), "{}", busy.body);
    assert_eq!(busy.body["errors"][0]["message"], "the service is temporarily unavailable; retry shortly");
    let after = app.get("/metrics").send().await.text;
    assert!(count(&after, "pool_timeout") >= count(&before, "pool_timeout") + 1.0, "{after}");

    app.db().clone().close().await.unwrap();
    let gone = app.me(&token).await;
    assert_eq!(gone.code(), Some("SERVICE_UNAVAILABLE"), "{}", gone.body);
    assert!(!gone.text.to_lowercase().contains("pool"), "no driver detail: {}", gone.text);
    let last = app.get("/metrics").send().await.text;
    assert!(count(&last, "connection") >= count(&after, "connection") + 1.0, "{last}");
}
