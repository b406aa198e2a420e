//! Passkeys through the real router, with a software authenticator
//! (`common::authenticator`) doing what a browser and a platform
//! authenticator do, and what a forger or a clone would.

use chrono::Duration;
use entity::{passkey_challenges, passkeys, sessions};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{Reply, TestApp, authenticator::Authenticator, str_of},
};

both_backends!(
    register_then_sign_in_without_an_email,
    ceremonies_are_single_use_short_lived_and_bound,
    assertions_that_do_not_verify_sign_nobody_in,
    registrations_that_do_not_verify_store_nothing,
    passkeys_are_ways_in_behind_step_up,
    a_passkey_proves_presence_for_its_owner_only,
    a_reset_that_removes_every_other_way_in_removes_passkeys,
    a_passkey_meets_the_verification_rule,
    an_account_holds_at_most_twenty_passkeys,
    anonymous_ceremonies_are_bounded_for_the_whole_server,
);

const PW: &str = "correct horse battery";
/// The app's origin (`AUTHGATE_APP_URL`'s default): an allowed origin.
const APP: &str = "http://localhost:3000";
const START_REGISTRATION: &str = "mutation { startPasskeyRegistration }";
const FINISH_REGISTRATION: &str = "mutation($i: FinishPasskeyRegistrationInput!) { finishPasskeyRegistration(input: $i) { id name createdAt lastUsedAt } }";
const START_SIGN_IN: &str = "mutation { startPasskeySignIn { challenge options } }";
const FINISH_SIGN_IN: &str =
    "mutation($i: FinishPasskeySignInInput!) { finishPasskeySignIn(input: $i) { token user { email } } }";
const MY_PASSKEYS: &str =
    "{ me { passkeys { id name createdAt lastUsedAt } sessions { current assuranceLevel } } }";
const REMOVE: &str = "mutation($id: ID!) { removePasskey(id: $id) }";
const REAUTH: &str = "mutation($i: ReauthenticateInput!) { reauthenticate(input: $i) }";

/// Registers a passkey for the session `token`: the authenticator and the new `Passkey`.
pub(crate) async fn add_passkey(app: &TestApp, token: &str, name: &str) -> (Authenticator, Value) {
    // Only a proved address may add a way in.
    app.verify_address(token).await;
    let options = app.authed(token, START_REGISTRATION, json!({})).await;
    let options = options.body["data"]["startPasskeyRegistration"].clone();
    assert!(options.is_object(), "{options}");
    let (authenticator, credential) = Authenticator::register(&options, APP);
    let reply = finish_registration(app, token, credential, name).await;
    let passkey = reply.body["data"]["finishPasskeyRegistration"].clone();
    assert!(passkey.is_object(), "{}", reply.body);
    (authenticator, passkey)
}

async fn finish_registration(app: &TestApp, token: &str, credential: Value, name: &str) -> Reply {
    app.authed(token, FINISH_REGISTRATION, json!({ "i": { "credential": credential, "name": name } })).await
}

/// A sign-in ceremony: its handle and request options.
async fn start_sign_in(app: &TestApp) -> (String, Value) {
    let reply = app.gql(START_SIGN_IN, json!({})).await;
    let started = &reply.body["data"]["startPasskeySignIn"];
    assert!(started.is_object(), "{}", reply.body);
    (str_of(&started["challenge"]), started["options"].clone())
}

async fn finish_sign_in(app: &TestApp, challenge: &str, credential: Value) -> Reply {
    app.gql(FINISH_SIGN_IN, json!({ "i": { "challenge": challenge, "credential": credential } })).await
}

/// Signs in with `authenticator` from the app's origin.
pub(crate) async fn sign_in(app: &TestApp, authenticator: &mut Authenticator) -> Reply {
    let (challenge, options) = start_sign_in(app).await;
    let credential = authenticator.assert(&options, APP);
    finish_sign_in(app, &challenge, credential).await
}

async fn register_then_sign_in_without_an_email(app: TestApp) {
    let (token, user_id) = app.register_verified("passkey@example.com", PW).await;
    let options =
        app.authed(&token, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .clone();
    // The JSON form of PublicKeyCredentialCreationOptions: discoverable,
    // user verification required, bound to the relying party `localhost`.
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["user"]["name"], "passkey@example.com");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required", "{options}");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert!(str_of(&options["challenge"]).len() >= 43, "a 32-byte challenge: {options}");
    let (mut authenticator, credential) = Authenticator::register(&options, APP);
    let reply = finish_registration(&app, &token, credential, "Laptop").await;
    let passkey = &reply.body["data"]["finishPasskeyRegistration"];
    assert_eq!(passkey["name"], "Laptop", "{}", reply.body);
    assert!(passkey["lastUsedAt"].is_null());
    let row = passkeys::Entity::find().one(app.db()).await.unwrap().expect("stored");
    assert_eq!(row.credential_id, authenticator.credential_id);
    assert_eq!(row.user_id.to_string(), user_id);
    assert_eq!((row.counter, row.transports.as_deref()), (0, Some(r#"["internal"]"#)));
    assert!(row.credential.contains("\"cred_id\""), "the library's credential with its public key");
    let notice =
        app.wait_for_mails("passkey@example.com", "A new way to sign in was added to your account", 1).await;
    // Named as a passkey, never by the name its owner (or an intruder) chose:
    // a mail client could show that text as a link.
    assert!(notice[0].contains("A passkey") && !notice[0].contains("Laptop"), "{}", notice[0]);
    // The same authenticator cannot register a second passkey for the account.
    let again =
        app.authed(&token, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .clone();
    let excluded = again["excludeCredentials"].as_array().expect("excludeCredentials");
    assert_eq!(excluded.len(), 1, "{again}");

    // Sign-in: no email, no session before it, two factors after.
    let (challenge, options) = start_sign_in(&app).await;
    assert_eq!(options["rpId"], "localhost", "{options}");
    assert_eq!(options["userVerification"], "required");
    assert!(options["allowCredentials"].as_array().is_none_or(Vec::is_empty), "discoverable: {options}");
    let credential = authenticator.assert(&options, APP);
    let reply = finish_sign_in(&app, &challenge, credential).await;
    let payload = &reply.body["data"]["finishPasskeySignIn"];
    assert_eq!(payload["user"]["email"], "passkey@example.com", "{}", reply.body);
    let session = str_of(&payload["token"]);
    assert!(reply.set_cookie().is_some_and(|c| c.starts_with(&format!("session_token={session}"))));
    let me = app.authed(&session, MY_PASSKEYS, json!({})).await;
    let current =
        me.body["data"]["me"]["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).cloned();
    assert_eq!(current.unwrap()["assuranceLevel"], 2, "{}", me.body);
    let listed = &me.body["data"]["me"]["passkeys"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{}", me.body);
    assert!(listed[0]["lastUsedAt"].is_string());
    let row = passkeys::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(row.counter, 1, "the counter is kept");
    // Each sign-in is a new ceremony; the counter moves on.
    assert!(sign_in(&app, &mut authenticator).await.body["data"]["finishPasskeySignIn"].is_object());
    assert_eq!(passkeys::Entity::find().one(app.db()).await.unwrap().unwrap().counter, 2);
    // Another user's session sees none of them.
    let (other, _) = app.register_verified("other@example.com", PW).await;
    let theirs = app.authed(&other, MY_PASSKEYS, json!({})).await;
    assert_eq!(theirs.body["data"]["me"]["passkeys"], json!([]));
}

async fn ceremonies_are_single_use_short_lived_and_bound(app: TestApp) {
    let (token, _) = app.register_verified("once@example.com", PW).await;
    let (mut authenticator, _) = add_passkey(&app, &token, "Phone").await;
    // A sign-in's answer replayed: the ceremony is spent.
    let (challenge, options) = start_sign_in(&app).await;
    let credential = authenticator.assert(&options, APP);
    assert!(
        finish_sign_in(&app, &challenge, credential.clone()).await.body["data"]["finishPasskeySignIn"]
            .is_object()
    );
    assert_eq!(finish_sign_in(&app, &challenge, credential).await.code(), Some("INVALID_TOKEN"));
    // A wrong answer spends it too: no second try with the same challenge.
    let (challenge, options) = start_sign_in(&app).await;
    let mut wrong = authenticator.clone();
    let forged = wrong.assert(&options, "https://evil.example");
    assert_eq!(finish_sign_in(&app, &challenge, forged).await.code(), Some("INVALID_CREDENTIALS"));
    let right = authenticator.assert(&options, APP);
    assert_eq!(finish_sign_in(&app, &challenge, right).await.code(), Some("INVALID_TOKEN"));
    // Five minutes, not more.
    let (challenge, options) = start_sign_in(&app).await;
    app.clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let late = authenticator.assert(&options, APP);
    assert_eq!(finish_sign_in(&app, &challenge, late).await.code(), Some("INVALID_TOKEN"));
    // Handles that cannot be one: refused before a lookup.
    let long = "A".repeat(44);
    for handle in ["", "not-a-challenge", long.as_str()] {
        let credential = authenticator.assert(&options, APP);
        assert_eq!(
            finish_sign_in(&app, handle, credential).await.code(),
            Some("INVALID_TOKEN"),
            "{handle:?}"
        );
    }

    // A registration: for the session that began it, once, within 5 minutes.
    let (token, _) = app.register_verified("bound@example.com", PW).await;
    let second = str_of(&app.login("bound@example.com", PW).await.body["data"]["login"]["token"]);
    let options =
        app.authed(&token, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .clone();
    let (_, credential) = Authenticator::register(&options, APP);
    let elsewhere = finish_registration(&app, &second, credential.clone(), "Stolen").await;
    assert_eq!(elsewhere.code(), Some("INVALID_TOKEN"), "another session of the user: {}", elsewhere.body);
    assert!(finish_registration(&app, &token, credential.clone(), "Mine").await.body["data"]["finishPasskeyRegistration"].is_object());
    assert_eq!(finish_registration(&app, &token, credential, "Again").await.code(), Some("INVALID_TOKEN"));
    let options =
        app.authed(&token, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .clone();
    app.clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let (_, credential) = Authenticator::register(&options, APP);
    assert_eq!(finish_registration(&app, &token, credential, "Late").await.code(), Some("INVALID_TOKEN"));
    // Spent and expired ceremonies leave no rows behind after cleanup.
    domain::cleanup::run_once(&app.state.auth).await.unwrap();
    assert_eq!(app.count(passkey_challenges::Entity).await, 0);
}

async fn assertions_that_do_not_verify_sign_nobody_in(app: TestApp) {
    let (token, _) = app.register_verified("victim@example.com", PW).await;
    let (authenticator, _) = add_passkey(&app, &token, "Key").await;
    let (other_token, other_id) = app.register_verified("mallory@example.com", PW).await;
    let (mallory, _) = add_passkey(&app, &other_token, "Mallory's").await;
    let sessions_before = app.count(sessions::Entity).await;
    let refused = |what: &'static str| {
        move |reply: Reply| {
            assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "{what}: {}", reply.body);
            assert!(reply.set_cookie().is_none(), "{what}");
        }
    };
    // Another origin (a phishing page relaying the ceremony).
    let (challenge, options) = start_sign_in(&app).await;
    let credential = authenticator.clone().assert(&options, "https://login.evil.example");
    refused("wrong origin")(finish_sign_in(&app, &challenge, credential).await);
    // Signed for another relying party.
    let (challenge, options) = start_sign_in(&app).await;
    let mut elsewhere = authenticator.clone();
    elsewhere.rp_id = "evil.example".into();
    refused("wrong RP ID")(finish_sign_in(&app, &challenge, elsewhere.assert(&options, APP)).await);
    // Without user verification (a passkey is two factors only with it).
    let (challenge, options) = start_sign_in(&app).await;
    let mut careless = authenticator.clone();
    careless.verifies_user = false;
    refused("no user verification")(finish_sign_in(&app, &challenge, careless.assert(&options, APP)).await);
    // Another user's passkey claiming to be the victim's.
    let (challenge, options) = start_sign_in(&app).await;
    let mut impostor = mallory.clone();
    impostor.user_handle = authenticator.user_handle.clone();
    refused("another user's credential")(
        finish_sign_in(&app, &challenge, impostor.assert(&options, APP)).await,
    );
    // A cloned authenticator: the original signs in, then the clone, whose
    // counter did not move past the stored one.
    let mut original = authenticator.clone();
    let mut clone = authenticator.clone();
    assert!(sign_in(&app, &mut original).await.body["data"]["finishPasskeySignIn"].is_object());
    refused("cloned authenticator")(sign_in(&app, &mut clone).await);
    // Garbage where the credential goes.
    let (challenge, _) = start_sign_in(&app).await;
    refused("not a credential")(finish_sign_in(&app, &challenge, json!({ "id": 7, "response": "x" })).await);
    // One session was made in all this: the original's.
    assert_eq!(app.count(sessions::Entity).await, sessions_before + 1);
    // A removed passkey signs nobody in.
    let mine = app.authed(&other_token, MY_PASSKEYS, json!({})).await;
    let id = str_of(&mine.body["data"]["me"]["passkeys"][0]["id"]);
    assert_eq!(
        app.authed(&other_token, REMOVE, json!({ "id": id })).await.body["data"]["removePasskey"],
        true
    );
    let mut gone = mallory;
    refused("removed passkey")(sign_in(&app, &mut gone).await);
    assert!(!other_id.is_empty());
}

async fn registrations_that_do_not_verify_store_nothing(app: TestApp) {
    let (token, _) = app.register_verified("careful@example.com", PW).await;
    let start = || async {
        app.authed(&token, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .clone()
    };
    let options = start().await;
    let (_, credential) = Authenticator::register(&options, "https://evil.example");
    assert_eq!(finish_registration(&app, &token, credential, "x").await.code(), Some("INVALID_CREDENTIALS"));
    let mut options = start().await;
    options["rp"]["id"] = json!("evil.example");
    let (_, credential) = Authenticator::register(&options, APP);
    assert_eq!(finish_registration(&app, &token, credential, "x").await.code(), Some("INVALID_CREDENTIALS"));
    let options = start().await;
    let (mut lazy, _) = Authenticator::register(&options, APP);
    lazy.verifies_user = false;
    let credential = lazy.attest(&options, APP);
    assert_eq!(finish_registration(&app, &token, credential, "x").await.code(), Some("INVALID_CREDENTIALS"));
    let options = start().await;
    let (_, credential) = Authenticator::register(&options, APP);
    let long = "n".repeat(101);
    let reply = finish_registration(&app, &token, credential, &long).await;
    assert_eq!((reply.code(), reply.field()), (Some("BAD_USER_INPUT"), Some("name")), "{}", reply.body);
    let reply =
        app.authed(&token, FINISH_REGISTRATION, json!({ "i": { "credential": "not an object" } })).await;
    assert_eq!((reply.code(), reply.field()), (Some("BAD_USER_INPUT"), Some("credential")), "{}", reply.body);
    assert_eq!(app.count(passkeys::Entity).await, 0);
    // A credential id registered already (one authenticator, two accounts) is refused.
    let (_, first) = add_passkey(&app, &token, "First").await;
    assert!(first.is_object());
    let stored = passkeys::Entity::find().one(app.db()).await.unwrap().unwrap();
    let (someone, _) = app.register_verified("someone@example.com", PW).await;
    let options =
        app.authed(&someone, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .clone();
    let (mut copy, _) = Authenticator::register(&options, APP);
    copy.credential_id = stored.credential_id.clone();
    let reply = finish_registration(&app, &someone, copy.attest(&options, APP), "Copy").await;
    assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "{}", reply.body);
    assert_eq!(app.count(passkeys::Entity).await, 1);
}

async fn passkeys_are_ways_in_behind_step_up(app: TestApp) {
    let (token, _) = app.register_verified("ways@example.com", PW).await;
    let (mut authenticator, passkey) = add_passkey(&app, &token, "Only").await;
    let id = str_of(&passkey["id"]);
    // Step-up: a session past the window can neither add nor remove one.
    app.clock.advance(Duration::minutes(11));
    assert_eq!(
        app.authed(&token, START_REGISTRATION, json!({})).await.code(),
        Some("REAUTHENTICATION_REQUIRED")
    );
    assert_eq!(
        app.authed(&token, REMOVE, json!({ "id": id })).await.code(),
        Some("REAUTHENTICATION_REQUIRED")
    );
    // A passkey sign-in is recent and two factors.
    let fresh = str_of(&sign_in(&app, &mut authenticator).await.body["data"]["finishPasskeySignIn"]["token"]);
    // Other users' and unknown ids: false.
    let (other, _) = app.register_verified("bystander@example.com", PW).await;
    for unknown in [id.as_str(), "00000000-0000-4000-8000-000000000009", "not-an-id"] {
        let reply = app.authed(&other, REMOVE, json!({ "id": unknown })).await;
        assert_eq!(reply.body["data"]["removePasskey"], false, "{unknown}: {}", reply.body);
    }
    // The password can go now (the passkey is a way in)…
    let accounts = app.authed(&fresh, "{ me { accounts { id } } }", json!({})).await;
    let password = str_of(&accounts.body["data"]["me"]["accounts"][0]["id"]);
    let unlink = "mutation($id: ID!) { unlinkAccount(id: $id) }";
    let reply = app.authed(&fresh, unlink, json!({ "id": password })).await;
    assert_eq!(reply.body["data"]["unlinkAccount"], true, "{}", reply.body);
    // …and then the passkey is the last one: it stays.
    let reply = app.authed(&fresh, REMOVE, json!({ "id": id })).await;
    assert_eq!(reply.code(), Some("LAST_SIGN_IN_METHOD"), "{}", reply.body);
    // A second passkey makes the first removable; the owner is told.
    let (_, second) = add_passkey(&app, &fresh, "Spare").await;
    assert!(second.is_object());
    assert_eq!(app.authed(&fresh, REMOVE, json!({ "id": id })).await.body["data"]["removePasskey"], true);
    app.wait_for_mails("ways@example.com", "A passkey was removed from your account", 1).await;
    assert_eq!(sign_in(&app, &mut authenticator).await.code(), Some("INVALID_CREDENTIALS"));
    // Deleting the account takes its passkeys along.
    let delete = "mutation($p: String!) { deleteAccount(password: $p) }";
    assert_eq!(app.authed(&fresh, delete, json!({ "p": "" })).await.body["data"]["deleteAccount"], true);
    assert_eq!(app.count(passkeys::Entity).await, 0);
}

async fn a_passkey_proves_presence_for_its_owner_only(app: TestApp) {
    let (token, _) = app.register_verified("present@example.com", PW).await;
    let (mut authenticator, _) = add_passkey(&app, &token, "Mine").await;
    let (other, _) = app.register_verified("notme@example.com", PW).await;
    let (mut theirs, _) = add_passkey(&app, &other, "Theirs").await;
    app.clock.advance(Duration::minutes(11));
    assert_eq!(
        app.authed(&token, START_REGISTRATION, json!({})).await.code(),
        Some("REAUTHENTICATION_REQUIRED")
    );
    // Another user's passkey proves nothing about this session.
    let (challenge, options) = start_sign_in(&app).await;
    let input = json!({ "i": { "passkey": theirs.assert(&options, APP), "challenge": challenge } });
    assert_eq!(app.authed(&token, REAUTH, input).await.code(), Some("INVALID_CREDENTIALS"));
    // A passkey without its challenge.
    let (_, options) = start_sign_in(&app).await;
    let input = json!({ "i": { "passkey": authenticator.assert(&options, APP) } });
    let reply = app.authed(&token, REAUTH, input).await;
    assert_eq!((reply.code(), reply.field()), (Some("BAD_USER_INPUT"), Some("challenge")), "{}", reply.body);
    // The owner's: presence proved, two factors, step-up operations open.
    let (challenge, options) = start_sign_in(&app).await;
    let input = json!({ "i": { "passkey": authenticator.assert(&options, APP), "challenge": challenge } });
    assert_eq!(app.authed(&token, REAUTH, input).await.body["data"]["reauthenticate"], true);
    let me = app.authed(&token, MY_PASSKEYS, json!({})).await;
    assert_eq!(me.body["data"]["me"]["sessions"][0]["assuranceLevel"], 2, "{}", me.body);
    assert!(
        app.authed(&token, START_REGISTRATION, json!({})).await.body["data"]["startPasskeyRegistration"]
            .is_object()
    );
    let used = passkeys::Entity::find()
        .filter(passkeys::Column::Name.eq("Mine"))
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(used.last_used_at.is_some() && used.counter >= 1);
}

/// A reset asked to leave the new password as the only way in removes a
/// passkey an intruder registered; a plain reset keeps the owner's.
async fn a_reset_that_removes_every_other_way_in_removes_passkeys(app: TestApp) {
    let (token, _) = app.register_verified("reset-keys@example.com", PW).await;
    let (mut planted, _) = add_passkey(&app, &token, "Not mine").await;
    let reset = "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }";
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    app.gql(request, json!({ "e": "reset-keys@example.com" })).await;
    let link = app.mailed_token("reset-keys@example.com", "Reset your password", 1).await;
    let plain = json!({ "i": { "token": link, "newPassword": "a brand new passphrase 1" } });
    assert_eq!(app.gql(reset, plain).await.body["data"]["resetPassword"], true);
    assert_eq!(app.count(passkeys::Entity).await, 1, "a plain reset keeps passkeys");
    app.gql(request, json!({ "e": "reset-keys@example.com" })).await;
    let link = app.mailed_token("reset-keys@example.com", "Reset your password", 2).await;
    let only = json!({ "i": { "token": link, "newPassword": "a brand new passphrase 2", "removeProviderLinks": true } });
    assert_eq!(app.gql(reset, only).await.body["data"]["resetPassword"], true);
    assert_eq!(app.count(passkeys::Entity).await, 0, "the password is the only way in");
    assert_eq!(sign_in(&app, &mut planted).await.code(), Some("INVALID_CREDENTIALS"));
}

/// With verified addresses required, a passkey signs in a verified user and
/// not one whose address is (no longer) verified, like `login`.
async fn a_passkey_meets_the_verification_rule(app: TestApp) {
    let app = app.sibling(|c| c.require_email_verification = true).await;
    app.gql(crate::common::REGISTER, json!({ "input": { "email": "strict@example.com", "password": PW } }))
        .await;
    let link = app.mailed_token("strict@example.com", "Confirm your email address", 1).await;
    let verify = "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }";
    assert_eq!(
        app.gql(verify, json!({ "t": link })).await.body["data"]["verifyEmail"]["emailVerified"],
        true
    );
    let token = str_of(&app.login("strict@example.com", PW).await.body["data"]["login"]["token"]);
    let (mut authenticator, _) = add_passkey(&app, &token, "Strict").await;
    assert!(sign_in(&app, &mut authenticator).await.body["data"]["finishPasskeySignIn"].is_object());
    app.execute_sql("UPDATE users SET email_verified = false").await;
    assert_eq!(sign_in(&app, &mut authenticator).await.code(), Some("EMAIL_NOT_VERIFIED"));
}

/// Passkeys per account are capped (each is a way in to list, mail about
/// and check), and registrations count against the factor-change budget.
async fn an_account_holds_at_most_twenty_passkeys(app: TestApp) {
    let (token, _) = app.register_verified("collector@example.com", PW).await;
    let mut added = 0;
    let refused = loop {
        let reply = app.authed(&token, START_REGISTRATION, json!({})).await;
        if reply.code().is_some() {
            break reply;
        }
        let (_, credential) = Authenticator::register(&reply.body["data"]["startPasskeyRegistration"], APP);
        assert!(finish_registration(&app, &token, credential, "one more").await.code().is_none());
        added += 1;
    };
    assert_eq!((added, refused.code()), (10, Some("RATE_LIMITED")), "ten changes an hour: {}", refused.body);

    let roomy = app
        .sibling(|c| c.rates.set(domain::config::Rule::FactorChangeAccount, "0/1m".parse().unwrap()))
        .await;
    let (token, _) = roomy.register_verified("collector@example.com", PW).await;
    for _ in 0..20 {
        add_passkey(&roomy, &token, "one more").await;
    }
    let refused = roomy.authed(&token, START_REGISTRATION, json!({})).await;
    assert_eq!(
        (refused.code(), refused.field()),
        (Some("BAD_USER_INPUT"), Some("credential")),
        "{}",
        refused.body
    );
    assert_eq!(roomy.count(passkeys::Entity).await, 20);
}

/// Anyone may begin a passkey sign-in (each is a stored row until it ends
/// or expires): besides the per-client limit, a ceiling for the whole
/// server bounds the rows many addresses can make.
async fn anonymous_ceremonies_are_bounded_for_the_whole_server(app: TestApp) {
    let app = app
        .sibling(|c| c.rates.set(domain::config::Rule::PasskeySignInGlobal, "3/5m".parse().unwrap()))
        .await;
    let from = |ip: &'static str| app.post().graphql(START_SIGN_IN, json!({})).peer_ip(ip).send();
    for ip in ["192.0.2.1", "198.51.100.1", "203.0.113.1"] {
        assert!(from(ip).await.body["data"]["startPasskeySignIn"].is_object());
    }
    assert_eq!(from("2001:db8::1").await.code(), Some("RATE_LIMITED"), "a fourth client, same window");
    assert_eq!(app.count(passkey_challenges::Entity).await, 3);
    // A signed-in user proving presence (`reauthenticate`) is not held back
    // by the anonymous ceilings, but counted per user instead.
    let (token, _) = app.register("present@example.com", PW).await;
    let reply =
        app.post().graphql(START_SIGN_IN, json!({})).bearer(&token).peer_ip("2001:db8::2").send().await;
    assert!(reply.body["data"]["startPasskeySignIn"].is_object(), "{}", reply.body);
    let per_user = app
        .sibling(|c| c.rates.set(domain::config::Rule::PasskeySignInNetwork, "2/5m".parse().unwrap()))
        .await;
    let (token, _) = per_user.register("present@example.com", PW).await;
    for ip in ["2001:db8:a::1", "2001:db8:b::1"] {
        let reply = per_user.post().graphql(START_SIGN_IN, json!({})).bearer(&token).peer_ip(ip).send().await;
        assert!(reply.body["data"]["startPasskeySignIn"].is_object(), "{}", reply.body);
    }
    let third = per_user
        .post()
        .graphql(START_SIGN_IN, json!({}))
        .bearer(&token)
        .peer_ip("2001:db8:c::1")
        .send()
        .await;
    assert_eq!(third.code(), Some("RATE_LIMITED"), "one user's starts are bounded too: {}", third.body);
    // And one network gets its own ceiling (an IPv4 /24, an IPv6 /48).
    let app = app
        .sibling(|c| c.rates.set(domain::config::Rule::PasskeySignInNetwork, "2/5m".parse().unwrap()))
        .await;
    let from = |ip: &'static str| app.post().graphql(START_SIGN_IN, json!({})).peer_ip(ip).send();
    for ip in ["2001:db8:7:1::1", "2001:db8:7:2::1"] {
        assert!(from(ip).await.body["data"]["startPasskeySignIn"].is_object());
    }
    assert_eq!(from("2001:db8:7:3::1").await.code(), Some("RATE_LIMITED"), "a third /64 of the /48");
    assert!(from("2001:db8:8::1").await.body["data"]["startPasskeySignIn"].is_object(), "another /48");
}
