//! The verifier library for the team's services (`verify/`, the crate
//! `authgate-verify`) against a live server over TCP: our tokens pass it,
//! and it refuses them for another audience or issuer, changed, expired,
//! signed by a revoked key, or once their session has ended (the feed,
//! followed across a dropped connection; every token refused when the feed
//! stays silent). The example service (`examples/verify_service.rs`) runs
//! as a process of its own.

use std::{
    io::BufRead,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::Duration,
};

use authgate_verify::{Config, Refused, StartError, Verifier};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::access::{Alg, keys};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::{
    both_backends,
    common::{LOGOUT, SERVICE_KEY, TestApp, str_of},
    outage::Proxy,
    subscriptions::serve,
};

const PW: &str = "correct horse battery";
const AUD: &str = "https://api.example.com";
const OTHER_AUD: &str = "https://reports.example.com";
const TOKEN: &str =
    "mutation AccessToken($audience: String!) { accessToken(audience: $audience) { token expiresAt } }";

both_backends!(
    our_tokens_pass_the_verifier_and_those_of_ended_sessions_do_not,
    a_verifier_in_its_own_process_refuses_a_token_once_its_session_ends,
    the_verifier_follows_rotations_and_refuses_a_revoked_keys_tokens,
    the_verifier_resumes_the_feed_after_a_drop_and_fails_closed_when_it_stays_silent,
);

async fn mint_for(app: &TestApp, session: &str, audience: &str) -> String {
    let reply = app.authed(session, TOKEN, json!({ "audience": audience })).await;
    str_of(&reply.body["data"]["accessToken"]["token"])
}

fn issuer(app: &TestApp) -> String {
    app.state.auth.config.public_url.trim_end_matches('/').to_owned()
}

/// A verifier of `app`'s tokens reached at `addr`, on the test server's
/// clock (which runs ahead of the wall clock).
fn config(app: &TestApp, addr: SocketAddr) -> Config {
    let clock = app.clock.clone();
    Config::new(format!("http://{addr}"), AUD)
        .issuer(issuer(app))
        .service_key(SERVICE_KEY)
        .refetch_every(Duration::from_millis(200))
        .clock(move || domain::clock::Clock::now(&clock).timestamp())
}

/// Until `verifier` refuses `token` (5 s at most), and why.
async fn refused_soon(verifier: &Verifier, token: &str) -> Refused {
    for _ in 0..250 {
        if let Err(refused) = verifier.verify(token).await {
            return refused;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still accepted after 5 s");
}

/// Every check, with tokens of a live server: the claims come through;
/// another audience, another issuer, a changed claim, an expired token
/// are refused; the token of a session that signed out, or that a
/// password change ended, is refused through the feed.
async fn our_tokens_pass_the_verifier_and_those_of_ended_sessions_do_not(app: TestApp) {
    let app = app.sibling(|c| c.jwt_audiences.push(OTHER_AUD.into())).await;
    let addr = serve(&app).await;
    let (session, user_id) = app.register("verified@example.com", PW).await;
    let starting = std::time::Instant::now();
    let verifier = Verifier::start(config(&app, addr)).await.expect("the verifier starts");
    // Current as soon as it has caught up: the feed says so at once, not
    // at its next 5-second heartbeat.
    assert!(starting.elapsed() < Duration::from_secs(3), "started in {:?}", starting.elapsed());
    let token = mint_for(&app, &session, AUD).await;
    let claims = verifier.verify(&token).await.expect("our token passes");
    assert_eq!((claims.sub.as_str(), claims.acr.as_deref()), (user_id.as_str(), Some("1")));
    assert_eq!(claims.amr, ["pwd"]);

    let other = mint_for(&app, &session, OTHER_AUD).await;
    assert_eq!(verifier.verify(&other).await.unwrap_err(), Refused::Audience);
    let elsewhere = Verifier::start(config(&app, addr).issuer("https://evil.example.com")).await.unwrap();
    assert_eq!(elsewhere.verify(&token).await.unwrap_err(), Refused::Issuer);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    forged["sub"] = json!(uuid::Uuid::new_v4().to_string());
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    assert_eq!(verifier.verify(&parts.join(".")).await.unwrap_err(), Refused::Signature);
    // The same verifier later (it checked the signature once): expired
    // past `exp` and the leeway, to the second.
    let (clock, ahead) = (app.clock.clone(), std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0)));
    let moved = ahead.clone();
    let later = Verifier::start(
        config(&app, addr)
            .clock(move || domain::clock::Clock::now(&clock).timestamp() + moved.load(Ordering::SeqCst)),
    )
    .await
    .unwrap();
    assert!(later.verify(&token).await.is_ok());
    ahead.store(300 + 60, Ordering::SeqCst);
    assert!(later.verify(&token).await.is_ok(), "within the leeway");
    ahead.store(300 + 61, Ordering::SeqCst);
    assert_eq!(later.verify(&token).await.unwrap_err(), Refused::Expired, "past exp and the leeway");

    // Ended sessions: a sign-out, and a password change ending the others.
    let (second, _) = app.register("verified2@example.com", PW).await;
    let login = app.login("verified2@example.com", PW).await;
    let other_device = str_of(&login.body["data"]["login"]["token"]);
    let second_token = mint_for(&app, &other_device, AUD).await;
    assert!(verifier.verify(&second_token).await.is_ok());
    app.authed(&session, LOGOUT, json!({})).await;
    assert_eq!(refused_soon(&verifier, &token).await, Refused::SessionEnded);
    app.change_password(&second, PW, "another horse battery staple").await;
    assert_eq!(refused_soon(&verifier, &second_token).await, Refused::SessionEnded);
    // Where it would resume: the feed's own cursor (`tx-id`).
    let cursor = verifier.cursor().expect("a cursor");
    assert!(
        cursor.split_once('-').is_some_and(|(tx, id)| tx.parse::<i64>().is_ok() && id.parse::<i64>().is_ok())
    );

    // No feed without the key to it.
    let unkeyed = Config::new(format!("http://{addr}"), AUD);
    assert!(matches!(Verifier::start(unkeyed.clone()).await, Err(StartError::NoServiceKey)));
    let wrong = Verifier::start(unkeyed.service_key("not-a-service-key-aaaaaaaaaaaaaaaaaaaaaa")).await;
    let Err(StartError::Feed { reason, .. }) = wrong else { panic!("a wrong service key starts nothing") };
    assert!(reason.contains("service key was refused"), "{reason}");
}

/// The example service (`examples/verify_service.rs`), a process of its
/// own: a token from this server opens it; after a sign-out it refuses
/// the same token (`401`, `invalid_token`) within the feed's reach.
async fn a_verifier_in_its_own_process_refuses_a_token_once_its_session_ends(app: TestApp) {
    let addr = serve(&app).await;
    let service = ExampleService::start(addr, &issuer(&app)).await;
    let (session, user_id) = app.register("elsewhere@example.com", PW).await;
    let token = mint_for(&app, &session, AUD).await;
    let http = reqwest::Client::new();
    let hello = |bearer: Option<String>| {
        let mut request = http.get(format!("{}/hello", service.url));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    let answer = hello(Some(token.clone())).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["sub"], user_id.as_str());
    let anonymous = hello(None).await.unwrap();
    assert_eq!(
        (anonymous.status().as_u16(), &anonymous.headers()["www-authenticate"]),
        (401, &"Bearer".parse().unwrap())
    );

    app.authed(&session, LOGOUT, json!({})).await;
    let started = std::time::Instant::now();
    let mut refused = None;
    for _ in 0..250 {
        let answer = hello(Some(token.clone())).await.unwrap();
        if answer.status() != 200 {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("refused within 5 s of the sign-out");
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("invalid_token") && challenge.contains("session has ended"), "{challenge}");
    eprintln!("the other process refused the token {} ms after the sign-out", started.elapsed().as_millis());
}

/// A rotated key verifies from its first token (the verifier fetches the
/// set for a kid it lacks), the old key's tokens verify until they
/// expire, and once a key is revoked its tokens are refused as soon as the
/// verifier has fetched the set again.
async fn the_verifier_follows_rotations_and_refuses_a_revoked_keys_tokens(app: TestApp) {
    let addr = serve(&app).await;
    let (session, _) = app.register("rotating@example.com", PW).await;
    let before = mint_for(&app, &session, AUD).await;
    let verifier = Verifier::start(config(&app, addr)).await.unwrap();
    let first_kids = verifier.kids();
    assert_eq!(first_kids.len(), 1);
    let new = keys::rotate(&app.state.auth, Alg::Es256).await.unwrap().expect("a new key");
    app.clock.advance(chrono::Duration::from_std(keys::PUBLISH_LEAD).unwrap() + chrono::Duration::seconds(1));
    let after = mint_for(&app, &session, AUD).await;
    assert!(verifier.verify(&after).await.is_ok(), "the new key's first token");
    assert!(verifier.kids().contains(&new));
    assert!(verifier.verify(&before).await.is_ok(), "the old key's token, still alive");

    // A key that leaked: revoked, and a third key signs at once.
    assert!(keys::revoke(&app.state.auth, &new).await.unwrap());
    assert!(verifier.verify(&after).await.is_ok(), "until the verifier fetches the set again");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let third = mint_for(&app, &session, AUD).await;
    assert!(verifier.verify(&third).await.is_ok(), "a kid it lacks: it fetched the set");
    assert_eq!(verifier.verify(&after).await.unwrap_err(), Refused::UnknownKey, "the revoked key's token");
    assert!(!verifier.kids().contains(&new));
}

/// The feed's connection drops while a session ends: the verifier
/// reconnects after its last cursor and refuses that session's token.
/// While it cannot reach the feed for longer than `max_silence`, it
/// refuses every token, and it accepts them again once it hears the feed.
async fn the_verifier_resumes_the_feed_after_a_drop_and_fails_closed_when_it_stays_silent(app: TestApp) {
    let addr = serve(&app).await;
    let proxy = Proxy::in_front_of(addr).await;
    let (session, _) = app.register("dropped@example.com", PW).await;
    let (kept, _) = app.register("kept@example.com", PW).await;
    let (token, kept_token) = (mint_for(&app, &session, AUD).await, mint_for(&app, &kept, AUD).await);
    let verifier =
        Verifier::start(config(&app, proxy.addr).max_silence(Duration::from_secs(2))).await.unwrap();
    assert!(verifier.verify(&token).await.is_ok());

    proxy.refuse.store(true, Ordering::SeqCst);
    proxy.cut_all();
    app.authed(&session, LOGOUT, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(verifier.verify(&token).await.is_ok(), "it has not heard of the end yet");
    assert_eq!(
        refused_soon(&verifier, &kept_token).await,
        Refused::Unavailable("the revocation feed has been silent too long"),
        "silent for longer than allowed: every token refused"
    );
    proxy.refuse.store(false, Ordering::SeqCst);
    // Back within the reconnect pause (5 s at most): the end it missed
    // arrives, and the live session's token passes again.
    for _ in 0..400 {
        if verifier.verify(&token).await == Err(Refused::SessionEnded) {
            assert!(verifier.verify(&kept_token).await.is_ok(), "the feed is heard again");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("8 s after the feed came back: {:?}", verifier.verify(&token).await);
}

/// `examples/verify_service.rs` running as its own process (killed on drop).
struct ExampleService {
    child: Child,
    url: String,
}

impl ExampleService {
    async fn start(authgate: SocketAddr, issuer: &str) -> Self {
        // Built by `cargo test` beside the test binary (target/debug/examples).
        let exe = std::env::current_exe().unwrap();
        let path = exe.parent().unwrap().parent().unwrap().join("examples/verify_service");
        assert!(path.exists(), "{} is missing: `cargo test` builds the examples", path.display());
        let mut child = Command::new(path)
            .env("AUTHGATE_URL", format!("http://{authgate}"))
            .env("AUTHGATE_ISSUER", issuer)
            .env("AUDIENCE", AUD)
            .env("AUTHGATE_SERVICE_KEY", SERVICE_KEY)
            .env("LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example service starts");
        // Read aside: the service fetches the keys from this runtime's server first.
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .unwrap()
        .unwrap();
        let url =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("said {line:?}")).to_owned();
        ExampleService { child, url }
    }
}

impl Drop for ExampleService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A transaction left open holds a committed end back from the feed
/// (PostgreSQL commit order): the heartbeat says how long, so a verifier
/// tells a stalled feed from a quiet one; the end follows once it closes.
#[tokio::test]
async fn a_held_back_end_shows_as_the_heartbeats_lag() {
    let Some(app) = TestApp::postgres().await else { return };
    crate::common::within(async {
        let addr = serve(&app).await;
        let (session, _) = app.register("held@example.com", PW).await;
        let mut response = reqwest::Client::new()
            .get(format!("http://{addr}/revocations"))
            .bearer_auth(SERVICE_KEY)
            .header("accept", "text/event-stream")
            .header("last-event-id", "0-0")
            .send()
            .await
            .unwrap();
        let mut open = sqlx::PgConnection::connect(app.database_url()).await.unwrap();
        sqlx::Executor::execute(&mut open, "BEGIN; SELECT pg_current_xact_id();").await.unwrap();
        app.authed(&session, LOGOUT, json!({})).await;
        let signed_out = std::time::Instant::now();
        // The heartbeat after the catch-up, then the one 5 s later.
        let (mut text, mut seen) = (String::new(), 0);
        let heartbeat = loop {
            let chunk = tokio::time::timeout(Duration::from_secs(8), response.chunk()).await.unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the stream goes on")));
            assert!(!text.contains("event: revocation"), "held back: {text}");
            let beats: Vec<&str> = text.split("event: heartbeat\ndata: ").skip(1).collect();
            if beats.len() > seen {
                seen = beats.len();
                let data = beats[seen - 1];
                let beat = serde_json::from_str::<Value>(&data[..data.find('\n').unwrap()]).unwrap();
                if signed_out.elapsed() >= Duration::from_secs(4) {
                    break beat;
                }
            }
        };
        let lag = heartbeat["lagMs"].as_u64().unwrap();
        assert!(lag >= 3000, "held back since the sign-out, about 5 s before: {heartbeat}");
        sqlx::Executor::execute(&mut open, "ROLLBACK").await.unwrap();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(3), response.chunk()).await.unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
            if text.contains("event: revocation") {
                break;
            }
        }
    })
    .await;
}
