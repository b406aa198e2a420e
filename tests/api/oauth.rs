//! Sign-in with external providers against the mock OpenID provider
//! (tests/api/common/oidc.rs), through the real router, on every backend.

use entity::{accounts, oauth_flows, sessions, users};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    common::{
        Backend, Reply, TestApp,
        oidc::{MockProvider, Person, Tamper},
        str_of,
    },
    each_backend,
};

each_backend!(
    sign_up_then_sign_in_again,
    plain_oauth2_provider_signs_in_through_userinfo,
    verified_email_links_to_the_existing_user,
    unverified_provider_email_is_refused,
    state_must_be_live_single_use_and_from_this_browser,
    id_token_must_verify,
    provider_denial_and_redirect_allow_list,
    link_unlink_and_set_password,
    a_pending_link_dies_with_its_session,
    provider_key_rotation_is_picked_up,
    a_passwordless_account_is_deleted_after_a_fresh_sign_in,
    linking_needs_a_recent_sign_in,
    a_link_racing_a_password_change_does_not_land,
    a_reset_can_remove_every_provider_link,
    a_login_racing_the_removal_of_the_password_does_not_land,
    a_login_racing_a_claim_does_not_land,
    a_two_factor_user_meets_the_second_step_after_a_provider,
    a_claim_removes_a_second_factor_the_squatter_set_up,
    a_provider_meets_the_gate,
    a_provider_only_user_reauthenticates_by_code_or_signs_in_again,
);

const START: &str = "mutation Start($provider: String!, $redirectTo: String) { startOAuth(provider: $provider, redirectTo: $redirectTo) }";
const LINK: &str = "mutation Link($provider: String!) { linkOAuth(provider: $provider) }";
const ACCOUNTS: &str = "query { me { id email name emailVerified accounts { id providerId accountId } } }";
const PW: &str = "correct horse battery";
const APP: &str = "http://localhost:3000";

async fn setup(backend: Backend) -> Option<(TestApp, MockProvider)> {
    let mock = MockProvider::start().await;
    let providers = vec![mock.oidc_config("mock"), mock.oauth2_config("plain")];
    let app = TestApp::on_with(backend, |c| {
        c.oauth = providers;
        c.oauth_redirect_origins = vec![APP.into(), "https://app.example.com".into()];
    })
    .await?;
    Some((app, mock))
}

/// A flow begun by `startOAuth` (or `linkOAuth` with a bearer token).
pub(crate) struct Started {
    pub reply: Reply,
    /// The provider URL the browser is sent to.
    pub url: String,
    /// The `oauth_state` cookie's value.
    pub cookie: Option<String>,
}

async fn start_with(app: &TestApp, query: &str, vars: Value, bearer: Option<&str>) -> Started {
    let mut call = app.post().graphql(query, vars);
    if let Some(token) = bearer {
        call = call.bearer(token);
    }
    let reply = call.send().await;
    let url = reply.body["data"].as_object().and_then(|d| d.values().next()).map(str_of).unwrap_or_default();
    let cookie = set_cookies(&reply)
        .into_iter()
        .find_map(|c| c.strip_prefix("oauth_state=").map(|v| v.split(';').next().unwrap_or("").to_owned()));
    Started { reply, url, cookie }
}

pub(crate) async fn start(app: &TestApp, provider: &str) -> Started {
    start_with(app, START, json!({ "provider": provider }), None).await
}

/// The browser at the provider: signs in and is sent back; returns the
/// callback's path and query on authgate.
pub(crate) async fn at_provider(url: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.get(url).send().await.expect("provider reachable");
    assert_eq!(answer.status(), 303, "authorize must redirect: {}", answer.text().await.unwrap_or_default());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    location.strip_prefix("http://localhost:8000").expect("back to AUTHGATE_PUBLIC_URL").to_owned()
}

pub(crate) async fn callback(app: &TestApp, path: &str, cookie: Option<&str>) -> Reply {
    let mut call = app.get(path);
    if let Some(state) = cookie {
        call = call.header("cookie", &format!("theme=dark; oauth_state={state}"));
    }
    call.send().await
}

/// The whole round trip; returns the callback's answer.
pub(crate) async fn sign_in(app: &TestApp, provider: &str) -> Reply {
    let started = start(app, provider).await;
    assert!(started.url.starts_with("http://127.0.0.1"), "{}", started.reply.body);
    let back = at_provider(&started.url).await;
    callback(app, &back, started.cookie.as_deref()).await
}

/// Links the next person at the provider to the user of `token` (the
/// whole round trip); returns the callback's answer.
pub(crate) async fn link(app: &TestApp, token: &str, provider: &str) -> Reply {
    let started = start_with(app, LINK, json!({ "provider": provider }), Some(token)).await;
    let back = at_provider(&started.url).await;
    callback(app, &back, started.cookie.as_deref()).await
}

fn set_cookies(reply: &Reply) -> Vec<String> {
    reply.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn location(reply: &Reply) -> String {
    assert_eq!(reply.status, 303, "{}", reply.text);
    reply.headers["location"].to_str().unwrap().to_owned()
}

/// The session token set by a successful callback.
pub(crate) fn session_token(reply: &Reply) -> Option<String> {
    set_cookies(reply).into_iter().find_map(|c| {
        c.strip_prefix("session_token=")
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// As if the user had followed the verification mail.
async fn mark_verified(app: &TestApp, user_id: &str) {
    users::Entity::update_many()
        .col_expr(users::Column::EmailVerified, sea_orm::sea_query::Expr::value(true))
        .filter(users::Column::Id.eq(uuid::Uuid::parse_str(user_id).unwrap()))
        .exec(app.db())
        .await
        .unwrap();
}

/// Accounts linked to the mock provider, whoever's.
async fn provider_links(app: &TestApp) -> u64 {
    accounts::Entity::find().filter(accounts::Column::ProviderId.eq("mock")).count(app.db()).await.unwrap()
}

async fn user_count(app: &TestApp) -> u64 {
    users::Entity::find().count(app.db()).await.unwrap()
}

async fn sign_up_then_sign_in_again(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let providers = app.gql("{ providers }", json!({})).await;
    assert_eq!(providers.body["data"]["providers"], json!(["mock", "plain"]));

    let started = start(&app, "mock").await;
    let url = url::Url::parse(&started.url).expect("authorization URL");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], "http://localhost:8000/auth/callback/mock");
    for key in ["state", "nonce", "code_challenge"] {
        assert!(query[key].len() >= 32, "{key} is random: {}", query[key]);
    }
    let cookie = set_cookies(&started.reply).into_iter().find(|c| c.starts_with("oauth_state=")).unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let flow = oauth_flows::Entity::find().one(app.db()).await.unwrap().expect("flow row");
    use sha2::Digest;
    let state_sha = sha2::Sha256::digest(query["state"].as_bytes()).to_vec();
    assert_eq!(flow.state_hash, state_sha, "the state is stored as its SHA-256 only");

    let back = at_provider(&started.url).await;
    let reply = callback(&app, &back, started.cookie.as_deref()).await;
    assert_eq!(location(&reply), APP);
    assert!(set_cookies(&reply).iter().any(|c| c.starts_with("oauth_state=;")), "state cookie cleared");
    let token = session_token(&reply).expect("session cookie");
    let me = app.authed(&token, ACCOUNTS, json!({})).await;
    let user = &me.body["data"]["me"];
    assert_eq!(user["email"], "oauth@example.com");
    assert_eq!(user["name"], "Mock User");
    assert_eq!(user["emailVerified"], true);
    // The link as stored: its row's id, provider and subject.
    let link = accounts::Entity::find().one(app.db()).await.unwrap().expect("the provider link");
    assert_eq!(
        user["accounts"],
        json!([{ "id": link.id.to_string(), "providerId": "mock", "accountId": "mock-user-1" }])
    );
    assert_eq!(oauth_flows::Entity::find().count(app.db()).await.unwrap(), 0, "the flow is spent");
    // No password: email-and-password sign-in fails like any wrong password.
    assert_eq!(app.login("oauth@example.com", PW).await.code(), Some("INVALID_CREDENTIALS"));

    // Again: the same user, a second session, no new rows.
    let again = sign_in(&app, "mock").await;
    let second = session_token(&again).expect("second session");
    assert_ne!(second, token);
    assert_eq!(app.authed(&second, ACCOUNTS, json!({})).await.body["data"]["me"]["id"], user["id"]);
    assert_eq!(user_count(&app).await, 1);
    assert_eq!(app.count(accounts::Entity).await, 1);
    assert_eq!(app.count(sessions::Entity).await, 2);
    assert_eq!(mock.exchanges(), 2);
}

async fn plain_oauth2_provider_signs_in_through_userinfo(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    mock.next(Person::verified("plain-7", "plain@example.com"), Tamper::None);
    let reply = sign_in(&app, "plain").await;
    assert_eq!(location(&reply), APP);
    let token = session_token(&reply).expect("session");
    let me = app.authed(&token, ACCOUNTS, json!({})).await;
    assert_eq!(me.body["data"]["me"]["email"], "plain@example.com");
    assert_eq!(me.body["data"]["me"]["accounts"][0]["providerId"], "plain");
    assert_eq!(me.body["data"]["me"]["accounts"][0]["accountId"], "plain-7");
    // The plain provider's flow carries no ID token check: a spoiled one changes nothing.
    mock.next(Person::verified("plain-7", "plain@example.com"), Tamper::ForgedSignature);
    assert!(session_token(&sign_in(&app, "plain").await).is_some());
}

async fn verified_email_links_to_the_existing_user(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    // A user who proved their address: the provider link is added, the password stays.
    let (_, verified_id) = app.register("ada@example.com", PW).await;
    mark_verified(&app, &verified_id).await;
    mock.next(Person::verified("g-ada", "Ada@Example.com"), Tamper::None);
    let token = session_token(&sign_in(&app, "mock").await).expect("signed in");
    let me = app.authed(&token, ACCOUNTS, json!({})).await;
    assert_eq!(me.body["data"]["me"]["id"], verified_id.as_str());
    let notice = app.wait_for_mails("ada@example.com", NOTICE, 1).await;
    assert!(notice[0].contains("Sign-in with mock was just added"), "{}", notice[0]);
    let providers: Vec<_> = me.body["data"]["me"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(&a["providerId"]))
        .collect();
    assert_eq!(providers, ["credential", "mock"]);
    assert!(app.login("ada@example.com", PW).await.body["data"]["login"].is_object());

    // A user who never proved it may not be its owner (pre-hijacking): the
    // provider's owner gets the account; the password and sessions go.
    let (squatter_token, squatter_id) = app.register("bob@example.com", PW).await;
    // Its verification mail is written first (a token row: on SQLite a
    // second writer the claim below would otherwise wait for; the suite's
    // one flake, seen only on an oversubscribed machine).
    app.wait_for_mails("bob@example.com", "Confirm your email address", 1).await;
    // The squatter cannot plant a provider of their own on the unproven address...
    let link = start_with(&app, LINK, json!({ "provider": "plain" }), Some(&squatter_token)).await;
    assert_eq!(link.reply.code(), Some("EMAIL_NOT_VERIFIED"));
    mock.next(Person::verified("g-bob", "bob@example.com"), Tamper::None);
    let token = session_token(&sign_in(&app, "mock").await).expect("signed in");
    let me = app.authed(&token, ACCOUNTS, json!({})).await;
    assert_eq!(me.body["data"]["me"]["id"], squatter_id.as_str());
    assert_eq!(me.body["data"]["me"]["emailVerified"], true);
    assert_eq!(me.body["data"]["me"]["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(app.me(&squatter_token).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.login("bob@example.com", PW).await.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(user_count(&app).await, 2);
}

async fn unverified_provider_email_is_refused(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let (_, user_id) = app.register("eve@example.com", PW).await;
    app.register("kate@example.com", PW).await;
    let unverified =
        |subject: &str, email: &str| Person { email_verified: false, ..Person::verified(subject, email) };
    for (person, expected) in [
        (unverified("p-eve", "eve@example.com"), "OAUTH_EMAIL_NOT_VERIFIED"),
        (unverified("p-new", "new@example.com"), "OAUTH_EMAIL_NOT_VERIFIED"),
        (Person { email: None, ..Person::verified("p-none", "x@example.com") }, "OAUTH_EMAIL_MISSING"),
        // The Kelvin sign lower-cases to "k": it must not reach kate's account.
        (Person::verified("p-kelvin", "\u{212A}ate@example.com"), "OAUTH_EMAIL_MISSING"),
    ] {
        mock.next(person, Tamper::None);
        let reply = sign_in(&app, "mock").await;
        assert_eq!(location(&reply), format!("{APP}/?error={expected}"));
        assert_eq!(session_token(&reply), None);
    }
    let links = accounts::Entity::find()
        .filter(accounts::Column::ProviderId.eq("mock"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(links, 0);
    assert_eq!(user_count(&app).await, 2);
    assert_eq!(app.count(sessions::Entity).await, 2, "only the registrations' sessions");
    assert!(
        users::Entity::find_by_id(uuid::Uuid::parse_str(&user_id).unwrap())
            .one(app.db())
            .await
            .unwrap()
            .is_some()
    );
}

async fn state_must_be_live_single_use_and_from_this_browser(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let refused = |reply: &Reply| {
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.body["error"]["code"], "OAUTH_STATE_INVALID");
        assert_eq!(session_token(reply), None);
        // A stray callback does not cancel the browser's sign-in in progress.
        assert!(set_cookies(reply).is_empty(), "{:?}", set_cookies(reply));
    };
    // Made-up state, and no state at all.
    refused(&callback(&app, "/auth/callback/mock?code=x&state=forged", Some("forged")).await);
    refused(&callback(&app, "/auth/callback/mock?code=x", None).await);

    // Another browser (no cookie, or another flow's cookie) cannot complete it.
    let started = start(&app, "mock").await;
    let other = start(&app, "mock").await;
    let back = at_provider(&started.url).await;
    refused(&callback(&app, &back, None).await);
    refused(&callback(&app, &back, other.cookie.as_deref()).await);
    // Nor at another provider's callback.
    let elsewhere = back.replace("/auth/callback/mock", "/auth/callback/plain");
    refused(&callback(&app, &elsewhere, started.cookie.as_deref()).await);

    // The right browser once: a replay finds nothing.
    let started = start(&app, "mock").await;
    let back = at_provider(&started.url).await;
    assert!(session_token(&callback(&app, &back, started.cookie.as_deref()).await).is_some());
    refused(&callback(&app, &back, started.cookie.as_deref()).await);

    // A flow older than AUTHGATE_OAUTH_FLOW_TTL (10 min) is dead.
    let started = start(&app, "mock").await;
    let back = at_provider(&started.url).await;
    app.clock.advance(chrono::Duration::seconds(601));
    refused(&callback(&app, &back, started.cookie.as_deref()).await);
    assert_eq!(mock.exchanges(), 1, "no code is exchanged for a refused state");
    assert_eq!(user_count(&app).await, 1);
}

async fn id_token_must_verify(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    for tamper in [Tamper::WrongNonce, Tamper::Expired, Tamper::ForgedSignature, Tamper::WrongAudience] {
        mock.next(Person::verified("t-1", "tamper@example.com"), tamper);
        let reply = sign_in(&app, "mock").await;
        assert_eq!(location(&reply), format!("{APP}/?error=OAUTH_FAILED"), "{tamper:?}");
        assert_eq!(session_token(&reply), None, "{tamper:?}");
    }
    // A subject we cannot key an account on is refused like a bad token.
    for subject in ["", "\u{0}nul", &"s".repeat(256)] {
        mock.next(Person::verified(subject, "tamper@example.com"), Tamper::None);
        let reply = sign_in(&app, "mock").await;
        assert_eq!(location(&reply), format!("{APP}/?error=OAUTH_FAILED"), "sub {subject:?}");
    }
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(app.count(sessions::Entity).await, 0);
    mock.next(Person::verified("t-1", "tamper@example.com"), Tamper::None);
    assert!(session_token(&sign_in(&app, "mock").await).is_some(), "an honest token still works");
}

async fn provider_denial_and_redirect_allow_list(backend: Backend) {
    let Some((app, _mock)) = setup(backend).await else { return };
    let unknown = start_with(&app, START, json!({ "provider": "nope" }), None).await;
    assert_eq!((unknown.reply.code(), unknown.reply.field()), (Some("BAD_USER_INPUT"), Some("provider")));
    for evil in [
        "https://evil.example/cb",
        "//evil.example",
        "/relative",
        "javascript:alert(1)",
        "https://app.example.com.evil.io/",
        "https://evil.example@app.example.com/",
    ] {
        let reply =
            start_with(&app, START, json!({ "provider": "mock", "redirectTo": evil }), None).await.reply;
        assert_eq!(reply.code(), Some("REDIRECT_NOT_ALLOWED"), "{evil}");
    }
    assert_eq!(app.count(oauth_flows::Entity).await, 0, "a refused start remembers nothing");

    // An allowed origin: the browser lands there, with the outcome.
    let target = "https://app.example.com/welcome?from=login";
    let started = start_with(&app, START, json!({ "provider": "mock", "redirectTo": target }), None).await;
    let back = at_provider(&started.url).await;
    assert_eq!(location(&callback(&app, &back, started.cookie.as_deref()).await), target);

    // The user says no at the provider; ours is the only `error` on the way back.
    assert_eq!(location(&denied_at_provider(&app, target).await), format!("{target}&error=OAUTH_DENIED"));
    let stale = "https://app.example.com/cb?error=stale&x=1";
    assert_eq!(
        location(&denied_at_provider(&app, stale).await),
        "https://app.example.com/cb?x=1&error=OAUTH_DENIED"
    );
}

/// A flow to `redirect_to` that the provider ends with `error=access_denied`.
async fn denied_at_provider(app: &TestApp, redirect_to: &str) -> Reply {
    let started =
        start_with(app, START, json!({ "provider": "mock", "redirectTo": redirect_to }), None).await;
    let url = url::Url::parse(&started.url).unwrap();
    let state = url.query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
    let path = format!("/auth/callback/mock?error=access_denied&state={state}");
    callback(app, &path, started.cookie.as_deref()).await
}

async fn link_unlink_and_set_password(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let (token, user_id) = app.register("lin@example.com", PW).await;
    assert_eq!(
        app.post().graphql(LINK, json!({ "provider": "mock" })).send().await.code(),
        Some("UNAUTHENTICATED")
    );
    mark_verified(&app, &user_id).await;

    // Link a provider account whose email differs: linking is by the session, not the email.
    mock.next(Person::verified("l-1", "elsewhere@example.com"), Tamper::None);
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&token)).await;
    let back = at_provider(&started.url).await;
    let linked = callback(&app, &back, started.cookie.as_deref()).await;
    assert_eq!(location(&linked), APP);
    assert_eq!(session_token(&linked), None, "linking signs nobody in");
    let me = app.authed(&token, ACCOUNTS, json!({})).await;
    let accounts = me.body["data"]["me"]["accounts"].as_array().unwrap().clone();
    assert_eq!(accounts.len(), 2);
    assert_eq!(me.body["data"]["me"]["id"], user_id.as_str());
    // The provider account now signs in as this user.
    mock.next(Person::verified("l-1", "elsewhere@example.com"), Tamper::None);
    let via_provider = session_token(&sign_in(&app, "mock").await).expect("signed in");
    assert_eq!(
        app.authed(&via_provider, ACCOUNTS, json!({})).await.body["data"]["me"]["id"],
        user_id.as_str()
    );

    // Another user cannot take it over.
    let (other_token, other_id) = app.register("other@example.com", PW).await;
    mark_verified(&app, &other_id).await;
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&other_token)).await;
    let back = at_provider(&started.url).await;
    assert_eq!(
        location(&callback(&app, &back, started.cookie.as_deref()).await),
        format!("{APP}/?error=ACCOUNT_ALREADY_LINKED")
    );

    // Unlink: someone else's account is not ours; the last method stays.
    let unlink = "mutation U($id: ID!) { unlinkAccount(id: $id) }";
    let credential = accounts.iter().find(|a| a["providerId"] == "credential").unwrap()["id"].clone();
    let provider = accounts.iter().find(|a| a["providerId"] == "mock").unwrap()["id"].clone();
    assert_eq!(
        app.authed(&other_token, unlink, json!({ "id": provider })).await.body["data"]["unlinkAccount"],
        false
    );
    assert_eq!(
        app.authed(&token, unlink, json!({ "id": "not-a-uuid" })).await.body["data"]["unlinkAccount"],
        false
    );
    assert_eq!(
        app.authed(&token, unlink, json!({ "id": credential })).await.body["data"]["unlinkAccount"],
        true
    );
    assert_eq!(
        app.login("lin@example.com", PW).await.code(),
        Some("INVALID_CREDENTIALS"),
        "the password is gone"
    );
    // The owner is told, as of every other change to a way in.
    let removed =
        app.wait_for_mails("lin@example.com", "A way to sign in was removed from your account", 1).await;
    assert!(
        removed[0].contains("The password was just removed") && removed[0].contains("now: mock."),
        "{}",
        removed[0]
    );
    assert_eq!(
        app.authed(&token, unlink, json!({ "id": provider })).await.code(),
        Some("LAST_SIGN_IN_METHOD")
    );
    assert_eq!(
        app.authed(&token, ACCOUNTS, json!({})).await.body["data"]["me"]["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Without a password now: setPassword gives one, once.
    let set = "mutation S($p: String!) { setPassword(newPassword: $p) }";
    assert_eq!(app.authed(&token, set, json!({ "p": "short" })).await.field(), Some("newPassword"));
    assert_eq!(
        app.authed(&token, set, json!({ "p": "a brand new passphrase" })).await.body["data"]["setPassword"],
        true
    );
    assert!(app.login("lin@example.com", "a brand new passphrase").await.body["data"]["login"].is_object());
    assert_eq!(
        app.authed(&token, set, json!({ "p": "another new passphrase" })).await.code(),
        Some("PASSWORD_ALREADY_SET")
    );
    // The owner hears of both new ways in (a stolen session cannot add one quietly).
    let notices = app.wait_for_mails("lin@example.com", NOTICE, 2).await;
    assert!(notices[0].contains("Sign-in with mock was just added"), "{}", notices[0]);
    assert!(notices[1].contains("A password was just added"), "{}", notices[1]);
}

const NOTICE: &str = "A new way to sign in was added to your account";

async fn a_pending_link_dies_with_its_session(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let (token, user_id) = app.register("held@example.com", PW).await;
    mark_verified(&app, &user_id).await;
    // A (stolen) session starts a link; its owner signs it out before the callback.
    mock.next(Person::verified("thief-1", "thief@example.com"), Tamper::None);
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&token)).await;
    let back = at_provider(&started.url).await;
    app.authed(&token, "mutation { logout }", json!({})).await;
    let reply = callback(&app, &back, started.cookie.as_deref()).await;
    assert_eq!(location(&reply), format!("{APP}/?error=UNAUTHENTICATED"));
    assert_eq!(provider_links(&app).await, 0, "nothing was linked");
    assert_eq!(mock.exchanges(), 0, "the code was not even exchanged");
}

async fn provider_key_rotation_is_picked_up(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    assert!(session_token(&sign_in(&app, "mock").await).is_some());
    // The provider now signs with a key the cached JWKS does not have.
    mock.rotate_key();
    let reply = sign_in(&app, "mock").await;
    assert_eq!(location(&reply), APP, "keys fetched again");
    assert!(session_token(&reply).is_some());
}

async fn a_passwordless_account_is_deleted_after_a_fresh_sign_in(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let delete = "mutation D($p: String!) { deleteAccount(password: $p) }";
    let old = session_token(&sign_in(&app, "mock").await).expect("signed in");
    // Eleven minutes later that sign-in is no proof any more: sign in again.
    app.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(app.authed(&old, delete, json!({ "p": "" })).await.code(), Some("REAUTHENTICATION_REQUIRED"));
    assert_eq!(user_count(&app).await, 1);
    mock.next(Person::verified("mock-user-1", "oauth@example.com"), Tamper::None);
    let fresh = session_token(&sign_in(&app, "mock").await).expect("signed in again");
    assert_eq!(app.authed(&fresh, delete, json!({ "p": "" })).await.body["data"]["deleteAccount"], true);
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(app.count(accounts::Entity).await, 0);
    assert_eq!(app.count(sessions::Entity).await, 0);
}

/// A stolen session of any age cannot link the thief's provider account:
/// linkOAuth needs a sign-in of the last 10 minutes.
async fn linking_needs_a_recent_sign_in(backend: Backend) {
    let Some((app, _mock)) = setup(backend).await else { return };
    let (token, user_id) = app.register("old@example.com", PW).await;
    mark_verified(&app, &user_id).await;
    app.clock.advance(chrono::Duration::minutes(11));
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&token)).await;
    assert_eq!(started.reply.code(), Some("REAUTHENTICATION_REQUIRED"), "{}", started.reply.body);
    assert_eq!(app.count(oauth_flows::Entity).await, 0, "no flow begun");
    let fresh = str_of(&app.login("old@example.com", PW).await.body["data"]["login"]["token"]);
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&fresh)).await;
    assert!(started.url.starts_with("http://127.0.0.1"), "{}", started.reply.body);
}

/// A (stolen) session links the thief's provider account; while the code
/// is being exchanged the owner changes their password, ending that
/// session. The link must not be written after the check passed.
async fn a_link_racing_a_password_change_does_not_land(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let app = std::sync::Arc::new(app);
    let (owner, user_id) = app.register("racer@example.com", PW).await;
    mark_verified(&app, &user_id).await;
    let thief = str_of(&app.login("racer@example.com", PW).await.body["data"]["login"]["token"]);
    let hold = app.hold_at("oauth:identity_checked");
    mock.next(Person::verified("thief-gh", "thief@example.com"), Tamper::None);
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&thief)).await;
    let back = at_provider(&started.url).await;
    let callback = tokio::spawn({
        let (app, cookie) = (app.clone(), started.cookie.clone());
        async move { callback(&app, &back, cookie.as_deref()).await }
    });
    hold.reached().await;
    app.change_password(&owner, PW, "locked out thieves 9").await;
    hold.release(1);
    let reply = callback.await.expect("callback task");
    assert_eq!(location(&reply), format!("{APP}/?error=UNAUTHENTICATED"));
    assert_eq!(provider_links(&app).await, 0, "nothing was linked");
}

/// `resetPassword(removeProviderLinks: true)` leaves the new password as
/// the only way in; without the flag, links stay. Both notices list the
/// ways in that remain.
async fn a_reset_can_remove_every_provider_link(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let (token, user_id) = app.register("linked@example.com", PW).await;
    mark_verified(&app, &user_id).await;
    mock.next(Person::verified("gh-9", "linked@example.com"), Tamper::None);
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&token)).await;
    let back = at_provider(&started.url).await;
    assert_eq!(location(&callback(&app, &back, started.cookie.as_deref()).await), APP);
    let added = app.wait_for_mails("linked@example.com", NOTICE, 1).await;
    assert!(added[0].contains("Ways to sign in to your account now: password, mock."), "{}", added[0]);

    let request = "mutation R($e: String!) { requestPasswordReset(email: $e) }";
    let reset = "mutation P($input: ResetPasswordInput!) { resetPassword(input: $input) }";
    app.gql(request, json!({ "e": "linked@example.com" })).await;
    let first = app.mailed_token("linked@example.com", "Reset your password", 1).await;
    let kept =
        app.gql(reset, json!({ "input": { "token": first, "newPassword": "keep my links 2026" } })).await;
    assert_eq!(kept.body["data"]["resetPassword"], true, "{}", kept.body);
    assert_eq!(app.count(accounts::Entity).await, 2, "links stay by default");

    app.gql(request, json!({ "e": "linked@example.com" })).await;
    let second = app.mailed_token("linked@example.com", "Reset your password", 2).await;
    let input = json!({ "input": { "token": second, "newPassword": "only my password now", "removeProviderLinks": true } });
    assert_eq!(app.gql(reset, input).await.body["data"]["resetPassword"], true);
    let left: Vec<String> =
        accounts::Entity::find().all(app.db()).await.unwrap().into_iter().map(|a| a.provider_id).collect();
    assert_eq!(left, vec!["credential".to_owned()]);
    let notices = app.wait_for_mails("linked@example.com", "Your password was changed", 2).await;
    assert!(notices[1].contains("Ways to sign in to your account now: password."), "{}", notices[1]);
    assert!(app.login("linked@example.com", "only my password now").await.body["data"]["login"].is_object());
}

/// The password is checked; before the session is written, the owner
/// removes the password (unlinkAccount): the login must not land.
async fn a_login_racing_the_removal_of_the_password_does_not_land(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let app = std::sync::Arc::new(app);
    let (token, user_id) = app.register("two-ways@example.com", PW).await;
    mark_verified(&app, &user_id).await;
    mock.next(Person::verified("gh-2", "two-ways@example.com"), Tamper::None);
    let started = start_with(&app, LINK, json!({ "provider": "mock" }), Some(&token)).await;
    let back = at_provider(&started.url).await;
    assert_eq!(location(&callback(&app, &back, started.cookie.as_deref()).await), APP);
    let me = app.authed(&token, ACCOUNTS, json!({})).await;
    let accounts = me.body["data"]["me"]["accounts"].as_array().unwrap().clone();
    let credential = accounts.iter().find(|a| a["providerId"] == "credential").unwrap()["id"].clone();

    let hold = app.hold_at("login:password_checked");
    let racing = tokio::spawn({
        let app = app.clone();
        async move { app.login("two-ways@example.com", PW).await }
    });
    hold.reached().await;
    let unlink = "mutation U($id: ID!) { unlinkAccount(id: $id) }";
    assert_eq!(
        app.authed(&token, unlink, json!({ "id": credential })).await.body["data"]["unlinkAccount"],
        true
    );
    hold.release(1);
    assert_eq!(racing.await.unwrap().code(), Some("INVALID_CREDENTIALS"), "the password was gone");
    assert_eq!(app.count(sessions::Entity).await, 1, "only the owner's session");
}

/// Pre-hijacking: someone registered the victim's address (never verified)
/// and is signing in with their password when the victim claims the
/// address through a provider. The claim ends that sign-in too.
async fn a_login_racing_a_claim_does_not_land(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let app = std::sync::Arc::new(app);
    app.register("victim@example.com", PW).await;
    let hold = app.hold_at("login:password_checked");
    let racing = tokio::spawn({
        let app = app.clone();
        async move { app.login("victim@example.com", PW).await }
    });
    hold.reached().await;
    mock.next(Person::verified("victim-gh", "victim@example.com"), Tamper::None);
    let claimed = sign_in(&app, "mock").await;
    assert!(session_token(&claimed).is_some(), "the victim signs in: {}", claimed.text);
    hold.release(1);
    assert_eq!(racing.await.unwrap().code(), Some("INVALID_CREDENTIALS"), "the squatter's sign-in");
    assert_eq!(app.count(sessions::Entity).await, 1, "only the victim's session");
}

/// A provider is one factor: a user with two-factor on returns to the app
/// with a challenge, no session; `completeSignIn` finishes. Linking a new
/// provider needs two factors as well.
async fn a_two_factor_user_meets_the_second_step_after_a_provider(backend: Backend) {
    use crate::two_factor::{COMPLETE, REAUTH, code_at, enable};
    let Some((app, mock)) = setup(backend).await else { return };
    let (token, user_id) = app.register("tf-oauth@example.com", PW).await;
    mark_verified(&app, &user_id).await;
    let one_factor = str_of(&app.login("tf-oauth@example.com", PW).await.body["data"]["login"]["token"]);
    let (secret, _) = enable(&app, &token).await;
    let sessions_before = app.count(sessions::Entity).await;

    mock.next(Person::verified("g-tf", "tf-oauth@example.com"), Tamper::None);
    let started = start_with(&app, START, json!({ "provider": "mock", "redirectTo": APP }), None).await;
    let back = at_provider(&started.url).await;
    let reply = callback(&app, &back, started.cookie.as_deref()).await;
    let target = url::Url::parse(&location(&reply)).unwrap();
    assert_eq!(target.origin().ascii_serialization(), APP);
    let challenge = target.query_pairs().find(|(k, _)| k == "challenge").map(|(_, v)| v.into_owned());
    let challenge = challenge.expect("?challenge= on the way back");
    assert_eq!(session_token(&reply), None, "no session from the provider alone");
    assert_eq!(app.count(sessions::Entity).await, sessions_before);
    // The challenge is bound to this browser by an HttpOnly cookie set with
    // the redirect: read from the URL (history, a Referer), it is no use
    // elsewhere, and it cannot be borrowed from another flow's browser.
    let binding = set_cookies(&reply).into_iter().find(|c| c.starts_with("signin_binding=")).expect("bound");
    assert!(binding.contains("HttpOnly") && binding.contains("Max-Age=300"), "{binding}");
    let binding = binding.split(';').next().unwrap().to_owned();
    let input = json!({ "input": { "challenge": challenge, "code": code_at(&secret, app.clock_now()) } });
    for (browser, cookie) in [
        ("no cookie", None),
        ("another browser's", Some("signin_binding=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo3ODkwMTI")),
    ] {
        let mut call = app.post().graphql(COMPLETE, input.clone());
        if let Some(cookie) = cookie {
            call = call.header("cookie", cookie);
        }
        let refused = call.send().await;
        assert_eq!(refused.code(), Some("INVALID_TOKEN"), "{browser}: {}", refused.body);
    }
    let done = app.post().graphql(COMPLETE, input).header("cookie", &binding).send().await;
    let payload = &done.body["data"]["completeSignIn"];
    assert_eq!(payload["user"]["id"], user_id.as_str(), "{}", done.body);
    let cookies = set_cookies(&done);
    assert!(cookies.iter().any(|c| c.starts_with("session_token=")), "{cookies:?}");
    assert!(
        !cookies.iter().any(|c| c.starts_with("device")),
        "a provider sign-in earns no device cookie: {cookies:?}"
    );

    // Linking another provider: the one-factor session may not, even fresh.
    let link = start_with(&app, LINK, json!({ "provider": "plain" }), Some(&one_factor)).await;
    assert_eq!(link.reply.code(), Some("REAUTHENTICATION_REQUIRED"), "{}", link.reply.body);
    app.clock.advance(chrono::Duration::seconds(30));
    let proof = json!({ "input": { "password": PW, "code": code_at(&secret, app.clock_now()) } });
    assert_eq!(app.authed(&one_factor, REAUTH, proof).await.body["data"]["reauthenticate"], true);
    let link = start_with(&app, LINK, json!({ "provider": "plain" }), Some(&one_factor)).await;
    assert!(link.url.starts_with("http://127.0.0.1"), "{}", link.reply.body);
}

/// Whoever registered an address they do not own may have turned
/// two-factor on; when the real owner claims it through a provider, that
/// second factor goes with every other way in the squatter set up.
async fn a_claim_removes_a_second_factor_the_squatter_set_up(backend: Backend) {
    let Some((app, mock)) = setup(backend).await else { return };
    let (squatter, squatter_id) = app.register("claimed@example.com", PW).await;
    // Planted as a release before this one allowed (an unverified account
    // can no longer add a factor): the claim must remove it all the same.
    app.set_verified(&squatter_id, true).await;
    crate::two_factor::enable(&app, &squatter).await;
    app.set_verified(&squatter_id, false).await;
    mock.next(Person::verified("g-owner", "claimed@example.com"), Tamper::None);
    let reply = sign_in(&app, "mock").await;
    let token = session_token(&reply).expect("the owner signs in without the squatter's second factor");
    let me = app.authed(&token, "query { me { twoFactorEnabled } }", json!({})).await;
    assert_eq!(me.body["data"]["me"]["twoFactorEnabled"], false, "{}", me.body);
    assert_eq!(app.count(entity::totp_credentials::Entity).await, 0);
    assert_eq!(app.count(entity::recovery_codes::Entity).await, 0);
}

/// The provider's callback passes the one admission gate: a user it
/// refuses (an address that must be proved and no longer is) gets no
/// session, even with the provider's word.
async fn a_provider_meets_the_gate(backend: Backend) {
    let mock = MockProvider::start().await;
    let Some(app) = TestApp::on_with(backend, |c| {
        c.oauth = vec![mock.oidc_config("mock")];
        c.oauth_redirect_origins = vec![APP.into()];
        c.require_email_verification = true;
    })
    .await
    else {
        return;
    };
    mock.next(Person::verified("g-gate", "gate@example.com"), Tamper::None);
    let first = sign_in(&app, "mock").await;
    let token = session_token(&first).expect("signed up through the provider");
    let id = app.authed(&token, "{ me { id } }", json!({})).await.body["data"]["me"]["id"].clone();
    app.set_verified(&str_of(&id), false).await;
    let sessions_before = app.count(sessions::Entity).await;
    mock.next(Person::verified("g-gate", "gate@example.com"), Tamper::None);
    let again = sign_in(&app, "mock").await;
    assert_eq!(session_token(&again), None);
    assert!(location(&again).ends_with("error=EMAIL_NOT_VERIFIED"), "{}", location(&again));
    assert_eq!(app.count(sessions::Entity).await, sessions_before);
}

/// A user with neither password nor second factor has nothing to prove
/// presence with but a new sign-in; with two-factor on, the code alone.
async fn a_provider_only_user_reauthenticates_by_code_or_signs_in_again(backend: Backend) {
    use crate::two_factor::{REAUTH, code_at, enable};
    let Some((app, mock)) = setup(backend).await else { return };
    mock.next(Person::verified("g-only", "only@example.com"), Tamper::None);
    let token = session_token(&sign_in(&app, "mock").await).expect("signed up");
    for input in [json!({}), json!({ "password": PW }), json!({ "code": "000000" })] {
        let reply = app.authed(&token, REAUTH, json!({ "input": input })).await;
        assert_eq!(reply.code(), Some("REAUTHENTICATION_REQUIRED"), "{input}: {}", reply.body);
    }
    let (secret, _) = enable(&app, &token).await;
    let missing = app.authed(&token, REAUTH, json!({ "input": {} })).await;
    assert_eq!((missing.code(), missing.field()), (Some("BAD_USER_INPUT"), Some("code")));
    let proof = json!({ "input": { "code": code_at(&secret, app.clock_now()) } });
    assert_eq!(app.authed(&token, REAUTH, proof).await.body["data"]["reauthenticate"], true);
}

/// Behind HTTPS every cookie of the flow is `__Host-` prefixed and Secure,
/// and the callback reads the state cookie under that name (a mismatch
/// would break every sign-in through a provider in production).
#[tokio::test]
async fn behind_https_the_flow_uses_host_prefixed_secure_cookies() {
    let mock = MockProvider::start().await;
    let app = TestApp::sqlite_with(|c| {
        c.oauth = vec![mock.oidc_config("mock")];
        c.public_url = "https://auth.example.com".into();
        c.oauth_redirect_origins = vec![APP.into()];
    })
    .await;
    let started = start(&app, "mock").await;
    let state_cookie = set_cookies(&started.reply)
        .into_iter()
        .find(|c| c.starts_with("__Host-oauth_state="))
        .unwrap_or_else(|| panic!("{:?}", set_cookies(&started.reply)));
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=600"] {
        assert!(state_cookie.contains(attr), "{state_cookie} lacks {attr}");
    }
    assert!(!state_cookie.contains("Domain"), "{state_cookie}");
    let state = state_cookie["__Host-oauth_state=".len()..].split(';').next().unwrap().to_owned();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.get(&started.url).send().await.expect("provider reachable");
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let back = location.strip_prefix("https://auth.example.com").expect("back to the public URL").to_owned();

    // The plain name, as a sibling subdomain could plant it, is not read.
    let planted = app.get(&back).header("cookie", &format!("oauth_state={state}")).send().await;
    assert_eq!(planted.status, 400, "{}", planted.text);
    assert!(session_token_named(&planted, "__Host-session_token").is_none(), "{:?}", set_cookies(&planted));

    let start_again = start(&app, "mock").await;
    let state = set_cookies(&start_again.reply)
        .into_iter()
        .find_map(|c| c.strip_prefix("__Host-oauth_state=").map(|v| v.split(';').next().unwrap().to_owned()))
        .expect("state cookie");
    let answer = client.get(&start_again.url).send().await.expect("provider reachable");
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let back = location.strip_prefix("https://auth.example.com").unwrap().to_owned();
    let reply = app.get(&back).header("cookie", &format!("__Host-oauth_state={state}")).send().await;
    let cookies = set_cookies(&reply);
    let token = session_token_named(&reply, "__Host-session_token").unwrap_or_else(|| panic!("{cookies:?}"));
    let session_cookie = cookies.iter().find(|c| c.starts_with("__Host-session_token=")).unwrap();
    assert!(session_cookie.contains("Secure") && session_cookie.contains("Path=/"), "{session_cookie}");
    assert!(
        cookies.iter().any(|c| c.starts_with("__Host-oauth_state=;") && c.contains("Secure")),
        "{cookies:?}"
    );
    let me =
        app.post().graphql(ACCOUNTS, json!({})).header("cookie", &format!("__Host-session_token={token}"));
    assert_eq!(me.send().await.body["data"]["me"]["email"], "oauth@example.com");
}

/// The value of the session cookie `name` set by `reply`, if any.
fn session_token_named(reply: &Reply, name: &str) -> Option<String> {
    set_cookies(reply).into_iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// `startOAuth` is limited per client (an IPv6 /64 is one client), and a
/// refused start writes no flow.
#[tokio::test]
async fn starting_oauth_is_limited_per_client() {
    let mock = MockProvider::start().await;
    let app = TestApp::sqlite_with(|c| {
        c.oauth = vec![mock.oauth2_config("plain")];
        c.rates.set(domain::config::Rule::OAuthIp, "3/1m".parse().unwrap());
    })
    .await;
    let start_from =
        |ip: &'static str| app.post().graphql(START, json!({ "provider": "plain" })).peer_ip(ip).send();
    for i in 0..3 {
        let reply = start_from(if i == 0 { "2001:db8:1:2::1" } else { "2001:db8:1:2:ffff::9" }).await;
        assert!(reply.body["data"]["startOAuth"].is_string(), "{}", reply.body);
    }
    let refused = start_from("2001:db8:1:2::77").await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "the same /64: {}", refused.body);
    let now = app.clock_now().timestamp();
    let retry = refused.body["errors"][0]["extensions"]["retryAfter"].as_i64().unwrap();
    assert_eq!(retry, 60 - now.rem_euclid(60));
    assert_eq!(app.count(oauth_flows::Entity).await, 3, "the refused start wrote nothing");
    let elsewhere = start_from("2001:db8:1:3::1").await;
    assert!(elsewhere.body["data"]["startOAuth"].is_string(), "another /64: {}", elsewhere.body);
    app.clock.advance(chrono::Duration::seconds(60));
    assert!(start_from("2001:db8:1:2::1").await.body["data"]["startOAuth"].is_string(), "the next minute");
}
