//! Abuse resistance: brute force stops at the same limit however it arrives,
//! GraphQL limits, CORS, security headers, load shedding.

use axum::http::Method;
use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{LOGIN, ME, REGISTER, TestApp},
    sqlite_only,
};

both_backends!(
    sequential_brute_force_stops_at_the_limit,
    aliased_brute_force_stops_at_the_same_limit,
    batched_brute_force_stops_at_the_same_limit,
    limits_are_shared_by_instances,
    a_success_resets_the_account_counter,
    other_operations_are_limited,
    a_stolen_session_gets_few_password_guesses,
    a_counter_lives_until_its_window_ends,
    one_ipv6_64_shares_one_budget,
    a_trusted_device_outlasts_an_account_wide_lockout,
    device_trust_ends_with_a_reset_and_with_a_removed_passkey,
    device_trust_ends_with_a_claim_and_an_unlink,
    device_cookies_behind_https_and_across_a_key_rotation,
);

// The HTTP and GraphQL layer: one backend is enough.
sqlite_only!(graphql_limits_refuse_and_the_server_goes_on,);

const PW: &str = "the right password";
const WRONG: &str = "a wrong password";

fn login_vars(email: &str, password: &str) -> Value {
    json!({ "input": { "email": email, "password": password } })
}

fn retry_after(reply: &Value) -> u64 {
    reply["extensions"]["retryAfter"].as_u64().unwrap_or_else(|| panic!("retryAfter in {reply}"))
}

async fn sequential_brute_force_stops_at_the_limit(app: TestApp) {
    app.register("victim@example.com", PW).await;
    let hashes = app.state.auth.hasher().clone();
    let before = hashes.verifications();
    for attempt in 1..=10 {
        let reply = app.login("victim@example.com", WRONG).await;
        assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "attempt {attempt}");
    }
    let limited = app.login("victim@example.com", WRONG).await;
    assert_eq!(limited.code(), Some("RATE_LIMITED"));
    let wait = retry_after(&limited.body["errors"][0]);
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(
        app.login("victim@example.com", PW).await.code(),
        Some("RATE_LIMITED"),
        "even the right password"
    );
    assert_eq!(hashes.verifications(), before + 10, "no hash once limited");

    // Another address is not locked out (no hard lock of the account).
    let elsewhere =
        app.post().graphql(LOGIN, login_vars("victim@example.com", PW)).peer_ip("198.51.100.20").send().await;
    assert!(elsewhere.body["data"]["login"].is_object(), "{}", elsewhere.body);
    // And the window ends.
    app.clock.advance(chrono::Duration::minutes(15));
    assert!(app.login("victim@example.com", PW).await.body["data"]["login"].is_object());
}

async fn aliased_brute_force_stops_at_the_same_limit(app: TestApp) {
    app.register("alias@example.com", PW).await;
    let before = app.state.auth.hasher().verifications();
    let fields: String = (0..50)
        .map(|i| format!(r#"a{i}: login(input: {{email: "alias@example.com", password: "guess number {i}"}}) {{ token }} "#))
        .collect();
    let reply = app.gql(&format!("mutation {{ {fields} }}"), json!({})).await;
    let errors = reply.body["errors"].as_array().unwrap_or_else(|| panic!("{}", reply.body));
    let count = |code: &str| errors.iter().filter(|e| e["extensions"]["code"] == code).count();
    assert_eq!(count("INVALID_CREDENTIALS"), 10, "{}", reply.body);
    assert_eq!(count("RATE_LIMITED"), 40);
    assert_eq!(app.state.auth.hasher().verifications(), before + 10);
}

async fn batched_brute_force_stops_at_the_same_limit(app: TestApp) {
    let app = app.sibling(|c| c.max_batch = 30).await;
    app.register("batch@example.com", PW).await;
    let batch: Vec<Value> = (0..30)
        .map(|_| json!({ "query": LOGIN, "variables": login_vars("batch@example.com", WRONG) }))
        .collect();
    let reply = app.post().json(&Value::Array(batch)).send().await;
    let codes: Vec<&str> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"][0]["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == "INVALID_CREDENTIALS").count(), 10, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == "RATE_LIMITED").count(), 20);
}

async fn limits_are_shared_by_instances(app: TestApp) {
    let app = app.shareable().await;
    let other = app.second_instance().await;
    app.register("shared@example.com", PW).await;
    for attempt in 0..10 {
        let call = if attempt % 2 == 0 { app.post() } else { app.post_to(&other) };
        let reply = call.graphql(LOGIN, login_vars("shared@example.com", WRONG)).send().await;
        assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "attempt {attempt}");
    }
    for call in [app.post(), app.post_to(&other)] {
        let reply = call.graphql(LOGIN, login_vars("shared@example.com", WRONG)).send().await;
        assert_eq!(reply.code(), Some("RATE_LIMITED"), "limited as if one instance");
    }
}

async fn a_success_resets_the_account_counter(app: TestApp) {
    app.register("reset@example.com", PW).await;
    for _ in 0..9 {
        app.login("reset@example.com", WRONG).await;
    }
    assert!(app.login("reset@example.com", PW).await.body["data"]["login"].is_object());
    for attempt in 1..=10 {
        assert_eq!(
            app.login("reset@example.com", WRONG).await.code(),
            Some("INVALID_CREDENTIALS"),
            "{attempt}"
        );
    }
    assert_eq!(app.login("reset@example.com", WRONG).await.code(), Some("RATE_LIMITED"));
}

async fn other_operations_are_limited(app: TestApp) {
    let register = |i: usize| json!({ "input": { "email": format!("many{i}@example.com"), "password": PW } });
    for i in 0..20 {
        let reply = app.gql(REGISTER, register(i)).await;
        assert!(reply.body["data"]["register"].is_object(), "{i}: {}", reply.body);
    }
    assert_eq!(app.gql(REGISTER, register(20)).await.code(), Some("RATE_LIMITED"));

    let reset = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    for _ in 0..3 {
        assert_eq!(
            app.gql(reset, json!({ "e": "many1@example.com" })).await.body["data"]["requestPasswordReset"],
            true
        );
    }
    assert_eq!(
        app.gql(reset, json!({ "e": "many1@example.com" })).await.code(),
        Some("RATE_LIMITED"),
        "per address"
    );

    let verify = "mutation($t: String!) { verifyEmail(token: $t) { id } }";
    for _ in 0..20 {
        assert_eq!(app.gql(verify, json!({ "t": "guess" })).await.code(), Some("INVALID_TOKEN"));
    }
    assert_eq!(app.gql(verify, json!({ "t": "guess" })).await.code(), Some("RATE_LIMITED"));
}

/// A thief holding a session (not the password) guesses it through the
/// operations that check it: one budget per account for all three, then
/// `RATE_LIMITED` with the seconds left in the window, and no hash is checked.
async fn a_stolen_session_gets_few_password_guesses(app: TestApp) {
    let app =
        app.sibling(|c| c.rates.set(domain::config::Rule::PasswordAccount, "3/15m".parse().unwrap())).await;
    let (stolen, _) = app.register_verified("stolen@example.com", PW).await;
    let (other, _) = app.register("bystander@example.com", PW).await;
    let change = "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }";
    let guess = |password: &str| json!({ "i": { "currentPassword": password, "newPassword": "violet thunder maps 7319" } });
    let delete = "mutation($p: String!) { deleteAccount(password: $p) }";
    let set = "mutation($p: String!) { setPassword(newPassword: $p) }";
    let hashes = app.state.auth.hasher().clone();
    for (i, (query, vars)) in
        [(change, guess("guess one")), (delete, json!({ "p": "guess two" })), (change, guess("guess three"))]
            .into_iter()
            .enumerate()
    {
        let reply = app.authed(&stolen, query, vars).await;
        assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "guess {i}: {}", reply.body);
    }
    let checked = hashes.verifications();
    let window = 15 * 60;
    for (query, vars) in [
        (change, guess(PW)),
        (delete, json!({ "p": PW })),
        (set, json!({ "p": "orbit lantern quietly 5826" })),
    ] {
        let reply = app.authed(&stolen, query, vars).await;
        assert_eq!(reply.code(), Some("RATE_LIMITED"), "even the right password: {}", reply.body);
        let now = app.clock_now().timestamp();
        assert_eq!(retry_after(&reply.body["errors"][0]), (window - now.rem_euclid(window)) as u64);
    }
    assert_eq!(hashes.verifications(), checked, "no password checked past the limit");
    // The budget is the account's: another user's is whole.
    let reply = app.authed(&other, change, guess("a wrong guess")).await;
    assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "{}", reply.body);
    // The next window gives the owner their operations back.
    app.clock.advance(chrono::Duration::seconds(window));
    let reply = app.authed(&stolen, change, guess(PW)).await;
    assert_eq!(reply.body["data"]["changePassword"], true, "{}", reply.body);
}

/// Each counter row expires when its window ends: not before (cleanup
/// would reset a budget mid-window), not long after (the table would grow).
async fn a_counter_lives_until_its_window_ends(app: TestApp) {
    use sea_orm::EntityTrait;
    app.register("counted@example.com", PW).await;
    assert_eq!(app.login("counted@example.com", WRONG).await.code(), Some("INVALID_CREDENTIALS"));
    let rows = entity::rate_limits::Entity::find().all(app.db()).await.unwrap();
    assert!(rows.len() >= 4, "register and login windows: {rows:?}");
    let now = app.clock_now().timestamp();
    for row in &rows {
        let length = row.expires_at.timestamp() - row.window_start;
        assert!([60, 900, 3600].contains(&length), "a window of 1m, 15m or 1h: {row:?}");
        assert_eq!(row.window_start, now - now.rem_euclid(length), "{row:?}");
    }
    let removed = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(removed.counters, 0, "every window is still open");
    app.clock.advance(chrono::Duration::hours(1));
    let removed = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(removed.counters, rows.len() as u64, "every window has ended");
}

async fn graphql_limits_refuse_and_the_server_goes_on(app: TestApp) {
    let aliases: String = (0..65).map(|i| format!("a{i}: __typename ")).collect();
    let cases = [
        (format!("{{ {aliases} }}"), "aliases"),
        (format!("{{ {} }}", "__typename ".repeat(65)), "top-level fields"),
        (format!("{{ me {{ id }} }} #{}", "x".repeat(17 * 1024)), "bytes"),
    ];
    for (query, what) in &cases {
        let reply = app.gql(query, json!({})).await;
        assert_eq!(reply.code(), Some("GRAPHQL_VALIDATION_FAILED"), "{what}: {}", reply.body);
        assert!(reply.body["errors"][0]["message"].as_str().unwrap().contains(what), "{}", reply.body);
    }
    // One less is within each limit (64 aliases, 64 top-level fields, 16 KiB).
    let aliases: String = (0..64).map(|i| format!("a{i}: __typename ")).collect();
    let at_limits = [
        format!("{{ {aliases} }}"),
        format!("{{ {} }}", "__typename ".repeat(64)),
        format!("{{ __typename }} #{}", "x".repeat(16 * 1024 - 20)),
        "{ me { sessions { id } accounts { id } } }".to_owned(),
    ];
    for query in &at_limits {
        let reply = app.gql(query, json!({})).await;
        assert_ne!(reply.code(), Some("GRAPHQL_VALIDATION_FAILED"), "{query:.60}: {}", reply.body);
    }
    // What GraphiQL, codegen and Apollo's tools send first: the default
    // depth is set so it passes (at 12, GraphiQL opened on an error and
    // without docs or completion).
    let schema = app.gql(include_str!("common/introspection.graphql"), json!({})).await;
    assert_eq!(schema.body["data"]["__schema"]["queryType"]["name"], "QueryRoot", "{}", schema.body);
    // One level past it is refused: the introspection types nest without
    // end (`ofType`), the limit is what ends them.
    let of_types = |n: usize| {
        format!("{{ __schema {{ types {{ {}name{} }} }} }}", "ofType { ".repeat(n), " }".repeat(n))
    };
    let deep = app.gql(&of_types(13), json!({})).await;
    assert_eq!(deep.code(), Some("GRAPHQL_VALIDATION_FAILED"), "16 deep: {}", deep.body);
    assert!(app.gql(&of_types(12), json!({})).await.body["data"]["__schema"].is_object(), "15 deep");
    // Validation runs before execution: no session needed to be refused.
    let tight = TestApp::sqlite_with(|c| {
        c.max_depth = 2;
        c.max_complexity = 3;
    })
    .await;
    let deep = tight.gql("{ me { sessions { id } } }", json!({})).await;
    assert_eq!(deep.code(), Some("GRAPHQL_VALIDATION_FAILED"), "depth: {}", deep.body);
    let wide = tight.gql("{ me { id email name image } }", json!({})).await;
    assert_eq!(wide.code(), Some("GRAPHQL_VALIDATION_FAILED"), "complexity: {}", wide.body);
    assert_eq!(tight.gql("{ me { id } }", json!({})).await.code(), Some("UNAUTHENTICATED"), "within limits");
    assert_eq!(app.gql(ME, json!({})).await.code(), Some("UNAUTHENTICATED"), "still serving");
}

#[tokio::test]
async fn per_ip_and_account_wide_ceilings() {
    let app = TestApp::sqlite_with(|c| {
        c.rates.set(domain::config::Rule::LoginIp, "5/1m".parse().unwrap());
        c.rates.set(domain::config::Rule::LoginAccount, "12/15m".parse().unwrap());
    })
    .await;
    for i in 0..5 {
        let reply = app.login(&format!("nobody{i}@example.com"), WRONG).await;
        assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"));
    }
    assert_eq!(app.login("nobody9@example.com", WRONG).await.code(), Some("RATE_LIMITED"), "per address");

    app.register("target@example.com", PW).await;
    let attempt = |ip: &'static str| {
        app.post().graphql(LOGIN, login_vars("target@example.com", WRONG)).peer_ip(ip).send()
    };
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..4 {
            assert_eq!(attempt(ip).await.code(), Some("INVALID_CREDENTIALS"), "{ip}");
        }
    }
    assert_eq!(attempt("198.51.100.4").await.code(), Some("RATE_LIMITED"), "account-wide ceiling");
}

#[tokio::test]
async fn a_full_hash_queue_sheds_load() {
    let app = TestApp::sqlite_with(|c| {
        c.argon2_memory_kib = 19 * 1024;
        c.argon2_iterations = 4;
        c.hash_concurrency = Some(1);
        c.hash_queue = 0;
    })
    .await;
    let vars = |i: usize| json!({ "input": { "email": format!("load{i}@example.com"), "password": PW } });
    let (a, b, c) =
        tokio::join!(app.gql(REGISTER, vars(1)), app.gql(REGISTER, vars(2)), app.gql(REGISTER, vars(3)));
    let codes: Vec<Option<&str>> = vec![a.code(), b.code(), c.code()];
    assert!(codes.contains(&Some("SERVICE_UNAVAILABLE")), "{codes:?}");
    assert!(codes.contains(&None), "one got through: {codes:?}");
}

#[tokio::test]
async fn slow_requests_time_out() {
    let app = TestApp::sqlite_with(|c| {
        c.argon2_memory_kib = 19 * 1024;
        c.argon2_iterations = 8;
        c.request_timeout = std::time::Duration::from_millis(1);
    })
    .await;
    let reply = app.gql(REGISTER, json!({ "input": { "email": "slow@example.com", "password": PW } })).await;
    assert_eq!(reply.code(), Some("SERVICE_UNAVAILABLE"), "{}", reply.body);
}

#[tokio::test]
async fn cors_allows_only_listed_origins() {
    let app = TestApp::sqlite_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &str| {
        app.get("/graphql")
            .method(Method::OPTIONS)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(allowed.headers["access-control-allow-credentials"], "true");
    let listed = |name: &str| -> Vec<String> {
        allowed.headers[name].to_str().unwrap().split(',').map(|v| v.trim().to_ascii_lowercase()).collect()
    };
    assert_eq!(listed("access-control-allow-methods"), ["get", "post"]);
    for header in ["content-type", "authorization", "x-requested-with", "apollo-require-preflight"] {
        assert!(
            listed("access-control-allow-headers").iter().any(|h| h == header),
            "{header}: {:?}",
            allowed.headers
        );
    }
    assert_eq!(allowed.headers["access-control-max-age"], "600");
    let vary = |reply: &crate::common::Reply| {
        reply
            .headers
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert!(
        vary(&allowed).contains("origin"),
        "a cache must key the answer by Origin: {:?}",
        allowed.headers
    );
    let other = preflight("https://evil.example.net").await;
    assert!(other.headers.get("access-control-allow-origin").is_none(), "{:?}", other.headers);

    // The request the preflight was for: a credentialed POST from the listed
    // origin, with the bearer header and with the cookie.
    let (token, _) = app.register("cors@example.com", PW).await;
    for call in
        [app.post().graphql(ME, json!({})).bearer(&token), app.post().graphql(ME, json!({})).cookie(&token)]
    {
        let reply = call.header("origin", "https://app.example.com").send().await;
        assert_eq!(reply.body["data"]["me"]["email"], "cors@example.com", "{}", reply.body);
        assert_eq!(reply.headers["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(reply.headers["access-control-allow-credentials"], "true");
        assert!(vary(&reply).contains("origin"), "{:?}", reply.headers);
    }
    // From an unlisted origin the browser gets no permission to read it.
    let foreign = app
        .post()
        .graphql(ME, json!({}))
        .cookie(&token)
        .header("origin", "https://evil.example.net")
        .send()
        .await;
    assert!(foreign.headers.get("access-control-allow-origin").is_none(), "{:?}", foreign.headers);

    let plain = TestApp::sqlite().await;
    let reply = plain.post().graphql(ME, json!({})).header("origin", "https://app.example.com").send().await;
    assert!(reply.headers.get("access-control-allow-origin").is_none(), "no CORS unless configured");

    // A wildcard or an empty entry in the list is no origin: never every
    // site with credentials (the server starts, and answers as for the
    // other entries alone).
    let sloppy = TestApp::sqlite_with(|c| {
        c.cors_origins = vec!["*".into(), "".into(), " https://app.example.com/ ".into()];
    })
    .await;
    for (origin, allowed) in
        [("https://app.example.com", true), ("https://evil.example.net", false), ("*", false)]
    {
        let reply = sloppy.post().graphql(ME, json!({})).header("origin", origin).send().await;
        let given = reply.headers.get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(given, allowed.then(|| origin.to_owned()), "{origin}: {:?}", reply.headers);
    }
}

#[tokio::test]
async fn security_headers_on_every_answer() {
    let app = TestApp::sqlite().await;
    for reply in [app.gql(ME, json!({})).await, app.get("/healthz").send().await] {
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["referrer-policy"], "no-referrer");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        assert!(
            reply.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'")
        );
    }
    assert_eq!(app.gql(ME, json!({})).await.headers["cache-control"], "no-store");
    let page = app.get("/graphql").header("accept", "text/html").send().await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';") && !csp.contains("https:"), "GraphiQL's own CSP: {csp}");

    let open = TestApp::sqlite_with(|c| {
        c.env = domain::config::Environment::Production;
        c.introspection = Some(true);
    })
    .await;
    let schema = open.gql("{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(schema.body["data"]["__schema"]["queryType"]["name"], "QueryRoot", "explicitly enabled");
}

/// `TEST_REDIS_URL`, required in CI.
fn redis_url() -> Option<String> {
    crate::common::required_env("TEST_REDIS_URL")
}

#[tokio::test]
async fn redis_counters_are_shared_by_instances() {
    let Some(url) = redis_url() else {
        eprintln!("TEST_REDIS_URL unset: skipping the Redis limiter test");
        return;
    };
    let prefix = format!("authgate-test-{}:", uuid::Uuid::new_v4().simple());
    let with_redis = |c: &mut domain::config::Config| {
        c.redis_url = Some(url.clone().into());
        c.redis_prefix = prefix.clone();
    };
    // Two instances that share nothing but Redis.
    let (a, b) = (TestApp::sqlite_with(with_redis).await, TestApp::sqlite_with(with_redis).await);
    a.register("redis@example.com", PW).await;
    b.register("redis@example.com", PW).await;
    // A success clears the account's counters (five failures forgotten).
    for _ in 0..5 {
        assert_eq!(b.login("redis@example.com", WRONG).await.code(), Some("INVALID_CREDENTIALS"));
    }
    assert!(a.login("redis@example.com", PW).await.body["data"]["login"].is_object(), "signed in");
    for attempt in 0..10 {
        let app = if attempt % 2 == 0 { &a } else { &b };
        assert_eq!(
            app.login("redis@example.com", WRONG).await.code(),
            Some("INVALID_CREDENTIALS"),
            "{attempt}"
        );
    }
    assert_eq!(a.login("redis@example.com", WRONG).await.code(), Some("RATE_LIMITED"));
    assert_eq!(b.login("redis@example.com", PW).await.code(), Some("RATE_LIMITED"));
    assert_eq!(a.count(entity::rate_limits::Entity).await, 0, "nothing counted in the database");

    // Each key expires when its window ends: not before (a budget reset
    // mid-window), not long after (Redis would fill up).
    let client = redis::Client::open(url.as_str()).expect("TEST_REDIS_URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("KEYS");
    assert!(!keys.is_empty(), "counters in Redis");
    let now = a.clock_now().timestamp();
    for key in keys {
        let start: i64 = key.rsplit(':').next().and_then(|s| s.parse().ok()).expect("a window start");
        let expires: i64 =
            redis::cmd("EXPIRETIME").arg(&key).query_async(&mut conn).await.expect("EXPIRETIME");
        let length = expires - start;
        assert!([60, 300, 600, 900, 3600].contains(&length), "{key}: expires {length} s after its start");
        assert!(start <= now && now < expires, "{key}: the window holds now");
    }
}

/// A connection to Redis that goes silent (a NAT or a failover dropped it
/// without a word) is given up after a missed deadline (redis-rs reconnects
/// after its response timeout): sign-ins fail closed meanwhile, then the
/// counters run on a new connection, instead of timing out for good.
#[tokio::test]
async fn a_silent_redis_connection_is_replaced() {
    let Some(url) = redis_url() else { return };
    let options = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let upstream: std::net::SocketAddr = options.parse().expect("TEST_REDIS_URL as redis://host:port/");
    // The first connection is held and never answered; later ones reach Redis.
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    let relay = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut first = true;
        while let Ok((mut client, _)) = front.accept().await {
            if std::mem::take(&mut first) {
                held.push(client);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    let prefix = format!("authgate-test-{}:", uuid::Uuid::new_v4().simple());
    let app = TestApp::sqlite_with(|c| {
        c.redis_url = Some(format!("redis://{addr}/").into());
        c.redis_prefix = prefix;
    })
    .await;
    assert_eq!(app.login("silent@example.com", WRONG).await.code(), Some("SERVICE_UNAVAILABLE"));
    let (bound, every) = (std::time::Duration::from_secs(5), std::time::Duration::from_millis(100));
    let back = crate::common::eventually(bound, every, || async {
        app.login("silent@example.com", WRONG).await.code() == Some("INVALID_CREDENTIALS")
    })
    .await;
    relay.abort();
    assert!(back, "still failing after the silent connection was given up");
}

#[tokio::test]
async fn an_unreachable_counter_store_fails_closed() {
    let app = TestApp::sqlite_with(|c| c.redis_url = Some("redis://127.0.0.1:1/".into())).await;
    let started = std::time::Instant::now();
    let reply = app.login("anyone@example.com", WRONG).await;
    assert_eq!(reply.code(), Some("SERVICE_UNAVAILABLE"), "{}", reply.body);
    // Fast, too: a sign-in is not held while the client retries (it once took ten seconds).
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());

    // A Redis that takes the connection and never answers (a stalled
    // server, a black hole behind a NAT): every sign-in, however many wait
    // at once, fails closed within the counter's deadline, not in a queue.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let app = TestApp::sqlite_with(|c| c.redis_url = Some(url.into())).await;
    let started = std::time::Instant::now();
    let logins = (0..6).map(|i| {
        let app = &app;
        async move { app.login(&format!("waiting{i}@example.com"), WRONG).await }
    });
    for reply in futures_util::future::join_all(logins).await {
        assert_eq!(reply.code(), Some("SERVICE_UNAVAILABLE"), "{}", reply.body);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_one_megabyte_password_is_refused_without_hashing() {
    let app = TestApp::sqlite().await;
    app.register("big@example.com", PW).await;
    let before = app.state.auth.hasher().verifications();
    let reply = app.login("big@example.com", &"p".repeat(1024 * 1024)).await;
    assert_eq!(reply.status, 413, "the body limit stops it before parsing");
    // Under a larger body limit it still never reaches argon2.
    let roomy = TestApp::sqlite_with(|c| c.max_body_bytes = 4 * 1024 * 1024).await;
    roomy.register("big@example.com", PW).await;
    let reply = roomy.login("big@example.com", &"p".repeat(1024 * 1024)).await;
    assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(app.state.auth.hasher().verifications(), before);
    assert_eq!(roomy.state.auth.hasher().verifications(), 0, "no hash for the 1 MB password");
}

/// Behind a trusted proxy, as in production: the client is the address the
/// proxy puts in `X-Forwarded-For`.
async fn behind_proxy(app: &TestApp, tweak: impl FnOnce(&mut domain::config::Config)) -> TestApp {
    app.sibling(|c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        tweak(c);
    })
    .await
}

fn login_from<'a>(app: &'a TestApp, client: &str, email: &str, password: &str) -> crate::common::Call<'a> {
    app.post().graphql(LOGIN, login_vars(email, password)).forwarded_for(client)
}

/// One host routinely holds a whole IPv6 /64: its addresses share one
/// budget, while the neighbouring /64 has its own.
async fn one_ipv6_64_shares_one_budget(app: TestApp) {
    let app =
        behind_proxy(&app, |c| c.rates.set(domain::config::Rule::LoginIp, "10/1m".parse().unwrap())).await;
    let mut codes = Vec::new();
    for i in 0..50u32 {
        let client = format!("2001:db8:aa:bb:{:x}:{:x}::{:x}", (i * 7919) % 0xffff, i, i + 1);
        codes.push(
            login_from(&app, &client, &format!("n{i}@example.com"), WRONG)
                .send()
                .await
                .code()
                .map(str::to_owned),
        );
    }
    let allowed = codes.iter().filter(|c| c.as_deref() == Some("INVALID_CREDENTIALS")).count();
    let limited = codes.iter().filter(|c| c.as_deref() == Some("RATE_LIMITED")).count();
    assert_eq!((allowed, limited), (10, 40), "50 addresses of one /64: {codes:?}");
    let neighbour = login_from(&app, "2001:db8:aa:bc::1", "n@example.com", WRONG).send().await;
    assert_eq!(neighbour.code(), Some("INVALID_CREDENTIALS"), "another /64 has its own budget");

    // IPv4-mapped IPv6 is the IPv4 address: one budget, however it is written.
    for _ in 0..10 {
        login_from(&app, "192.0.2.33", "v4@example.com", WRONG).send().await;
    }
    let mapped = login_from(&app, "::ffff:192.0.2.33", "v4@example.com", WRONG).send().await;
    assert_eq!(mapped.code(), Some("RATE_LIMITED"));
}

/// The device cookie a sign-in handed out (`device=...`), as a `Cookie` header.
pub fn device_cookie(reply: &crate::common::Reply) -> String {
    device_cookie_named(reply, "device")
}

/// The `Set-Cookie` header of the cookie `name`, whole (attributes too).
fn set_cookie_named(reply: &crate::common::Reply, name: &str) -> String {
    reply
        .headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}: {}", reply.headers, reply.body))
        .to_owned()
}

/// The cookie `name` a reply set, as a `Cookie` header (`name=value`).
fn device_cookie_named(reply: &crate::common::Reply, name: &str) -> String {
    set_cookie_named(reply, name).split(';').next().unwrap_or_default().to_owned()
}

/// OWASP's device cookie: an attacker who exhausts the account-wide ceiling
/// from many /64s locks out every unknown client, but not the owner's own
/// browser, which signed in before and shows its signed device cookie.
async fn a_trusted_device_outlasts_an_account_wide_lockout(app: TestApp) {
    let app = behind_proxy(&app, |c| {
        c.rates.set(domain::config::Rule::LoginAccount, "20/15m".parse().unwrap());
        c.rates.set(domain::config::Rule::LoginAccountIp, "5/15m".parse().unwrap());
    })
    .await;
    app.register("owner@example.com", PW).await;
    let signed_in = login_from(&app, "203.0.113.10", "owner@example.com", PW).send().await;
    assert!(signed_in.body["data"]["login"].is_object(), "{}", signed_in.body);
    let device = device_cookie(&signed_in);
    assert!(
        signed_in.headers.get_all(axum::http::header::SET_COOKIE).iter().any(|c| {
            let c = c.to_str().unwrap();
            c.starts_with("device=") && c.contains("HttpOnly") && c.contains("Max-Age=")
        }),
        "HttpOnly and long-lived"
    );
    app.register("other@example.com", PW).await;
    let others_device =
        device_cookie(&login_from(&app, "203.0.113.11", "other@example.com", PW).send().await);

    // The attacker: 5 wrong guesses from each of 4 /64s, then the ceiling.
    for net in 0..4 {
        for i in 0..5 {
            let client = format!("2001:db8:{net}:1::{i}");
            let reply = login_from(&app, &client, "owner@example.com", WRONG).send().await;
            assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "{client}");
        }
    }
    let ceiling = login_from(&app, "2001:db8:99:1::1", "owner@example.com", WRONG).send().await;
    assert_eq!(ceiling.code(), Some("RATE_LIMITED"), "the account-wide ceiling is reached");

    // A fresh client is held back even with the right password...
    let fresh = login_from(&app, "198.51.100.50", "owner@example.com", PW).send().await;
    assert_eq!(fresh.code(), Some("RATE_LIMITED"));
    // ...and so is one with a forged, foreign or unsigned device cookie.
    let last = if device.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &device[..device.len() - 1]);
    for cookie in [forged.as_str(), others_device.as_str(), "device=0123456789abcdef.0123456789abcdef"] {
        let reply =
            login_from(&app, "203.0.113.10", "owner@example.com", PW).header("cookie", cookie).send().await;
        assert_eq!(reply.code(), Some("RATE_LIMITED"), "{cookie}");
    }
    // The owner's device signs in, from its usual address or a new one.
    for client in ["203.0.113.10", "2001:db8:77:1::5"] {
        let owner = login_from(&app, client, "owner@example.com", PW).header("cookie", &device).send().await;
        assert!(owner.body["data"]["login"].is_object(), "{client}: {}", owner.body);
    }

    // A password change ends the trust of every device that signed in
    // before it: cookies collected with an old password are worth nothing.
    let session =
        login_from(&app, "203.0.113.10", "owner@example.com", PW).header("cookie", &device).send().await;
    let token = session.body["data"]["login"]["token"].as_str().expect("signed in").to_owned();
    app.change_password(&token, PW, "a fresh start 2027").await;
    let stale = login_from(&app, "203.0.113.10", "owner@example.com", "a fresh start 2027")
        .header("cookie", &device)
        .send()
        .await;
    assert_eq!(stale.code(), Some("RATE_LIMITED"), "a device of the old password is a stranger");
    // The window ends; a sign-in with the new password makes a new device.
    app.clock.advance(chrono::Duration::minutes(16));
    let fresh = login_from(&app, "203.0.113.10", "owner@example.com", "a fresh start 2027").send().await;
    let device = device_cookie(&fresh);

    // A stolen device cookie is no master key: it has a budget of its own.
    for _ in 0..5 {
        let reply = login_from(&app, "203.0.113.99", "owner@example.com", WRONG)
            .header("cookie", &device)
            .send()
            .await;
        assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"));
    }
    let spent = login_from(&app, "203.0.113.99", "owner@example.com", "a fresh start 2027")
        .header("cookie", &device)
        .send()
        .await;
    assert_eq!(spent.code(), Some("RATE_LIMITED"), "the device's own budget");
}

/// Signs in `email` from the owner's usual address (a trusted device),
/// then lets strangers reach the account-wide ceiling of 2 (set by the
/// caller): the session's token and the device cookie.
async fn trusted_then_locked_out(app: &TestApp, email: &str) -> (String, String) {
    let signed = login_from(app, "203.0.113.10", email, PW).send().await;
    let token = signed.body["data"]["login"]["token"].as_str().expect("signed in").to_owned();
    let device = device_cookie(&signed);
    for client in ["2001:db8:1:1::1", "2001:db8:2:1::1"] {
        assert_eq!(login_from(app, client, email, WRONG).send().await.code(), Some("INVALID_CREDENTIALS"));
    }
    let fresh = login_from(app, "198.51.100.7", email, PW).send().await;
    assert_eq!(fresh.code(), Some("RATE_LIMITED"), "the ceiling holds strangers back");
    (token, device)
}

/// A sign-in from the owner's usual address showing `cookie`.
async fn with_device(app: &TestApp, email: &str, password: &str, cookie: &str) -> crate::common::Reply {
    login_from(app, "203.0.113.10", email, password).header("cookie", cookie).send().await
}

/// Device trust is bound to the credentials of the time it was earned: a
/// reset, or a way in removed (here a passkey), makes every device that
/// signed in before it a stranger to the account-wide ceiling.
async fn device_trust_ends_with_a_reset_and_with_a_removed_passkey(app: TestApp) {
    let app =
        behind_proxy(&app, |c| c.rates.set(domain::config::Rule::LoginAccount, "2/15m".parse().unwrap()))
            .await;
    let lock_out = |email: &'static str| trusted_then_locked_out(&app, email);
    let with_device = |email: &'static str, password: &'static str, device: String| {
        let app = &app;
        async move { with_device(app, email, password, &device).await }
    };

    // A reset through the mailed link.
    let email = "reset-device@example.com";
    app.register_verified(email, PW).await;
    let (_, device) = lock_out(email).await;
    let trusted = with_device(email, PW, device.clone()).await;
    assert!(trusted.body["data"]["login"].is_object(), "trusted before: {}", trusted.body);
    app.reset_password_by_mail(email, "a brand new start 2031").await;
    let stale = with_device(email, "a brand new start 2031", device).await;
    assert_eq!(stale.code(), Some("RATE_LIMITED"), "a device of the old credentials is a stranger");

    // A passkey removed.
    let email = "passkey-device@example.com";
    let (owner, _) = app.register_verified(email, PW).await;
    let (_, passkey) = crate::passkeys::add_passkey(&app, &owner, "Laptop").await;
    let (_, device) = lock_out(email).await;
    assert!(with_device(email, PW, device.clone()).await.body["data"]["login"].is_object(), "trusted before");
    let removed = app
        .authed(&owner, "mutation($id: ID!) { removePasskey(id: $id) }", json!({ "id": passkey["id"] }))
        .await;
    assert_eq!(removed.body["data"]["removePasskey"], true, "{}", removed.body);
    let stale = with_device(email, PW, device).await;
    assert_eq!(stale.code(), Some("RATE_LIMITED"), "a device of the old credentials is a stranger");

    // An account deleted and registered again under the same address is
    // another account: the first one's devices (a squatter's) are strangers.
    let email = "again-device@example.com";
    app.register(email, PW).await;
    let (token, device) = lock_out(email).await;
    let deleted =
        app.authed(&token, "mutation($p: String!) { deleteAccount(password: $p) }", json!({ "p": PW })).await;
    assert_eq!(deleted.body["data"]["deleteAccount"], true, "{}", deleted.body);
    app.clock.advance(chrono::Duration::minutes(16));
    app.register(email, PW).await;
    let (_, owners) = lock_out(email).await;
    assert!(with_device(email, PW, owners).await.body["data"]["login"].is_object(), "the new owner's device");
    let stale = with_device(email, PW, device).await;
    assert_eq!(stale.code(), Some("RATE_LIMITED"), "the deleted account's device is a stranger");
}

/// The same for the two ways a provider changes who holds an account: a
/// claim (the owner signs in with a provider that vouches for an address a
/// squatter registered) and an unlinked provider account.
async fn device_trust_ends_with_a_claim_and_an_unlink(app: TestApp) {
    let mock = crate::common::oidc::MockProvider::start().await;
    let providers = vec![mock.oidc_config("mock")];
    let app = behind_proxy(&app, |c| {
        c.rates.set(domain::config::Rule::LoginAccount, "2/15m".parse().unwrap());
        c.oauth = providers;
    })
    .await;
    let verified = |subject: &str, email: &str| {
        mock.next(crate::common::oidc::Person::verified(subject, email), crate::common::oidc::Tamper::None);
    };

    // The squatter's device, then the owner's claim.
    let email = "claimed-device@example.com";
    app.register(email, PW).await;
    let (_, device) = trusted_then_locked_out(&app, email).await;
    assert!(with_device(&app, email, WRONG, &device).await.code() == Some("INVALID_CREDENTIALS"), "trusted");
    verified("g-claim", email);
    let claimed = crate::oauth::sign_in(&app, "mock").await;
    let owner = crate::oauth::session_token(&claimed)
        .unwrap_or_else(|| panic!("the owner signs in: {}", claimed.text));
    // The owner sets a password of their own (which leaves the credentials
    // version alone): were the squatter's device still trusted, it would
    // sign in with it; a stranger meets the ceiling first.
    let set = app
        .authed(
            &owner,
            "mutation($p: String!) { setPassword(newPassword: $p) }",
            json!({ "p": "the owner's own 2031" }),
        )
        .await;
    assert_eq!(set.body["data"]["setPassword"], true, "{}", set.body);
    let stale = with_device(&app, email, "the owner's own 2031", &device).await;
    assert_eq!(stale.code(), Some("RATE_LIMITED"), "the squatter's device is a stranger");

    // A provider account unlinked.
    let email = "unlink-device@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    verified("g-unlink", email);
    let linked = crate::oauth::link(&app, &token, "mock").await;
    let back_to = linked.headers.get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
    assert!(linked.status == 303 && !back_to.contains("error"), "linked: {back_to} {}", linked.text);
    let (fresh, device) = trusted_then_locked_out(&app, email).await;
    assert!(with_device(&app, email, PW, &device).await.body["data"]["login"].is_object(), "trusted before");
    let me = app.authed(&fresh, "{ me { accounts { id providerId } } }", json!({})).await;
    let accounts = me.body["data"]["me"]["accounts"].as_array().expect("accounts").clone();
    let provider = accounts.iter().find(|a| a["providerId"] == "mock").expect("linked")["id"].clone();
    let unlinked =
        app.authed(&fresh, "mutation($id: ID!) { unlinkAccount(id: $id) }", json!({ "id": provider })).await;
    assert_eq!(unlinked.body["data"]["unlinkAccount"], true, "{}", unlinked.body);
    let stale = with_device(&app, email, PW, &device).await;
    assert_eq!(stale.code(), Some("RATE_LIMITED"), "a device of the old ways in is a stranger");
}

/// Behind HTTPS the device cookie is `__Host-device` (Secure, Path=/, no
/// Domain, so no sibling subdomain can plant one): only that name is read.
/// A cookie signed with a retired server key is a stranger: a rotation
/// (after a leak, say) leaves no forged or stolen device trusted.
async fn device_cookies_behind_https_and_across_a_key_rotation(app: TestApp) {
    let app = behind_proxy(&app, |c| {
        c.rates.set(domain::config::Rule::LoginAccount, "2/15m".parse().unwrap());
        c.public_url = "https://auth.example.com".into();
        // A second instance shares the database below (SQLite: no cache).
        c.session_cache_ttl = std::time::Duration::ZERO;
    })
    .await;
    let email = "https-device@example.com";
    app.register_verified(email, PW).await;
    let signed = login_from(&app, "203.0.113.10", email, PW).send().await;
    let set = set_cookie_named(&signed, "__Host-device");
    for attr in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let value = set["__Host-device=".len()..].split(';').next().unwrap().to_owned();
    for client in ["2001:db8:1:1::1", "2001:db8:2:1::1"] {
        assert_eq!(login_from(&app, client, email, WRONG).send().await.code(), Some("INVALID_CREDENTIALS"));
    }
    let prefixed = format!("__Host-device={value}");
    assert!(with_device(&app, email, PW, &prefixed).await.body["data"]["login"].is_object(), "trusted");
    let unprefixed = with_device(&app, email, PW, &format!("device={value}")).await;
    assert_eq!(unprefixed.code(), Some("RATE_LIMITED"), "an unprefixed cookie is not read behind HTTPS");

    // The server key rotated: the old key is only a previous one now.
    let old = app.state.auth.config.secret_key.clone();
    let rotated = app
        .second_instance_with(|c| {
            c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            c.rates.set(domain::config::Rule::LoginAccount, "2/15m".parse().unwrap());
            c.public_url = "https://auth.example.com".into();
            c.secret_key = Some("cm90YXRlZC1zZXJ2ZXIta2V5LTMyLWJ5dGVzISEhISE=".into());
            c.secret_key_previous = old;
        })
        .await;
    let after = app
        .post_to(&rotated)
        .graphql(crate::common::LOGIN, login_vars(email, PW))
        .forwarded_for("203.0.113.10")
        .header("cookie", &prefixed)
        .send()
        .await;
    assert_eq!(after.code(), Some("RATE_LIMITED"), "a device signed with a retired key is a stranger");
    // ...while a device the rotated server signed is trusted by it: once
    // the window has ended, a sign-in there earns one, and it outlasts a
    // new lock-out.
    app.clock.advance(chrono::Duration::minutes(16));
    let on_rotated = |client: &str, password: &str| {
        app.post_to(&rotated).graphql(crate::common::LOGIN, login_vars(email, password)).forwarded_for(client)
    };
    let signed = on_rotated("203.0.113.10", PW).send().await;
    let fresh = device_cookie_named(&signed, "__Host-device");
    for client in ["2001:db8:3:1::1", "2001:db8:4:1::1"] {
        assert_eq!(on_rotated(client, WRONG).send().await.code(), Some("INVALID_CREDENTIALS"));
    }
    assert_eq!(on_rotated("198.51.100.7", PW).send().await.code(), Some("RATE_LIMITED"), "locked out again");
    let trusted = on_rotated("203.0.113.10", PW).header("cookie", &fresh).send().await;
    assert!(trusted.body["data"]["login"].is_object(), "its own device is trusted: {}", trusted.body);
}
