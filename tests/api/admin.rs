//! Admin: every admin field behind its permission (read from the schema),
//! bans on every way in and on cached sessions, help for the locked-out,
//! impersonation and its limits, the user list, and the command line's
//! grant reaching a running server on SQLite.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{
        Backend, Reply, TestApp,
        oidc::{MockProvider, Person, Tamper},
        str_of,
    },
    each_backend,
};

const PW: &str = "quiet lantern harbor 9";
/// The password `two_factor::challenge` signs in with.
const USER_PW: &str = crate::two_factor::PW;
const APP: &str = "http://localhost:3000";

/// An account holding `role`, granted as `authgate admin grant` does; its
/// session token (signed in just now: a recent sign-in) and id.
pub(crate) async fn make_admin(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let (token, id) = app.register_verified(email, PW).await;
    let granted = domain::admin::grant_from_command_line(&app.state.auth, email, role, true).await;
    assert!(granted.expect("granted"), "{email} holds {role}");
    (token, id)
}

fn permission_of(reply: &Reply) -> Option<&str> {
    reply.body["errors"][0]["extensions"]["permission"].as_str()
}

/// Every admin field, the permission it needs, the least built-in role
/// holding it, and a call of it (`$u`: a user id).
const ADMIN_FIELDS: [(&str, &str, &str, &str); 11] = [
    ("users", "user:list", "auditor", "query { users(first: 1) { totalCount } }"),
    ("auditEvents", "audit:read", "auditor", "query { auditEvents(first: 1) { edges { cursor } } }"),
    ("banUser", "user:ban", "admin", "mutation($u: ID!) { banUser(input: { userId: $u }) { id } }"),
    ("unbanUser", "user:ban", "admin", "mutation($u: ID!) { unbanUser(userId: $u) { id } }"),
    (
        "revokeUserSessions",
        "session:revoke",
        "support",
        "mutation($u: ID!) { revokeUserSessions(userId: $u) }",
    ),
    (
        "resetUserTwoFactor",
        "user:reset_two_factor",
        "support",
        "mutation($u: ID!) { resetUserTwoFactor(userId: $u) }",
    ),
    ("setUserRoles", "role:set", "admin", "mutation($u: ID!) { setUserRoles(userId: $u, roles: []) { id } }"),
    (
        "impersonateUser",
        "user:impersonate",
        "admin",
        "mutation($u: ID!) { impersonateUser(input: { userId: $u, reason: \"a check\" }) { token } }",
    ),
    (
        "createWebhookEndpoint",
        "webhook:manage",
        "admin",
        "mutation { createWebhookEndpoint(input: { url: \"https://127.0.0.1/x\" }) { secret } }",
    ),
    (
        "sendUserPasswordReset",
        "user:send_reset",
        "support",
        "mutation($u: ID!) { sendUserPasswordReset(userId: $u) }",
    ),
    // Last: it deletes the user the others act on.
    ("deleteUser", "user:delete", "admin", "mutation($u: ID!) { deleteUser(userId: $u) }"),
];

/// The root fields that act for the caller alone (or for nobody): a new
/// root field must be put here or in `ADMIN_FIELDS`.
const OWN_FIELDS: [&str; 31] = [
    "me",
    "providers",
    "register",
    "login",
    "logout",
    "revokeSession",
    "revokeOtherSessions",
    "changePassword",
    "updateProfile",
    "deleteAccount",
    "requestEmailVerification",
    "verifyEmail",
    "requestPasswordReset",
    "resetPassword",
    "startOAuth",
    "linkOAuth",
    "unlinkAccount",
    "setPassword",
    "startTotpSetup",
    "confirmTotpSetup",
    "disableTwoFactor",
    "regenerateRecoveryCodes",
    "completeSignIn",
    "reauthenticate",
    "startPasskeyRegistration",
    "finishPasskeyRegistration",
    "startPasskeySignIn",
    "finishPasskeySignIn",
    "removePasskey",
    "accessToken",
    "securityEvents",
];

/// Read from the schema: every root field is an admin field (in the table,
/// its description naming its permission) or the caller's own; and no
/// field outside the table says it needs a permission.
#[test]
fn every_root_field_is_classified_and_admin_fields_name_their_permission() {
    use apollo_compiler::Schema;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdl = std::fs::read_to_string(root.join("schema.graphql")).unwrap();
    let schema = Schema::parse_and_validate(sdl, "schema.graphql").expect("valid");
    let mut seen = std::collections::BTreeSet::new();
    for root_type in ["QueryRoot", "MutationRoot", "SubscriptionRoot"] {
        let apollo_compiler::schema::ExtendedType::Object(object) = &schema.types[root_type] else {
            panic!("{root_type}")
        };
        for (name, field) in &object.fields {
            let description = field.description.as_deref().unwrap_or_default();
            match ADMIN_FIELDS.iter().find(|(admin, ..)| *admin == name.as_str()) {
                Some((_, permission, ..)) => {
                    assert!(description.contains(&format!("`{permission}`")), "{name}: {description}");
                    assert!(description.contains("PERMISSION_DENIED"), "{name}: {description}");
                }
                None => {
                    assert!(OWN_FIELDS.contains(&name.as_str()), "{name}: classify it (admin or own)");
                    assert!(!description.contains("Needs `"), "{name} needs a permission: {description}");
                }
            }
            seen.insert(name.to_string());
        }
    }
    let listed: std::collections::BTreeSet<String> = ADMIN_FIELDS
        .iter()
        .map(|(name, ..)| name.to_string())
        .chain(OWN_FIELDS.iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(seen, listed, "every listed field exists");
}

/// Each admin field × its permission: refused without a role, with a role
/// that lacks it, and inside an impersonation (even of an admin); answered
/// (no `PERMISSION_DENIED`) with the least role that holds it.
async fn every_admin_field_needs_its_permission(app: TestApp) {
    let (plain, _) = app.register_verified("plain@example.com", USER_PW).await;
    let (_, target) = app.register_verified("target@example.com", USER_PW).await;
    let mut holders = std::collections::HashMap::new();
    for role in ["auditor", "support", "admin"] {
        holders.insert(role, make_admin(&app, &format!("{role}@example.com"), role).await.0);
    }
    let (superadmin, _) = make_admin(&app, "super@example.com", "superadmin").await;
    // A superadmin acting as an admin: the admin's session, without permissions.
    let admin_id = str_of(&app.me(&holders["admin"]).await.body["data"]["me"]["id"]);
    let acting = impersonate(&app, &superadmin, &admin_id, "a check").await;
    let impersonation = str_of(&acting.body["data"]["impersonateUser"]["token"]);
    assert!(!impersonation.is_empty(), "{}", acting.body);

    for (field, permission, role, call) in ADMIN_FIELDS {
        let vars = json!({ "u": target });
        for (who, token) in
            [("no role", plain.as_str()), ("an impersonation of an admin", impersonation.as_str())]
        {
            let refused = app.authed(token, call, vars.clone()).await;
            assert_eq!(refused.code(), Some("PERMISSION_DENIED"), "{field} by {who}: {}", refused.body);
            assert_eq!(permission_of(&refused), Some(permission), "{field}");
        }
        assert!(granted_by(role, permission), "{field}: {role} holds {permission}");
        for other in ["auditor", "support", "admin"] {
            let reply = app.authed(&holders[other], call, vars.clone()).await;
            if granted_by(other, permission) {
                assert_ne!(reply.code(), Some("PERMISSION_DENIED"), "{field} by {other}: {}", reply.body);
            } else {
                assert_eq!(permission_of(&reply), Some(permission), "{field} by {other}: {}", reply.body);
            }
        }
    }
}

fn granted_by(role: &str, permission: &str) -> bool {
    use domain::user::roles::{Permission, grants};
    Permission::ALL.into_iter().any(|p| p.as_str() == permission && grants(role, p))
}

/// The event types recorded about `user_id`, oldest first.
async fn kinds_about(app: &TestApp, user_id: &str) -> Vec<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let id = uuid::Uuid::parse_str(user_id).unwrap();
    entity::events::Entity::find()
        .filter(entity::events::Column::SubjectUserId.eq(id))
        .order_by_asc(entity::events::Column::Id)
        .all(app.db())
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect()
}

const IMPERSONATE: &str = "mutation I($input: ImpersonateUserInput!) { impersonateUser(input: $input) { token expiresAt user { id email } } }";

async fn impersonate(app: &TestApp, admin: &str, user_id: &str, reason: &str) -> Reply {
    app.authed(admin, IMPERSONATE, json!({ "input": { "userId": user_id, "reason": reason } })).await
}

const BAN: &str =
    "mutation B($input: BanUserInput!) { banUser(input: $input) { id banned bannedUntil banReason } }";
const UNBAN: &str = "mutation U($u: ID!) { unbanUser(userId: $u) { id banned } }";

async fn ban(app: &TestApp, admin: &str, user_id: &str) -> Reply {
    let reply = app.authed(admin, BAN, json!({ "input": { "userId": user_id, "reason": "abuse" } })).await;
    assert_eq!(reply.body["data"]["banUser"]["banned"], true, "{}", reply.body);
    reply
}

/// Destructive admin fields need a recent sign-in, like a user's own
/// sensitive changes; the others do not.
async fn destructive_admin_fields_need_a_recent_sign_in(app: TestApp) {
    let (admin, _) = make_admin(&app, "stale-admin@example.com", "admin").await;
    let (_, target) = app.register_verified("stale-target@example.com", USER_PW).await;
    app.clock.advance(chrono::Duration::minutes(30));
    let vars = json!({ "u": target });
    for (field, _, _, call) in ADMIN_FIELDS {
        let reply = app.authed(&admin, call, vars.clone()).await;
        let destructive = [
            "banUser",
            "resetUserTwoFactor",
            "setUserRoles",
            "unbanUser",
            "impersonateUser",
            "createWebhookEndpoint",
            "deleteUser",
        ]
        .contains(&field);
        let stale = reply.code() == Some("REAUTHENTICATION_REQUIRED");
        assert_eq!(stale, destructive, "{field}: {}", reply.body);
    }
    let reauth = json!({ "input": { "password": PW } });
    assert_eq!(
        app.authed(&admin, crate::two_factor::REAUTH, reauth).await.body["data"]["reauthenticate"],
        true
    );
    ban(&app, &admin, &target).await;
}

/// A banned user: every way in refuses with `ACCOUNT_BANNED`, but only
/// once the credential itself is proven; the sessions they had end at once.
async fn a_banned_user_is_refused_on_every_way_in(backend: Backend) {
    let mock = MockProvider::start().await;
    let providers = vec![mock.oidc_config("mock")];
    let Some(app) = TestApp::on_with(backend, |c| {
        c.oauth = providers;
        c.oauth_redirect_origins = vec![APP.into()];
    })
    .await
    else {
        return;
    };
    let (admin, _) = make_admin(&app, "banner@example.com", "admin").await;
    let email = "banned@example.com";
    let (token, id) = app.register_verified(email, USER_PW).await;
    let (mut authenticator, _) = crate::passkeys::add_passkey(&app, &token, "Laptop").await;
    mock.next(Person::verified("sub-banned", email), Tamper::None);
    assert_eq!(crate::oauth::link(&app, &token, "mock").await.status, 303);
    let (secret, _) = crate::two_factor::enable(&app, &token).await;
    // A second step begun before the ban, and a reset link mailed.
    let challenge = crate::two_factor::challenge(&app, email).await;
    app.gql("mutation R($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": email })).await;
    let link = app.mailed_token(email, "Reset your password", 1).await;
    assert!(app.me(&token).await.body["data"]["me"].is_object(), "cached before the ban");

    let banned = ban(&app, &admin, &id).await;
    assert_eq!(banned.body["data"]["banUser"]["banReason"], "abuse");
    assert!(banned.body["data"]["banUser"]["bannedUntil"].is_null());
    let mut ways: Vec<&str> = Vec::new();

    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "the cached session ended");
    let minted = app
        .authed(
            &token,
            "mutation { accessToken(audience: \"https://api.example.com\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(minted.code(), Some("UNAUTHENTICATED"), "no access token from an ended session");

    assert_eq!(app.login(email, "a wrong password here").await.code(), Some("INVALID_CREDENTIALS"));
    let refused = app.login(email, USER_PW).await;
    assert_eq!(refused.code(), Some("ACCOUNT_BANNED"), "{}", refused.body);
    assert!(refused.body["errors"][0]["extensions"]["bannedUntil"].is_null());
    ways.push("password");

    app.clock.advance(chrono::Duration::seconds(30));
    let code = crate::two_factor::code_at(&secret, app.clock_now());
    assert_eq!(
        crate::two_factor::complete(&app, &challenge, "000000").await.code(),
        Some("INVALID_CREDENTIALS")
    );
    let code_refused = crate::two_factor::complete(&app, &challenge, &code).await;
    assert_eq!(code_refused.code(), Some("ACCOUNT_BANNED"), "{}", code_refused.body);
    ways.push("second_step");

    let passkey = crate::passkeys::sign_in(&app, &mut authenticator).await;
    assert_eq!(passkey.code(), Some("ACCOUNT_BANNED"), "{}", passkey.body);
    ways.push("passkey");

    mock.next(Person::verified("sub-banned", email), Tamper::None);
    let back = crate::oauth::sign_in(&app, "mock").await;
    assert_eq!(back.status, 303, "{}", back.text);
    let location = back.headers["location"].to_str().unwrap();
    assert!(location.ends_with("error=ACCOUNT_BANNED"), "{location}");
    assert!(crate::oauth::session_token(&back).is_none());
    ways.push("provider");

    let reset = json!({ "input": { "token": link, "newPassword": "a banned new password" } });
    let reset =
        app.gql("mutation P($input: ResetPasswordInput!) { resetPassword(input: $input) }", reset).await;
    assert_eq!(reset.code(), Some("ACCOUNT_BANNED"), "{}", reset.body);
    ways.push("reset_link");

    let acting = impersonate(&app, &admin, &id, "look around").await;
    assert_eq!(acting.code(), Some("ACCOUNT_BANNED"), "{}", acting.body);
    ways.push("impersonation");

    // A new account at the address is no way around it.
    let again =
        app.gql(crate::common::REGISTER, json!({ "input": { "email": email, "password": USER_PW } })).await;
    assert_eq!(again.code(), Some("EMAIL_TAKEN"), "{}", again.body);
    ways.push("registration");

    let mut expected = domain::session::admission::WAYS.to_vec();
    expected.push("reset_link");
    expected.sort();
    ways.sort();
    assert_eq!(ways, expected, "every way to a session was tried");
    assert_eq!(app.count(entity::sessions::Entity).await, 1, "only the admin's session");

    // Unbanned: the password signs in again (after its second step); the
    // reset link still works; the ended sessions stay ended.
    let unbanned = app.authed(&admin, UNBAN, json!({ "u": id })).await;
    assert_eq!(unbanned.body["data"]["unbanUser"]["banned"], false, "{}", unbanned.body);
    assert_eq!(app.login(email, USER_PW).await.code(), Some("SECOND_FACTOR_REQUIRED"));
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"));
    let kinds = kinds_about(&app, &id).await;
    assert!(
        kinds.contains(&"user.banned".to_owned()) && kinds.contains(&"user.unbanned".to_owned()),
        "{kinds:?}"
    );
}

/// A ban with an end lapses by itself; until then the refusal says when.
async fn a_ban_with_an_end_lapses_by_itself(app: TestApp) {
    let (admin, _) = make_admin(&app, "timer@example.com", "admin").await;
    let (_, id) = app.register_verified("timed@example.com", USER_PW).await;
    let until = (app.clock_now() + chrono::Duration::hours(1)).to_rfc3339();
    let past = (app.clock_now() - chrono::Duration::hours(1)).to_rfc3339();
    let refused = app.authed(&admin, BAN, json!({ "input": { "userId": id, "until": past } })).await;
    assert_eq!(
        (refused.code(), refused.field()),
        (Some("BAD_USER_INPUT"), Some("until")),
        "{}",
        refused.body
    );
    let own_id = str_of(&app.me(&admin).await.body["data"]["me"]["id"]);
    let own = app.authed(&admin, BAN, json!({ "input": { "userId": own_id } })).await;
    assert_eq!((own.code(), own.field()), (Some("BAD_USER_INPUT"), Some("userId")), "not yourself");
    let banned = app.authed(&admin, BAN, json!({ "input": { "userId": id, "until": until } })).await;
    assert!(banned.body["data"]["banUser"]["bannedUntil"].is_string(), "{}", banned.body);
    let refused = app.login("timed@example.com", USER_PW).await;
    assert_eq!(refused.code(), Some("ACCOUNT_BANNED"));
    assert!(refused.body["errors"][0]["extensions"]["bannedUntil"].is_string(), "{}", refused.body);
    app.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(
        app.login("timed@example.com", USER_PW).await.code(),
        Some("ACCOUNT_BANNED"),
        "a minute before"
    );
    // At the very instant it ends, the user is back.
    app.clock.advance(chrono::Duration::minutes(1));
    let back = app.login("timed@example.com", USER_PW).await;
    assert!(back.body["data"]["login"]["token"].is_string(), "the ban lapsed: {}", back.body);
    let listed = app.authed(&admin, USERS, json!({ "filter": { "banned": true } })).await;
    assert_eq!(listed.body["data"]["users"]["totalCount"], 0, "{}", listed.body);
}

/// On PostgreSQL with two instances: a ban made on one ends the user's
/// session cached on the other within the cache's revocation bound.
async fn a_ban_reaches_a_session_cached_on_another_instance(app: TestApp) {
    if !app.is_postgres() {
        return;
    }
    let second = app.second_instance().await;
    let (admin, _) = make_admin(&app, "remote-admin@example.com", "admin").await;
    let (token, id) = app.register_verified("remote@example.com", USER_PW).await;
    let me = |router| app.post_to(router).graphql("{ me { id } }", json!({})).bearer(&token).send();
    assert!(me(&second).await.body["data"]["me"].is_object(), "cached there");
    // A role granted through this instance reaches the other's tokens.
    let mint = "mutation { accessToken(audience: \"https://api.example.com\") { token } }";
    let roles_there = || async {
        let minted = app.post_to(&second).graphql(mint, json!({})).bearer(&token).send().await;
        crate::tokens::part(&str_of(&minted.body["data"]["accessToken"]["token"]), 1)["roles"].clone()
    };
    assert_eq!(roles_there().await, json!([]));
    app.authed(&admin, ROLES, json!({ "u": id, "r": ["auditor"] })).await;
    let started = std::time::Instant::now();
    while roles_there().await != json!(["auditor"]) {
        assert!(started.elapsed() < Duration::from_secs(5), "the role never reached the other instance");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ban(&app, &admin, &id).await;
    let started = std::time::Instant::now();
    while me(&second).await.code() != Some("UNAUTHENTICATED") {
        assert!(started.elapsed() < Duration::from_secs(5), "the ban never reached the other instance");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The locked-out user: after `resetUserTwoFactor` they sign in with the
/// password alone, are mailed, and their sessions have ended.
async fn a_locked_out_user_gets_back_in_with_the_password(app: TestApp) {
    let (support, _) = make_admin(&app, "helpdesk@example.com", "support").await;
    let email = "lost-phone@example.com";
    let (token, id) = app.register_verified(email, USER_PW).await;
    crate::two_factor::enable(&app, &token).await;
    assert_eq!(app.login(email, USER_PW).await.code(), Some("SECOND_FACTOR_REQUIRED"));
    let before = app.mails(email, "Two-factor sign-in changed on your account").len();
    let reset = "mutation R($u: ID!) { resetUserTwoFactor(userId: $u) }";
    let done = app.authed(&support, reset, json!({ "u": id })).await;
    assert_eq!(done.body["data"]["resetUserTwoFactor"], true, "{}", done.body);
    assert_eq!(app.me(&token).await.code(), Some("UNAUTHENTICATED"), "sessions ended");
    let back = app.login(email, USER_PW).await;
    assert!(back.body["data"]["login"]["token"].is_string(), "password alone: {}", back.body);
    let mails = app.wait_for_mails(email, "Two-factor sign-in changed on your account", before + 1).await;
    assert!(mails.last().unwrap().contains("An administrator removed"), "{}", mails.last().unwrap());
    let again = app.authed(&support, reset, json!({ "u": id })).await;
    assert_eq!(again.body["data"]["resetUserTwoFactor"], false, "nothing left to reset");
    let kinds = kinds_about(&app, &id).await;
    assert!(kinds.contains(&"two_factor.disabled".to_owned()), "{kinds:?}");
}

const USERS: &str = "query L($filter: UserFilter, $first: Int, $after: String) { users(filter: $filter, first: $first, after: $after) { totalCount edges { cursor node { id email name banned roles } } pageInfo { hasNextPage endCursor } } }";

fn emails(reply: &Reply) -> Vec<String> {
    let edges = reply.body["data"]["users"]["edges"].as_array().unwrap_or_else(|| panic!("{}", reply.body));
    edges.iter().map(|e| str_of(&e["node"]["email"])).collect()
}

/// The list: newest first, pages that hold still while users sign up,
/// search by the start of the email or name, the banned and role filters,
/// `totalCount`, bad inputs refused.
async fn the_user_list_pages_searches_and_filters(app: TestApp) {
    let (admin, _) = make_admin(&app, "lister@example.com", "admin").await;
    let mut made = Vec::new();
    for i in 0..7 {
        app.clock.advance(chrono::Duration::seconds(1));
        let email = format!("member{i}@example.com");
        made.push((email.clone(), app.register(&email, USER_PW).await.1));
    }
    let first = app.authed(&admin, USERS, json!({ "first": 3 })).await;
    assert_eq!(emails(&first), ["member6@example.com", "member5@example.com", "member4@example.com"]);
    assert_eq!(first.body["data"]["users"]["totalCount"], 8);
    // Newcomers between pages: they sort before the first page.
    app.register("latecomer@example.com", USER_PW).await;
    let mut seen = emails(&first);
    let mut after = first.body["data"]["users"]["pageInfo"]["endCursor"].clone();
    loop {
        let page = app.authed(&admin, USERS, json!({ "first": 3, "after": after })).await;
        seen.extend(emails(&page));
        app.register(&format!("during{}@example.com", seen.len()), USER_PW).await;
        let info = &page.body["data"]["users"]["pageInfo"];
        if info["hasNextPage"] == false {
            break;
        }
        after = info["endCursor"].clone();
    }
    let mut expected: Vec<String> = made.iter().rev().map(|(e, _)| e.clone()).collect();
    expected.push("lister@example.com".into());
    assert_eq!(seen, expected, "every user once, in order");

    let found = app.authed(&admin, USERS, json!({ "filter": { "search": " MEMBER3" } })).await;
    assert_eq!(emails(&found), ["member3@example.com"]);
    let rename = "mutation U($input: UpdateProfileInput!) { updateProfile(input: $input) { name } }";
    let (named, _) = app.register("zed@example.com", USER_PW).await;
    app.authed(&named, rename, json!({ "input": { "name": "Alistair Zed" } })).await;
    let by_name = app.authed(&admin, USERS, json!({ "filter": { "search": "ali" } })).await;
    assert_eq!(emails(&by_name), ["zed@example.com"], "{}", by_name.body);
    let literal = app.authed(&admin, USERS, json!({ "filter": { "search": "member_" } })).await;
    assert!(emails(&literal).is_empty(), "`_` is no wildcard: {}", literal.body);

    ban(&app, &admin, &made[2].1).await;
    let banned = app.authed(&admin, USERS, json!({ "filter": { "banned": true } })).await;
    assert_eq!(emails(&banned), ["member2@example.com"]);
    assert_eq!(banned.body["data"]["users"]["edges"][0]["node"]["banned"], true);
    let free = app.authed(&admin, USERS, json!({ "filter": { "banned": false, "search": "member" } })).await;
    assert_eq!(free.body["data"]["users"]["totalCount"], 6);
    let roles = "mutation R($u: ID!, $r: [String!]!) { setUserRoles(userId: $u, roles: $r) { roles } }";
    let set =
        app.authed(&admin, roles, json!({ "u": made[4].1, "r": ["support", "auditor", "support"] })).await;
    assert_eq!(set.body["data"]["setUserRoles"]["roles"], json!(["auditor", "support"]), "{}", set.body);
    let holders = app.authed(&admin, USERS, json!({ "filter": { "role": "support" } })).await;
    assert_eq!(emails(&holders), ["member4@example.com"]);
    assert_eq!(holders.body["data"]["users"]["edges"][0]["node"]["roles"], json!(["auditor", "support"]));

    for (vars, field) in [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "after": "not-a-cursor" }), "after"),
        (json!({ "filter": { "role": "root" } }), "role"),
        (json!({ "filter": { "search": "x".repeat(101) } }), "search"),
    ] {
        let refused = app.authed(&admin, USERS, vars.clone()).await;
        assert_eq!((refused.code(), refused.field()), (Some("BAD_USER_INPUT"), Some(field)), "{vars}");
    }
    let unknown = app.authed(&admin, roles, json!({ "u": made[4].1, "r": ["root"] })).await;
    assert_eq!((unknown.code(), unknown.field()), (Some("BAD_USER_INPUT"), Some("roles")));
}

/// A page of 100 users with their sessions, ways in, passkeys and roles
/// stays within the complexity limits and costs the same statements as a
/// page of 5 (no query per user).
async fn the_user_list_is_free_of_n_plus_one(app: TestApp) {
    let (admin, _) = make_admin(&app, "counter@example.com", "admin").await;
    for i in 0..12 {
        let email = format!("n{i}@example.com");
        let (token, _) = app.register(&email, USER_PW).await;
        app.me(&token).await;
        // The verification mail's writes, done before the statements are counted.
        app.wait_for_mails(&email, "Confirm your email address", 1).await;
    }
    let query = "query L($first: Int) { users(first: $first) { totalCount edges { node { id email roles banned sessions { id impersonatorId } accounts { providerId } passkeys { id } } } } }";
    app.me(&admin).await;
    let (mut counts, mut log) = (Vec::new(), Vec::new());
    for first in [5, 100] {
        app.take_statements();
        let reply = app.authed(&admin, query, json!({ "first": first })).await;
        assert!(reply.body["errors"].is_null(), "{}", reply.body);
        let edges = reply.body["data"]["users"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first.min(13) as usize);
        assert!(
            edges.iter().all(|e| e["node"]["sessions"].as_array().unwrap().len() == 1),
            "sessions visible"
        );
        let statements = app.take_statements();
        counts.push(statements.len());
        log.push(statements);
    }
    assert_eq!(counts[0], counts[1], "statements for 5 and for 13 users: {counts:?} {log:#?}");
    assert!(counts[0] <= 12, "{counts:?}");
}

/// Impersonation, for a bearer and a cookie admin: the next request is the
/// user, the admin's own session is unchanged, the session is marked and
/// lasts an hour at most without extension, its tokens carry `act`, the
/// user's credentials and admin fields are off limits inside it, and its
/// start and end are in the user's activity.
async fn impersonation_is_the_user_within_limits(app: TestApp) {
    let (admin, admin_id) = make_admin(&app, "acting-admin@example.com", "admin").await;
    let (other_admin, other_admin_id) = make_admin(&app, "other-admin@example.com", "admin").await;
    let email = "acted@example.com";
    let (user, user_id) = app.register_verified(email, USER_PW).await;

    let refused = impersonate(&app, &admin, &other_admin_id, "curious").await;
    assert_eq!(permission_of(&refused), Some("user:impersonate_privileged"), "{}", refused.body);
    let empty = impersonate(&app, &admin, &user_id, "  ").await;
    assert_eq!((empty.code(), empty.field()), (Some("BAD_USER_INPUT"), Some("reason")));
    let long = impersonate(&app, &admin, &user_id, &"x".repeat(501)).await;
    assert_eq!((long.code(), long.field()), (Some("BAD_USER_INPUT"), Some("reason")), "501 characters");

    // Bearer.
    // 500 characters, the most a reason may have.
    let started = impersonate(&app, &admin, &user_id, &format!("ticket 42 {}", "x".repeat(490))).await;
    let acting = str_of(&started.body["data"]["impersonateUser"]["token"]);
    assert!(started.set_cookie().is_none(), "a bearer client gets no cookie");
    let me = app.authed(&acting, "{ me { id sessions { current impersonatorId } } }", json!({})).await;
    assert_eq!(me.body["data"]["me"]["id"], user_id.as_str(), "{}", me.body);
    let own =
        me.body["data"]["me"]["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).cloned();
    assert_eq!(own.unwrap()["impersonatorId"], admin_id.as_str());
    assert_eq!(app.me(&admin).await.body["data"]["me"]["id"], admin_id.as_str(), "the admin's own session");

    let claims = crate::tokens::claims_of(&app, &acting).await;
    assert_eq!(
        (claims["sub"].as_str(), &claims["act"]),
        (Some(user_id.as_str()), &json!({ "sub": admin_id }))
    );

    let change = "mutation C($input: ChangePasswordInput!) { changePassword(input: $input) }";
    let vars = json!({ "input": { "currentPassword": USER_PW, "newPassword": "taken over password" } });
    for (what, query, vars) in [
        ("changePassword", change, vars),
        ("deleteAccount", "mutation D($p: String!) { deleteAccount(password: $p) }", json!({ "p": USER_PW })),
        ("startTotpSetup", "mutation { startTotpSetup { secret } }", json!({})),
        ("startPasskeyRegistration", "mutation { startPasskeyRegistration }", json!({})),
        ("impersonateUser", IMPERSONATE, json!({ "input": { "userId": other_admin_id, "reason": "again" } })),
        ("users", USERS, json!({})),
    ] {
        let refused = app.authed(&acting, query, vars).await;
        assert_eq!(refused.code(), Some("PERMISSION_DENIED"), "{what}: {}", refused.body);
    }
    assert_eq!(app.login(email, USER_PW).await.code(), None, "the password is unchanged");

    // Never extended; an hour at most.
    app.clock.advance(chrono::Duration::minutes(50));
    assert!(app.me(&acting).await.body["data"]["me"].is_object());
    app.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(app.me(&acting).await.code(), Some("UNAUTHENTICATED"), "ended after an hour");
    assert!(app.me(&user).await.body["data"]["me"].is_object(), "the user's own session lives on");

    // Cookie: the cookie moves to the impersonation; the admin's session stays.
    let reauth = json!({ "input": { "password": PW } });
    app.authed(&admin, crate::two_factor::REAUTH, reauth).await;
    let vars = json!({ "input": { "userId": user_id, "reason": "ticket 43" } });
    let by_cookie = app.post().graphql(IMPERSONATE, vars).cookie(&admin).send().await;
    let cookie = by_cookie.set_cookie().expect("the session cookie");
    let moved = str_of(&by_cookie.body["data"]["impersonateUser"]["token"]);
    assert!(cookie.contains(&format!("session_token={moved}")), "{cookie}");
    let next = app.post().graphql("{ me { id } }", json!({})).cookie(&moved).send().await;
    assert_eq!(next.body["data"]["me"]["id"], user_id.as_str());
    assert_eq!(app.me(&admin).await.body["data"]["me"]["id"], admin_id.as_str(), "unchanged");
    let out = app.post().graphql("mutation { logout }", json!({})).cookie(&moved).send().await;
    assert_eq!(out.body["data"]["logout"], true, "{}", out.body);
    assert_eq!(app.me(&moved).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.me(&admin).await.body["data"]["me"]["id"], admin_id.as_str());

    // The user sees both impersonations start, and the second end, with the admin named.
    let activity = "{ me { activity(first: 50) { edges { node { type actorId impersonatorId } } } } }";
    let seen = app.authed(&user, activity, json!({})).await;
    let nodes = seen.body["data"]["me"]["activity"]["edges"].as_array().unwrap().clone();
    let of = |kind: &str| nodes.iter().filter(|n| n["node"]["type"] == kind).count();
    assert_eq!((of("impersonation.started"), of("impersonation.ended")), (2, 1), "{}", seen.body);
    assert!(nodes.iter().filter(|n| str_of(&n["node"]["type"]).starts_with("impersonation.")).all(
        |n| n["node"]["impersonatorId"] == admin_id.as_str() && n["node"]["actorId"] == admin_id.as_str()
    ));
    let _ = other_admin;
}

/// `authgate admin grant` from the command line, another process beside a
/// running server on the same SQLite file: the grant counts on the next
/// request, the revoke too, and the tokens' `roles` claim follows within
/// the session cache's lifetime.
#[tokio::test]
async fn a_grant_from_the_command_line_reaches_a_running_server_on_sqlite() {
    let binary = crate::webhooks::Binary::with(&[
        ("AUTHGATE_JWT_AUDIENCES", "https://api.example.com"),
        ("AUTHGATE_SESSION_CACHE_TTL", "2s"),
    ]);
    binary.run(&["migrate"]);
    let (mut server, addr) = binary.serve();
    let token = crate::webhooks::register_at(&addr, "operator@example.com").await;
    let client = reqwest::Client::new();
    let ask = |query: &'static str| {
        let request = client
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": query }))
            .send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let users = "{ users(first: 5) { totalCount } }";
    assert_eq!(ask(users).await["errors"][0]["extensions"]["code"], "PERMISSION_DENIED");
    let granted = binary.run(&["admin", "grant", "Operator@example.com", "admin"]);
    assert!(granted.contains("now holds admin"), "{granted}");
    assert_eq!(ask(users).await["data"]["users"]["totalCount"], 1, "the next request");
    assert!(binary.run(&["admin", "list"]).contains("operator@example.com\tadmin"));
    let roles_claim = || async {
        let minted = ask("mutation { accessToken(audience: \"https://api.example.com\") { token } }").await;
        crate::tokens::part(minted["data"]["accessToken"]["token"].as_str().unwrap(), 1)["roles"].clone()
    };
    let started = std::time::Instant::now();
    while roles_claim().await != json!(["admin"]) {
        assert!(started.elapsed() < Duration::from_secs(10), "the claim followed within the cache's TTL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    binary.run(&["admin", "revoke", "operator@example.com", "admin"]);
    assert_eq!(ask(users).await["errors"][0]["extensions"]["code"], "PERMISSION_DENIED", "revoked at once");
    let unknown = binary.command(&["admin", "grant", "operator@example.com", "root"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown role"));
    server.kill().unwrap();
    server.wait().unwrap();
}

const ROLES: &str = "mutation R($u: ID!, $r: [String!]!) { setUserRoles(userId: $u, roles: $r) { roles } }";

/// Nobody acts above their own permissions: an admin makes, strips, bans
/// or resets no superadmin; support resets or signs out no admin.
async fn admins_act_on_nobody_above_them(app: TestApp) {
    let (superadmin, super_id) = make_admin(&app, "top@example.com", "superadmin").await;
    let (admin, admin_id) = make_admin(&app, "middle@example.com", "admin").await;
    let (support, _) = make_admin(&app, "desk@example.com", "support").await;
    let (_, helper_id) = app.register_verified("helper@example.com", USER_PW).await;
    let denied = |reply: &Reply| permission_of(reply).map(str::to_owned);
    let made = app.authed(&admin, ROLES, json!({ "u": helper_id, "r": ["superadmin"] })).await;
    assert_eq!(denied(&made).as_deref(), Some("user:impersonate_privileged"), "{}", made.body);
    let stripped = app.authed(&admin, ROLES, json!({ "u": super_id, "r": [] })).await;
    assert_eq!(denied(&stripped).as_deref(), Some("user:impersonate_privileged"), "{}", stripped.body);
    let (_, peer_id) = make_admin(&app, "peer@example.com", "admin").await;
    let peer = app.authed(&admin, ROLES, json!({ "u": peer_id, "r": [] })).await;
    assert_eq!(
        denied(&peer).as_deref(),
        Some("user:impersonate_privileged"),
        "a peer's roles: {}",
        peer.body
    );
    let banned = app.authed(&admin, BAN, json!({ "input": { "userId": super_id } })).await;
    assert_eq!(denied(&banned).as_deref(), Some("user:impersonate_privileged"), "{}", banned.body);
    for call in [
        "mutation($u: ID!) { resetUserTwoFactor(userId: $u) }",
        "mutation($u: ID!) { revokeUserSessions(userId: $u) }",
    ] {
        let refused = app.authed(&support, call, json!({ "u": admin_id })).await;
        assert_eq!(refused.code(), Some("PERMISSION_DENIED"), "{call}: {}", refused.body);
    }
    assert!(app.me(&admin).await.body["data"]["me"].is_object(), "the admin's session lives on");
    let granted = app.authed(&admin, ROLES, json!({ "u": helper_id, "r": ["support"] })).await;
    assert_eq!(granted.body["data"]["setUserRoles"]["roles"], json!(["support"]), "{}", granted.body);
    let top = app.authed(&superadmin, ROLES, json!({ "u": helper_id, "r": ["admin"] })).await;
    assert_eq!(top.body["data"]["setUserRoles"]["roles"], json!(["admin"]), "{}", top.body);
}

/// An impersonation lives only while its admin may start it: banning or
/// demoting the admin ends it, and so does a role granted to the user
/// meanwhile; signing the admin out everywhere ends it too. Inside it the
/// user's devices, reauthentication and roles are out of reach, and where
/// the admin is stays hidden from the user.
async fn an_impersonation_ends_with_its_admins_standing(app: TestApp) {
    let (superadmin, _) = make_admin(&app, "chief@example.com", "superadmin").await;
    let (admin, admin_id) = make_admin(&app, "deputy@example.com", "admin").await;
    let (user, user_id) = app.register_verified("watched@example.com", USER_PW).await;
    let start = |admin: String| {
        let user_id = user_id.clone();
        let app = &app;
        async move {
            let reply = impersonate(app, &admin, &user_id, "support ticket").await;
            let token = str_of(&reply.body["data"]["impersonateUser"]["token"]);
            assert!(!token.is_empty(), "{}", reply.body);
            token
        }
    };

    // Inside: no device sign-outs, no reauthentication, no roles in tokens.
    let acting = start(admin.clone()).await;
    for (what, query, vars) in [
        ("revokeOtherSessions", "mutation { revokeOtherSessions }", json!({})),
        ("reauthenticate", crate::two_factor::REAUTH, json!({ "input": { "password": USER_PW } })),
    ] {
        let refused = app.authed(&acting, query, vars).await;
        assert_eq!(permission_of(&refused), Some("session:own"), "{what}: {}", refused.body);
    }
    let renamed = "mutation { updateProfile(input: { name: \"Acted\" }) { name } }";
    assert_eq!(app.authed(&acting, renamed, json!({})).await.body["data"]["updateProfile"]["name"], "Acted");
    // The user sees the impersonation, not where the admin is.
    let sessions = "{ me { sessions { impersonatorId ipAddress userAgent } activity(first: 5) { edges { node { type impersonatorId ipAddress } } } } }";
    let seen = app.authed(&user, sessions, json!({})).await;
    let theirs = seen.body["data"]["me"]["sessions"].as_array().unwrap().clone();
    let marked: Vec<&Value> = theirs.iter().filter(|s| s["impersonatorId"] == admin_id.as_str()).collect();
    assert_eq!(marked.len(), 1, "{}", seen.body);
    assert!(marked[0]["ipAddress"].is_null() && marked[0]["userAgent"].is_null(), "{}", seen.body);
    let edges = seen.body["data"]["me"]["activity"]["edges"].as_array().unwrap().clone();
    let updated = edges.iter().find(|e| e["node"]["type"] == "user.updated").expect("the rename");
    assert_eq!(updated["node"]["impersonatorId"], admin_id.as_str());
    assert!(updated["node"]["ipAddress"].is_null(), "{}", seen.body);
    let as_admin = "{ users(filter: { search: \"watched\" }) { edges { node { sessions { impersonatorId ipAddress } } } } }";
    let admin_view = app.authed(&superadmin, as_admin, json!({})).await;
    let listed = admin_view.body["data"]["users"]["edges"][0]["node"]["sessions"].as_array().unwrap().clone();
    assert!(listed.iter().all(|s| s["ipAddress"].is_string()), "admins see it: {}", admin_view.body);

    // The admin demoted: the impersonation ends.
    let demoted = app.authed(&superadmin, ROLES, json!({ "u": admin_id, "r": ["auditor"] })).await;
    assert!(demoted.body["errors"].is_null(), "{}", demoted.body);
    // Ended with the change, recorded, before anyone uses it again.
    let kinds = kinds_about(&app, &user_id).await;
    assert_eq!(kinds[kinds.len() - 2..], ["session.revoked", "impersonation.ended"], "{kinds:?}");
    assert_eq!(app.me(&acting).await.code(), Some("UNAUTHENTICATED"), "demoted");
    app.authed(&superadmin, ROLES, json!({ "u": admin_id, "r": ["admin"] })).await;

    // The user granted a role: an admin may no longer act as them.
    let acting = start(admin.clone()).await;
    assert!(app.me(&acting).await.body["data"]["me"].is_object());
    app.authed(&superadmin, ROLES, json!({ "u": user_id, "r": ["auditor"] })).await;
    assert_eq!(app.me(&acting).await.code(), Some("UNAUTHENTICATED"), "the user outranks the admin now");
    // A superadmin may act as them; the token carries no roles.
    let acting = start(superadmin.clone()).await;
    let claims = crate::tokens::claims_of(&app, &acting).await;
    assert_eq!(claims["roles"], json!([]), "an impersonation carries no roles: {claims}");
    app.authed(&superadmin, ROLES, json!({ "u": user_id, "r": [] })).await;

    // The admin's own session that started it ends: so does the impersonation.
    let (second_admin, _) =
        (str_of(&app.login("deputy@example.com", PW).await.body["data"]["login"]["token"]), ());
    let acting = start(second_admin.clone()).await;
    assert!(app.me(&acting).await.body["data"]["me"].is_object());
    assert_eq!(
        app.authed(&second_admin, "mutation { logout }", json!({})).await.body["data"]["logout"],
        true
    );
    assert_eq!(app.me(&acting).await.code(), Some("UNAUTHENTICATED"), "its admin signed out");
    let kinds = kinds_about(&app, &user_id).await;
    assert_eq!(kinds.last().map(String::as_str), Some("impersonation.ended"), "{kinds:?}");

    // The admin banned, or signed out everywhere: their impersonations end.
    let acting = start(admin.clone()).await;
    let ended = app
        .authed(&superadmin, "mutation($u: ID!) { revokeUserSessions(userId: $u) }", json!({ "u": admin_id }))
        .await;
    assert!(ended.body["errors"].is_null(), "{}", ended.body);
    assert_eq!(app.me(&acting).await.code(), Some("UNAUTHENTICATED"), "signed out everywhere");
    let kinds = kinds_about(&app, &user_id).await;
    assert!(kinds.contains(&"impersonation.ended".to_owned()), "{kinds:?}");
    let admin = str_of(&app.login("deputy@example.com", PW).await.body["data"]["login"]["token"]);
    let acting = start(admin).await;
    app.authed(&superadmin, BAN, json!({ "input": { "userId": admin_id } })).await;
    assert_eq!(app.me(&acting).await.code(), Some("UNAUTHENTICATED"), "banned");
    assert!(app.me(&user).await.body["data"]["me"].is_object(), "the user's own session lives on");
}

/// A banned user who never proved their address cannot lift the ban with
/// a reset link to their own mailbox; an admin deletes such an account
/// (a squatter's, say) and the address is free for its owner.
async fn a_reset_link_lifts_no_ban(app: TestApp) {
    let (admin, _) = make_admin(&app, "mod@example.com", "admin").await;
    let (_, squatter) = app.register("victim@example.com", USER_PW).await;
    ban(&app, &admin, &squatter).await;
    assert_eq!(app.login("victim@example.com", USER_PW).await.code(), Some("ACCOUNT_BANNED"));
    app.gql(
        "mutation R($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": "victim@example.com" }),
    )
    .await;
    let link = app.mailed_token("victim@example.com", "Reset your password", 1).await;
    let reset = json!({ "input": { "token": link, "newPassword": "the owner's own password" } });
    let refused =
        app.gql("mutation P($input: ResetPasswordInput!) { resetPassword(input: $input) }", reset).await;
    assert_eq!(refused.code(), Some("ACCOUNT_BANNED"), "{}", refused.body);
    let listed = app.authed(&admin, USERS, json!({ "filter": { "banned": true } })).await;
    assert_eq!(emails(&listed), ["victim@example.com"], "still banned");
    let delete = "mutation($u: ID!) { deleteUser(userId: $u) }";
    assert_eq!(app.authed(&admin, delete, json!({ "u": squatter })).await.body["data"]["deleteUser"], true);
    let (owner, _) = app.register("victim@example.com", "the owner's own password").await;
    assert!(app.me(&owner).await.body["data"]["me"].is_object(), "the address is free again");
    // And a reason that would display as something else is refused.
    let (_, other) = app.register_verified("someone@example.com", USER_PW).await;
    let spoof = app
        .authed(&admin, IMPERSONATE, json!({ "input": { "userId": other, "reason": "ok\u{202E}gnp" } }))
        .await;
    assert_eq!((spoof.code(), spoof.field()), (Some("BAD_USER_INPUT"), Some("reason")), "{}", spoof.body);
}

/// An admin deletes a user (their sessions end, their rows go, the
/// address is free again) and mails another a reset link they can use.
async fn an_admin_deletes_a_user_and_sends_a_reset_link(app: TestApp) {
    let (admin, admin_id) = make_admin(&app, "remover@example.com", "admin").await;
    let (doomed, doomed_id) = app.register_verified("doomed@example.com", USER_PW).await;
    let deleted =
        app.authed(&admin, "mutation($u: ID!) { deleteUser(userId: $u) }", json!({ "u": doomed_id })).await;
    assert_eq!(deleted.body["data"]["deleteUser"], true, "{}", deleted.body);
    assert_eq!(app.me(&doomed).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.login("doomed@example.com", USER_PW).await.code(), Some("INVALID_CREDENTIALS"));
    let deleted = kinds_about(&app, &doomed_id).await;
    assert_eq!(deleted.last().map(String::as_str), Some("user.deleted"), "{deleted:?}");
    let again =
        app.authed(&admin, "mutation($u: ID!) { deleteUser(userId: $u) }", json!({ "u": doomed_id })).await;
    assert_eq!((again.code(), again.field()), (Some("BAD_USER_INPUT"), Some("userId")), "{}", again.body);
    let own =
        app.authed(&admin, "mutation($u: ID!) { deleteUser(userId: $u) }", json!({ "u": admin_id })).await;
    assert_eq!((own.code(), own.field()), (Some("BAD_USER_INPUT"), Some("userId")));

    let (_, forgetful) = app.register_verified("forgetful@example.com", USER_PW).await;
    let sent = app
        .authed(&admin, "mutation($u: ID!) { sendUserPasswordReset(userId: $u) }", json!({ "u": forgetful }))
        .await;
    assert_eq!(sent.body["data"]["sendUserPasswordReset"], true, "{}", sent.body);
    let link = app.mailed_token("forgetful@example.com", "Reset your password", 1).await;
    let reset = json!({ "input": { "token": link, "newPassword": "a remembered password" } });
    let done =
        app.gql("mutation P($input: ResetPasswordInput!) { resetPassword(input: $input) }", reset).await;
    assert_eq!(done.body["data"]["resetPassword"], true, "{}", done.body);
    assert!(
        app.login("forgetful@example.com", "a remembered password").await.body["data"]["login"].is_object()
    );
}

both_backends!(
    an_admin_deletes_a_user_and_sends_a_reset_link,
    admins_act_on_nobody_above_them,
    an_impersonation_ends_with_its_admins_standing,
    a_reset_link_lifts_no_ban,
    every_admin_field_needs_its_permission,
    destructive_admin_fields_need_a_recent_sign_in,
    a_ban_with_an_end_lapses_by_itself,
    a_ban_reaches_a_session_cached_on_another_instance,
    a_locked_out_user_gets_back_in_with_the_password,
    the_user_list_pages_searches_and_filters,
    the_user_list_is_free_of_n_plus_one,
    impersonation_is_the_user_within_limits,
);

each_backend!(a_banned_user_is_refused_on_every_way_in);
