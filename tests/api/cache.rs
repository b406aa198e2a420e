//! The session cache: `me` from memory, and every change that ends a
//! session or shows in `me` beating it: on the instance that made it before
//! the mutation answers; on the others through LISTEN/NOTIFY (PostgreSQL);
//! never by a second process on one SQLite file.

use std::time::Duration;

use serde_json::json;

use crate::{
    both_backends,
    common::{LOGIN, LOGOUT, ME, TestApp, str_of, wait_until_live},
};

both_backends!(me_is_answered_from_memory, every_change_reaches_the_cache_before_the_answer);

const PW: &str = "a fine password";
const UPDATE: &str = "mutation U($input: UpdateProfileInput!) { updateProfile(input: $input) { name } }";
const REVOKE: &str = "mutation R($id: ID!) { revokeSession(id: $id) }";
const SESSION_ID: &str = "query { me { sessions { id current } } }";

async fn me_is_answered_from_memory(app: TestApp) {
    let (token, _) = app.register("memory@example.com", PW).await;
    app.wait_for_mails("memory@example.com", "Confirm your email address", 1).await;
    app.take_statements();
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "memory@example.com");
    assert_eq!(app.take_statements().len(), 1, "the first `me` reads the session");
    for _ in 0..3 {
        assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "memory@example.com");
    }
    assert_eq!(app.take_statements(), Vec::<String>::new(), "later ones read nothing");
    // An hour on (the sliding refresh is due after a day): still no write.
    app.clock.advance(chrono::Duration::hours(1));
    app.me(&token).await;
    assert_eq!(app.take_statements(), Vec::<String>::new(), "no sliding write before it is due");

    // A change to another user evicts nothing of this one.
    let (other, _) = app.register("other@example.com", PW).await;
    app.authed(&other, UPDATE, json!({ "input": { "name": "Someone Else" } })).await;
    app.wait_for_mails("other@example.com", "Confirm your email address", 1).await;
    app.take_statements();
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "memory@example.com");
    assert_eq!(app.take_statements(), Vec::<String>::new(), "still from memory");

    // Expiry is checked on every use, cached or not.
    app.clock.advance(chrono::Duration::days(31));
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "an expired session is never served");

    // An entry is served for at most the TTL, even when an outage grace
    // keeps it in memory longer.
    let short = app
        .sibling(|c| {
            c.session_cache_ttl = Duration::from_secs(60);
            c.session_cache_outage_grace = Duration::from_secs(600);
        })
        .await;
    let (token, _) = short.register("short@example.com", PW).await;
    short.wait_for_mails("short@example.com", "Confirm your email address", 1).await;
    // Entries are timed from their read, not from when the cache began.
    // (The cache's clock is moved on, not slept through.)
    short.state.auth.sessions().advance(Duration::from_secs(90));
    short.me(&token).await;
    short.take_statements();
    short.state.auth.sessions().advance(Duration::from_secs(40));
    short.me(&token).await;
    assert_eq!(short.take_statements().len(), 0, "within the TTL: from memory");
    short.state.auth.sessions().advance(Duration::from_secs(21));
    short.me(&token).await;
    assert_eq!(short.take_statements().len(), 1, "past the TTL: read again");

    let cold = app.sibling(|c| c.session_cache_ttl = Duration::ZERO).await;
    let (token, _) = cold.register("cold@example.com", PW).await;
    cold.wait_for_mails("cold@example.com", "Confirm your email address", 1).await;
    cold.take_statements();
    cold.me(&token).await;
    cold.me(&token).await;
    assert_eq!(cold.take_statements().len(), 2, "off: every `me` reads the session");
}

fn me_field(reply: &crate::common::Reply, field: &str) -> serde_json::Value {
    reply.body["data"]["me"][field].clone()
}

async fn login(app: &TestApp, email: &str, password: &str) -> String {
    let reply = app.gql(LOGIN, json!({ "input": { "email": email, "password": password } })).await;
    str_of(&reply.body["data"]["login"]["token"])
}

/// Each session is warmed (`me` once) before the change, and checked right
/// after the mutation answered: no waiting, no second chance.
async fn every_change_reaches_the_cache_before_the_answer(app: TestApp) {
    let email = "changes@example.com";
    let (main, _) = app.register(email, PW).await;
    let (second, third) = (login(&app, email, PW).await, login(&app, email, PW).await);
    for token in [&main, &second, &third] {
        assert_eq!(me_field(&app.me(token).await, "email"), email);
    }
    assert!(app.state.auth.sessions().len() >= 3 || !app.state.auth.sessions().is_on(), "warm");

    let renamed = app.authed(&main, UPDATE, json!({ "input": { "name": "New Name" } })).await;
    assert_eq!(renamed.body["data"]["updateProfile"]["name"], "New Name");
    assert_eq!(me_field(&app.me(&second).await, "name"), "New Name", "updateProfile");

    let third_id = {
        let list = app.authed(&third, SESSION_ID, json!({})).await.body["data"]["me"]["sessions"].clone();
        let own = list.as_array().unwrap().iter().find(|s| s["current"] == true).unwrap().clone();
        str_of(&own["id"])
    };
    assert_eq!(
        app.authed(&main, REVOKE, json!({ "id": third_id })).await.body["data"]["revokeSession"],
        true
    );
    assert_eq!(app.me(&third).await.code(), Some("UNAUTHENTICATED"), "revokeSession");

    app.authed(&main, "mutation { revokeOtherSessions }", json!({})).await;
    assert_eq!(app.me(&second).await.code(), Some("UNAUTHENTICATED"), "revokeOtherSessions");

    let fourth = login(&app, email, PW).await;
    app.me(&fourth).await;
    app.change_password(&main, PW, "another fine password").await;
    assert_eq!(app.me(&fourth).await.code(), Some("UNAUTHENTICATED"), "changePassword");

    assert_eq!(me_field(&app.me(&main).await, "email"), email);
    app.authed(&main, LOGOUT, json!({})).await;
    assert_eq!(app.me(&main).await.code(), Some("UNAUTHENTICATED"), "logout");

    let other = "verify-me@example.com";
    let (token, _) = app.register(other, PW).await;
    assert_eq!(me_field(&app.me(&token).await, "emailVerified"), false);
    let link = app.mailed_token(other, "Confirm your email address", 1).await;
    app.gql("mutation V($t: String!) { verifyEmail(token: $t) { id } }", json!({ "t": link })).await;
    assert_eq!(me_field(&app.me(&token).await, "emailVerified"), true, "verifyEmail");

    app.reset_password_by_mail(other, "a new fine password").await;
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "resetPassword");

    let (doomed, _) = app.register("doomed@example.com", PW).await;
    app.me(&doomed).await;
    let deleted =
        app.authed(&doomed, "mutation D($p: String!) { deleteAccount(password: $p) }", json!({ "p": PW }));
    assert_eq!(deleted.await.body["data"]["deleteAccount"], true);
    assert_eq!(app.me(&doomed).await.code(), Some("UNAUTHENTICATED"), "deleteAccount");

    // Two-factor: the user row (twoFactorEnabled) and the session row
    // (assuranceLevel, which step-up reads from the cached session).
    let tf = "two-factor@example.com";
    let (setter, _) = app.register(tf, PW).await;
    let watcher = login(&app, tf, PW).await;
    assert_eq!(two_factor_of(&app, &watcher).await["twoFactorEnabled"], false);
    let (secret, _) = crate::two_factor::enable(&app, &setter).await;
    assert_eq!(two_factor_of(&app, &watcher).await["twoFactorEnabled"], true, "confirmTotpSetup");
    let regenerate = "mutation { regenerateRecoveryCodes }";
    assert_eq!(app.authed(&watcher, regenerate, json!({})).await.code(), Some("REAUTHENTICATION_REQUIRED"));
    let proof =
        json!({ "input": { "password": PW, "code": crate::two_factor::code_at(&secret, app.clock_now()) } });
    assert_eq!(
        app.authed(&watcher, crate::two_factor::REAUTH, proof).await.body["data"]["reauthenticate"],
        true
    );
    assert!(
        app.authed(&watcher, regenerate, json!({})).await.body["data"]["regenerateRecoveryCodes"].is_array(),
        "reauthenticate"
    );
    app.authed(&setter, "mutation { disableTwoFactor }", json!({})).await;
    assert_eq!(two_factor_of(&app, &watcher).await["twoFactorEnabled"], false, "disableTwoFactor");

    // A way in removed starts a new credentials version: another session of
    // the user, warm in the cache, must see it at once, or its next change
    // (held on the version it read) would be refused as a lost race.
    let ways = "ways@example.com";
    let (owner, owner_id) = app.register_verified(ways, PW).await;
    let (_, passkey) = crate::passkeys::add_passkey(&app, &owner, "Laptop").await;
    use sea_orm::ActiveModelTrait;
    let link = entity::accounts::ActiveModel {
        id: sea_orm::Set(uuid::Uuid::new_v4()),
        user_id: sea_orm::Set(uuid::Uuid::parse_str(&owner_id).unwrap()),
        provider_id: sea_orm::Set("github".into()),
        account_id: sea_orm::Set("gh-ways".into()),
        password_hash: sea_orm::Set(None),
        created_at: sea_orm::Set(app.clock_now()),
        updated_at: sea_orm::Set(app.clock_now()),
    }
    .insert(app.db())
    .await
    .unwrap();
    let mut password = PW.to_owned();
    for (what, change) in [
        (
            "removePasskey",
            json!({ "query": "mutation($id: ID!) { removePasskey(id: $id) }", "variables": { "id": passkey["id"] } }),
        ),
        (
            "unlinkAccount",
            json!({ "query": "mutation($id: ID!) { unlinkAccount(id: $id) }", "variables": { "id": link.id.to_string() } }),
        ),
    ] {
        let other = login(&app, ways, &password).await;
        assert_eq!(me_field(&app.me(&other).await, "email"), ways, "warm");
        let reply = app.post().json(&change).bearer(&owner).send().await;
        assert!(reply.body["errors"].is_null(), "{what}: {}", reply.body);
        let next = format!("{password} and more");
        let change = json!({ "input": { "currentPassword": password, "newPassword": next, "revokeOtherSessions": false } });
        let changed = app
            .authed(
                &other,
                "mutation C($input: ChangePasswordInput!) { changePassword(input: $input) }",
                change,
            )
            .await;
        assert_eq!(changed.body["data"]["changePassword"], true, "{what}: {}", changed.body);
        password = next;
    }
    admin_changes_reach_the_cache(&app).await;
}

/// An admin's changes to a user whose session is warm in the cache.
async fn admin_changes_reach_the_cache(app: &TestApp) {
    let (admin, _) = crate::admin::make_admin(app, "cache-admin@example.com", "admin").await;
    let by_admin = |query: &'static str, id: String| app.authed(&admin, query, json!({ "u": id }));
    let warm = |email: &'static str| async move {
        let (token, id) = app.register_verified(email, PW).await;
        assert_eq!(me_field(&app.me(&token).await, "email"), email, "warm");
        (token, id)
    };

    let (token, id) = warm("cache-banned@example.com").await;
    by_admin("mutation($u: ID!) { banUser(input: { userId: $u }) { id } }", id).await;
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "banUser");

    let (token, id) = warm("cache-revoked@example.com").await;
    by_admin("mutation($u: ID!) { revokeUserSessions(userId: $u) }", id).await;
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "revokeUserSessions");

    let (token, id) = warm("cache-deleted@example.com").await;
    by_admin("mutation($u: ID!) { deleteUser(userId: $u) }", id).await;
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "deleteUser");

    let (token, id) = warm("cache-lost@example.com").await;
    crate::two_factor::enable(app, &token).await;
    assert_eq!(me_field(&app.me(&token).await, "email"), "cache-lost@example.com");
    by_admin("mutation($u: ID!) { resetUserTwoFactor(userId: $u) }", id).await;
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "resetUserTwoFactor");

    // The roles the session cache holds are the access tokens' claim.
    let (token, id) = warm("cache-roles@example.com").await;
    let claim = || async { crate::tokens::claims_of(app, &token).await["roles"].clone() };
    assert_eq!(claim().await, json!([]));
    by_admin("mutation($u: ID!) { setUserRoles(userId: $u, roles: [\"auditor\"]) { id } }", id).await;
    assert_eq!(claim().await, json!(["auditor"]), "setUserRoles");
}

/// What each mutation does to what the session cache holds (a session's
/// row and its user's row). Each that changes them is driven in
/// `every_change_reaches_the_cache_before_the_answer` (its name is the
/// label of the check there); each other one says why nothing cached
/// changes. A new mutation fails `every_mutation_is_classified_for_the_cache`
/// until it is put here.
const MUTATIONS: [(&str, Option<&str>); 37] = [
    ("register", Some("a new user and session: nothing of theirs is cached yet")),
    (
        "login",
        Some(
            "a new session; one ended by the per-user cap goes through `session::create`, which tells the cache",
        ),
    ),
    ("logout", None),
    ("revokeSession", None),
    ("revokeOtherSessions", None),
    ("changePassword", None),
    ("updateProfile", None),
    ("deleteAccount", None),
    ("requestEmailVerification", Some("mails a token: no row of users or sessions changes")),
    ("verifyEmail", None),
    ("requestPasswordReset", Some("mails a token: no row of users or sessions changes")),
    ("resetPassword", None),
    ("startOAuth", Some("stores a flow; the callback's sign-in or claim is tested in oauth.rs")),
    ("linkOAuth", Some("stores a flow; the link is an accounts row, which me reads from the database")),
    ("unlinkAccount", None),
    (
        "setPassword",
        Some("adds an accounts row, which me reads from the database; the user row is unchanged"),
    ),
    (
        "startTotpSetup",
        Some("a pending secret in totp_credentials; the user row is unchanged until confirmed"),
    ),
    ("confirmTotpSetup", None),
    ("disableTwoFactor", None),
    ("regenerateRecoveryCodes", Some("recovery_codes only; neither row changes")),
    ("completeSignIn", Some("a new session, made like login's")),
    ("reauthenticate", None),
    ("startPasskeyRegistration", Some("a ceremony row only")),
    (
        "finishPasskeyRegistration",
        Some("a passkeys row, which me reads from the database; the user row is unchanged"),
    ),
    ("startPasskeySignIn", Some("a ceremony row only")),
    ("finishPasskeySignIn", Some("a new session, made like login's")),
    ("removePasskey", None),
    ("createWebhookEndpoint", Some("an endpoint row; no row of users or sessions changes")),
    ("accessToken", Some("a signature: nothing is written (a signing key at most, made once)")),
    ("banUser", None),
    ("unbanUser", Some("the banned user has no session left to be cached (the ban ended them all)")),
    ("revokeUserSessions", None),
    ("resetUserTwoFactor", None),
    ("setUserRoles", None),
    ("impersonateUser", Some("a new session, made like login's; the admin's own is unchanged")),
    ("sendUserPasswordReset", Some("mails a token: no row of users or sessions changes")),
    ("deleteUser", None),
];

#[test]
fn every_mutation_is_classified_for_the_cache() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut listed: Vec<String> = MUTATIONS.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(crate::common::mutations_in_schema(), listed, "every mutation, classified once");
    let source = std::fs::read_to_string(root.join("tests/api/cache.rs")).unwrap();
    let driven = source.split("async fn every_change_reaches_the_cache_before_the_answer").nth(1).unwrap();
    let driven = driven.split("\nconst MUTATIONS").next().unwrap();
    for (name, _) in MUTATIONS.iter().filter(|(_, unchanged)| unchanged.is_none()) {
        assert!(
            driven.contains(&format!("\"{name}\"")),
            "{name} changes what the cache holds but is not driven"
        );
    }
}

/// On SQLite a second server on the same file could revoke a session the
/// first keeps serving from memory: with the cache on, it may not start.
/// Tools that end no live session (`authgate cleanup`) are not held back.
#[tokio::test]
async fn a_second_server_on_a_sqlite_file_needs_the_cache_off_everywhere() {
    use domain::session::cache::lock_database;
    let app = TestApp::sqlite().await;
    let mut config = crate::common::test_config(app.database_url());
    let refused = lock_database(&config).expect_err("a second server with the cache").to_string();
    assert!(
        refused.contains("needs its SQLite database to itself") && refused.contains("test.db"),
        "{refused}"
    );
    config.session_cache_ttl = Duration::ZERO;
    let refused = lock_database(&config).expect_err("the first serves from memory").to_string();
    assert!(refused.contains("with the session cache on: stop it"), "{refused}");

    let shared = TestApp::sqlite_with(|c| c.session_cache_ttl = Duration::ZERO).await;
    let mut config = crate::common::test_config(shared.database_url());
    config.session_cache_ttl = Duration::ZERO;
    let _second = lock_database(&config).expect("servers without the cache share a file");
    config.session_cache_ttl = Duration::from_secs(60);
    assert!(lock_database(&config).is_err(), "but none may join them with it");
}

/// PostgreSQL: a change made anywhere (another instance, an operator's SQL)
/// reaches this instance's cache through the triggers' NOTIFY.
#[tokio::test]
async fn changes_made_elsewhere_are_pushed() {
    let Some(app) = TestApp::postgres().await else { return };
    let (token, user_id) = app.register("pushed@example.com", PW).await;
    assert_eq!(me_field(&app.me(&token).await, "email"), "pushed@example.com");
    app.execute_sql(&format!("UPDATE users SET name = 'Renamed By SQL' WHERE id = '{user_id}'")).await;
    assert!(
        eventually(&app, &token, |r| me_field(r, "name") == "Renamed By SQL").await,
        "an operator's UPDATE"
    );
    app.execute_sql(&format!("DELETE FROM sessions WHERE user_id = '{user_id}'")).await;
    assert!(eventually(&app, &token, |r| r.code() == Some("UNAUTHENTICATED")).await, "an operator's DELETE");
}

/// Asks `me` until `done` holds, for at most 2 s; whether it did.
async fn eventually(app: &TestApp, token: &str, done: impl Fn(&crate::common::Reply) -> bool) -> bool {
    for _ in 0..200 {
        if done(&app.me(token).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// While the listening connection is down, nothing is served from memory:
/// a revocation made meanwhile (its NOTIFY lost) is refused at once, and
/// after re-subscribing the cache starts empty.
#[tokio::test]
async fn a_lost_listener_means_no_answers_from_memory() {
    lost_listener(Duration::ZERO).await;
}

/// The same with an outage grace: the entries it keeps for an outage are
/// not answers while the database is reachable and only the listener is lost.
#[tokio::test]
async fn a_lost_listener_means_no_answers_from_memory_with_an_outage_grace() {
    lost_listener(Duration::from_secs(60)).await;
}

/// Instance B on `app`'s database, its LISTEN connection through a proxy
/// the test can cut, with `tweak`ed settings.
async fn listening_through_a_proxy(
    app: &TestApp,
    tweak: impl FnOnce(&mut domain::config::Config),
) -> Option<(crate::outage::Proxy, authgate::http::AppState)> {
    let listener_proxy = crate::outage::Proxy::for_postgres().await?;
    let listen_url = crate::outage::via(app.database_url(), listener_proxy.addr);
    let b = app
        .second_state(|c| {
            c.database_listen_url = Some(listen_url.into());
            tweak(c);
        })
        .await;
    Some((listener_proxy, b))
}

/// Kills B's listening backend and keeps it from coming back; waits until
/// B has noticed.
async fn cut_listener(app: &TestApp, listener_proxy: &crate::outage::Proxy, b: &authgate::http::AppState) {
    listener_proxy.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let database = app.database_url().rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    app.execute_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'authgate-listener' AND datname = '{database}'"
    ))
    .await;
    for _ in 0..500 {
        if !b.auth.sessions().is_live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!b.auth.sessions().is_live(), "B noticed its listener is gone");
}

async fn lost_listener(grace: Duration) {
    let Some(app) = TestApp::postgres().await else { return };
    let Some((listener_proxy, b)) =
        listening_through_a_proxy(&app, |c| c.session_cache_outage_grace = grace).await
    else {
        return;
    };
    let b_router = authgate::app(b.clone());
    let (token, _) = app.register("listener@example.com", PW).await;
    let warm = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(me_field(&warm, "email"), "listener@example.com");
    assert_eq!(b.auth.sessions().len(), 1, "B holds the session");

    let lost = || async {
        let text = app.get("/metrics").send().await.text;
        text.lines()
            .find_map(|l| l.strip_prefix("authgate_session_channel_lost_total "))
            .map_or(0.0, |v| v.trim().parse::<f64>().expect("a number"))
    };
    let lost_before = lost().await;
    cut_listener(&app, &listener_proxy, &b).await;
    if grace.is_zero() {
        assert!(b.auth.sessions().is_empty(), "and flushed what it held");
    }
    // Counted, for an operator's alert (the recorder is the process's: at
    // least ours; counted just after the bypass, so asked for a moment).
    let counted = crate::common::eventually(Duration::from_secs(1), Duration::from_millis(10), || async {
        lost().await >= lost_before + 1.0
    })
    .await;
    assert!(counted, "authgate_session_channel_lost_total did not count the loss");

    app.authed(&token, LOGOUT, json!({})).await;
    let after = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(after.code(), Some("UNAUTHENTICATED"), "refused by B at once: {}", after.body);

    let (fresh, _) = app.register("listener2@example.com", PW).await;
    app.post_to(&b_router).graphql(ME, json!({})).bearer(&fresh).send().await;
    if grace.is_zero() {
        assert!(b.auth.sessions().is_empty(), "bypassed while down: nothing kept");
    }

    listener_proxy.stall.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until_live(&b).await;
    let again = app.post_to(&b_router).graphql(ME, json!({})).bearer(&fresh).send().await;
    assert_eq!(me_field(&again, "email"), "listener2@example.com");
    assert_eq!(b.auth.sessions().len(), 1, "serving from memory again, starting empty");
}

/// A listening connection that dies without a word (a NAT forgets it) is
/// noticed by the instance's own ping within twice its interval, and a
/// healthy one stays up across many pings.
#[tokio::test]
async fn a_silently_dead_listener_is_noticed_by_its_ping() {
    let Some(app) = TestApp::postgres().await else { return };
    // Short, for the test; long enough that a loaded machine hears each
    // ping back in time (a flapping channel would fail the first part).
    let ping = Duration::from_millis(250);
    let Some((listener_proxy, b)) = listening_through_a_proxy(&app, |c| c.session_channel_ping = ping).await
    else {
        return;
    };
    // Healthy: live through six rounds of pings (each heard back in time).
    for _ in 0..12 {
        tokio::time::sleep(ping / 2).await;
        assert!(b.auth.sessions().is_live(), "a healthy channel stays live");
    }
    let b_router = authgate::app(b.clone());
    let (token, _) = app.register("silent@example.com", PW).await;
    app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(b.auth.sessions().len(), 1, "B holds the session");

    // The connection stops carrying anything, and nobody closes it.
    listener_proxy.freeze.store(true, std::sync::atomic::Ordering::SeqCst);
    let noticed = crate::common::eventually(Duration::from_secs(5), Duration::from_millis(10), || async {
        !b.auth.sessions().is_live()
    })
    .await;
    assert!(noticed, "still serving from memory 5 s after its channel went silent");
    // A revocation whose NOTIFY is stuck in the frozen connection: refused.
    app.authed(&token, LOGOUT, json!({})).await;
    let after = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(after.code(), Some("UNAUTHENTICATED"), "{}", after.body);

    listener_proxy.freeze.store(false, std::sync::atomic::Ordering::SeqCst);
    listener_proxy.cut_all();
    wait_until_live(&b).await;
}

/// A listening address that answers and hangs up at once (a database
/// restarting, a pooler refusing LISTEN) is retried with growing waits
/// (0.1 s, 0.2 s, 0.4 s, 0.8 s, ...), not in a loop that hammers it.
#[tokio::test]
async fn an_unreachable_channel_is_retried_with_backoff() {
    let Some(app) = TestApp::postgres().await else { return };
    let refuser = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = refuser.local_addr().unwrap().port();
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tries.clone();
    let hangs_up = tokio::spawn(async move {
        while let Ok((stream, _)) = refuser.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let mut config = crate::common::test_config(app.database_url());
    config.database_listen_url = Some(format!("postgres://postgres@127.0.0.1:{port}/postgres").into());
    let db = domain::db::connect(&config).await.expect("connect");
    let b = authgate::state(db, config, std::sync::Arc::new(app.clock.clone())).expect("state");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let tried = tries.load(std::sync::atomic::Ordering::SeqCst);
    hangs_up.abort();
    assert!(b.auth.sessions().is_on() && !b.auth.sessions().is_live(), "bypassed while it cannot listen");
    // Attempts at about 0, 0.1, 0.3, 0.7 and 1.5 s (with some slack).
    assert!((2..=8).contains(&tried), "{tried} attempts in 1.6 s");
}

/// A database without the triggers (not migrated yet, with
/// `AUTHGATE_AUTO_MIGRATE=false`) would never announce changes: an instance
/// on it answers nothing from memory.
#[tokio::test]
async fn without_the_triggers_nothing_is_answered_from_memory() {
    let Some(app) = TestApp::postgres().await else { return };
    app.execute_sql("DROP TRIGGER sessions_notify_delete ON sessions").await;
    let mut config = crate::common::test_config(app.database_url());
    config.auto_migrate = false;
    let db = domain::db::connect(&config).await.expect("connect");
    let b = authgate::state(db, config, std::sync::Arc::new(app.clock.clone())).expect("state");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.auth.sessions().is_on() && !b.auth.sessions().is_live(), "on, but bypassed");
    let b_router = authgate::app(b.clone());
    let (token, _) = app.register("untriggered@example.com", PW).await;
    let served = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(me_field(&served, "email"), "untriggered@example.com");
    app.authed(&token, LOGOUT, json!({})).await;
    let after = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(after.code(), Some("UNAUTHENTICATED"), "read from the database: {}", after.body);
}

async fn two_factor_of(app: &TestApp, token: &str) -> serde_json::Value {
    app.authed(token, "{ me { twoFactorEnabled } }", json!({})).await.body["data"]["me"].clone()
}

/// A revocation whose request is dropped after the delete and before its
/// answer (a client gone, a deadline) still reaches the cache: the ended
/// session is not served from memory. SQLite: no NOTIFY to hide behind.
#[tokio::test]
async fn a_dropped_revocation_still_reaches_the_cache() {
    let app = std::sync::Arc::new(TestApp::sqlite().await);
    let email = "dropped@example.com";
    let (owner, _) = app.register(email, PW).await;
    let stolen = login(&app, email, PW).await;
    assert_eq!(me_field(&app.me(&stolen).await, "email"), email, "warm");
    let listed = app.authed(&stolen, SESSION_ID, json!({})).await;
    let list = listed.body["data"]["me"]["sessions"].as_array().cloned().unwrap_or_default();
    let id = list.iter().find(|s| s["current"] == true).map(|s| str_of(&s["id"])).expect("its id");
    let hold = app.hold_at("revoke:deleted");
    let revoking = tokio::spawn({
        let app = app.clone();
        async move { app.authed(&owner, REVOKE, json!({ "id": id })).await }
    });
    hold.reached().await;
    revoking.abort();
    assert!(revoking.await.unwrap_err().is_cancelled(), "the request was dropped before it answered");
    hold.release(1);
    assert_eq!(app.me(&stolen).await.code(), Some("UNAUTHENTICATED"), "the ended session is not served");
}

/// The outage grace is for a database out of reach, not a busy one: with
/// the listener lost and every pooled connection held, a session revoked
/// elsewhere is not answered from memory (the pool's timeout is checked
/// with a fresh connection beside it, which the database answers).
#[tokio::test]
async fn a_busy_pool_opens_no_outage_grace() {
    let Some(app) = TestApp::postgres().await else { return };
    let Some((listener_proxy, b)) = listening_through_a_proxy(&app, |c| {
        c.session_cache_outage_grace = Duration::from_secs(60);
        c.db_max_connections = 1;
        c.db_min_connections = 0;
        c.db_acquire_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let b_router = authgate::app(b.clone());
    let (token, _) = app.register("busy@example.com", PW).await;
    let warm = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(me_field(&warm, "email"), "busy@example.com");

    cut_listener(&app, &listener_proxy, &b).await;
    app.authed(&token, LOGOUT, json!({})).await;

    // B's only connection is held by long work: its requests time out waiting.
    use sea_orm::TransactionTrait;
    let held = b.auth.db().begin().await.expect("B's one connection");
    for attempt in 0..3 {
        let reply = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
        assert_eq!(reply.code(), Some("SERVICE_UNAVAILABLE"), "attempt {attempt}: {}", reply.body);
    }
    drop(held);
    let after = app.post_to(&b_router).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(after.code(), Some("UNAUTHENTICATED"), "{}", after.body);
}
