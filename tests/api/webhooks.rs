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
use sea_orm::EntityTrait;
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
        let probe = Command::new("python3").args(["-c", "import standardwebhooks"]).output();
        if !probe.is_ok_and(|out| out.status.success()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs python3 with standardwebhooks (pip install standardwebhooks): the webhook tests may not be skipped"
            );
            eprintln!("SKIPPED: python3 with standardwebhooks is missing (pip install standardwebhooks)");
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
    let rows = webhook_deliveries::Entity::find().all(app.db()).await.unwrap();
    assert!(rows.iter().all(|r| r.status == "delivered" && r.attempts == 2), "{rows:?}");
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
    // Nothing more is sent to it.
    app.register("after@example.com", PW).await;
    app.clock.advance(chrono::Duration::hours(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.attempts().await.len(), 2);
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
