//! The event record: every change records its event in its own
//! transaction (a mutation-by-mutation enumeration read from the schema),
//! refused sign-ins are counted per account and window, a rolled-back
//! change records nothing, the user's activity and the audit log page with
//! stable cursors, retention and the export.

use entity::events;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use std::time::Duration;

use crate::{
    both_backends,
    common::{
        Backend, TestApp, eventually,
        oidc::{MockProvider, Person, Tamper},
        str_of,
    },
    each_backend,
};

const PW: &str = "correct horse battery";
const APP: &str = "http://localhost:3000";

/// What each mutation records when it succeeds: the event types (in the
/// order written), or why it records none. Each with events is driven in
/// `every_change_records_its_event` (its name is the step's label there).
/// A new mutation fails `every_mutation_is_classified_for_the_record`
/// until it is put here.
const MUTATIONS: [(&str, Result<&[&str], &str>); 37] = [
    ("register", Ok(&["user.created", "session.created"])),
    ("login", Ok(&["session.created"])),
    ("logout", Ok(&["session.revoked"])),
    ("revokeSession", Ok(&["session.revoked"])),
    ("revokeOtherSessions", Ok(&["session.revoked", "session.revoked"])),
    ("changePassword", Ok(&["session.revoked", "user.password_changed"])),
    ("updateProfile", Ok(&["user.updated"])),
    ("deleteAccount", Ok(&["session.revoked", "user.deleted"])),
    ("requestEmailVerification", Err("mails a link; nothing about the account changes until it is followed")),
    ("verifyEmail", Ok(&["user.email_verified"])),
    ("requestPasswordReset", Err("mails a link; nothing changes until it is followed")),
    ("resetPassword", Ok(&["session.revoked", "user.password_reset"])),
    (
        "startOAuth",
        Err(
            "stores a flow; the provider's callback records what it does (user.created, oauth.linked, session.created: driven below)",
        ),
    ),
    ("linkOAuth", Err("stores a flow; the callback records oauth.linked (driven below)")),
    ("unlinkAccount", Ok(&["oauth.unlinked"])),
    ("setPassword", Ok(&["user.password_changed"])),
    ("startTotpSetup", Err("a pending secret; two-factor is off until confirmTotpSetup")),
    ("confirmTotpSetup", Ok(&["two_factor.enabled"])),
    ("disableTwoFactor", Ok(&["two_factor.disabled"])),
    ("regenerateRecoveryCodes", Ok(&["recovery_codes.regenerated"])),
    ("completeSignIn", Ok(&["session.created"])),
    ("reauthenticate", Ok(&["session.reauthenticated"])),
    ("startPasskeyRegistration", Err("a ceremony row only")),
    ("finishPasskeyRegistration", Ok(&["passkey.added"])),
    ("startPasskeySignIn", Err("a ceremony row only")),
    ("finishPasskeySignIn", Ok(&["session.created"])),
    ("removePasskey", Ok(&["passkey.removed"])),
    ("accessToken", Err("a signature: nothing is written")),
    ("createWebhookEndpoint", Ok(&["webhook.endpoint_created"])),
    ("setUserRoles", Ok(&["user.roles_changed"])),
    ("impersonateUser", Ok(&["session.created", "impersonation.started"])),
    ("revokeUserSessions", Ok(&["session.revoked", "session.revoked"])),
    ("resetUserTwoFactor", Ok(&["session.revoked", "two_factor.disabled"])),
    ("banUser", Ok(&["session.revoked", "user.banned"])),
    ("unbanUser", Ok(&["user.unbanned"])),
    ("sendUserPasswordReset", Ok(&["user.reset_link_sent"])),
    ("deleteUser", Ok(&["session.revoked", "user.deleted"])),
];

#[test]
fn every_mutation_is_classified_for_the_record() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut listed: Vec<String> = MUTATIONS.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(crate::common::mutations_in_schema(), listed, "every mutation, classified once");
    let source = std::fs::read_to_string(root.join("tests/api/events.rs")).unwrap();
    let driven = source.split(concat!("\nasync fn every_change_records_its_event", "(")).nth(1).unwrap();
    let driven = driven.split("\n}\n").next().unwrap();
    for (name, _) in MUTATIONS.iter().filter(|(_, recorded)| recorded.is_ok()) {
        assert!(driven.contains(&format!("\"{name}\"")), "{name} records events but is not driven");
    }
}

/// The event types recorded since `last` (moved past them), oldest first.
async fn recorded(app: &TestApp, last: &mut i64) -> Vec<String> {
    let rows = events::Entity::find()
        .filter(events::Column::Id.gt(*last))
        .order_by_asc(events::Column::Id)
        .all(app.db())
        .await
        .unwrap();
    if let Some(row) = rows.last() {
        *last = row.id;
    }
    rows.into_iter().map(|row| row.kind).collect()
}

/// Asserts that the step `name` recorded what `MUTATIONS` says.
async fn step(app: &TestApp, last: &mut i64, name: &str) {
    let expected = MUTATIONS.iter().find(|(n, _)| *n == name).unwrap().1.unwrap();
    let mut got = recorded(app, last).await;
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{name}");
}

fn ok(reply: &crate::common::Reply, field: &str) -> Value {
    let value = reply.body["data"][field].clone();
    assert!(!value.is_null(), "{field}: {}", reply.body);
    value
}

async fn every_change_records_its_event(backend: Backend) {
    let mock = MockProvider::start().await;
    let providers = vec![mock.oidc_config("mock")];
    let Some(app) = TestApp::on_with(backend, |c| {
        c.oauth = providers;
        c.oauth_redirect_origins = vec![APP.into()];
        c.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let mut last = 0;
    let email = "record@example.com";
    let (token, user_id) = app.register(email, PW).await;
    step(&app, &mut last, "register").await;
    let second = str_of(&ok(&app.login(email, PW).await, "login")["token"]);
    step(&app, &mut last, "login").await;
    ok(&app.authed(&second, "mutation { logout }", json!({})).await, "logout");
    step(&app, &mut last, "logout").await;

    let third = str_of(&app.login(email, PW).await.body["data"]["login"]["token"]);
    recorded(&app, &mut last).await;
    let sessions = app.authed(&third, "{ me { sessions { id current } } }", json!({})).await;
    let other = sessions.body["data"]["me"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .clone();
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    assert_eq!(ok(&app.authed(&third, revoke, json!({ "id": other })).await, "revokeSession"), true);
    step(&app, &mut last, "revokeSession").await;

    let (a, b) = (app.login(email, PW).await, app.login(email, PW).await);
    assert!(a.body["errors"].is_null() && b.body["errors"].is_null());
    recorded(&app, &mut last).await;
    assert_eq!(
        ok(&app.authed(&third, "mutation { revokeOtherSessions }", json!({})).await, "revokeOtherSessions"),
        2
    );
    step(&app, &mut last, "revokeOtherSessions").await;

    let profile = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { name } }";
    ok(&app.authed(&third, profile, json!({ "i": { "name": "Rec" } })).await, "updateProfile");
    step(&app, &mut last, "updateProfile").await;

    let ask = app.authed(&third, "mutation { requestEmailVerification }", json!({})).await;
    ok(&ask, "requestEmailVerification");
    let link = app.mailed_token(email, "Confirm your email address", 2).await;
    let verify = "mutation V($t: String!) { verifyEmail(token: $t) { emailVerified } }";
    ok(&app.gql(verify, json!({ "t": link })).await, "verifyEmail");
    step(&app, &mut last, "verifyEmail").await;

    // Two-factor: on, a step-up, new codes, a sign-in's second step, off.
    let (secret, _) = crate::two_factor::enable(&app, &third).await;
    step(&app, &mut last, "confirmTotpSetup").await;
    let code = crate::two_factor::code_at(&secret, app.clock_now());
    let reauth = json!({ "input": { "password": PW, "code": code } });
    ok(&app.authed(&third, crate::two_factor::REAUTH, reauth).await, "reauthenticate");
    step(&app, &mut last, "reauthenticate").await;
    ok(
        &app.authed(&third, "mutation { regenerateRecoveryCodes }", json!({})).await,
        "regenerateRecoveryCodes",
    );
    step(&app, &mut last, "regenerateRecoveryCodes").await;
    let challenge = crate::two_factor::challenge(&app, email).await;
    app.clock.advance(chrono::Duration::seconds(30));
    let code = crate::two_factor::code_at(&secret, app.clock_now());
    ok(&crate::two_factor::complete(&app, &challenge, &code).await, "completeSignIn");
    step(&app, &mut last, "completeSignIn").await;
    ok(&app.authed(&third, "mutation { disableTwoFactor }", json!({})).await, "disableTwoFactor");
    step(&app, &mut last, "disableTwoFactor").await;

    // Passkeys: added, signed in with, removed.
    let (mut authenticator, passkey) = crate::passkeys::add_passkey(&app, &third, "Laptop").await;
    step(&app, &mut last, "finishPasskeyRegistration").await;
    let signed = crate::passkeys::sign_in(&app, &mut authenticator).await;
    ok(&signed, "finishPasskeySignIn");
    step(&app, &mut last, "finishPasskeySignIn").await;
    let remove = "mutation($id: ID!) { removePasskey(id: $id) }";
    assert_eq!(ok(&app.authed(&third, remove, json!({ "id": passkey["id"] })).await, "removePasskey"), true);
    step(&app, &mut last, "removePasskey").await;

    // A provider: linked (by its callback), unlinked.
    mock.next(Person::verified("sub-record", email), Tamper::None);
    let linked = crate::oauth::link(&app, &third, "mock").await;
    assert_eq!(linked.status, 303, "{}", linked.text);
    assert_eq!(recorded(&app, &mut last).await, ["oauth.linked"], "the link's callback");
    let accounts = app.authed(&third, "{ me { accounts { id providerId } } }", json!({})).await;
    let link_id = accounts.body["data"]["me"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["providerId"] == "mock")
        .unwrap()["id"]
        .clone();
    let unlink = "mutation($id: ID!) { unlinkAccount(id: $id) }";
    assert_eq!(ok(&app.authed(&third, unlink, json!({ "id": link_id })).await, "unlinkAccount"), true);
    step(&app, &mut last, "unlinkAccount").await;

    // One other session, then the password changed (ending it).
    app.authed(&third, "mutation { revokeOtherSessions }", json!({})).await;
    app.login(email, PW).await;
    recorded(&app, &mut last).await;
    let change = "mutation C($input: ChangePasswordInput!) { changePassword(input: $input) }";
    let vars = json!({ "input": { "currentPassword": PW, "newPassword": "a new horse battery" } });
    ok(&app.authed(&third, change, vars).await, "changePassword");
    step(&app, &mut last, "changePassword").await;

    // The reset ends every session (the one left: `third`).
    app.reset_password_by_mail(email, PW).await;
    step(&app, &mut last, "resetPassword").await;
    assert_eq!(app.me(&third).await.code(), Some("UNAUTHENTICATED"));

    // A provider's sign-up, a password for it, the account deleted.
    mock.next(Person::verified("sub-new", "newcomer@example.com"), Tamper::None);
    let back = crate::oauth::sign_in(&app, "mock").await;
    let newcomer = crate::oauth::session_token(&back).expect("signed in through the provider");
    let mut kinds = recorded(&app, &mut last).await;
    kinds.sort();
    assert_eq!(kinds, ["oauth.linked", "session.created", "user.created"], "the provider's sign-up");
    let set = "mutation S($p: String!) { setPassword(newPassword: $p) }";
    ok(&app.authed(&newcomer, set, json!({ "p": "quiet harbor lantern 42" })).await, "setPassword");
    step(&app, &mut last, "setPassword").await;
    let delete = "mutation D($p: String!) { deleteAccount(password: $p) }";
    ok(&app.authed(&newcomer, delete, json!({ "p": "quiet harbor lantern 42" })).await, "deleteAccount");
    step(&app, &mut last, "deleteAccount").await;

    // An admin's actions, each recorded with the admin as actor.
    let (admin, admin_id) = crate::admin::make_admin(&app, "recorder@example.com", "admin").await;
    let (target, target_id) = app.register_verified("subject@example.com", PW).await;
    recorded(&app, &mut last).await;
    let hook = "mutation H($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret } }";
    let hook = app.authed(&admin, hook, json!({ "i": { "url": "http://127.0.0.1:9/hook" } })).await;
    ok(&hook, "createWebhookEndpoint");
    step(&app, &mut last, "createWebhookEndpoint").await;
    let roles = "mutation R($u: ID!) { setUserRoles(userId: $u, roles: [\"auditor\"]) { id } }";
    ok(&app.authed(&admin, roles, json!({ "u": target_id })).await, "setUserRoles");
    step(&app, &mut last, "setUserRoles").await;
    let roles = "mutation R($u: ID!) { setUserRoles(userId: $u, roles: []) { id } }";
    ok(&app.authed(&admin, roles, json!({ "u": target_id })).await, "setUserRoles");
    recorded(&app, &mut last).await;
    let acting =
        "mutation I($u: ID!) { impersonateUser(input: { userId: $u, reason: \"record\" }) { token } }";
    ok(&app.authed(&admin, acting, json!({ "u": target_id })).await, "impersonateUser");
    step(&app, &mut last, "impersonateUser").await;
    let revoke = "mutation R($u: ID!) { revokeUserSessions(userId: $u) }";
    assert_eq!(ok(&app.authed(&admin, revoke, json!({ "u": target_id })).await, "revokeUserSessions"), 2);
    step(&app, &mut last, "revokeUserSessions").await;
    let again = str_of(&ok(&app.login("subject@example.com", PW).await, "login")["token"]);
    crate::two_factor::enable(&app, &again).await;
    recorded(&app, &mut last).await;
    let reset = "mutation R($u: ID!) { resetUserTwoFactor(userId: $u) }";
    assert_eq!(ok(&app.authed(&admin, reset, json!({ "u": target_id })).await, "resetUserTwoFactor"), true);
    step(&app, &mut last, "resetUserTwoFactor").await;
    app.login("subject@example.com", PW).await;
    recorded(&app, &mut last).await;
    let ban = "mutation B($u: ID!) { banUser(input: { userId: $u, reason: \"record\" }) { id } }";
    ok(&app.authed(&admin, ban, json!({ "u": target_id })).await, "banUser");
    step(&app, &mut last, "banUser").await;
    let unban = "mutation U($u: ID!) { unbanUser(userId: $u) { id } }";
    ok(&app.authed(&admin, unban, json!({ "u": target_id })).await, "unbanUser");
    step(&app, &mut last, "unbanUser").await;
    let send = "mutation S($u: ID!) { sendUserPasswordReset(userId: $u) }";
    ok(&app.authed(&admin, send, json!({ "u": target_id })).await, "sendUserPasswordReset");
    step(&app, &mut last, "sendUserPasswordReset").await;
    let (_, gone_id) = app.register_verified("gone@example.com", PW).await;
    recorded(&app, &mut last).await;
    let delete = "mutation D($u: ID!) { deleteUser(userId: $u) }";
    ok(&app.authed(&admin, delete, json!({ "u": gone_id })).await, "deleteUser");
    step(&app, &mut last, "deleteUser").await;
    let theirs = events::Entity::find()
        .filter(events::Column::SubjectUserId.eq(uuid::Uuid::parse_str(&target_id).unwrap()))
        .filter(events::Column::Kind.is_in([
            "user.banned",
            "user.unbanned",
            "user.roles_changed",
            "impersonation.started",
        ]))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(theirs.len(), 5, "{theirs:?}");
    assert!(theirs.iter().all(|e| e.actor_id.map(|a| a.to_string()) == Some(admin_id.clone())), "{theirs:?}");
    let _ = target;

    // Every event carries where it came from and who it is about.
    let mine = events::Entity::find()
        .filter(events::Column::SubjectUserId.eq(uuid::Uuid::parse_str(&user_id).unwrap()))
        .all(app.db())
        .await
        .unwrap();
    assert!(mine.len() > 20, "{}", mine.len());
    assert!(mine.iter().all(|e| e.ip_address.is_some() && e.request_id.is_some()), "{mine:?}");
    assert!(
        mine.iter().all(|e| !e.data.contains("horse") && !e.data.contains("lantern")),
        "no password in the record"
    );
    let _ = token;
}

each_backend!(every_change_records_its_event);

both_backends!(
    refused_sign_ins_are_counted_per_account_and_window,
    a_change_rolled_back_records_nothing,
    activity_pages_newest_first_with_stable_cursors,
    the_activity_is_the_users_own_and_the_audit_log_needs_a_permission,
    aged_events_are_removed_by_the_cleanup,
    a_session_ended_by_the_limit_is_the_servers_doing,
    the_export_reads_every_event_since_a_time_page_by_page,
);

const ACTIVITY: &str = "query A($first: Int, $after: String) { me { activity(first: $first, after: $after) { edges { cursor node { id type occurredAt count ipAddress userAgent actorId subjectUserId sessionId details } } pageInfo { hasNextPage endCursor } } } }";

async fn activity(app: &TestApp, token: &str, first: i64, after: Option<&str>) -> (Vec<Value>, Value) {
    let reply = app.authed(token, ACTIVITY, json!({ "first": first, "after": after })).await;
    let connection = &reply.body["data"]["me"]["activity"];
    assert!(connection.is_object(), "{}", reply.body);
    (connection["edges"].as_array().unwrap().clone(), connection["pageInfo"].clone())
}

/// A flood of wrong passwords costs one row per account and 15 minutes,
/// counted; an address with no account records nothing (no row to tell
/// an attacker anything, and nothing to fill the disk with).
async fn refused_sign_ins_are_counted_per_account_and_window(app: TestApp) {
    // The attempts themselves are not what is tested here.
    let app = app.sibling(|c| c.rates = domain::config::Rates::off()).await;
    let (token, _) = app.register("victim@example.com", PW).await;
    let before = app.count(events::Entity).await;
    for _ in 0..3 {
        assert_eq!(
            app.login("victim@example.com", "wrong horse battery").await.code(),
            Some("INVALID_CREDENTIALS")
        );
    }
    assert_eq!(
        app.login("nobody@example.com", "wrong horse battery").await.code(),
        Some("INVALID_CREDENTIALS")
    );
    // Recorded after the answer (the write must not make an existing
    // account's refusal slower than an unknown one's).
    let counted = || async {
        let (edges, _) = activity(&app, &token, 5, None).await;
        edges[0]["node"]["type"] == "login.failed" && edges[0]["node"]["count"] == 3
    };
    assert!(eventually(Duration::from_secs(5), Duration::from_millis(20), counted).await);
    assert_eq!(
        app.count(events::Entity).await,
        before + 1,
        "one row for the three, none for the unknown address"
    );
    // Two minutes on is the same 15-minute window (the clock starts 7 min 17 s past an hour).
    app.clock.advance(chrono::Duration::minutes(2));
    app.login("victim@example.com", "wrong horse battery").await;
    let same_row = || async {
        let (edges, _) = activity(&app, &token, 5, None).await;
        edges[0]["node"]["count"] == 4
    };
    assert!(eventually(Duration::from_secs(5), Duration::from_millis(20), same_row).await);
    let (edges, _) = activity(&app, &token, 5, None).await;
    let failed = &edges[0]["node"];
    assert_eq!(failed["actorId"], Value::Null, "whoever typed it is not the user");
    assert_eq!(failed["details"]["method"], "password");
    assert_eq!(
        failed["ipAddress"],
        Value::Null,
        "an unproved account may be a squatter's: the owner's address is not shown"
    );
    // Once the address is proved, the next window's row says where from.
    app.verify_address(&token).await;
    app.clock.advance(chrono::Duration::minutes(15));
    app.login("victim@example.com", "wrong horse battery").await;
    let fresh = || async {
        let (edges, _) = activity(&app, &token, 5, None).await;
        edges[0]["node"]["type"] == "login.failed" && edges[0]["node"]["count"] == 1
    };
    assert!(
        eventually(Duration::from_secs(5), Duration::from_millis(20), fresh).await,
        "a new window, a new row"
    );
    let (edges, _) = activity(&app, &token, 5, None).await;
    assert_eq!(edges[0]["node"]["ipAddress"], "127.0.0.1");
    // A row counts at most ten: the next one starts a new row (webhooks
    // and subscribers hear that the attack goes on).
    for _ in 0..10 {
        app.login("victim@example.com", "wrong horse battery").await;
    }
    let split = || async {
        let (edges, _) = activity(&app, &token, 5, None).await;
        edges[0]["node"]["count"] == 1 && edges[1]["node"]["count"] == 10
    };
    assert!(eventually(Duration::from_secs(5), Duration::from_millis(20), split).await);
}

/// Who ended a session: the user for their own ends; nobody (the server)
/// for the per-user limit.
async fn a_session_ended_by_the_limit_is_the_servers_doing(app: TestApp) {
    let app = app.sibling(|c| c.max_sessions_per_user = 1).await;
    let (token, user_id) = app.register("capped@example.com", PW).await;
    // Older by a second (the test clock stands still otherwise).
    app.clock.advance(chrono::Duration::seconds(1));
    let second = str_of(&app.login("capped@example.com", PW).await.body["data"]["login"]["token"]);
    let ended = || async { app.me(&token).await.code() == Some("UNAUTHENTICATED") };
    assert!(eventually(Duration::from_secs(5), Duration::from_millis(20), ended).await, "the oldest ended");
    let (edges, _) = activity(&app, &second, 5, None).await;
    let ended = edges.iter().map(|e| &e["node"]).find(|n| n["type"] == "session.revoked").expect("recorded");
    assert_eq!((ended["details"]["reason"].clone(), ended["actorId"].clone()), (json!("limit"), Value::Null));
    app.authed(&second, "mutation { logout }", json!({})).await;
    let row = events::Entity::find()
        .filter(events::Column::Kind.eq("session.revoked"))
        .order_by_desc(events::Column::Id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(row.data.contains("signed_out"), "{row:?}");
    assert_eq!(row.actor_id.map(|id| id.to_string()), Some(user_id), "the user signed out");
}

/// A change whose last write fails is rolled back with the events it had
/// already written: the account and its sessions are as they were, and
/// the record says nothing happened.
async fn a_change_rolled_back_records_nothing(app: TestApp) {
    let (token, user_id) = app.register("keep@example.com", PW).await;
    let other = app.login("keep@example.com", PW).await;
    assert!(other.body["errors"].is_null());
    let before = app.count(events::Entity).await;
    // The deletion writes `session.revoked` for both sessions, then
    // `user.deleted`: the database refuses the last one.
    let refuse = if app.is_postgres() {
        "CREATE FUNCTION refuse_deleted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.type = 'user.deleted' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_deleted BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_deleted();"
    } else {
        "CREATE TRIGGER refuse_deleted BEFORE INSERT ON events WHEN NEW.type = 'user.deleted' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
    };
    app.execute_sql(refuse).await;
    let delete = "mutation D($p: String!) { deleteAccount(password: $p) }";
    let reply = app.authed(&token, delete, json!({ "p": PW })).await;
    assert_eq!(reply.code(), Some("INTERNAL_SERVER_ERROR"), "{}", reply.body);
    assert_eq!(app.count(events::Entity).await, before, "no session.revoked left behind");
    assert_eq!(crate::common::str_of(&app.me(&token).await.body["data"]["me"]["id"]), user_id, "still here");
    assert_eq!(app.sessions(&token).await.len(), 2, "both sessions live");
}

/// Newest first, `first` at a time; a page's cursor keeps its place while
/// new events arrive, so paging on never repeats or skips one.
async fn activity_pages_newest_first_with_stable_cursors(app: TestApp) {
    let (token, user_id) = app.register("pages@example.com", PW).await;
    for _ in 0..4 {
        app.login("pages@example.com", PW).await;
    }
    // user.created, 5 × session.created: 6 events.
    let (first_page, info) = activity(&app, &token, 4, None).await;
    assert_eq!(first_page.len(), 4);
    assert_eq!(info["hasNextPage"], true);
    let ids: Vec<i64> = first_page.iter().map(|e| str_of(&e["node"]["id"]).parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(info["endCursor"], first_page[3]["cursor"]);
    // Two more sign-ins arrive between the pages.
    app.login("pages@example.com", PW).await;
    app.login("pages@example.com", PW).await;
    let cursor = str_of(&info["endCursor"]);
    let (second_page, info) = activity(&app, &token, 4, Some(&cursor)).await;
    let kinds: Vec<Value> = second_page.iter().map(|e| e["node"]["type"].clone()).collect();
    assert_eq!(kinds, [json!("session.created"), json!("user.created")], "the two oldest, nothing repeated");
    assert_eq!(info["hasNextPage"], false);
    let created = &second_page[1]["node"];
    assert_eq!(created["ipAddress"], "127.0.0.1");
    assert_eq!(
        (created["actorId"].as_str(), created["subjectUserId"].as_str()),
        (Some(&*user_id), Some(&*user_id))
    );
    // The newest page now starts with the two new sign-ins.
    let (newest, _) = activity(&app, &token, 2, None).await;
    assert!(newest.iter().all(|e| str_of(&e["node"]["id"]).parse::<i64>().unwrap() > ids[0]));
    // Where each came from: the client's user agent too.
    let login = "mutation L($i: LoginInput!) { login(input: $i) { token } }";
    let vars = json!({ "i": { "email": "pages@example.com", "password": PW } });
    app.post().graphql(login, vars).header("user-agent", "Pages/1.0 (test)").send().await;
    let (newest, _) = activity(&app, &token, 1, None).await;
    assert_eq!(newest[0]["node"]["userAgent"], "Pages/1.0 (test)");
    // A page that ends exactly at the oldest event has nothing after it.
    let uid = uuid::Uuid::parse_str(&user_id).unwrap();
    let all = events::Entity::find()
        .filter(events::Column::SubjectUserId.eq(uid))
        .all(app.db())
        .await
        .unwrap()
        .len();
    let (whole, info) = activity(&app, &token, all as i64, None).await;
    assert_eq!((whole.len(), info["hasNextPage"].clone()), (all, json!(false)));
    // Bad page arguments are typed errors.
    for (vars, field) in [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "first": 2, "after": "yesterday" }), "after"),
        (json!({ "first": 2, "after": "-4" }), "after"),
    ] {
        let reply = app.authed(&token, ACTIVITY, vars.clone()).await;
        assert_eq!(
            (reply.code(), reply.field()),
            (Some("BAD_USER_INPUT"), Some(field)),
            "{vars}: {}",
            reply.body
        );
    }
}

const AUDIT: &str = "query Q($filter: AuditEventFilter) { auditEvents(filter: $filter, first: 5) { edges { node { id type } } } }";

/// The activity is read through the user's own session only; the audit
/// log and webhook endpoints need a permission no account holds until
/// roles exist (the command line is the operator).
async fn the_activity_is_the_users_own_and_the_audit_log_needs_a_permission(app: TestApp) {
    let (token, _) = app.register("own@example.com", PW).await;
    let reply = app.gql(ACTIVITY, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
    let reply = app.gql(AUDIT, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
    let reply = app.authed(&token, AUDIT, json!({})).await;
    assert_eq!(reply.code(), Some("PERMISSION_DENIED"), "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["extensions"]["permission"], "audit:read");
    assert!(reply.body["data"].is_null(), "{}", reply.body);
    let create =
        "mutation C($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret } }";
    let reply = app.authed(&token, create, json!({ "i": { "url": "https://hooks.example.com/" } })).await;
    assert_eq!(reply.code(), Some("PERMISSION_DENIED"), "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["extensions"]["permission"], "webhook:manage");
    assert_eq!(app.count(entity::webhook_endpoints::Entity).await, 0);
    // An auditor reads everyone's events; still no webhooks.
    let (auditor, _) = crate::admin::make_admin(&app, "auditor@example.com", "auditor").await;
    let reply = app.authed(&auditor, AUDIT, json!({ "filter": { "type": "user.created" } })).await;
    let edges =
        reply.body["data"]["auditEvents"]["edges"].as_array().unwrap_or_else(|| panic!("{}", reply.body));
    assert_eq!(edges.len(), 2, "both sign-ups: {}", reply.body);
    let reply = app.authed(&auditor, create, json!({ "i": { "url": "https://hooks.example.com/" } })).await;
    assert_eq!(reply.body["errors"][0]["extensions"]["permission"], "webhook:manage");
}

/// `AUTHGATE_EVENT_RETENTION` (400 days by default): the cleanup deletes
/// what is older, and only that.
async fn aged_events_are_removed_by_the_cleanup(app: TestApp) {
    let (token, _) = app.register("aged@example.com", PW).await;
    let old = app.count(events::Entity).await;
    assert_eq!(old, 2);
    app.clock.advance(chrono::Duration::days(399));
    app.login("aged@example.com", PW).await;
    let removed = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(removed.events, 0, "399 days are within the retention");
    app.clock.advance(chrono::Duration::days(2));
    let removed = domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(removed.events, 2, "the registration's two events are 401 days old");
    assert_eq!(app.count(events::Entity).await, 1, "the sign-in of day 399 stays");
    let _ = token;
}

/// The export reads the record a page at a time, oldest first: every
/// event since the time once (a partial last page, an exact last page),
/// none from before it, and it stops when told to.
async fn the_export_reads_every_event_since_a_time_page_by_page(app: TestApp) {
    let auth = &app.state.auth;
    app.register("before@example.com", PW).await;
    app.clock.advance(chrono::Duration::minutes(5));
    let since = app.clock_now();
    for n in 0..3 {
        app.register(&format!("export{n}@example.com"), PW).await;
    }
    let expected: Vec<i64> = events::Entity::find()
        .filter(events::Column::OccurredAt.gte(since))
        .order_by_asc(events::Column::Id)
        .all(app.db())
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(expected.len(), 6, "two events per registration");
    for (page, sizes) in [(4, vec![4, 2]), (3, vec![3, 3]), (6, vec![6]), (100, vec![6])] {
        let mut pages = Vec::new();
        let total = domain::events::read::since(auth, since, page, |rows| {
            pages.push(rows.iter().map(|e| e.id).collect::<Vec<_>>());
            true
        })
        .await
        .unwrap();
        assert_eq!(total, 6, "page {page}");
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), sizes, "page {page}");
        assert_eq!(pages.concat(), expected, "page {page}: each once, oldest first");
    }
    let mut calls = 0;
    let total = domain::events::read::since(auth, since, 2, |_| {
        calls += 1;
        false
    })
    .await
    .unwrap();
    assert_eq!((total, calls), (2, 1), "stops when told");
}
