//! Two-factor sign-in (TOTP, recovery codes) and step-up, through the real
//! router on every backend. Codes are computed from the secret the server
//! handed out, at the test clock's time, as an authenticator app would.

use chrono::Duration;
use entity::{recovery_codes, sessions, sign_in_challenges, totp_credentials};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    both_backends,
    common::{LOGIN, Reply, TestApp, str_of},
};

both_backends!(
    setup_needs_a_right_code_and_shows_recovery_codes_once,
    sign_in_with_a_totp_code_and_never_twice,
    a_recovery_code_signs_in_once,
    challenges_expire_are_single_use_and_die_after_five_codes,
    codes_sent_at_once_get_five_checks_not_more,
    many_users_complete_their_sign_ins_at_once,
    wrong_codes_count_like_wrong_passwords,
    codes_from_many_clients_meet_a_per_account_budget,
    every_step_up_operation_needs_a_recent_proof,
    reauthenticate_checks_each_part,
    the_window_and_reauthenticate_without_two_factor,
    disabling_removes_the_second_step,
    a_rotated_server_key_still_opens_secrets_and_reseal_moves_them,
    every_way_to_a_session_is_gated,
    devices_trusted_before_two_factor_get_no_extra_guesses,
    reauthenticate_and_complete_sign_in_share_one_code_budget,
    a_spent_challenge_costs_no_code_budget_and_a_right_code_restores_it,
);

pub const PW: &str = "correct horse battery";
pub const START_SETUP: &str = "mutation { startTotpSetup { secret uri qrCodeSvg } }";
pub const CONFIRM: &str = "mutation C($code: String!) { confirmTotpSetup(code: $code) }";
pub const COMPLETE: &str = "mutation C($input: CompleteSignInInput!) { completeSignIn(input: $input) { token expiresAt user { id email twoFactorEnabled } } }";
pub const REAUTH: &str = "mutation R($input: ReauthenticateInput!) { reauthenticate(input: $input) }";
const SECURITY: &str =
    "query { me { id twoFactorEnabled sessions { id current authenticatedAt assuranceLevel } } }";
pub const NOTICE: &str = "Two-factor sign-in changed on your account";

/// The code an authenticator app shows for `secret` (base32) at `at`.
pub fn code_at(secret: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).build().expect("an RFC 6238 generator");
    totp.generate(at.timestamp() as u64).to_string()
}

/// Turns two-factor on for the session `token`; returns the secret and the
/// recovery codes. The clock then moves to the next 30-second step, so
/// the next code is not the one just used.
pub async fn enable(app: &TestApp, token: &str) -> (String, Vec<String>) {
    // Only a proved address may add a factor.
    app.verify_address(token).await;
    let setup = app.authed(token, START_SETUP, json!({})).await;
    let secret = str_of(&setup.body["data"]["startTotpSetup"]["secret"]);
    assert!(!secret.is_empty(), "{}", setup.body);
    let code = code_at(&secret, app.clock_now());
    let confirmed = app.authed(token, CONFIRM, json!({ "code": code })).await;
    let codes = codes_in(&confirmed, "confirmTotpSetup");
    app.clock.advance(Duration::seconds(30));
    (secret, codes)
}

/// The recovery codes an answer's `field` lists.
pub fn codes_in(reply: &Reply, field: &str) -> Vec<String> {
    reply.body["data"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.body))
        .iter()
        .map(str_of)
        .collect()
}

/// `login` with the right password for a two-factor user: the challenge.
pub async fn challenge(app: &TestApp, email: &str) -> String {
    let reply = app.login(email, PW).await;
    assert_eq!(reply.code(), Some("SECOND_FACTOR_REQUIRED"), "{}", reply.body);
    assert!(reply.body["data"].is_null() || reply.body["data"]["login"].is_null());
    str_of(&reply.body["errors"][0]["extensions"]["challenge"])
}

pub async fn complete(app: &TestApp, challenge: &str, code: &str) -> Reply {
    app.gql(COMPLETE, json!({ "input": { "challenge": challenge, "code": code } })).await
}

fn session_cookie(reply: &Reply) -> Option<String> {
    reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.strip_prefix("session_token=")
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The sessions of one user (not of the whole table: a session given to
/// the wrong user must not make the count come out right).
async fn session_rows(app: &TestApp, user_id: &str) -> u64 {
    let user_id = uuid::Uuid::parse_str(user_id).expect("a user id");
    sessions::Entity::find().filter(sessions::Column::UserId.eq(user_id)).count(app.db()).await.unwrap()
}

/// This session's row as `me { sessions }` shows it.
async fn my_session(app: &TestApp, token: &str) -> Value {
    let reply = app.authed(token, SECURITY, json!({})).await;
    let list = reply.body["data"]["me"]["sessions"].as_array().unwrap_or_else(|| panic!("{}", reply.body));
    list.iter().find(|s| s["current"] == true).expect("the current session").clone()
}

async fn setup_needs_a_right_code_and_shows_recovery_codes_once(app: TestApp) {
    let (token, user_id) = app.register_verified("tf@example.com", PW).await;
    let setup = app.authed(&token, START_SETUP, json!({})).await;
    let setup = &setup.body["data"]["startTotpSetup"];
    let secret = str_of(&setup["secret"]);
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    let uri = str_of(&setup["uri"]);
    assert!(uri.starts_with("otpauth://totp/authgate:tf%40example.com?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=authgate"), "{uri}");
    let svg = str_of(&setup["qrCodeSvg"]);
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    // Stored sealed, never in the clear, and not yet in use.
    let row = totp_credentials::Entity::find().one(app.db()).await.unwrap().expect("a pending setup");
    let pending = row.pending_secret.expect("pending");
    assert!(pending.starts_with("v1.") && !pending.contains(&secret), "{pending}");
    assert_eq!(row.secret, None);

    // A wrong code (and garbage) changes nothing.
    let right = code_at(&secret, app.clock_now());
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for code in [wrong.as_str(), "", "12345", "1234567", "abcdef", &"9".repeat(10_000)] {
        let reply = app.authed(&token, CONFIRM, json!({ "code": code })).await;
        assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{code:.20}: {}", reply.body);
        assert_eq!(reply.field(), Some("code"));
    }
    let me = app.authed(&token, SECURITY, json!({})).await;
    assert_eq!(me.body["data"]["me"]["twoFactorEnabled"], false);
    assert_eq!(app.count(recovery_codes::Entity).await, 0);

    // The right one turns it on: ten distinct codes, stored as SHA-256 only.
    let reply = app.authed(&token, CONFIRM, json!({ "code": right })).await;
    let codes: Vec<String> =
        reply.body["data"]["confirmTotpSetup"].as_array().expect("codes").iter().map(str_of).collect();
    assert_eq!(codes.len(), 10);
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    let stored: Vec<Vec<u8>> = recovery_codes::Entity::find()
        .all(app.db())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.code_hash)
        .collect();
    for code in &codes {
        let normal = code.replace('-', "");
        assert!(stored.contains(&Sha256::digest(normal.as_bytes()).to_vec()), "{code} stored as its SHA-256");
    }
    let row = totp_credentials::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(row.pending_secret, None);
    assert!(row.secret.as_deref().is_some_and(|s| s.starts_with("v1.") && !s.contains(&secret)));
    assert_eq!(row.user_id.to_string(), user_id);
    let me = app.authed(&token, SECURITY, json!({})).await;
    assert_eq!(me.body["data"]["me"]["twoFactorEnabled"], true);
    assert_eq!(my_session(&app, &token).await["assuranceLevel"], 2, "the code proved the second factor");
    // The confirmed secret is never shown again: a new setup is a new secret.
    let again = app.authed(&token, START_SETUP, json!({})).await;
    assert_ne!(str_of(&again.body["data"]["startTotpSetup"]["secret"]), secret);
    // The owner is told, with the ways in.
    let mails = app.wait_for_mails("tf@example.com", NOTICE, 1).await;
    assert!(mails[0].contains("turned on") && mails[0].contains("password"), "{}", mails[0]);
}

async fn sign_in_with_a_totp_code_and_never_twice(app: TestApp) {
    let (token, user_id) = app.register_verified("totp@example.com", PW).await;
    let (secret, _) = enable(&app, &token).await;
    let before = session_rows(&app, &user_id).await;
    let all_before = app.count(sessions::Entity).await;

    // A wrong password says nothing of the second factor.
    let wrong = app.login("totp@example.com", "wrong password!").await;
    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    assert!(wrong.body["errors"][0]["extensions"]["challenge"].is_null());

    let reply = app.login("totp@example.com", PW).await;
    assert_eq!(reply.code(), Some("SECOND_FACTOR_REQUIRED"), "{}", reply.body);
    let extensions = &reply.body["errors"][0]["extensions"];
    assert_eq!(extensions["methods"], json!(["totp", "recovery_code"]));
    let first = str_of(&extensions["challenge"]);
    assert_eq!(first.len(), 43);
    assert_eq!(session_cookie(&reply), None, "no session yet");
    assert_eq!(app.count(sessions::Entity).await, all_before, "nobody's session yet");
    // Stored as SHA-256 only.
    let row = sign_in_challenges::Entity::find().one(app.db()).await.unwrap().expect("a challenge row");
    assert_eq!(row.token_hash, Sha256::digest(first.as_bytes()).to_vec());

    let code = code_at(&secret, app.clock_now());
    let signed = complete(&app, &first, &code).await;
    let payload = &signed.body["data"]["completeSignIn"];
    assert_eq!(payload["user"]["twoFactorEnabled"], true, "{}", signed.body);
    let new_token = str_of(&payload["token"]);
    assert_eq!(session_cookie(&signed).as_deref(), Some(new_token.as_str()));
    let session = my_session(&app, &new_token).await;
    assert_eq!(session["assuranceLevel"], 2);
    assert_eq!(session_rows(&app, &user_id).await, before + 1, "one more of this user's");
    assert_eq!(app.count(sessions::Entity).await, all_before + 1, "and no other");
    assert_eq!(app.count(sign_in_challenges::Entity).await, 0, "spent");

    // The same code again, on a new challenge, within its window: refused.
    let second = challenge(&app, "totp@example.com").await;
    // (An absurdly long code is refused without a look at the secrets.)
    app.take_statements();
    assert_eq!(complete(&app, &second, &"7".repeat(10_000)).await.code(), Some("INVALID_CREDENTIALS"));
    let looked = app.take_statements();
    assert!(
        !looked.iter().any(|sql| sql.contains("totp_credentials") || sql.contains("recovery_codes")),
        "{looked:?}"
    );
    let replay = complete(&app, &second, &code).await;
    assert_eq!(replay.code(), Some("INVALID_CREDENTIALS"), "{}", replay.body);
    // A code one step old is still in the window but older than the one used: refused too.
    let older = code_at(&secret, app.clock_now() - Duration::seconds(30));
    assert_eq!(complete(&app, &second, &older).await.code(), Some("INVALID_CREDENTIALS"));
    // The next step's code works.
    app.clock.advance(Duration::seconds(30));
    let next = complete(&app, &second, &code_at(&secret, app.clock_now())).await;
    assert!(next.body["data"]["completeSignIn"]["token"].is_string(), "{}", next.body);
}

async fn a_recovery_code_signs_in_once(app: TestApp) {
    let (token, _) = app.register_verified("lost-phone@example.com", PW).await;
    let (_, codes) = enable(&app, &token).await;
    let first = challenge(&app, "lost-phone@example.com").await;
    // Case, dashes and spaces do not matter.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let signed = complete(&app, &first, &typed).await;
    assert!(signed.body["data"]["completeSignIn"]["token"].is_string(), "{}", signed.body);
    let used = recovery_codes::Entity::find()
        .filter(recovery_codes::Column::UsedAt.is_not_null())
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(used.len(), 1);
    // Spent: not again, in any spelling.
    let second = challenge(&app, "lost-phone@example.com").await;
    assert_eq!(complete(&app, &second, &codes[3]).await.code(), Some("INVALID_CREDENTIALS"));
    // Another user's code is no code of this user.
    let (other, _) = app.register_verified("other@example.com", PW).await;
    let (_, others) = enable(&app, &other).await;
    assert_eq!(complete(&app, &second, &others[0]).await.code(), Some("INVALID_CREDENTIALS"));
    let ok = complete(&app, &second, &codes[4]).await;
    assert!(ok.body["data"]["completeSignIn"]["token"].is_string(), "{}", ok.body);
}

async fn challenges_expire_are_single_use_and_die_after_five_codes(app: TestApp) {
    let (token, _) = app.register_verified("ch@example.com", PW).await;
    let (secret, codes) = enable(&app, &token).await;

    // Spent by the sign-in it completes.
    let used = challenge(&app, "ch@example.com").await;
    assert!(complete(&app, &used, &codes[0]).await.body["data"]["completeSignIn"].is_object());
    assert_eq!(complete(&app, &used, &codes[1]).await.code(), Some("INVALID_TOKEN"));

    // Malformed and unknown challenges, refused before any code is looked at.
    for bogus in ["", "short", &"A".repeat(43), &"!".repeat(43)] {
        assert_eq!(complete(&app, bogus, &codes[1]).await.code(), Some("INVALID_TOKEN"), "{bogus}");
    }

    // 5 minutes: at the fifth minute it is over.
    let old = challenge(&app, "ch@example.com").await;
    app.clock.advance(Duration::minutes(5));
    assert_eq!(complete(&app, &old, &codes[1]).await.code(), Some("INVALID_TOKEN"));
    let recovery_left = |app: &TestApp| {
        let db = app.db().clone();
        async move {
            recovery_codes::Entity::find()
                .filter(recovery_codes::Column::UsedAt.is_null())
                .all(&db)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(recovery_left(&app).await, 9, "a refused challenge spends no code");

    // Five wrong codes end it: the right one after them is refused.
    let tried = challenge(&app, "ch@example.com").await;
    for _ in 0..5 {
        assert_eq!(complete(&app, &tried, "000000").await.code(), Some("INVALID_CREDENTIALS"));
    }
    let right = code_at(&secret, app.clock_now());
    assert_eq!(complete(&app, &tried, &right).await.code(), Some("INVALID_TOKEN"));
    // Four wrong and then the right one: in (in a new rate-limit window).
    app.clock.advance(Duration::minutes(15));
    let right = code_at(&secret, app.clock_now());
    let fresh = challenge(&app, "ch@example.com").await;
    for _ in 0..4 {
        assert_eq!(complete(&app, &fresh, "000000").await.code(), Some("INVALID_CREDENTIALS"));
    }
    assert!(complete(&app, &fresh, &right).await.body["data"]["completeSignIn"].is_object());

    // A password change between the two steps ends the challenge.
    let before_change = challenge(&app, "ch@example.com").await;
    app.change_password(&token, PW, "a new horse battery").await;
    app.clock.advance(Duration::seconds(30));
    let code = code_at(&secret, app.clock_now());
    assert_eq!(complete(&app, &before_change, &code).await.code(), Some("INVALID_TOKEN"));
}

async fn codes_sent_at_once_get_five_checks_not_more(app: TestApp) {
    let (token, _) = app.register_verified("burst@example.com", PW).await;
    enable(&app, &token).await;
    let challenge = challenge(&app, "burst@example.com").await;
    // Within the per-account limit (10 attempts: the login and 8 codes).
    let attempts = (0..8).map(|i| {
        let (app, challenge) = (&app, challenge.clone());
        async move { complete(app, &challenge, &format!("{:06}", 100_000 + i)).await }
    });
    let replies = futures_util::future::join_all(attempts).await;
    let wrong = replies.iter().filter(|r| r.code() == Some("INVALID_CREDENTIALS")).count();
    let ended = replies.iter().filter(|r| r.code() == Some("INVALID_TOKEN")).count();
    assert_eq!((wrong, ended), (5, 3), "{:?}", replies.iter().map(|r| r.code()).collect::<Vec<_>>());
}

/// The benchmark found this: on SQLite, second steps of different users at
/// the same moment answered SERVICE_UNAVAILABLE (a transaction that read
/// before writing lost the write lock). Every one must land, on every
/// backend, with the TOTP code and with a recovery code, and reauthenticate alike.
async fn many_users_complete_their_sign_ins_at_once(app: TestApp) {
    let mut pending = Vec::new();
    for i in 0..8 {
        let email = format!("crowd-{i}@example.com");
        let (token, _) = app.register_verified(&email, PW).await;
        let (secret, codes) = enable(&app, &token).await;
        pending.push((challenge(&app, &email).await, secret, codes, token));
    }
    let now = app.clock_now();
    let completions = pending.iter().enumerate().map(|(i, (challenge, secret, codes, _))| {
        let code = if i % 2 == 0 { code_at(secret, now) } else { codes[0].clone() };
        let (app, challenge) = (&app, challenge.clone());
        async move { complete(app, &challenge, &code).await }
    });
    for reply in futures_util::future::join_all(completions).await {
        assert!(reply.body["data"]["completeSignIn"]["token"].is_string(), "{}", reply.body);
    }
    let proofs = pending.iter().map(|(_, _, codes, token)| {
        let input = json!({ "input": { "password": PW, "code": codes[1] } });
        let (app, token) = (&app, token.clone());
        async move { app.authed(&token, REAUTH, input).await }
    });
    for reply in futures_util::future::join_all(proofs).await {
        assert_eq!(reply.body["data"]["reauthenticate"], true, "{}", reply.body);
    }
}

async fn wrong_codes_count_like_wrong_passwords(app: TestApp) {
    // AUTHGATE_RATE_LOGIN_ACCOUNT_IP is 10 per 15 minutes: logins with the
    // right password and wrong codes spend it; the right password alone
    // never resets it (only a completed sign-in does).
    let (token, _) = app.register_verified("thief@example.com", PW).await;
    let (secret, _) = enable(&app, &token).await;
    let mut spent = 0;
    let limited = loop {
        let reply = app.login("thief@example.com", PW).await;
        spent += 1;
        if reply.code() == Some("RATE_LIMITED") {
            break reply;
        }
        let challenge = str_of(&reply.body["errors"][0]["extensions"]["challenge"]);
        for _ in 0..4 {
            let reply = complete(&app, &challenge, "000000").await;
            spent += 1;
            if reply.code() == Some("RATE_LIMITED") {
                break;
            }
        }
        assert!(spent < 30, "never limited");
    };
    assert!(limited.body["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() > 0);
    assert_eq!(spent, 11, "the 11th attempt is refused");
    // A completed sign-in clears the counters (after the window, here).
    app.clock.advance(Duration::minutes(15));
    let challenge = challenge(&app, "thief@example.com").await;
    let signed = complete(&app, &challenge, &code_at(&secret, app.clock_now())).await;
    assert!(signed.body["data"]["completeSignIn"].is_object(), "{}", signed.body);
    for _ in 0..9 {
        assert_eq!(app.login("thief@example.com", PW).await.code(), Some("SECOND_FACTOR_REQUIRED"));
    }
}

/// Ten guesses an hour at the 6-digit code, from however many addresses;
/// the owner's trusted device keeps its own budget.
async fn codes_from_many_clients_meet_a_per_account_budget(app: TestApp) {
    let email = "many@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let (secret, _) = enable(&app, &token).await;
    // The owner signs in once on their device: it gets the device cookie.
    let owner_challenge = challenge(&app, email).await;
    let owner = complete(&app, &owner_challenge, &code_at(&secret, app.clock_now())).await;
    let device = crate::abuse::device_cookie(&owner);
    app.clock.advance(Duration::seconds(30));

    let guess = |ip: &'static str, challenge: String| {
        let app = &app;
        async move {
            let input = json!({ "input": { "challenge": challenge, "code": "000000" } });
            app.post().graphql(COMPLETE, input).peer_ip(ip).send().await
        }
    };
    let from = |ip: &'static str| {
        let app = &app;
        async move {
            let vars = json!({ "input": { "email": email, "password": PW } });
            let reply = app.post().graphql(LOGIN, vars).peer_ip(ip).send().await;
            str_of(&reply.body["errors"][0]["extensions"]["challenge"])
        }
    };
    let mut wrong = 0;
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let challenge = from(ip).await;
        for _ in 0..4 {
            if guess(ip, challenge.clone()).await.code() == Some("INVALID_CREDENTIALS") {
                wrong += 1;
            }
        }
    }
    assert_eq!(wrong, 10, "ten wrong codes an hour per account");
    // The next code is refused before it is checked, even the right one.
    let late = from("192.0.2.4").await;
    let input = json!({ "input": { "challenge": late, "code": code_at(&secret, app.clock_now()) } });
    let refused = app.post().graphql(COMPLETE, input).peer_ip("192.0.2.4").send().await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{}", refused.body);
    // The owner's device is not held back by it.
    let vars = json!({ "input": { "email": email, "password": PW } });
    let login = app.post().graphql(LOGIN, vars).header("cookie", &device).send().await;
    let challenge = str_of(&login.body["errors"][0]["extensions"]["challenge"]);
    let input = json!({ "input": { "challenge": challenge, "code": code_at(&secret, app.clock_now()) } });
    let signed = app.post().graphql(COMPLETE, input).header("cookie", &device).send().await;
    assert!(signed.body["data"]["completeSignIn"]["token"].is_string(), "{}", signed.body);
}

/// Each step-up operation, as `(name, document, variables)`, for a user
/// with a password whose id is `user` and a linked account `account`.
fn step_up_operations(account: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "changePassword",
            "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }",
            json!({ "i": { "currentPassword": PW, "newPassword": "another horse battery", "revokeOtherSessions": false } }),
        ),
        (
            "setPassword",
            "mutation($p: String!) { setPassword(newPassword: $p) }",
            json!({ "p": "another horse battery" }),
        ),
        ("unlinkAccount", "mutation($id: ID!) { unlinkAccount(id: $id) }", json!({ "id": account })),
        ("startTotpSetup", START_SETUP, json!({})),
        ("regenerateRecoveryCodes", "mutation { regenerateRecoveryCodes }", json!({})),
        ("disableTwoFactor", "mutation { disableTwoFactor }", json!({})),
        ("startPasskeyRegistration", "mutation { startPasskeyRegistration }", json!({})),
        (
            "removePasskey",
            "mutation($id: ID!) { removePasskey(id: $id) }",
            json!({ "id": "00000000-0000-4000-8000-000000000001" }),
        ),
        ("deleteAccount", "mutation($p: String!) { deleteAccount(password: $p) }", json!({ "p": PW })),
    ]
}

/// The operations driven here, and `linkOAuth` (in oauth.rs, it needs a
/// provider), are the one list of step-up operations.
#[test]
fn the_step_up_operations_driven_are_the_list() {
    let mut driven: Vec<&str> = step_up_operations("x").iter().map(|(name, _, _)| *name).collect();
    driven.push("linkOAuth");
    driven.sort();
    let mut listed = authgate::graphql::STEP_UP_OPERATIONS.to_vec();
    listed.sort();
    assert_eq!(driven, listed);
}

async fn every_step_up_operation_needs_a_recent_proof(app: TestApp) {
    // A two-factor user with a second session signed in before two-factor
    // was on: one factor. (linkOAuth, which needs a provider, is in oauth.rs.)
    let (token, user_id) = app.register_verified("step@example.com", PW).await;
    let old = str_of(&app.login("step@example.com", PW).await.body["data"]["login"]["token"]);
    let (secret, _) = enable(&app, &token).await;
    let me = app.authed(&token, crate::common::MY_SESSIONS, json!({})).await;
    let account = str_of(&me.body["data"]["me"]["accounts"][0]["id"]);
    assert!(!account.is_empty() && !user_id.is_empty(), "{}", me.body);
    for (name, document, vars) in step_up_operations(&account) {
        let reply = app.authed(&old, document, vars).await;
        assert_eq!(reply.code(), Some("REAUTHENTICATION_REQUIRED"), "{name} with one factor: {}", reply.body);
    }
    // The two-factor session, past the window: refused too, except the two
    // that take the password (checked below, they would change things).
    app.clock.advance(Duration::minutes(11));
    for (name, document, vars) in step_up_operations(&account) {
        if matches!(name, "changePassword" | "deleteAccount") {
            continue;
        }
        let reply = app.authed(&token, document, vars).await;
        assert_eq!(reply.code(), Some("REAUTHENTICATION_REQUIRED"), "{name} past the window: {}", reply.body);
    }
    // reauthenticate (password and code) on the old session: each is let through.
    let reauth = json!({ "input": { "password": PW, "code": code_at(&secret, app.clock_now()) } });
    assert_eq!(app.authed(&old, REAUTH, reauth).await.body["data"]["reauthenticate"], true);
    let expected: [(&str, &str); 9] = [
        ("changePassword", "true"),
        ("setPassword", "PASSWORD_ALREADY_SET"),
        ("unlinkAccount", "LAST_SIGN_IN_METHOD"),
        ("startTotpSetup", "object"),
        ("regenerateRecoveryCodes", "list"),
        ("disableTwoFactor", "true"),
        ("startPasskeyRegistration", "object"),
        ("removePasskey", "false"),
        ("deleteAccount", "INVALID_CREDENTIALS"),
    ];
    for ((name, document, vars), (_, outcome)) in step_up_operations(&account).into_iter().zip(expected) {
        let reply = app.authed(&old, document, vars).await;
        let data = &reply.body["data"][name];
        let seen = match reply.code() {
            Some(code) => code.to_owned(),
            None if data.is_object() => "object".into(),
            None if data.is_array() => "list".into(),
            None => data.to_string(),
        };
        assert_eq!(seen, outcome, "{name} after reauthenticate: {}", reply.body);
    }
    // deleteAccount with the (changed) password: a user without two-factor
    // now, and the password is proof enough without a window.
    app.clock.advance(Duration::hours(1));
    let delete = "mutation($p: String!) { deleteAccount(password: $p) }";
    let reply = app.authed(&old, delete, json!({ "p": "another horse battery" })).await;
    assert_eq!(reply.body["data"]["deleteAccount"], true, "{}", reply.body);
}

async fn reauthenticate_checks_each_part(app: TestApp) {
    let (token, _) = app.register_verified("re@example.com", PW).await;
    let (secret, codes) = enable(&app, &token).await;
    app.clock.advance(Duration::minutes(11));
    let before = my_session(&app, &token).await;
    let cases = [
        (json!({ "code": code_at(&secret, app.clock_now()) }), "BAD_USER_INPUT", Some("password")),
        (json!({ "password": PW }), "BAD_USER_INPUT", Some("code")),
        (
            json!({ "password": "wrong password!", "code": code_at(&secret, app.clock_now()) }),
            "INVALID_CREDENTIALS",
            None,
        ),
        (json!({ "password": PW, "code": "000000" }), "INVALID_CREDENTIALS", None),
    ];
    for (input, code, field) in cases {
        let reply = app.authed(&token, REAUTH, json!({ "input": input })).await;
        assert_eq!(reply.code(), Some(code), "{input}: {}", reply.body);
        assert_eq!(reply.field(), field);
    }
    assert_eq!(
        my_session(&app, &token).await["authenticatedAt"],
        before["authenticatedAt"],
        "nothing changed"
    );
    // A recovery code will do, once.
    let input = json!({ "input": { "password": PW, "code": codes[0] } });
    assert_eq!(app.authed(&token, REAUTH, input.clone()).await.body["data"]["reauthenticate"], true);
    let after = my_session(&app, &token).await;
    assert_ne!(after["authenticatedAt"], before["authenticatedAt"]);
    assert_eq!(after["assuranceLevel"], 2);
    assert_eq!(app.authed(&token, REAUTH, input).await.code(), Some("INVALID_CREDENTIALS"));
    // Counted per user like every password check: the 11th is refused.
    let mut last = None;
    for _ in 0..10 {
        let input = json!({ "input": { "password": "wrong password!", "code": "000000" } });
        last = app.authed(&token, REAUTH, input).await.code().map(str::to_owned);
    }
    assert_eq!(last.as_deref(), Some("RATE_LIMITED"));
    // Without a session: nothing to prove presence for.
    let anonymous = app.gql(REAUTH, json!({ "input": { "password": PW } })).await;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
}

/// A password user without two-factor: one factor is enough, a recent one.
/// The window's last second still counts; `reauthenticate` with the
/// password alone renews it (and keeps the session at level 1).
async fn the_window_and_reauthenticate_without_two_factor(app: TestApp) {
    let (token, _) = app.register_verified("window@example.com", PW).await;
    app.clock.advance(Duration::minutes(10));
    let edge = start_setup(&app, &token).await;
    assert!(edge.body["data"]["startTotpSetup"].is_object(), "the window's last second: {}", edge.body);
    app.clock.advance(Duration::seconds(1));
    assert_eq!(start_setup(&app, &token).await.code(), Some("REAUTHENTICATION_REQUIRED"));
    let wrong = app.authed(&token, REAUTH, json!({ "input": { "password": "wrong password!" } })).await;
    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    let missing = app.authed(&token, REAUTH, json!({ "input": {} })).await;
    assert_eq!((missing.code(), missing.field()), (Some("BAD_USER_INPUT"), Some("password")));
    let proof = app.authed(&token, REAUTH, json!({ "input": { "password": PW } })).await;
    assert_eq!(proof.body["data"]["reauthenticate"], true, "{}", proof.body);
    let session = my_session(&app, &token).await;
    assert_eq!(session["assuranceLevel"], 1, "a password is one factor");
    assert!(start_setup(&app, &token).await.body["data"]["startTotpSetup"].is_object());
}

async fn start_setup(app: &TestApp, token: &str) -> Reply {
    app.authed(token, START_SETUP, json!({})).await
}

async fn disabling_removes_the_second_step(app: TestApp) {
    let (token, _) = app.register_verified("off@example.com", PW).await;
    enable(&app, &token).await;
    let _ = challenge(&app, "off@example.com").await;
    let reply = app.authed(&token, "mutation { disableTwoFactor }", json!({})).await;
    assert_eq!(reply.body["data"]["disableTwoFactor"], true, "{}", reply.body);
    assert_eq!(app.count(totp_credentials::Entity).await, 0);
    assert_eq!(app.count(recovery_codes::Entity).await, 0);
    assert_eq!(app.count(sign_in_challenges::Entity).await, 0, "pending sign-ins end too");
    let me = app.authed(&token, SECURITY, json!({})).await;
    assert_eq!(me.body["data"]["me"]["twoFactorEnabled"], false);
    assert!(app.login("off@example.com", PW).await.body["data"]["login"]["token"].is_string());
    let again = app.authed(&token, "mutation { disableTwoFactor }", json!({})).await;
    assert_eq!(again.body["data"]["disableTwoFactor"], false);
    let regenerate = app.authed(&token, "mutation { regenerateRecoveryCodes }", json!({})).await;
    assert_eq!(regenerate.code(), Some("TWO_FACTOR_NOT_ENABLED"));
    let mails = app.wait_for_mails("off@example.com", NOTICE, 2).await;
    assert!(mails[1].contains("turned off"), "{}", mails[1]);
}

/// Rotating `AUTHGATE_SECRET_KEY`: with the old key as a previous one,
/// secrets still open; `reseal` moves them to the new key, after which the
/// old one can go. Without it they do not open (and nothing signs in).
async fn a_rotated_server_key_still_opens_secrets_and_reseal_moves_them(app: TestApp) {
    let app = app.shareable().await;
    let old_key = app.state.auth.config.secret_key.clone();
    let (token, _) = app.register_verified("rotate@example.com", PW).await;
    let (secret, _) = enable(&app, &token).await;
    let sealed_before = totp_credentials::Entity::find().one(app.db()).await.unwrap().unwrap().secret;
    let new_key = "bmV3LXNlY3JldC1rZXktb2YtMzItYnl0ZXMtdGVzdHM=";
    let only_new = |c: &mut domain::config::Config| c.secret_key = Some(new_key.into());

    // Only the new key: the secret does not open; the sign-in fails, closed.
    let lost = app.second_instance_with(only_new).await;
    let first = challenge(&app, "rotate@example.com").await;
    let input = json!({ "input": { "challenge": first, "code": code_at(&secret, app.clock_now()) } });
    let refused = app.post_to(&lost).graphql(COMPLETE, input).send().await;
    assert_eq!(refused.code(), Some("INTERNAL_SERVER_ERROR"), "{}", refused.body);
    // Which is why `authgate serve` refuses to start so, and says what to do.
    let lost_state = app.second_state(only_new).await;
    let refusal = authgate::preflight(&lost_state.auth).await.expect_err("a secret no key opens").to_string();
    assert!(
        refusal.starts_with("1 two-factor secrets do not open")
            && refusal.contains("AUTHGATE_SECRET_KEY_PREVIOUS")
            && refusal.contains("authgate reseal"),
        "{refusal}"
    );
    authgate::preflight(&app.state.auth).await.expect("the key it was sealed with starts");

    // The new key with the old one as previous: it opens, and reseal moves it.
    let rotating = app
        .second_state(|c| {
            c.secret_key = Some(new_key.into());
            c.secret_key_previous = old_key.clone();
        })
        .await;
    assert_eq!(domain::factors::totp::reseal_all(&rotating.auth).await.unwrap(), (1, 0));
    assert_eq!(domain::factors::totp::reseal_all(&rotating.auth).await.unwrap(), (0, 0), "done once");
    // The signing key made at start-up (preflight) moves with it.
    assert_eq!(domain::access::keys::reseal_all(&rotating.auth).await.unwrap(), (1, 0));
    let sealed_after = totp_credentials::Entity::find().one(app.db()).await.unwrap().unwrap().secret;
    assert_ne!(sealed_after, sealed_before);

    // Now the new key alone signs in.
    app.clock.advance(Duration::seconds(30));
    let second = challenge(&app, "rotate@example.com").await;
    let input = json!({ "input": { "challenge": second, "code": code_at(&secret, app.clock_now()) } });
    let signed = app.post_to(&lost).graphql(COMPLETE, input).send().await;
    assert!(signed.body["data"]["completeSignIn"]["token"].is_string(), "{}", signed.body);
    // And the old key alone no longer opens it: reseal reports it, and
    // a server with the old key alone would not start.
    assert_eq!(domain::factors::totp::reseal_all(&app.state.auth).await.unwrap(), (0, 1));
    assert!(authgate::preflight(&app.state.auth).await.is_err());
    authgate::preflight(&lost_state.auth).await.expect("the new key opens every secret now");
}

/// Every field of the schema that returns a token (`AuthPayload`) and every
/// place in the code that creates a session or sets the session cookie is
/// listed here; each is shown to give a two-factor user no session without
/// the second factor. A new one fails this test until it is added.
async fn every_way_to_a_session_is_gated(app: TestApp) {
    // 1. The schema's token-returning fields.
    let sdl = authgate::graphql::sdl();
    let schema = apollo_compiler::Schema::parse_and_validate(sdl, "schema.graphql").expect("valid");
    let mutation = schema.get_object("MutationRoot").expect("MutationRoot");
    let mut returning_tokens: Vec<&str> = mutation
        .fields
        .iter()
        .filter(|(_, f)| f.ty.inner_named_type().as_str() == "AuthPayload")
        .map(|(name, _)| name.as_str())
        .collect();
    returning_tokens.sort();
    assert_eq!(
        returning_tokens,
        ["completeSignIn", "finishPasskeySignIn", "impersonateUser", "login", "register"]
    );
    // 2. The code's session creations and session cookies, by file.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut creating = Vec::new();
    let mut cookies = Vec::new();
    for path in crate::layers::rust_files(&root.join("domain/src"))
        .into_iter()
        .chain(crate::layers::rust_files(&root.join("src")))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root).unwrap().display().to_string();
        for _ in text.matches("session::create(") {
            creating.push(name.clone());
        }
        for _ in text.matches("Effect::SessionCookie {") {
            cookies.push(name.clone());
        }
    }
    creating.sort();
    cookies.sort();
    assert_eq!(
        creating,
        [
            "domain/src/admin/impersonate.rs",
            "domain/src/sign_in/oauth/callback.rs",
            "domain/src/sign_in/passkey.rs",
            "domain/src/sign_in/password.rs",
            "domain/src/sign_in/register.rs",
            "domain/src/sign_in/second_step.rs"
        ],
        "register, login, the OAuth callback, finishPasskeySignIn (two factors by itself), completeSignIn and impersonateUser"
    );
    // A refreshed existing session, the payload of a sign-in, the effect
    // turned into the header, the OAuth callback.
    assert_eq!(
        cookies,
        [
            "src/graphql/guard.rs",
            "src/graphql/mutation/admin.rs",
            "src/graphql/mutation/sign_in.rs",
            "src/http/cookie.rs",
            "src/http/oauth.rs"
        ]
    );

    // Each, for a two-factor user:
    let (token, _) = app.register_verified("gated@example.com", PW).await;
    enable(&app, &token).await;
    let (other, _) = app.register_verified("not-an-admin@example.com", PW).await;
    // Every session in the table: none may appear, whoever's.
    let before = app.count(sessions::Entity).await;
    // register: the address is taken, no session.
    let register = app
        .gql(crate::common::REGISTER, json!({ "input": { "email": "gated@example.com", "password": PW } }))
        .await;
    assert_eq!(register.code(), Some("EMAIL_TAKEN"));
    // login: a challenge, no token, no cookie.
    let login = app
        .post()
        .graphql(LOGIN, json!({ "input": { "email": "gated@example.com", "password": PW } }))
        .send()
        .await;
    assert_eq!(login.code(), Some("SECOND_FACTOR_REQUIRED"));
    assert_eq!(session_cookie(&login), None);
    // completeSignIn: nothing without a right code.
    let challenge = str_of(&login.body["errors"][0]["extensions"]["challenge"]);
    for code in ["", "000000", "aaaa-bbbb-cccc"] {
        let reply = complete(&app, &challenge, code).await;
        assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"));
        assert_eq!(session_cookie(&reply), None);
    }
    // finishPasskeySignIn: a passkey is two factors (user verification
    // required); without a verified assertion, nothing. The passkey paths
    // themselves: `passkeys::`.
    let started = app.gql("mutation { startPasskeySignIn { challenge options } }", json!({})).await;
    let handle = str_of(&started.body["data"]["startPasskeySignIn"]["challenge"]);
    let finish = "mutation($i: FinishPasskeySignInInput!) { finishPasskeySignIn(input: $i) { token } }";
    let forged = json!({ "i": { "challenge": handle, "credential": { "id": "x", "rawId": "eA", "type": "public-key", "response": {} } } });
    let reply = app.post().graphql(finish, forged).send().await;
    assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "{}", reply.body);
    assert_eq!(session_cookie(&reply), None);
    // impersonateUser: an admin's way (their own step-up, with two factors
    // when they have them), never the user's: without the permission,
    // nothing. Its limits: `admin::impersonation_is_the_user_within_limits`.
    let user_id = str_of(&app.me(&token).await.body["data"]["me"]["id"]);
    let impersonate = "mutation($u: ID!) { impersonateUser(input: { userId: $u, reason: \"x\" }) { token } }";
    let reply = app.post().graphql(impersonate, json!({ "u": user_id })).cookie(&other).send().await;
    assert_eq!(reply.code(), Some("PERMISSION_DENIED"), "{}", reply.body);
    assert_eq!(session_cookie(&reply), None);
    // The guard only refreshes a session that already exists (no token, no cookie).
    let anonymous = app.gql("query { me { id } }", json!({})).await;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
    assert_eq!(session_cookie(&anonymous), None);
    assert_eq!(app.count(sessions::Entity).await, before);
    // The OAuth callback: `oauth::a_two_factor_user_meets_the_second_step_after_a_provider`.
}

fn code_budget(n: u32) -> impl FnOnce(&mut domain::config::Config) {
    move |c| c.rates.set(domain::config::Rule::SecondFactorAccount, format!("{n}/1h").parse().unwrap())
}

/// A thief who had the password before the owner turned two-factor on
/// kept the device cookies of those sign-ins. Turning it on ends their
/// trust, so each is just another client: together they get the one
/// per-account budget of guesses, not one budget each.
async fn devices_trusted_before_two_factor_get_no_extra_guesses(app: TestApp) {
    let app = app.sibling(code_budget(4)).await;
    let email = "collected@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let mut cookies = Vec::new();
    for _ in 0..3 {
        cookies.push(crate::abuse::device_cookie(&app.login(email, PW).await));
    }
    enable(&app, &token).await;
    let mut answers = Vec::new();
    for cookie in &cookies {
        let vars = json!({ "input": { "email": email, "password": PW } });
        let login = app.post().graphql(LOGIN, vars).header("cookie", cookie).send().await;
        let challenge = str_of(&login.body["errors"][0]["extensions"]["challenge"]);
        for _ in 0..2 {
            let input = json!({ "input": { "challenge": challenge, "code": "000000" } });
            let reply = app.post().graphql(COMPLETE, input).header("cookie", cookie).send().await;
            answers.push(reply.code().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        answers,
        ["INVALID_CREDENTIALS"; 4].into_iter().chain(["RATE_LIMITED"; 2]).collect::<Vec<_>>(),
        "four guesses in all, whatever cookies come with them"
    );
}

/// Every check of a code, wherever it happens, spends one per-account
/// budget: a stolen session guessing through `reauthenticate` uses up
/// what `completeSignIn` would have had, and the other way round.
async fn reauthenticate_and_complete_sign_in_share_one_code_budget(app: TestApp) {
    let app = app.sibling(code_budget(3)).await;
    let email = "shared@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let (secret, _) = enable(&app, &token).await;
    let wrong = json!({ "input": { "password": PW, "code": "000000" } });
    for _ in 0..2 {
        assert_eq!(app.authed(&token, REAUTH, wrong.clone()).await.code(), Some("INVALID_CREDENTIALS"));
    }
    let first = challenge(&app, email).await;
    assert_eq!(complete(&app, &first, "000000").await.code(), Some("INVALID_CREDENTIALS"));
    let refused = complete(&app, &first, &code_at(&secret, app.clock_now())).await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "even the right code: {}", refused.body);
    let right = json!({ "input": { "password": PW, "code": code_at(&secret, app.clock_now()) } });
    assert_eq!(app.authed(&token, REAUTH, right).await.code(), Some("RATE_LIMITED"));
}

/// A challenge past its five codes is refused before anything is counted
/// (it spends none of the account's code budget), and a right code through
/// `reauthenticate` makes the budget whole again.
async fn a_spent_challenge_costs_no_code_budget_and_a_right_code_restores_it(app: TestApp) {
    let app = app.sibling(code_budget(6)).await;
    let email = "budget@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let (secret, _) = enable(&app, &token).await;
    let spent = challenge(&app, email).await;
    for _ in 0..5 {
        assert_eq!(complete(&app, &spent, "000000").await.code(), Some("INVALID_CREDENTIALS"));
    }
    for _ in 0..3 {
        assert_eq!(complete(&app, &spent, "000000").await.code(), Some("INVALID_TOKEN"), "out of codes");
    }
    // One guess of the six is left, whatever the spent challenge was sent.
    let next = challenge(&app, email).await;
    assert_eq!(complete(&app, &next, "000000").await.code(), Some("INVALID_CREDENTIALS"));
    assert_eq!(complete(&app, &next, "000000").await.code(), Some("RATE_LIMITED"));

    // A right code (here through reauthenticate) restores the budget.
    let app2 = app.sibling(code_budget(3)).await;
    let (token, _) = app2.register_verified("restored@example.com", PW).await;
    let (secret2, _) = enable(&app2, &token).await;
    let wrong = json!({ "input": { "password": PW, "code": "000000" } });
    for _ in 0..2 {
        assert_eq!(app2.authed(&token, REAUTH, wrong.clone()).await.code(), Some("INVALID_CREDENTIALS"));
    }
    let right = json!({ "input": { "password": PW, "code": code_at(&secret2, app2.clock_now()) } });
    assert_eq!(app2.authed(&token, REAUTH, right).await.body["data"]["reauthenticate"], true);
    for _ in 0..2 {
        assert_eq!(
            app2.authed(&token, REAUTH, wrong.clone()).await.code(),
            Some("INVALID_CREDENTIALS"),
            "the budget was whole again"
        );
    }
    let _ = secret;
}
