//! Session management and the account lifecycle, on both backends.

use chrono::Duration;
use entity::{accounts, oauth_flows, sessions, users, verification_tokens};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::{
    both_backends,
    common::{LOGOUT, ME, MY_SESSIONS, TestApp, str_of},
};

both_backends!(
    sessions_list_live_ones_newest_first,
    loaders_read_each_table_once,
    sliding_refresh_writes_once_per_update_age,
    sessions_never_outlive_the_absolute_maximum,
    revoke_session_touches_only_own_sessions,
    revoke_other_sessions_counts,
    change_password_checks_and_revokes,
    update_profile_edits_only_given_fields,
    delete_account_removes_everything,
    every_table_naming_a_user_is_in_the_one_list,
    every_table_is_in_the_docs,
    cleanup_deletes_expired_rows_in_batches,
    cleanup_removes_abandoned_ceremonies_and_only_those,
    revocation_is_seen_by_every_instance,
    forwarded_for_only_from_trusted_proxies,
    a_user_holds_at_most_the_cap_of_sessions,
);

const PW: &str = "a fine password";
const REVOKE: &str = "mutation RevokeSession($id: ID!) { revokeSession(id: $id) }";
const REVOKE_OTHERS: &str = "mutation RevokeOtherSessions { revokeOtherSessions }";
const CHANGE: &str =
    "mutation ChangePassword($input: ChangePasswordInput!) { changePassword(input: $input) }";
const UPDATE: &str = "mutation UpdateProfile($input: UpdateProfileInput!) { updateProfile(input: $input) { id name image updatedAt } }";
const DELETE: &str = "mutation DeleteAccount($password: String!) { deleteAccount(password: $password) }";

async fn login_as(app: &TestApp, email: &str, password: &str, agent: &str) -> String {
    let reply = app
        .post()
        .graphql(crate::common::LOGIN, json!({ "input": { "email": email, "password": password } }))
        .header("user-agent", agent)
        .send()
        .await;
    str_of(&reply.body["data"]["login"]["token"])
}

async fn sessions_list_live_ones_newest_first(app: TestApp) {
    let (first, user_id) = app.register("list@example.com", PW).await;
    app.clock.advance(Duration::seconds(1));
    let second = login_as(&app, "list@example.com", PW, "Firefox/130").await;
    app.clock.advance(Duration::seconds(1));
    let third = login_as(&app, "list@example.com", PW, "Safari/18").await;

    let reply = app.authed(&third, MY_SESSIONS, json!({})).await;
    let me = &reply.body["data"]["me"];
    let list = me["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["userAgent"], "Safari/18", "newest first");
    assert_eq!(list[1]["userAgent"], "Firefox/130");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["ipAddress"], "127.0.0.1");
    assert!(str_of(&list[0]["expiresAt"]).ends_with('Z'));
    let accounts = me["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["providerId"], "credential");
    assert_eq!(accounts[0]["accountId"], user_id.as_str());

    app.authed(&first, LOGOUT, json!({})).await;
    assert_eq!(app.sessions(&third).await.len(), 2, "revoked sessions are not listed");
    // Six days on, only the session used since is alive two days later.
    app.clock.advance(Duration::days(6));
    app.me(&third).await;
    app.clock.advance(Duration::days(2));
    let live = app.sessions(&third).await;
    assert_eq!(live.len(), 1, "expired sessions are not listed");
    assert_eq!(app.me(&second).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.count(sessions::Entity).await, 2, "still in the table until cleanup");
}

async fn loaders_read_each_table_once(app: TestApp) {
    let (token, _) = app.register("loader@example.com", PW).await;
    login_as(&app, "loader@example.com", PW, "other").await;
    app.wait_for_mails("loader@example.com", "Confirm your email address", 1).await;
    app.take_statements();
    let query = "{ a: me { sessions { id } accounts { id } } b: me { sessions { current } accounts { providerId } } c: me { sessions { id } } }";
    let reply = app.authed(&token, query, json!({})).await;
    assert_eq!(reply.body["data"]["c"]["sessions"].as_array().unwrap().len(), 2, "{}", reply.body);
    let statements = app.take_statements();
    let reading =
        |table: &str| statements.iter().filter(|sql| sql.contains(&format!(r#"FROM "{table}""#))).count();
    // One to resolve the token (sessions JOIN users), one per loader.
    assert_eq!(reading("sessions"), 2, "{statements:#?}");
    assert_eq!(reading("accounts"), 1, "{statements:#?}");
    assert_eq!(statements.len(), 3, "{statements:#?}");
}

async fn sliding_refresh_writes_once_per_update_age(app: TestApp) {
    let (token, _) = app.register("slide@example.com", PW).await;
    let updates = |statements: Vec<String>| statements.iter().filter(|s| s.starts_with("UPDATE")).count();
    app.wait_for_mails("slide@example.com", "Confirm your email address", 1).await;
    app.take_statements();
    for _ in 0..5 {
        app.me(&token).await;
    }
    assert_eq!(updates(app.take_statements()), 0, "reads stay reads within update_age");
    let unrefreshed = app.post().graphql(ME, json!({})).cookie(&token).send().await;
    assert!(unrefreshed.set_cookie().is_none(), "no new cookie until the session is extended");

    app.clock.advance(Duration::days(1) + Duration::seconds(1));
    let cookie_reply = app.post().graphql(ME, json!({})).cookie(&token).send().await;
    assert_eq!(updates(app.take_statements()), 1, "one extension when due");
    let cookie = cookie_reply.set_cookie().expect("a refreshed cookie session gets a fresh cookie");
    assert!(cookie.contains("Max-Age=604800"), "{cookie}");
    let row = sessions::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(row.expires_at, app.clock_now() + Duration::days(7));

    for _ in 0..3 {
        app.me(&token).await;
    }
    assert_eq!(updates(app.take_statements()), 0);

    // A bearer client is extended too, but gets no cookie it never asked for.
    app.clock.advance(Duration::days(1) + Duration::seconds(1));
    let bearer = app.me(&token).await;
    assert_eq!(updates(app.take_statements()), 1, "extended");
    assert!(bearer.set_cookie().is_none(), "no cookie for a bearer client");
}

async fn sessions_never_outlive_the_absolute_maximum(app: TestApp) {
    let (token, _) = app.register("max@example.com", PW).await;
    let created = app.clock_now();
    for _ in 0..3 {
        app.clock.advance(Duration::days(6));
        assert!(app.me(&token).await.body["data"]["me"].is_object(), "alive while used");
    }
    // Day 24: the sliding week would end on day 31; the cap ends it on day
    // 30, and the refreshed cookie says so (6 days, not 7).
    app.clock.advance(Duration::days(6));
    let reply = app.post().graphql(ME, json!({})).cookie(&token).send().await;
    assert!(reply.body["data"]["me"].is_object(), "{}", reply.body);
    let cookie = reply.set_cookie().expect("a refreshed cookie");
    assert!(cookie.contains(&format!("Max-Age={}", 6 * 24 * 3600)), "{cookie}");
    let row = sessions::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(row.expires_at, created + Duration::days(30), "capped at 30 days after sign-in");
    // At the cap, use extends nothing: no write, no new cookie.
    app.clock.advance(Duration::days(2));
    app.take_statements();
    let reply = app.post().graphql(ME, json!({})).cookie(&token).send().await;
    assert!(reply.body["data"]["me"].is_object(), "{}", reply.body);
    assert!(reply.set_cookie().is_none(), "nothing to extend: {:?}", reply.set_cookie());
    assert!(!app.take_statements().iter().any(|s| s.starts_with("UPDATE")), "no write at the cap");
    app.clock.advance(Duration::days(4));
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "day 30 is the end, used or not");
}

async fn revoke_session_touches_only_own_sessions(app: TestApp) {
    let (alice, _) = app.register("alice@example.com", PW).await;
    let alice2 = login_as(&app, "alice@example.com", PW, "phone").await;
    let (bob, _) = app.register("bob@example.com", PW).await;
    let bob_session = app.sessions(&bob).await[0].0.clone();

    for id in [bob_session.as_str(), &Uuid::new_v4().to_string(), "not-a-uuid"] {
        let reply = app.authed(&alice, REVOKE, json!({ "id": id })).await;
        assert_eq!(reply.body["data"]["revokeSession"], false, "{id}: {}", reply.body);
    }
    assert!(app.me(&bob).await.body["data"]["me"].is_object(), "bob untouched");

    let phone = app.sessions(&alice).await.into_iter().find(|(_, current)| !current).unwrap().0;
    // Signed in by cookie, revoking another session leaves the caller's cookie alone.
    let reply = app.post().graphql(REVOKE, json!({ "id": phone })).cookie(&alice).send().await;
    assert_eq!(reply.body["data"]["revokeSession"], true, "{}", reply.body);
    let cleared: Vec<_> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| c.contains("session_token=") && c.contains("Max-Age=0"))
        .collect();
    assert!(cleared.is_empty(), "the caller's own cookie is kept: {cleared:?}");
    assert!(app.me(&alice).await.body["data"]["me"].is_object(), "the caller is still signed in");
    assert_eq!(app.me(&alice2).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.authed(&alice, REVOKE, json!({ "id": phone })).await.body["data"]["revokeSession"], false);

    let own = app.sessions(&alice).await[0].0.clone();
    let reply = app.authed(&alice, REVOKE, json!({ "id": own })).await;
    assert_eq!(reply.body["data"]["revokeSession"], true);
    assert!(reply.set_cookie().unwrap().contains("Max-Age=0"), "like logout");
    assert_eq!(app.me(&alice).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.gql(REVOKE, json!({ "id": own })).await.code(), Some("UNAUTHENTICATED"));
}

async fn revoke_other_sessions_counts(app: TestApp) {
    let (keep, _) = app.register("others@example.com", PW).await;
    let a = login_as(&app, "others@example.com", PW, "a").await;
    let b = login_as(&app, "others@example.com", PW, "b").await;
    let (stranger, _) = app.register("stranger@example.com", PW).await;
    assert_eq!(app.authed(&keep, REVOKE_OTHERS, json!({})).await.body["data"]["revokeOtherSessions"], 2);
    assert_eq!(app.me(&a).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.me(&b).await.code(), Some("UNAUTHENTICATED"));
    assert!(app.me(&keep).await.body["data"]["me"].is_object());
    assert!(app.me(&stranger).await.body["data"]["me"].is_object());
    assert_eq!(app.authed(&keep, REVOKE_OTHERS, json!({})).await.body["data"]["revokeOtherSessions"], 0);
}

async fn change_password_checks_and_revokes(app: TestApp) {
    let (token, _) = app.register("change@example.com", PW).await;
    let other = login_as(&app, "change@example.com", PW, "other").await;
    let change =
        |current: &str, new: &str| json!({ "input": { "currentPassword": current, "newPassword": new } });

    let wrong = app.authed(&token, CHANGE, change("not my password", "brand new password")).await;
    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    for (new, why) in [("short", "too short"), (PW, "same as the current one")] {
        let reply = app.authed(&token, CHANGE, change(PW, new)).await;
        assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{why}");
        assert_eq!(reply.field(), Some("newPassword"), "{why}");
    }
    assert!(app.me(&other).await.body["data"]["me"].is_object(), "failures revoke nothing");
    assert_eq!(app.gql(CHANGE, change(PW, "brand new password")).await.code(), Some("UNAUTHENTICATED"));
    app.clock.advance(chrono::Duration::minutes(1));

    assert_eq!(
        app.authed(&token, CHANGE, change(PW, "brand new password")).await.body["data"]["changePassword"],
        true
    );
    assert_eq!(app.me(&other).await.code(), Some("UNAUTHENTICATED"), "other sessions revoked");
    assert!(app.me(&token).await.body["data"]["me"].is_object(), "the current one stays");
    let account = entity::accounts::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(account.updated_at, app.clock_now(), "the password's row says when it changed");
    assert_eq!(app.login("change@example.com", PW).await.code(), Some("INVALID_CREDENTIALS"));
    let again = login_as(&app, "change@example.com", "brand new password", "again").await;

    let keep_others = json!({ "input": { "currentPassword": "brand new password", "newPassword": "third password", "revokeOtherSessions": false } });
    assert_eq!(app.authed(&token, CHANGE, keep_others).await.body["data"]["changePassword"], true);
    assert!(app.me(&again).await.body["data"]["me"].is_object(), "kept when asked");
}

async fn update_profile_edits_only_given_fields(app: TestApp) {
    let (token, _) = app.register("profile@example.com", PW).await;
    app.clock.advance(Duration::seconds(5));
    let set = app
        .authed(
            &token,
            UPDATE,
            json!({ "input": { "name": " Ada Lovelace ", "image": "https://cdn.example.com/ada.png" } }),
        )
        .await;
    let user = &set.body["data"]["updateProfile"];
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["image"], "https://cdn.example.com/ada.png");
    let stamp = chrono::DateTime::parse_from_rfc3339(&str_of(&user["updatedAt"])).unwrap();
    assert_eq!(stamp.timestamp_millis(), app.clock_now().timestamp_millis(), "updatedAt moved");

    let cleared = app.authed(&token, UPDATE, json!({ "input": { "image": null } })).await;
    assert_eq!(cleared.body["data"]["updateProfile"]["name"], "Ada Lovelace", "omitted: kept");
    assert_eq!(cleared.body["data"]["updateProfile"]["image"], serde_json::Value::Null, "null: cleared");

    let bad = [
        (json!({ "image": "javascript:alert(1)" }), "image"),
        (json!({ "image": format!("https://example.com/{}", "a".repeat(2048)) }), "image"),
        (json!({ "image": "ftp://example.com/a.png" }), "image"),
        (json!({ "name": "n".repeat(101), "image": "https://ok.example.com/a.png" }), "name"),
    ];
    for (input, field) in bad {
        let reply = app.authed(&token, UPDATE, json!({ "input": input })).await;
        assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{input}");
        assert_eq!(reply.field(), Some(field), "{input}");
    }
    let row = users::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(
        (row.name.as_deref(), row.image),
        (Some("Ada Lovelace"), None),
        "failed updates changed nothing"
    );
    assert_eq!(app.gql(UPDATE, json!({ "input": { "name": "x" } })).await.code(), Some("UNAUTHENTICATED"));
    // The limits themselves are allowed: 100 characters of name, a URL of 2048.
    let longest = format!("https://example.com/{}", "a".repeat(2048 - "https://example.com/".len()));
    let name = "n".repeat(100);
    let at_limits = app.authed(&token, UPDATE, json!({ "input": { "name": name, "image": longest } })).await;
    let user = &at_limits.body["data"]["updateProfile"];
    assert_eq!(
        (user["name"].as_str().map(str::len), user["image"].as_str().map(str::len)),
        (Some(100), Some(2048)),
        "{}",
        at_limits.body
    );
}

async fn delete_account_removes_everything(app: TestApp) {
    let (token, user_id) = app.register("leaving@example.com", PW).await;
    let other = login_as(&app, "leaving@example.com", PW, "other").await;
    let (stays, _) = app.register("stays@example.com", PW).await;
    app.wait_for_mails("leaving@example.com", "Confirm your email address", 1).await;
    let user_id = Uuid::parse_str(&user_id).unwrap();
    let now = app.clock_now();
    verification_tokens::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        purpose: Set("email_verification".into()),
        token_hash: Set(vec![7; 32]),
        expires_at: Set(now + Duration::days(1)),
        consumed_at: Set(None),
        created_at: Set(now),
    }
    .insert(app.db())
    .await
    .unwrap();

    let wrong = app.authed(&token, DELETE, json!({ "password": "wrong password" })).await;
    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(app.count(users::Entity).await, 2, "nothing deleted");

    let reply = app.authed(&token, DELETE, json!({ "password": PW })).await;
    assert_eq!(reply.body["data"]["deleteAccount"], true);
    assert!(reply.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.me(&other).await.code(), Some("UNAUTHENTICATED"));
    for count in [
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .all(app.db())
            .await
            .unwrap()
            .len(),
        accounts::Entity::find()
            .filter(accounts::Column::UserId.eq(user_id))
            .all(app.db())
            .await
            .unwrap()
            .len(),
        verification_tokens::Entity::find()
            .filter(verification_tokens::Column::UserId.eq(user_id))
            .all(app.db())
            .await
            .unwrap()
            .len(),
    ] {
        assert_eq!(count, 0);
    }
    assert!(users::Entity::find_by_id(user_id).one(app.db()).await.unwrap().is_none());
    assert_eq!(app.login("leaving@example.com", PW).await.code(), Some("INVALID_CREDENTIALS"));
    assert!(app.me(&stays).await.body["data"]["me"].is_object(), "other users untouched");
    app.register("leaving@example.com", "a new beginning").await;
}

/// `user::USER_TABLES` is what deletion and claims remove: every foreign
/// key to `users` in the real schema must be in it.
async fn every_table_naming_a_user_is_in_the_one_list(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = if app.is_postgres() {
        "SELECT kcu.table_name AS t, kcu.column_name AS c \
         FROM information_schema.referential_constraints rc \
         JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = rc.constraint_name \
          AND kcu.constraint_schema = rc.constraint_schema \
         JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.unique_constraint_name \
          AND ccu.constraint_schema = rc.unique_constraint_schema \
         WHERE ccu.table_name = 'users' AND kcu.table_schema = current_schema()"
    } else {
        "SELECT m.name AS t, p.\"from\" AS c FROM sqlite_master m \
         JOIN pragma_foreign_key_list(m.name) p WHERE m.type = 'table' AND p.\"table\" = 'users'"
    };
    let backend = app.db().get_database_backend();
    let rows = app.db().query_all(Statement::from_string(backend, sql)).await.unwrap();
    let found: Vec<(String, String)> =
        rows.iter().map(|r| (r.try_get("", "t").unwrap(), r.try_get("", "c").unwrap())).collect();
    assert!(found.len() >= 4, "the schema was read: {found:?}");
    for (table, column) in &found {
        assert!(
            domain::user::USER_TABLES.contains(&(table.as_str(), column.as_str())),
            "{table}.{column} names a user but deletion would leave it"
        );
    }
}

async fn cleanup_deletes_expired_rows_in_batches(app: TestApp) {
    let (session, user_id) = app.register("clean@example.com", PW).await;
    // Registration mailed a (live) verification token; let it land first.
    app.wait_for_mails("clean@example.com", "Confirm your email address", 1).await;
    let user_id = Uuid::parse_str(&user_id).unwrap();
    let now = app.clock_now();
    let expired = (0..1_100).map(|i| sessions::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        token_hash: Set(Uuid::new_v4().as_bytes().repeat(2)),
        // From exactly now (expired: a session lives while `expires_at > now`) back.
        expires_at: Set(now - Duration::seconds(i)),
        created_at: Set(now - Duration::days(8)),
        updated_at: Set(now - Duration::days(8)),
        ip_address: Set(None),
        user_agent: Set(None),
        authenticated_at: Set(now - Duration::days(8)),
        assurance_level: Set(1),
        method: Set(None),
        impersonator_id: Set(None),
        impersonator_session_id: Set(None),
    });
    for chunk in expired.collect::<Vec<_>>().chunks(200) {
        sessions::Entity::insert_many(chunk.to_vec()).exec(app.db()).await.unwrap();
    }
    // The registration's own session, one second from its end: kept.
    sessions::Entity::update_many()
        .col_expr(sessions::Column::ExpiresAt, sea_orm::sea_query::Expr::value(now + Duration::seconds(1)))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .exec(app.db())
        .await
        .unwrap();
    let flow = |id: u128, expires_in: Duration| oauth_flows::ActiveModel {
        id: Set(Uuid::from_u128(id)),
        state_hash: Set(id.to_be_bytes().to_vec()),
        provider: Set("github".into()),
        pkce_verifier: Set("verifier".into()),
        nonce: Set("nonce".into()),
        redirect_to: Set("http://localhost:3000/".into()),
        link_user_id: Set(None),
        link_session_id: Set(None),
        expires_at: Set(now + expires_in),
        created_at: Set(now - Duration::minutes(10)),
    };
    flow(1, Duration::seconds(-1)).insert(app.db()).await.unwrap();
    flow(2, Duration::minutes(5)).insert(app.db()).await.unwrap();
    let token = |purpose: &str, expires_in: Duration, consumed: bool| verification_tokens::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        purpose: Set(purpose.into()),
        token_hash: Set(Uuid::new_v4().as_bytes().to_vec()),
        expires_at: Set(now + expires_in),
        consumed_at: Set(consumed.then_some(now)),
        created_at: Set(now),
    };
    for row in [
        token("password_reset", Duration::hours(-1), false),
        token("email_verification", Duration::hours(1), true),
        token("email_verification", Duration::hours(1), false),
    ] {
        row.insert(app.db()).await.unwrap();
    }

    app.take_statements();
    let removed = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!((removed.sessions, removed.tokens, removed.oauth_flows), (1_100, 2, 1));
    assert_eq!(removed.counters, 0, "the registration's rate-limit window is still open");
    // Bounded statements: 1 100 sessions go in three DELETEs of at most 500 ids.
    let deletes: Vec<usize> = app
        .take_statements()
        .iter()
        .filter(|sql| sql.starts_with(r#"DELETE FROM "sessions""#))
        .map(|sql| sql.matches(['?', '$']).count())
        .collect();
    assert_eq!(deletes, [500, 500, 100], "ids per DELETE");
    assert_eq!(app.count(sessions::Entity).await, 1, "the session a second from its end stays");
    assert_eq!(app.me(&session).await.body["data"]["me"]["email"], "clean@example.com");
    assert_eq!(app.count(oauth_flows::Entity).await, 1, "the flow still under way stays");
    assert_eq!(app.count(verification_tokens::Entity).await, 2, "the live tokens stay");
    let again = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!((again.sessions, again.tokens), (0, 0));
    app.clock.advance(Duration::hours(2));
    let later = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(
        (later.sessions, later.tokens, later.counters, later.oauth_flows),
        (1, 1, 3, 1),
        "the session, the 1 h token, the register windows (per address, per target address, server-wide), the flow"
    );
}

async fn revocation_is_seen_by_every_instance(app: TestApp) {
    let app = app.shareable().await;
    let other_state = app.second_state(|_| {}).await;
    let other = authgate::app(other_state.clone());
    let (token, _) = app.register("everywhere@example.com", PW).await;
    let me = app.post_to(&other).graphql(ME, json!({})).bearer(&token).send().await;
    assert_eq!(me.body["data"]["me"]["email"], "everywhere@example.com");
    assert_eq!(
        other_state.auth.sessions().len(),
        u64::from(other_state.auth.sessions().is_on()),
        "held in memory"
    );
    app.authed(&token, LOGOUT, json!({})).await;
    // Pushed to the other instance's cache (PostgreSQL): within a bound, not at once.
    let mut code = None;
    for _ in 0..100 {
        let after = app.post_to(&other).graphql(ME, json!({})).bearer(&token).send().await;
        code = after.code().map(str::to_owned);
        if code.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        code.as_deref(),
        Some("UNAUTHENTICATED"),
        "revoked on one instance, refused on the other within 1 s"
    );
}

async fn forwarded_for_only_from_trusted_proxies(app: TestApp) {
    let register = |email: &str| json!({ "query": crate::common::REGISTER, "variables": { "input": { "email": email, "password": PW } } });
    app.post().json(&register("direct@example.com")).forwarded_for("6.6.6.6").send().await;
    let row = sessions::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(row.ip_address.as_deref(), Some("127.0.0.1"), "header ignored by default");

    let proxied = TestApp::sqlite_with(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    proxied.post().json(&register("proxied@example.com")).forwarded_for("6.6.6.6, 203.0.113.5").send().await;
    let row = sessions::Entity::find().one(proxied.db()).await.unwrap().unwrap();
    assert_eq!(row.ip_address.as_deref(), Some("203.0.113.5"), "first untrusted hop from the right");
}

/// Past `AUTHGATE_MAX_SESSIONS_PER_USER`, a sign-in ends the user's oldest
/// session, and the cache hears of it (the ended one was warm).
async fn a_user_holds_at_most_the_cap_of_sessions(app: TestApp) {
    let app = app.sibling(|c| c.max_sessions_per_user = 3).await;
    let email = "many-devices@example.com";
    let (oldest, _) = app.register(email, PW).await;
    assert_eq!(app.me(&oldest).await.body["data"]["me"]["email"], email, "warm");
    let mut newer = Vec::new();
    for i in 0..2 {
        app.clock.advance(chrono::Duration::seconds(1));
        newer.push(login_as(&app, email, PW, &format!("device {i}")).await);
    }
    assert_eq!(app.me(&oldest).await.body["data"]["me"]["email"], email, "three: all live");
    app.clock.advance(chrono::Duration::seconds(1));
    newer.push(login_as(&app, email, PW, "device 2").await);
    assert_eq!(app.me(&oldest).await.code(), Some("UNAUTHENTICATED"), "the oldest ended");
    assert_eq!(app.count(entity::sessions::Entity).await, 3);
    for token in &newer {
        assert_eq!(app.me(token).await.body["data"]["me"]["email"], email);
    }
    let other = app.register("someone-else@example.com", PW).await.0;
    assert_eq!(
        app.me(&newer[0]).await.body["data"]["me"]["email"],
        email,
        "another user's sign-in ends none"
    );
    assert_eq!(app.me(&other).await.body["data"]["me"]["email"], "someone-else@example.com");
}

/// Every table of the schema is named in docs/deployment.md's list of
/// tables (what an operator backing up or inspecting the database reads).
async fn every_table_is_in_the_docs(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = if app.is_postgres() {
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema()"
    } else {
        "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let backend = app.db().get_database_backend();
    let rows = app.db().query_all(Statement::from_string(backend, sql)).await.unwrap();
    let tables: Vec<String> = rows.iter().map(|r| r.try_get("", "t").unwrap()).collect();
    let docs =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deployment.md"))
            .unwrap();
    let missing: Vec<_> =
        tables.iter().filter(|t| *t != "seaql_migrations" && !docs.contains(&format!("`{t}`"))).collect();
    assert!(tables.len() >= 11, "the schema was read: {tables:?}");
    assert!(missing.is_empty(), "tables missing from docs/deployment.md: {missing:?}");
}

/// Sign-ins stopped at the second step and passkey ceremonies nobody
/// finished are removed once expired, with their count; ones still under
/// way stay, and still work.
async fn cleanup_removes_abandoned_ceremonies_and_only_those(app: TestApp) {
    use entity::{passkey_challenges, sign_in_challenges};
    let email = "ceremonies@example.com";
    let (token, _) = app.register_verified(email, crate::two_factor::PW).await;
    let (secret, _) = crate::two_factor::enable(&app, &token).await;
    let start_passkey = "mutation { startPasskeySignIn { challenge } }";
    // Abandoned: a second step and a passkey sign-in, left for 5 minutes.
    let _ = crate::two_factor::challenge(&app, email).await;
    assert!(app.gql(start_passkey, json!({})).await.body["data"]["startPasskeySignIn"].is_object());
    app.clock.advance(Duration::minutes(5));
    // Under way: the same, begun now.
    let live = crate::two_factor::challenge(&app, email).await;
    assert!(app.gql(start_passkey, json!({})).await.body["data"]["startPasskeySignIn"].is_object());
    assert_eq!(
        (app.count(sign_in_challenges::Entity).await, app.count(passkey_challenges::Entity).await),
        (2, 2)
    );

    let removed = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(removed.challenges, 2, "one abandoned sign-in and one abandoned ceremony");
    assert_eq!(
        (app.count(sign_in_challenges::Entity).await, app.count(passkey_challenges::Entity).await),
        (1, 1)
    );
    let code = crate::two_factor::code_at(&secret, app.clock_now());
    let done = crate::two_factor::complete(&app, &live, &code).await;
    assert!(
        done.body["data"]["completeSignIn"]["token"].is_string(),
        "the live one still works: {}",
        done.body
    );
    assert_eq!(domain::cleanup::run_once(&app.state.auth).await.unwrap().challenges, 0, "nothing twice");
}

/// A serving process removes expired rows by itself, every
/// `AUTHGATE_CLEANUP_INTERVAL` (what `authgate serve` spawns), and goes on
/// after each round.
#[tokio::test]
async fn cleanup_runs_by_itself_at_its_interval() {
    let app = TestApp::sqlite().await;
    app.register("periodic@example.com", PW).await;
    let every = std::time::Duration::from_millis(20);
    let task = tokio::spawn(domain::cleanup::run_periodically(app.state.auth.clone(), every));
    let live = || async { app.count(sessions::Entity).await };
    // Two rounds apart: the session expires only after the first has run.
    tokio::time::sleep(every * 3).await;
    assert_eq!(live().await, 1, "a live session is kept");
    app.clock.advance(Duration::days(40));
    let removed =
        crate::common::eventually(std::time::Duration::from_secs(5), every, || async { live().await == 0 })
            .await;
    task.abort();
    assert!(removed, "the expired session was not removed within 5 s");
}
