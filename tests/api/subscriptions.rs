//! Live subscriptions over Server-Sent Events: a signed-in client hears of
//! its own session's end (and of its account's other events) as it
//! happens, over a real socket; the stream ends with the session; refusals
//! are plain answers.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{TestApp, str_of},
};

both_backends!(a_subscriber_hears_its_session_end_at_once, subscriptions_are_refused_plainly);

const PW: &str = "correct horse battery";
const FOLLOW: &str =
    "subscription S($after: ID) { securityEvents(after: $after) { id type sessionId details } }";

pub(crate) async fn serve(app: &TestApp) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = authgate::http::server::Limits::from_config(&app.state.auth.config);
    tokio::spawn(authgate::http::server::serve(listener, app.router.clone(), limits, std::future::pending()));
    addr
}

/// An open event stream: its `next` payloads as they arrive.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(addr: std::net::SocketAddr, token: &str, after: Option<&str>) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .json(&json!({ "query": FOLLOW, "variables": { "after": after } }))
            .send()
            .await
            .unwrap()
    }

    /// The next event: `("next", payload)` or `("complete", null)`; `None`
    /// when the stream ended or nothing came within 5 s.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                let event = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_owned();
                let data =
                    block.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or("").trim().to_owned();
                return Some((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
            let chunk =
                tokio::time::timeout(Duration::from_secs(5), self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn a_subscriber_hears_its_session_end_at_once(app: TestApp) {
    let addr = serve(&app).await;
    let (watched, _) = app.register("live@example.com", PW).await;
    let other = str_of(&app.login("live@example.com", PW).await.body["data"]["login"]["token"]);
    let response = Stream::open(addr, &watched, None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = Stream { response, buffer: String::new() };
    // Let the subscription start listening before anything happens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.login("live@example.com", PW).await;
    let (event, payload) = stream.next().await.expect("a sign-in elsewhere");
    assert_eq!(event, "next");
    assert_eq!(payload["data"]["securityEvents"]["type"], "session.created", "{payload}");
    let resume_after = str_of(&payload["data"]["securityEvents"]["id"]);

    // Signed out from the other device: heard at once, then the end.
    let sessions = app.authed(&watched, "{ me { sessions { id current } } }", json!({})).await;
    let mine = sessions.body["data"]["me"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .clone();
    let revoked_at = Instant::now();
    let revoke =
        app.authed(&other, "mutation($id: ID!) { revokeSession(id: $id) }", json!({ "id": mine })).await;
    assert_eq!(revoke.body["data"]["revokeSession"], true);
    let (event, payload) = stream.next().await.expect("the sign-out");
    let heard = revoked_at.elapsed();
    assert_eq!(event, "next");
    let revoked = &payload["data"]["securityEvents"];
    assert_eq!(
        (revoked["type"].clone(), revoked["sessionId"].clone()),
        (json!("session.revoked"), mine),
        "{payload}"
    );
    assert!(heard < Duration::from_secs(2), "heard after {heard:?}");
    eprintln!("a sign-out elsewhere was heard after {heard:?}");
    let (event, _) = stream.next().await.expect("the end");
    assert_eq!(event, "complete");
    assert!(stream.next().await.is_none(), "nothing after the end");

    // Resuming needs a live session; a live one gets what it missed.
    let response = Stream::open(addr, &watched, Some(&resume_after)).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    let response = Stream::open(addr, &other, Some(&resume_after)).await;
    let mut stream = Stream { response, buffer: String::new() };
    let (_, payload) = stream.next().await.expect("the backlog");
    assert_eq!(payload["data"]["securityEvents"]["type"], "session.revoked", "{payload}");
}

async fn subscriptions_are_refused_plainly(app: TestApp) {
    let app = app.sibling(|c| c.max_batch = 4).await;
    let (token, _) = app.register("plain@example.com", PW).await;
    let body = json!({ "query": FOLLOW });
    // Without a session: a JSON answer, not a stream.
    let reply = app.post().json(&body).header("accept", "text/event-stream").send().await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{}", reply.text);
    // Without asking for a stream.
    let reply = app.post().json(&body).bearer(&token).send().await;
    assert_eq!((reply.status.as_u16(), reply.code()), (406, Some("BAD_REQUEST")), "{}", reply.text);
    // Not in a batch, not over GET.
    let reply =
        app.post().json(&json!([body])).bearer(&token).header("accept", "text/event-stream").send().await;
    assert_eq!(reply.body[0]["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{}", reply.text);
    let uri = format!("/graphql?query={}", "subscription%20%7B%20securityEvents%20%7B%20id%20%7D%20%7D");
    let reply = app.get(&uri).bearer(&token).send().await;
    assert_eq!(reply.status.as_u16(), 405, "{}", reply.text);
    // One stream per request: the spec's single root field (aliases or a
    // fragment would open one each), and at most five per user.
    let twice = json!({ "query": "subscription { a: securityEvents { id } b: securityEvents { id } }" });
    let reply = app.post().json(&twice).bearer(&token).header("accept", "text/event-stream").send().await;
    assert_eq!(reply.code(), Some("GRAPHQL_VALIDATION_FAILED"), "{}", reply.text);
    let addr = serve(&app).await;
    let mut open = Vec::new();
    for _ in 0..domain::events::live::STREAMS_PER_USER {
        let mut stream = Stream { response: Stream::open(addr, &token, None).await, buffer: String::new() };
        assert!(stream.response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        // Each is counted once it runs: ask for its first bytes.
        let _ = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
        open.push(stream);
    }
    let response = Stream::open(addr, &token, None).await;
    let mut sixth = Stream { response, buffer: String::new() };
    let (_, payload) = sixth.next().await.expect("an answer");
    assert_eq!(payload["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{payload}");
    drop(open);

    // A bad cursor is a typed error, and the stream's end.
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({ "query": FOLLOW, "variables": { "after": "yesterday" } }))
        .send()
        .await
        .unwrap();
    let mut stream = Stream { response, buffer: String::new() };
    let (event, payload) = stream.next().await.unwrap();
    assert_eq!(event, "next");
    let error = &payload["errors"][0]["extensions"];
    assert_eq!(
        (error["code"].clone(), error["field"].clone()),
        (json!("BAD_USER_INPUT"), json!("after")),
        "{payload}"
    );
    assert_eq!(stream.next().await.unwrap().0, "complete");
}
