//! register / login / logout / me, per the contract, on both backends.

use entity::{accounts, sessions, users};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    both_backends,
    common::{LOGOUT, ME, REGISTER, TestApp, str_of},
    sqlite_only,
};

both_backends!(
    register_signs_in_and_stores_only_hashes,
    register_normalizes_email_and_refuses_duplicates,
    login_accepts_any_case_and_sets_cookie,
    login_failures_are_indistinguishable,
    me_requires_a_live_session,
    bearer_wins_over_cookie,
    logout_revokes_only_the_current_session,
    expired_sessions_are_refused,
    concurrent_clients_each_get_their_own_session,
    a_sign_in_stores_the_password_again_at_todays_cost,
);

// The HTTP and GraphQL layer: one backend is enough.
sqlite_only!(
    cookie_posts_need_csrf_proof,
    register_rejects_invalid_input_and_writes_nothing,
    login_rejects_without_hashing,
);

const PASSWORD: &str = "correct horse battery";

async fn register_signs_in_and_stores_only_hashes(app: TestApp) {
    let reply = app
        .gql(
            REGISTER,
            json!({ "input": { "email": "ada@example.com", "password": PASSWORD, "name": "Ada" } }),
        )
        .await;
    assert_eq!(reply.status, 200);
    let payload = &reply.body["data"]["register"];
    let token = str_of(&payload["token"]);
    assert_eq!(token.len(), 43, "32 random bytes in base64url");
    assert_eq!(payload["user"]["email"], "ada@example.com");
    assert_eq!(payload["user"]["name"], "Ada");
    assert_eq!(payload["user"]["image"], serde_json::Value::Null);
    assert_eq!(payload["user"]["emailVerified"], false);
    for stamp in [&payload["expiresAt"], &payload["user"]["createdAt"], &payload["user"]["updatedAt"]] {
        let stamp = str_of(stamp);
        assert!(stamp.ends_with('Z'), "{stamp} is not UTC with Z");
        chrono::DateTime::parse_from_rfc3339(&stamp).expect("RFC 3339");
    }
    let cookie = reply.set_cookie().expect("register sets the cookie");
    assert!(cookie.starts_with(&format!("session_token={token}")), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "not configured for HTTPS");

    let user_id = str_of(&payload["user"]["id"]);
    let account = accounts::Entity::find().one(app.db()).await.unwrap().expect("account row");
    assert_eq!(account.provider_id, "credential");
    assert_eq!(account.account_id, user_id);
    let hash = account.password_hash.expect("password hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    let session = sessions::Entity::find().one(app.db()).await.unwrap().expect("session row");
    assert_eq!(session.token_hash, Sha256::digest(token.as_bytes()).to_vec());
    assert_eq!(session.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(app.me(&token).await.body["data"]["me"]["id"], user_id);
}

async fn register_normalizes_email_and_refuses_duplicates(app: TestApp) {
    app.register("  Grace.Hopper@Example.COM ", PASSWORD).await;
    let stored = users::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(stored.email, "grace.hopper@example.com");
    for variant in ["grace.hopper@example.com", "GRACE.HOPPER@EXAMPLE.COM", " grace.hopper@example.com\t"] {
        let reply =
            app.gql(REGISTER, json!({ "input": { "email": variant, "password": "another password" } })).await;
        assert_eq!(reply.code(), Some("EMAIL_TAKEN"), "{variant:?}: {}", reply.body);
        assert!(reply.body["data"].is_null());
        assert!(reply.set_cookie().is_none());
    }
    assert_eq!(app.count(users::Entity).await, 1);
    assert_eq!(app.count(accounts::Entity).await, 1);
    assert_eq!(app.count(sessions::Entity).await, 1);
}

async fn register_rejects_invalid_input_and_writes_nothing(app: TestApp) {
    let long_name = "n".repeat(101);
    let cases = [
        (json!({ "email": "not-an-email", "password": PASSWORD }), "email"),
        (json!({ "email": "a@b", "password": PASSWORD }), "email"),
        (json!({ "email": "", "password": PASSWORD }), "email"),
        (json!({ "email": "ok@example.com", "password": "1234567" }), "password"),
        (json!({ "email": "ok@example.com", "password": "x".repeat(129) }), "password"),
        (json!({ "email": "ok@example.com", "password": PASSWORD, "name": long_name }), "name"),
        (json!({ "email": "ok@example.com", "password": "password1" }), "password"),
        (json!({ "email": "ok@example.com", "password": "qwertyuiop" }), "password"),
        (json!({ "email": "zanzibar@example.com", "password": "my Zanzibar 2026!" }), "password"),
    ];
    for (input, field) in cases {
        let reply = app.gql(REGISTER, json!({ "input": input })).await;
        assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{input}: {}", reply.body);
        assert_eq!(reply.field(), Some(field), "{input}");
    }
    assert_eq!(app.count(users::Entity).await, 0);
    assert_eq!(app.count(sessions::Entity).await, 0);
    // Limits are in code points, and passwords are not trimmed or folded.
    app.register("unicode@example.com", "ñé水ü🔑ßøλ").await;
    let long: String = (0..4).map(|_| domain::token::generate().secret).collect::<String>()[..128].to_owned();
    app.register("long@example.com", &long).await;
    assert_eq!(app.login("unicode@example.com", "ÑÉ水Ü🔑SSØΛ").await.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(app.login("long@example.com", &long[..127]).await.code(), Some("INVALID_CREDENTIALS"));
    assert!(app.login("long@example.com", &long).await.body["data"]["login"].is_object());

    // The length rule is what refuses, not the strength estimate: a strong
    // 129-character password, and with the estimate off, 7 characters.
    let length_refused = |reply: &crate::common::Reply| {
        assert_eq!(
            (reply.code(), reply.field()),
            (Some("BAD_USER_INPUT"), Some("password")),
            "{}",
            reply.body
        );
        let message = str_of(&reply.body["errors"][0]["message"]);
        assert!(message.contains("8 to 128 characters"), "{message}");
    };
    let strong = format!("{long}Z");
    length_refused(
        &app.gql(REGISTER, json!({ "input": { "email": "x129@example.com", "password": strong } })).await,
    );
    let lax = app.sibling(|c| c.password_min_score = 0).await;
    length_refused(
        &lax.gql(REGISTER, json!({ "input": { "email": "x7@example.com", "password": "1234567" } })).await,
    );
    lax.register("x8@example.com", "12345678").await;

    // The email's name in the password: the whole local part without its
    // separators (al.ex → alex) counts; a name under 3 letters does not.
    let reply = lax
        .gql(REGISTER, json!({ "input": { "email": "al.ex@example.com", "password": "ALEX rides 2026" } }))
        .await;
    let message = str_of(&reply.body["errors"][0]["message"]);
    assert!(message.contains("must not contain your email address"), "{}", reply.body);
    lax.register("jo@example.com", "enjoy the journey").await;
}

async fn login_accepts_any_case_and_sets_cookie(app: TestApp) {
    let (_, user_id) = app.register("linus@example.com", PASSWORD).await;
    let reply = app.login("  LINUS@example.com ", PASSWORD).await;
    assert_eq!(reply.status, 200);
    let payload = &reply.body["data"]["login"];
    assert_eq!(payload["user"]["id"], user_id.as_str());
    let token = str_of(&payload["token"]);
    assert!(reply.set_cookie().unwrap().starts_with(&format!("session_token={token};")));
    // The cookie alone is a session, too.
    let me = app.post().graphql(ME, json!({})).cookie(&token).send().await;
    assert_eq!(me.body["data"]["me"]["email"], "linus@example.com");
    assert_eq!(app.count(sessions::Entity).await, 2, "register and login each made a session");
}

async fn login_failures_are_indistinguishable(app: TestApp) {
    app.register("known@example.com", PASSWORD).await;
    let hasher = app.state.auth.hasher().clone();

    let before = hasher.verifications();
    let wrong = app.login("known@example.com", "wrong password").await;
    assert_eq!(hasher.verifications(), before + 1);
    let unknown = app.login("nobody@example.com", "wrong password").await;
    // The unknown email still cost one full argon2 verification (dummy hash).
    assert_eq!(hasher.verifications(), before + 2);

    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(wrong.body["errors"], unknown.body["errors"], "same error, same message");
    assert!(wrong.body["data"].is_null() && unknown.body["data"].is_null());
    assert!(wrong.set_cookie().is_none() && unknown.set_cookie().is_none());
    assert_eq!(app.count(sessions::Entity).await, 1, "only the registration's session");
}

async fn login_rejects_without_hashing(app: TestApp) {
    app.register("quick@example.com", PASSWORD).await;
    let hasher = app.state.auth.hasher().clone();
    let before = hasher.verifications();
    // Over the maximum (the body limit stops a 1 MB one even earlier, with 413).
    let huge = "p".repeat(10_000);
    // The hash counter, not a clock, is what shows no argon2 ran.
    assert_eq!(app.login("quick@example.com", &huge).await.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(app.login("not an email", PASSWORD).await.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(hasher.verifications(), before, "neither reached argon2");
}

async fn me_requires_a_live_session(app: TestApp) {
    let (token, _) = app.register("me@example.com", PASSWORD).await;
    let none = app.gql(ME, json!({})).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.code(), Some("UNAUTHENTICATED"));
    assert!(none.body["data"].is_null());

    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let unknown = domain::token::generate().secret;
    for bad in [tampered.as_str(), unknown.as_str(), "", "short", &format!("{token}x"), "../../etc/passwd"] {
        let reply = app.me(bad).await;
        assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{bad:?}");
    }
    for header in ["Basic Zm9vOmJhcg==", "Bearer", &format!("Token {token}")] {
        let reply = app.post().graphql(ME, json!({})).header("authorization", header).send().await;
        assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{header:?}");
    }
    // Case of the scheme does not matter.
    let reply =
        app.post().graphql(ME, json!({})).header("authorization", &format!("bearer {token}")).send().await;
    assert_eq!(reply.body["data"]["me"]["email"], "me@example.com");
}

async fn bearer_wins_over_cookie(app: TestApp) {
    let (alice, _) = app.register("alice@example.com", PASSWORD).await;
    let (bob, _) = app.register("bob@example.com", PASSWORD).await;
    let both = app.post().graphql(ME, json!({})).bearer(&alice).cookie(&bob).send().await;
    assert_eq!(both.body["data"]["me"]["email"], "alice@example.com");
    let bad_bearer = app.post().graphql(ME, json!({})).bearer("garbage").cookie(&bob).send().await;
    assert_eq!(bad_bearer.code(), Some("UNAUTHENTICATED"), "the cookie is not consulted");
}

async fn logout_revokes_only_the_current_session(app: TestApp) {
    let (first, _) = app.register("multi@example.com", PASSWORD).await;
    let second = str_of(&app.login("multi@example.com", PASSWORD).await.body["data"]["login"]["token"]);

    let reply = app.post().graphql(LOGOUT, json!({})).bearer(&first).send().await;
    assert_eq!(reply.body["data"]["logout"], true);
    let cleared = reply.set_cookie().expect("logout clears the cookie");
    assert!(cleared.starts_with("session_token=;") && cleared.contains("Max-Age=0"), "{cleared}");

    assert_eq!(app.me(&first).await.code(), Some("UNAUTHENTICATED"));
    let again = app.post().graphql(LOGOUT, json!({})).bearer(&first).send().await;
    assert_eq!(again.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.me(&second).await.body["data"]["me"]["email"], "multi@example.com");
    let hash = Sha256::digest(first.as_bytes()).to_vec();
    let row =
        sessions::Entity::find().filter(sessions::Column::TokenHash.eq(hash)).one(app.db()).await.unwrap();
    assert!(row.is_none(), "the revoked session is gone from the database");

    let anonymous = app.gql(LOGOUT, json!({})).await;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
}

async fn expired_sessions_are_refused(app: TestApp) {
    let (token, _) = app.register("clock@example.com", PASSWORD).await;
    app.clock.advance(chrono::Duration::days(7) - chrono::Duration::seconds(1));
    let reply = app.me(&token).await;
    assert_eq!(reply.body["data"]["me"]["email"], "clock@example.com", "{}", reply.body);

    // Used on day 7, it slid forward: still alive just past its first expiry.
    app.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "clock@example.com");

    let (idle, _) = app.register("idle@example.com", PASSWORD).await;
    app.clock.advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    assert_eq!(app.me(&idle).await.code(), Some("UNAUTHENTICATED"), "unused for 7 days");
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "unused for 7 days");
}

async fn cookie_posts_need_csrf_proof(app: TestApp) {
    let (token, _) = app.register("csrf@example.com", PASSWORD).await;
    let body = json!({ "query": LOGOUT }).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    {
        let reply =
            app.post().header("content-type", content_type).cookie(&token).raw(body.clone()).send().await;
        assert_eq!(reply.status, 403, "{content_type}");
        assert_eq!(reply.code(), Some("FORBIDDEN"));
    }
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "csrf@example.com", "logout never ran");
    // Each custom header a cross-site form cannot send is proof enough, as
    // is a JSON content type (any charset, any case).
    for (name, value) in [
        ("x-requested-with", "XMLHttpRequest"),
        ("apollo-require-preflight", "true"),
        ("x-apollo-operation-name", "Me"),
        ("graphql-preflight", "1"),
    ] {
        let custom = app
            .post()
            .header("content-type", "text/plain")
            .header(name, value)
            .cookie(&token)
            .raw(json!({ "query": ME }).to_string())
            .send()
            .await;
        assert_eq!(custom.body["data"]["me"]["email"], "csrf@example.com", "{name}: {}", custom.text);
    }
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let json = app
            .post()
            .header("content-type", content_type)
            .cookie(&token)
            .raw(json!({ "query": ME }).to_string())
            .send()
            .await;
        assert_eq!(json.body["data"]["me"]["email"], "csrf@example.com", "{content_type}: {}", json.text);
    }
    // Every POST needs it, with a bearer token or none (login CSRF needs no cookie).
    let bearer = app
        .post()
        .header("content-type", "text/plain")
        .bearer(&token)
        .raw(json!({ "query": ME }).to_string())
        .send()
        .await;
    assert_eq!(bearer.status, 415);
    let json_logout = app.post().graphql(LOGOUT, json!({})).cookie(&token).send().await;
    assert_eq!(json_logout.body["data"]["logout"], true);
}

/// Many clients at once: through a transaction-mode pooler (3 server
/// connections per database in CI) their statements interleave on shared
/// server connections; each still gets exactly its own user and session.
async fn concurrent_clients_each_get_their_own_session(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let clients = (0..12).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let email = format!("crowd{i}@example.com");
            let (token, _) = app.register(&email, PASSWORD).await;
            let login = app.login(&email, PASSWORD).await;
            let second = str_of(&login.body["data"]["login"]["token"]);
            for token in [&token, &second] {
                let me = app.me(token).await;
                assert_eq!(me.body["data"]["me"]["email"], email.as_str(), "{}", me.body);
            }
        })
    });
    for client in futures_util::future::join_all(clients).await {
        client.expect("client task");
    }
    assert_eq!(app.count(sessions::Entity).await, 24);
    assert_eq!(app.count(users::Entity).await, 12);
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    let user =
        users::Entity::find().filter(users::Column::Email.eq(email)).one(app.db()).await.unwrap().unwrap();
    let account = accounts::Entity::find().filter(accounts::Column::UserId.eq(user.id)).one(app.db()).await;
    account.unwrap().unwrap().password_hash.unwrap()
}

/// After the argon2 settings change, stored hashes keep their old cost
/// until their owner signs in: the sign-in stores the password again at
/// today's cost. Until then an unknown email is checked at the cost most
/// stored hashes have, so the answer's time tells nothing.
async fn a_sign_in_stores_the_password_again_at_todays_cost(app: TestApp) {
    let app = app.shareable().await;
    app.register("old-cost@example.com", PASSWORD).await;
    app.register("stays@example.com", PASSWORD).await;
    let old = stored_hash(&app, "old-cost@example.com").await;
    assert!(old.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{old}");

    let stronger = app
        .second_state(|c| {
            c.argon2_memory_kib = 512;
            c.argon2_iterations = 2;
        })
        .await;
    assert_eq!(stronger.auth.hasher().dummy_cost(), "m=512,t=2,p=1", "before start-up: today's");
    authgate::preflight(&stronger.auth).await.expect("starts");
    assert_eq!(stronger.auth.hasher().dummy_cost(), "m=256,t=1,p=1", "the cost of the stored hashes");

    let router = authgate::app(stronger.clone());
    let login = "mutation L($input: LoginInput!) { login(input: $input) { token } }";
    let wrong = json!({ "input": { "email": "stays@example.com", "password": "not the password" } });
    assert_eq!(app.post_to(&router).graphql(login, wrong).send().await.code(), Some("INVALID_CREDENTIALS"));
    assert!(stored_hash(&app, "stays@example.com").await.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
    let right = json!({ "input": { "email": "old-cost@example.com", "password": PASSWORD } });
    let reply = app.post_to(&router).graphql(login, right.clone()).send().await;
    assert!(reply.body["data"]["login"]["token"].is_string(), "{}", reply.body);
    let new = stored_hash(&app, "old-cost@example.com").await;
    assert!(new.starts_with("$argon2id$v=19$m=512,t=2,p=1$"), "stored again at today's cost: {new}");
    let again = app.post_to(&router).graphql(login, right).send().await;
    assert!(again.body["data"]["login"]["token"].is_string(), "the new hash verifies: {}", again.body);
}
