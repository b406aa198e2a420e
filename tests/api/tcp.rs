//! The server over a real TCP socket, as a client sees it.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use authgate::http::server::Limits;
use entity::sessions;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    both_backends,
    common::{LOGOUT, ME, REGISTER, TestApp},
};

both_backends!(register_me_logout_over_tcp_with_cookies);

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
        max_connection_age: Duration::from_secs(600),
        max_connections: 50,
        max_connections_per_client: 0,
        max_connections_per_network: 0,
        trusted_proxies: Vec::new(),
        shutdown_timeout: Duration::from_secs(1),
    }
}

/// The app on a loopback port, through the server's own accept loop.
async fn serve(app: &TestApp, limits: Limits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(authgate::http::server::serve(
        listener,
        app.router.clone(),
        limits,
        std::future::pending(),
    ));
    (addr, server)
}

/// Reads until the server closes the connection (or 6 s pass); returns
/// what arrived and how long it took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after 6 s; got {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), started.elapsed())
}

/// `n` kept-alive connections, each answered once (so the server has
/// surely accepted it) and then held open, idle, until dropped or until
/// the header timeout closes it.
async fn held_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut holders = Vec::new();
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
            .await
            .expect("a holder is answered")
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "a holder is served");
        holders.push(stream);
    }
    holders
}

async fn served(client: &reqwest::Client, addr: SocketAddr) -> bool {
    let reply = client
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await;
    matches!(reply, Ok(r) if r.status() == 200)
}

/// Half a header, an idle kept-alive connection and a body sent a byte at a
/// time are all closed within their timeouts, while others are served.
#[tokio::test]
async fn slow_clients_are_cut_off_and_others_served() {
    let app = TestApp::sqlite_with(|c| c.request_timeout = Duration::from_secs(2)).await;
    let (addr, _server) = serve(&app, limits()).await;
    let client = reqwest::Client::new();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-").await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let (mut trickle_read, mut trickle_write) = trickle.into_split();
    let dribble = tokio::spawn(async move {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if trickle_write.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    assert!(served(&client, addr).await, "a normal request meanwhile");

    let (seen, took) = until_closed(&mut silent).await;
    assert!(took < Duration::from_secs(4), "a connection that sends nothing held {took:?}: {seen:?}");
    let (seen, took) = until_closed(&mut half).await;
    assert!(took < Duration::from_secs(4), "half a header held {took:?}: {seen:?}");
    let (seen, took) = until_closed(&mut idle).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(took < Duration::from_secs(4), "idle keep-alive held {took:?}");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), trickle_read.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BAD_REQUEST"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "trickled body held {:?}", started.elapsed());
    dribble.abort();
    assert!(served(&client, addr).await, "still serving");
}

/// At most `max_connections` are open: idle ones beyond it wait in the
/// backlog and are served once a slot frees (here, when a holder leaves).
#[tokio::test]
async fn open_connections_are_capped() {
    let app = TestApp::sqlite().await;
    // Holders time out only after 30 s: nothing frees a slot by itself here.
    let limits = Limits { max_connections: 2, header_read_timeout: Duration::from_secs(30), ..limits() };
    let (addr, _server) = serve(&app, limits).await;
    let mut holders = held_connections(addr, 2).await;
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut early = [0u8; 16];
    let answered_early = tokio::time::timeout(Duration::from_secs(1), waiting.read(&mut early)).await.is_ok();
    assert!(!answered_early, "a third connection is not served while two are open");
    drop(holders.pop());
    let (seen, _) = until_closed(&mut waiting).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "served once a slot freed: {seen:?}");
}

/// Refusals (415, 413, 403) come after the bounded body was read, so a
/// real client reads the JSON answer instead of a connection reset.
#[tokio::test]
async fn refused_posts_answer_cleanly_over_the_wire() {
    let app = TestApp::sqlite().await;
    let (addr, _server) = serve(&app, limits()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/graphql");
    let form = client
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"query":"{ me { id } }"}"#.repeat(1000));
    let reply = form.send().await.expect("an answer, not a reset");
    assert_eq!(reply.status(), 415);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let big = format!(r#"{{"query":"{{ me {{ id }} }}","x":"{}"}}"#, "a".repeat(200 * 1024));
    let reply = client
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("an answer");
    assert_eq!(reply.status(), 413);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let multipart = format!(
        "--x\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n--x--\r\n",
        "x".repeat(100 * 1024)
    );
    let reply = client
        .post(&url)
        .header("content-type", "multipart/form-data; boundary=x")
        .body(multipart)
        .send()
        .await
        .expect("an answer");
    assert!([413, 415].contains(&reply.status().as_u16()), "{}", reply.status());
    assert!(reply.json::<Value>().await.is_ok(), "a JSON body");
}

async fn register_me_logout_over_tcp_with_cookies(app: TestApp) {
    let (addr, server) = serve(&app, limits()).await;

    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let url = format!("http://{addr}/graphql");
    let call = |query: &'static str, variables: Value| {
        client
            .post(&url)
            .header("user-agent", "authgate-test/1.0")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
    };
    let registered: Value =
        call(REGISTER, json!({ "input": { "email": "tcp@example.com", "password": "over the wire" } }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(registered["data"]["register"]["user"]["email"], "tcp@example.com");

    // The client's cookie jar now carries the session.
    let me: Value = call(ME, json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(me["data"]["me"]["email"], "tcp@example.com");
    let session = sessions::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(session.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(session.user_agent.as_deref(), Some("authgate-test/1.0"));

    let out: Value = call(LOGOUT, json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(out["data"]["logout"], true);
    let after: Value = call(ME, json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(after["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    server.abort();
}

/// A request whose answer is read, over a connection of its own from
/// `source` (a loopback address): whether it was served within 5 s.
async fn served_from(source: &str, addr: SocketAddr) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let attempt = async {
        let mut stream = socket.connect(addr).await.ok()?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.ok().flatten().unwrap_or(false)
}

/// Clients that pipeline requests and never read the answers (a tiny
/// receive window) used to hold every slot for good: the write deadline
/// closes them, so a new client is served within seconds.
#[tokio::test]
async fn clients_that_never_read_are_closed() {
    let app = TestApp::sqlite().await;
    let limits = Limits { max_connections: 8, header_read_timeout: Duration::from_secs(30), ..limits() };
    let (addr, _server) = serve(&app, limits).await;
    let mut hogs = Vec::new();
    for _ in 0..8 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let (read_half, mut write_half) = stream.into_split();
        // Requests until the server stops reading them (bounded), never a read.
        let writer = tokio::spawn(async move {
            let burst = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(500);
            for _ in 0..40 {
                match tokio::time::timeout(Duration::from_secs(20), write_half.write_all(&burst)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        });
        hogs.push((read_half, writer));
    }
    // The hogs were accepted first and hold every slot: the new client
    // is served only once the write deadline has closed one of them.
    let started = Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(8) && !served {
        served = served_from("127.0.0.1", addr).await;
    }
    assert!(served, "a new client was not served within 8 s while 8 clients never read");
    for (_, writer) in hogs {
        writer.abort();
    }
}

/// At most `max_connections_per_client` from one client: more are closed
/// at once, while another client is served.
#[tokio::test]
async fn one_client_holds_at_most_its_share_of_connections() {
    let app = TestApp::sqlite().await;
    let limits =
        Limits { max_connections_per_client: 3, header_read_timeout: Duration::from_secs(30), ..limits() };
    let (addr, _server) = serve(&app, limits).await;
    let mut holders = held_connections(addr, 3).await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), fourth.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the fourth is closed unanswered: {read:?}");
    assert!(served_from("127.0.0.2", addr).await, "another client is served");
    drop(holders.pop());
    // The server notices the close on its own schedule: ask until it has (bounded).
    let again = crate::common::eventually(Duration::from_secs(10), Duration::from_millis(20), || {
        served_from("127.0.0.1", addr)
    })
    .await;
    assert!(again, "a closed connection gives its slot back");
}

/// A kept-alive connection is closed at its maximum age, between requests.
#[tokio::test]
async fn connections_end_at_their_maximum_age() {
    let app = TestApp::sqlite().await;
    let limits = Limits { max_connection_age: Duration::from_secs(1), ..limits() };
    let (addr, _server) = serve(&app, limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut answers = 0;
    let mut buf = [0u8; 4096];
    loop {
        assert!(started.elapsed() < Duration::from_secs(5), "still open after 5 s ({answers} answers)");
        if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => answers += 1,
            Err(_) => panic!("no answer and not closed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answers >= 3, "served until its age: {answers}");
    assert!(started.elapsed() >= Duration::from_millis(900), "not closed before its age");
}
