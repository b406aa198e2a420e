//! Webhooks: every delivery verified by the Standard Webhooks reference
//! library (PyPI `standardwebhooks`, in tests/webhooks/receiver.py), at
//! least once from the durable record (a failing receiver, a crash
//! mid-attempt), never to a private address unless allowed, never
//! following a redirect, once per endpoint with two instances.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use entity::{webhook_deliveries, webhook_endpoints};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::Value;

use crate::{
    both_backends,
    common::{TestApp, eventually, str_of},
};

const PW: &str = "correct horse battery";

/// The Python receiver, stopped when dropped.
pub struct Receiver {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl Receiver {
    /// `None` outside CI when Python or `standardwebhooks` is missing (said
    /// once); in CI that is a failure (`.ci/run` installs it).
    pub fn start() -> Option<Self> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        if !crate::common::python_has("standardwebhooks", "standardwebhooks") {
            return None;
        }
        let mut child = Command::new("python3")
            .arg(root.join("tests/webhooks/receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the receiver's port");
        let port = line.trim().parse().expect("a port");
        Some(Self { child, port, http: reqwest::Client::new() })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    async fn post(&self, path: &str, body: String) {
        let answer = self.http.post(format!("http://127.0.0.1:{}{path}", self.port)).body(body).send().await;
        assert!(answer.unwrap().status().is_success());
    }

    pub async fn mode(&self, mode: &str) {
        self.post("/mode", mode.to_owned()).await;
    }

    pub async fn verify_with(&self, secrets: &[&str]) {
        self.post("/secrets", secrets.join(" ")).await;
    }

    /// Every attempt that reached it: `{id, type, verified, data, mode}`.
    pub async fn attempts(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/deliveries", self.port);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Attempts it answered 2xx (`mode` ok), by `webhook-id`.
    pub async fn delivered(&self) -> Vec<Value> {
        self.attempts().await.into_iter().filter(|a| a["mode"] == "ok").collect()
    }

    async fn landed(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/landed-count", self.port);
        self.http.get(url).send().await.unwrap().text().await.unwrap().parse().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app whose webhooks may reach loopback (the receiver), a 1 s attempt.
async fn app_reaching_loopback(app: &TestApp) -> TestApp {
    app.sibling(|c| {
        c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.webhook_timeout = Duration::from_secs(1);
    })
    .await
}

/// Adds an endpoint for `receiver` (every type, or `types`); the receiver
/// verifies with its secret. Returns the endpoint's id.
async fn endpoint(app: &TestApp, receiver: &Receiver, types: &[&str]) -> uuid::Uuid {
    let types = types.iter().map(|t| t.to_string()).collect();
    let created =
        domain::webhooks::create(&app.state.auth, &receiver.url(), types, None, &Default::default())
            .await
            .expect("endpoint added");
    let secret = secrecy::ExposeSecret::expose_secret(&created.secret).to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.verify_with(&[&secret]).await;
    created.endpoint.id
}

fn start_worker(app: &TestApp) -> tokio::task::JoinHandle<()> {
    tokio::spawn(domain::webhooks::run_worker(app.state.auth.clone()))
}

async fn wait_for(receiver: &Receiver, count: usize) -> Vec<Value> {
    eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
        receiver.delivered().await.len() >= count
    })
    .await;
    receiver.delivered().await
}

both_backends!(
    deliveries_verify_with_the_reference_library,
    a_failing_receiver_gets_every_event_once_it_is_back,
    redirects_are_not_followed_and_gone_turns_the_endpoint_off,
    private_addresses_are_refused_unless_allowed,
    a_stalled_receiver_does_not_hold_up_the_others,
    a_server_key_rotation_reseals_endpoint_secrets,
);

/// Signed per Standard Webhooks, verified by its reference library; the
/// type filter; the payload carries ids, never a secret.
async fn deliveries_verify_with_the_reference_library(app: TestApp) {
    let Some(receiver) = Receiver::start() else { return };
    let app = app_reaching_loopback(&app).await;
    endpoint(&app, &receiver, &[]).await;
    let only = Receiver::start().unwrap();
    endpoint(&app, &only, &["session.revoked"]).await;
    let _worker = start_worker(&app);
    let (token, user_id) = app.register("hooked@example.com", PW).await;
    app.authed(&token, "mutation { logout }", serde_json::json!({})).await;
    // Every type: the two endpoints' creation too.
    let seen = wait_for(&receiver, 5).await;
    let mut types: Vec<String> = seen.iter().map(|a| str_of(&a["type"])).collect();
    types.sort();
    let expected = [
        "session.created",
        "session.revoked",
        "user.created",
        "webhook.endpoint_created",
        "webhook.endpoint_created",
    ];
    assert_eq!(types, expected, "{seen:?}");
    let seen: Vec<Value> = seen.into_iter().filter(|a| a["data"]["user_id"].is_string()).collect();
    assert!(seen.iter().all(|a| a["verified"] == true), "{seen:?}");
    assert!(seen.iter().all(|a| str_of(&a["id"]).starts_with("evt_")));
    assert!(seen.iter().all(|a| a["data"]["user_id"] == user_id.as_str()));
    assert!(!serde_json::to_string(&seen).unwrap().contains("horse"), "no password in a payload");
    // The fan-out's cursor stands at the last event it read.
    let cursor = entity::event_cursors::Entity::find_by_id("webhooks").one(app.db()).await.unwrap().unwrap();
    let last = entity::events::Entity::find()
        .order_by_desc(entity::events::Column::Id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.event_id, last.id);
    let filtered = wait_for(&only, 1).await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["type"], "session.revoked");
    assert_eq!(filtered[0]["data"]["details"]["reason"], "signed_out");
    assert!(filtered[0]["verified"] == true);
}

/// A receiver that fails for a while loses nothing: every event arrives
/// once it answers again, with the `webhook-id` of its failed attempts.
async fn a_failing_receiver_gets_every_event_once_it_is_back(app: TestApp) {
    let Some(receiver) = Receiver::start() else { return };
    let app = app_reaching_loopback(&app).await;
    endpoint(&app, &receiver, &["user.created"]).await;
    receiver.mode("fail").await;
    let _worker = start_worker(&app);
    for n in 0..3 {
        app.register(&format!("down{n}@example.com"), PW).await;
    }
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
            receiver.attempts().await.len() >= 3
        })
        .await
    );
    let failed: std::collections::BTreeSet<String> =
        receiver.attempts().await.iter().map(|a| str_of(&a["id"])).collect();
    assert_eq!(failed.len(), 3);
    receiver.mode("ok").await;
    // The first retry waits 5 s (±20 %) on the server's clock.
    app.clock.advance(chrono::Duration::seconds(7));
    let seen = wait_for(&receiver, 3).await;
    let delivered: std::collections::BTreeSet<String> = seen.iter().map(|a| str_of(&a["id"])).collect();
    assert_eq!(delivered, failed, "the same ids, each once");
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The row is marked once the answer is in: a moment after the receiver saw it.
    let all_delivered = || async {
        let rows = webhook_deliveries::Entity::find().all(app.db()).await.unwrap();
        rows.iter().all(|r| r.status == "delivered" && r.attempts == 2)
    };
    assert!(eventually(Duration::from_secs(10), Duration::from_millis(20), all_delivered).await);
}

/// A redirect is an answer, not an instruction: not followed (its target
/// is never asked), retried later. `410 Gone` turns the endpoint off.
async fn redirects_are_not_followed_and_gone_turns_the_endpoint_off(app: TestApp) {
    let Some(receiver) = Receiver::start() else { return };
    let app = app_reaching_loopback(&app).await;
    let id = endpoint(&app, &receiver, &["user.created"]).await;
    receiver.mode("redirect").await;
    let _worker = start_worker(&app);
    app.register("moved@example.com", PW).await;
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
            webhook_deliveries::Entity::find()
                .all(app.db())
                .await
                .unwrap()
                .iter()
                .any(|r| r.last_status == Some(307))
        })
        .await
    );
    assert_eq!(receiver.landed().await, 0, "the redirect's target was never asked");
    receiver.mode("gone").await;
    app.clock.advance(chrono::Duration::seconds(7));
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
            webhook_endpoints::Entity::find_by_id(id).one(app.db()).await.unwrap().is_some_and(|e| !e.enabled)
        })
        .await,
        "410 turns the endpoint off"
    );
    let row = webhook_deliveries::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.last_status), ("failed", Some(410)));
    // Nothing more is sent to it; what happens meanwhile is kept, as a
    // failed delivery, and not attempted.
    let (_, after) = app.register("after@example.com", PW).await;
    app.clock.advance(chrono::Duration::hours(1));
    let kept = || async {
        let rows = webhook_deliveries::Entity::find().all(app.db()).await.unwrap();
        rows.into_iter().filter(|r| r.status == "failed").count()
    };
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(50), || async { kept().await == 2 }).await
    );
    assert_eq!(receiver.attempts().await.len(), 2, "never attempted while off");
    let failed = domain::webhooks::failed(&app.state.auth, 10).await.unwrap();
    assert_eq!(failed[0].last_error.as_deref(), Some("the endpoint was turned off"), "{failed:?}");
    // Back on, a replay sends both: nothing was lost while it was off.
    receiver.mode("ok").await;
    assert!(domain::webhooks::enable(&app.state.auth, id).await.unwrap());
    assert_eq!(domain::webhooks::replay(&app.state.auth, Some(id), None).await.unwrap(), 2);
    let seen = wait_for(&receiver, 2).await;
    let users: Vec<String> = seen.iter().map(|a| str_of(&a["data"]["user_id"])).collect();
    assert!(users.contains(&after), "{seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// A receiver that stalls holds at most its share of the slots in flight
/// (8): another endpoint's delivery goes out beside its stalled attempts,
/// not after them (with a 30 s timeout, 32 stalled attempts would hold it
/// back past the test's bound).
async fn a_stalled_receiver_does_not_hold_up_the_others(app: TestApp) {
    let Some(slow) = Receiver::start() else { return };
    let app = app
        .sibling(|c| {
            c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
            c.webhook_timeout = Duration::from_secs(30);
            c.rates.set(domain::config::Rule::RegisterIp, "100/1h".parse().unwrap());
        })
        .await;
    endpoint(&app, &slow, &[]).await;
    slow.mode("stall").await;
    for n in 0..20 {
        app.register(&format!("backlog{n}@example.com"), PW).await;
    }
    // Added after the backlog: it gets none of it.
    app.clock.advance(chrono::Duration::seconds(1));
    let fast = Receiver::start().unwrap();
    endpoint(&app, &fast, &["user.created"]).await;
    let _worker = start_worker(&app);
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
            slow.attempts().await.len() == 8
        })
        .await,
        "the stalled endpoint gets its 8 in flight"
    );
    let (_, user_id) = app.register("beside@example.com", PW).await;
    let seen = wait_for(&fast, 1).await;
    assert_eq!(seen[0]["data"]["user_id"], user_id.as_str());
    assert_eq!(slow.attempts().await.len(), 8, "no more than its share while stalled");
    slow.mode("ok").await;
}

/// Rotating the server key: endpoint secrets still open with the old key
/// as the previous one, and `reseal` moves them; a server without the key
/// they were sealed with refuses to start (every delivery would fail).
async fn a_server_key_rotation_reseals_endpoint_secrets(app: TestApp) {
    let app = app.shareable().await;
    let old_key = app.state.auth.config.secret_key.clone();
    let allowing =
        app.second_state(|c| c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let created = domain::webhooks::create(
        &allowing.auth,
        "http://127.0.0.1:9/hook",
        vec![],
        None,
        &Default::default(),
    )
    .await
    .expect("endpoint added");
    let sealed_before = webhook_endpoints::Entity::find_by_id(created.endpoint.id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap()
        .secret;
    let new_key = "bmV3LXNlY3JldC1rZXktb2YtMzItYnl0ZXMtdGVzdHM=";
    let lost = app.second_state(|c| c.secret_key = Some(new_key.into())).await;
    let refusal = authgate::preflight(&lost.auth).await.expect_err("a secret no key opens").to_string();
    assert!(refusal.starts_with("1 webhook endpoints hold a secret"), "{refusal}");
    assert!(refusal.contains("authgate reseal"), "{refusal}");
    let rotating = app
        .second_state(|c| {
            c.secret_key = Some(new_key.into());
            c.secret_key_previous = old_key.clone();
        })
        .await;
    assert_eq!(domain::webhooks::secrets::reseal_all(&rotating.auth).await.unwrap(), (1, 0));
    assert_eq!(domain::webhooks::secrets::reseal_all(&rotating.auth).await.unwrap(), (0, 0), "done once");
    let sealed_after = webhook_endpoints::Entity::find_by_id(created.endpoint.id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap()
        .secret;
    assert_ne!(sealed_after, sealed_before);
    authgate::preflight(&lost.auth).await.expect("the new key alone opens it now");
    assert_eq!(domain::webhooks::secrets::reseal_all(&app.state.auth).await.unwrap(), (0, 1));
    assert!(authgate::preflight(&app.state.auth).await.is_err(), "the old key alone no longer opens it");
}

/// Loopback, private, link-local and metadata addresses are refused when
/// an endpoint is added, and again at every delivery (a name that
/// resolved elsewhere before, or an allowance withdrawn).
async fn private_addresses_are_refused_unless_allowed(app: TestApp) {
    let auth = &app.state.auth;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://0.0.0.0:9/hook",
        "ftp://hooks.example.com/",
        "https://user:pass@hooks.example.com/",
        "not a url",
    ] {
        let refused = domain::webhooks::create(auth, url, vec![], None, &Default::default()).await;
        let Err(domain::error::AuthError::BadUserInput { input, .. }) = refused else {
            panic!("{url} was not refused: {:?}", refused.map(|c| c.endpoint.id))
        };
        assert_eq!(input, domain::error::Input::Url, "{url}");
    }
    let unknown = domain::webhooks::create(
        auth,
        "https://hooks.example.com/",
        vec!["user.nope".into()],
        None,
        &Default::default(),
    )
    .await;
    assert!(matches!(
        unknown,
        Err(domain::error::AuthError::BadUserInput { input: domain::error::Input::EventTypes, .. })
    ));
    assert_eq!(app.count(webhook_endpoints::Entity).await, 0);

    // Added while loopback was allowed; delivered by an instance that does
    // not allow it: refused at the delivery, never sent.
    let Some(receiver) = Receiver::start() else { return };
    let allowing = app
        .sibling(|c| {
            c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
            // A second instance shares the database (SQLite: no cache).
            c.session_cache_ttl = Duration::ZERO;
        })
        .await;
    endpoint(&allowing, &receiver, &["user.created"]).await;
    let by_name = domain::webhooks::create(
        &allowing.state.auth,
        &format!("http://localhost:{}/hook", receiver.port),
        vec!["user.created".into()],
        None,
        &Default::default(),
    )
    .await
    .expect("allowed");
    let strict = allowing.second_state(|c| c.webhook_allow_networks = vec![]).await;
    let _worker = tokio::spawn(domain::webhooks::run_worker(strict.auth.clone()));
    allowing.register("strict@example.com", PW).await;
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
            let rows = webhook_deliveries::Entity::find().all(allowing.db()).await.unwrap();
            rows.len() == 2 && rows.iter().all(|r| r.last_error.is_some())
        })
        .await
    );
    let rows = webhook_deliveries::Entity::find().all(allowing.db()).await.unwrap();
    assert!(rows.iter().all(|r| r.status == "pending" && r.last_status.is_none()), "{rows:?}");
    let errors: Vec<&str> = rows.iter().filter_map(|r| r.last_error.as_deref()).collect();
    assert!(errors.iter().all(|e| e.contains("resolves to no public address")), "{errors:?}");
    assert!(rows.iter().any(|r| r.endpoint_id == by_name.endpoint.id), "the name was tried too");
    assert!(receiver.attempts().await.is_empty(), "nothing reached the receiver");
}

/// `authgate` itself, as an operator runs it, on a SQLite file.
pub(crate) struct Binary {
    dir: tempfile::TempDir,
    /// Settings beyond the defaults below.
    extra: Vec<(String, String)>,
}

impl Binary {
    pub(crate) fn new() -> Self {
        Self::with(&[])
    }

    pub(crate) fn with(extra: &[(&str, &str)]) -> Self {
        let extra = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self { dir: tempfile::tempdir().unwrap(), extra }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_authgate"));
        let db = self.dir.path().join("authgate.db");
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
            .env("AUTHGATE_SECRET_KEY", "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=")
            .env("AUTHGATE_BIND", "127.0.0.1:0")
            .env("AUTHGATE_ARGON2_MEMORY_KIB", "256")
            .env("AUTHGATE_ARGON2_ITERATIONS", "1")
            .env("AUTHGATE_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
            .env("AUTHGATE_WEBHOOK_TIMEOUT", "2s")
            .env("AUTHGATE_LOG", "warn,authgate=info")
            .env("NO_COLOR", "1")
            .envs(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Runs a command to its end; its standard output.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("authgate runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `authgate serve`, once it listens: the process and its address.
    pub(crate) fn serve(&self) -> (Child, String) {
        let mut child = self.command(&["serve"]).stdout(Stdio::piped()).spawn().expect("authgate serves");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server's log").unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        // Keep reading, or a full pipe would stall the server's logging.
        std::thread::spawn(move || lines.for_each(drop));
        (child, addr)
    }
}

/// Registers `email` on the server at `addr`; the session token.
pub(crate) async fn register_at(addr: &str, email: &str) -> String {
    let body = serde_json::json!({
        "query": "mutation R($i: RegisterInput!) { register(input: $i) { token } }",
        "variables": { "i": { "email": email, "password": PW } },
    });
    let reply: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply["data"]["register"]["token"].is_string(), "{reply}");
    reply["data"]["register"]["token"].as_str().unwrap().to_owned()
}

/// The server is killed (SIGKILL) while a delivery is under way: after
/// the restart it arrives, with the `webhook-id` of the attempt that was
/// cut off. An endpoint added from the command line is delivered to
/// without a restart; the record is exported as NDJSON.
#[tokio::test]
async fn a_delivery_cut_off_by_a_crash_arrives_after_the_restart() {
    let Some(receiver) = Receiver::start() else { return };
    let binary = Binary::new();
    binary.run(&["migrate"]);
    let (mut server, addr) = binary.serve();
    let added = binary.run(&["webhooks", "add", &receiver.url(), "--event", "user.created"]);
    let secret =
        added.lines().find_map(|l| l.strip_prefix("secret ")).expect("the secret is printed").to_owned();
    assert!(secret.starts_with("whsec_"), "{added}");
    receiver.verify_with(&[&secret]).await;
    let listed = binary.run(&["webhooks", "list"]);
    assert!(
        listed.contains(&receiver.url()) && listed.contains("user.created") && listed.contains("enabled"),
        "{listed}"
    );
    assert!(!listed.contains("whsec_"), "the secret is shown once");

    receiver.mode("stall").await;
    register_at(&addr, "crash@example.com").await;
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async {
            !receiver.attempts().await.is_empty()
        })
        .await,
        "the attempt began"
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let cut = receiver.attempts().await;
    assert_eq!(cut.len(), 1);
    receiver.mode("ok").await;

    let (mut server, _) = binary.serve();
    // The lease of the cut attempt (2 × 2 s + 2 s) runs out, then it is sent again.
    let seen = wait_for_within(&receiver, 1, Duration::from_secs(20)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["id"], cut[0]["id"], "the same webhook-id");
    assert_eq!(seen[0]["verified"], true);
    assert_eq!(seen[0]["type"], "user.created");

    let export = binary.run(&["events", "export", "--since", "1h"]);
    let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).expect("NDJSON")).collect();
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(types, ["webhook.endpoint_created", "user.created", "session.created"], "{export}");
    assert!(!export.contains("whsec_") && !export.contains("horse"), "no secret in the export");
    assert!(binary.run(&["events", "export", "--since", "2999-01-01T00:00:00Z"]).is_empty());
    let failed = binary.command(&["events", "export", "--since", "last tuesday"]).output().unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("neither an RFC 3339 time nor a duration"));
}

async fn wait_for_within(receiver: &Receiver, count: usize, bound: Duration) -> Vec<Value> {
    eventually(bound, Duration::from_millis(50), || async { receiver.delivered().await.len() >= count })
        .await;
    receiver.delivered().await
}

/// Two instances on one PostgreSQL database, both delivering: each event
/// reaches the endpoint once.
#[tokio::test]
async fn two_instances_deliver_each_event_once() {
    let Some(receiver) = Receiver::start() else { return };
    let Some(app) = TestApp::postgres_with(|c| {
        c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    endpoint(&app, &receiver, &["user.updated"]).await;
    let (token, _) = app.register("twice@example.com", PW).await;
    let other = app.second_state(|c| c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let _workers = (start_worker(&app), tokio::spawn(domain::webhooks::run_worker(other.auth.clone())));
    let update = "mutation U($n: String!) { updateProfile(input: { name: $n }) { name } }";
    let updates = (0..30).map(|n| {
        let (app, token) = (&app, &token);
        async move { app.authed(token, update, serde_json::json!({ "n": format!("Name {n}") })).await }
    });
    futures_util::future::join_all(updates).await;
    let seen = wait_for_within(&receiver, 30, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_after = receiver.attempts().await;
    let ids: std::collections::BTreeSet<String> = seen_after.iter().map(|a| str_of(&a["id"])).collect();
    assert_eq!(ids.len(), 30, "every event");
    assert_eq!(seen_after.len(), 30, "each once: {} attempts", seen_after.len());
    assert!(seen.iter().all(|a| a["verified"] == true));
}
