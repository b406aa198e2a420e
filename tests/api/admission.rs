//! The one admission gate, and the squatter it keeps out: every way to a
//! session passes `admission::admit`; an account whose address nobody
//! proved can add no factor; the owner's reset removes whatever a squatter
//! planted.

use chrono::Duration;
use entity::{passkeys, recovery_codes, sessions, totp_credentials};
use serde_json::json;

use crate::{
    both_backends,
    common::{TestApp, authenticator::Authenticator, str_of},
    two_factor::{CONFIRM, PW, START_SETUP, code_at, complete, enable},
};

both_backends!(
    the_owners_reset_removes_a_squatters_factors,
    an_unproved_account_adds_no_factor,
    every_way_to_a_session_passes_the_gate,
    a_passkey_sign_in_racing_a_password_change_does_not_land,
    a_squatters_password_change_in_flight_does_not_undo_the_owners_reset,
);

const APP: &str = "http://localhost:3000";
const START_REGISTRATION: &str = "mutation { startPasskeyRegistration }";
const FINISH_REGISTRATION: &str =
    "mutation($i: FinishPasskeyRegistrationInput!) { finishPasskeyRegistration(input: $i) { id } }";
const START_SIGN_IN: &str = "mutation { startPasskeySignIn { challenge options } }";
const FINISH_SIGN_IN: &str =
    "mutation($i: FinishPasskeySignInInput!) { finishPasskeySignIn(input: $i) { token } }";
const RESET: &str = "mutation P($input: ResetPasswordInput!) { resetPassword(input: $input) }";
const REQUEST_RESET: &str = "mutation R($e: String!) { requestPasswordReset(email: $e) }";

/// A passkey for the session `token` (whose address is proved).
async fn add_passkey(app: &TestApp, token: &str) -> Authenticator {
    crate::passkeys::add_passkey(app, token, "mine").await.0
}

/// A passkey sign-in with `authenticator`, sent to `router` (this app's when `None`).
async fn passkey_sign_in(
    app: &TestApp,
    router: Option<&axum::Router>,
    authenticator: &mut Authenticator,
) -> crate::common::Reply {
    let start = |q| async move {
        match router {
            Some(r) => app.post_to(r).graphql(q, json!({})).send().await,
            None => app.gql(q, json!({})).await,
        }
    };
    let started = start(START_SIGN_IN).await;
    let started = &started.body["data"]["startPasskeySignIn"];
    let credential = authenticator.assert(&started["options"], APP);
    let vars = json!({ "i": { "challenge": str_of(&started["challenge"]), "credential": credential } });
    match router {
        Some(r) => app.post_to(r).graphql(FINISH_SIGN_IN, vars).send().await,
        None => app.gql(FINISH_SIGN_IN, vars).await,
    }
}

/// The high hole of round 3: a stranger registers the owner's address
/// (verification not required, the default), plants an authenticator and
/// a passkey (as a release before this one allowed), and the owner
/// recovers the account with "forgot password". The owner then signs in
/// with the new password alone; the squatter's passkey, codes, sessions
/// and password are worth nothing.
async fn the_owners_reset_removes_a_squatters_factors(app: TestApp) {
    let email = "owner@example.com";
    let (squatter, squatter_id) = app.register(email, PW).await;
    let profile = "mutation U($input: UpdateProfileInput!) { updateProfile(input: $input) { name } }";
    let tracking = json!({ "input": { "name": "Squatter", "image": "https://squatter.example/pixel.png" } });
    assert_eq!(
        app.authed(&squatter, profile, tracking).await.body["data"]["updateProfile"]["name"],
        "Squatter"
    );
    app.set_verified(&squatter_id, true).await;
    let (_secret, codes) = enable(&app, &squatter).await;
    // Step-up for the passkey: the session just proved two factors.
    let mut planted = add_passkey(&app, &squatter).await;
    app.set_verified(&squatter_id, false).await;
    assert!(passkey_sign_in(&app, None, &mut planted).await.body["data"]["finishPasskeySignIn"].is_object());

    // The owner: EMAIL_TAKEN, then "forgot password".
    app.gql(REQUEST_RESET, json!({ "e": email })).await;
    let link = app.mailed_token(email, "Reset your password", 1).await;
    let input = json!({ "input": { "token": link, "newPassword": "rightful holder 2026" } });
    let reset = app.gql(RESET, input).await;
    assert_eq!(reset.body["data"]["resetPassword"], true, "{}", reset.body);

    let login = app.login(email, "rightful holder 2026").await;
    assert!(
        login.body["data"]["login"]["token"].is_string(),
        "the owner signs in with the new password and no second step: {}",
        login.body
    );
    let owner = str_of(&login.body["data"]["login"]["token"]);
    let me = app
        .authed(&owner, "{ me { name image emailVerified twoFactorEnabled passkeys { id } } }", json!({}))
        .await;
    assert_eq!(me.body["data"]["me"]["emailVerified"], true);
    // The squatter's name and picture go too (a picture on their server
    // would tell them when the owner looks).
    assert_eq!(
        (&me.body["data"]["me"]["name"], &me.body["data"]["me"]["image"]),
        (&json!(null), &json!(null))
    );
    assert_eq!(me.body["data"]["me"]["twoFactorEnabled"], false);
    assert_eq!(me.body["data"]["me"]["passkeys"], json!([]));
    for (table, left) in [
        ("totp_credentials", app.count(totp_credentials::Entity).await),
        ("recovery_codes", app.count(recovery_codes::Entity).await),
        ("passkeys", app.count(passkeys::Entity).await),
        ("sessions", app.count(sessions::Entity).await),
    ] {
        let expected = u64::from(table == "sessions");
        assert_eq!(left, expected, "{table}: only the owner's new session is left");
    }
    // The squatter: passkey, old session, old password, recovery codes.
    let refused = passkey_sign_in(&app, None, &mut planted).await;
    assert_eq!(refused.code(), Some("INVALID_CREDENTIALS"), "{}", refused.body);
    assert_eq!(app.me(&squatter).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.login(email, PW).await.code(), Some("INVALID_CREDENTIALS"));
    // Had a second step been asked, the squatter's codes would not open it.
    let reauth = "mutation R($input: ReauthenticateInput!) { reauthenticate(input: $input) }";
    let proof = json!({ "input": { "password": "rightful holder 2026", "code": codes[0] } });
    let reply = app.authed(&owner, reauth, proof).await;
    assert_eq!(reply.body["data"]["reauthenticate"], true, "no code is asked of the owner: {}", reply.body);
    assert_eq!(app.count(recovery_codes::Entity).await, 0);
}

/// An account whose address is not proved may be a squatter's: it can add
/// no authenticator, passkey, password or provider link. Once proved, it can.
async fn an_unproved_account_adds_no_factor(app: TestApp) {
    let (token, _) = app.register("unproved@example.com", PW).await;
    assert_eq!(app.authed(&token, START_SETUP, json!({})).await.code(), Some("EMAIL_NOT_VERIFIED"));
    assert_eq!(
        app.authed(&token, CONFIRM, json!({ "code": "123456" })).await.code(),
        Some("EMAIL_NOT_VERIFIED")
    );
    assert_eq!(app.authed(&token, START_REGISTRATION, json!({})).await.code(), Some("EMAIL_NOT_VERIFIED"));
    let finish =
        json!({ "i": { "credential": { "id": "x", "rawId": "eA", "type": "public-key", "response": {} } } });
    assert_eq!(app.authed(&token, FINISH_REGISTRATION, finish).await.code(), Some("EMAIL_NOT_VERIFIED"));
    assert_eq!(app.count(totp_credentials::Entity).await, 0, "nothing stored");
    assert_eq!(app.count(entity::passkey_challenges::Entity).await, 0, "no ceremony begun");

    app.verify_address(&token).await;
    let setup = app.authed(&token, START_SETUP, json!({})).await;
    assert!(setup.body["data"]["startTotpSetup"]["secret"].is_string(), "{}", setup.body);
    let options = app.authed(&token, START_REGISTRATION, json!({})).await;
    assert!(options.body["data"]["startPasskeyRegistration"].is_object(), "{}", options.body);
}

/// Every way to a session, for a user the gate refuses (here: an address
/// that must be proved and is not), ends without one. The ways are those
/// `two_factor::every_way_to_a_session_is_gated` lists from the schema and
/// the sources; the provider's callback: `oauth::a_provider_meets_the_gate`.
/// The compiler does the rest: `session::create` takes an `Admitted`, which
/// only `admission::admit` makes (checked below from the sources).
async fn every_way_to_a_session_passes_the_gate(app: TestApp) {
    // Factors set up while proved; then the address is no longer proved
    // (as an operator may set it), on an instance that requires proof.
    let app = app.shareable().await;
    let strict = app.second_instance_with(|c| c.require_email_verification = true).await;
    let (token, user_id) = app.register_verified("gate@example.com", PW).await;
    let mut passkey = add_passkey(&app, &token).await;
    let (secret, _) = enable(&app, &token).await;
    let challenge = crate::two_factor::challenge(&app, "gate@example.com").await;
    app.set_verified(&user_id, false).await;
    let before = app.count(sessions::Entity).await;

    // login: refused after the password, before any challenge.
    let login = app
        .post_to(&strict)
        .graphql(crate::common::LOGIN, json!({ "input": { "email": "gate@example.com", "password": PW } }))
        .send()
        .await;
    assert_eq!(login.code(), Some("EMAIL_NOT_VERIFIED"), "{}", login.body);
    // completeSignIn: a right code on a live challenge, still no session.
    app.clock.advance(Duration::seconds(30));
    let input = json!({ "input": { "challenge": challenge, "code": code_at(&secret, app.clock_now()) } });
    let reply = app.post_to(&strict).graphql(crate::two_factor::COMPLETE, input).send().await;
    assert_eq!(reply.code(), Some("EMAIL_NOT_VERIFIED"), "{}", reply.body);
    // finishPasskeySignIn: a verified assertion, no session.
    let reply = passkey_sign_in(&app, Some(&strict), &mut passkey).await;
    assert_eq!(reply.code(), Some("EMAIL_NOT_VERIFIED"), "{}", reply.body);
    // register: the account is made, the session is not.
    let register = app
        .post_to(&strict)
        .graphql(
            crate::common::REGISTER,
            json!({ "input": { "email": "gate-new@example.com", "password": PW } }),
        )
        .send()
        .await;
    assert_eq!(register.code(), Some("EMAIL_NOT_VERIFIED"), "{}", register.body);
    assert_eq!(app.count(sessions::Entity).await, before, "no way made a session");
    // And the sessions already out are refused by the same rule.
    let me = app.post_to(&strict).graphql("{ me { id } }", json!({})).bearer(&token).send().await;
    assert_eq!(me.code(), Some("UNAUTHENTICATED"));
    // The same ways, the address proved again: each gets in.
    app.set_verified(&user_id, true).await;
    let challenge = crate::two_factor::challenge(&app, "gate@example.com").await;
    app.clock.advance(Duration::seconds(30));
    let done = complete(&app, &challenge, &code_at(&secret, app.clock_now())).await;
    assert!(done.body["data"]["completeSignIn"]["token"].is_string(), "{}", done.body);
    let reply = passkey_sign_in(&app, Some(&strict), &mut passkey).await;
    assert!(reply.body["data"]["finishPasskeySignIn"]["token"].is_string(), "{}", reply.body);

    // From the sources: only the gate makes an `Admitted`, and every file
    // that creates a session asks the gate.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/src");
    for path in crate::layers::rust_files(&src) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(&src).unwrap().display().to_string();
        if name != "session/admission.rs" {
            assert!(!text.contains("Admitted {"), "{name} makes an Admitted itself");
        }
        if text.contains("session::create(") {
            assert!(text.contains("admission::admit("), "{name} creates a session without the gate");
        }
    }
}

/// A passkey sign-in that verified its assertion before a password change
/// (with "sign out everywhere") committed does not land afterwards: the
/// gate holds the user on the credentials version read with the passkey.
async fn a_passkey_sign_in_racing_a_password_change_does_not_land(app: TestApp) {
    let (token, _) = app.register_verified("race@example.com", PW).await;
    let mut passkey = add_passkey(&app, &token).await;
    let started = app.gql(START_SIGN_IN, json!({})).await;
    let started = &started.body["data"]["startPasskeySignIn"];
    let credential = passkey.assert(&started["options"], APP);
    let vars = json!({ "i": { "challenge": str_of(&started["challenge"]), "credential": credential } });
    let app = std::sync::Arc::new(app);
    let hold = app.hold_at("passkey_sign_in:verified");
    let sign_in = tokio::spawn({
        let app = app.clone();
        async move { app.gql(FINISH_SIGN_IN, vars).await }
    });
    hold.reached().await;
    app.change_password(&token, PW, "a new passphrase 2026").await;
    hold.release(1);
    let reply = sign_in.await.unwrap();
    assert_eq!(reply.code(), Some("INVALID_CREDENTIALS"), "{}", reply.body);
    assert_eq!(app.count(sessions::Entity).await, 1, "only the session that changed the password");
}

/// A squatter's `changePassword` in flight (password checked, new one
/// hashed) when the owner's reset commits does not land afterwards: it
/// would overwrite the owner's password and end the owner's sessions.
async fn a_squatters_password_change_in_flight_does_not_undo_the_owners_reset(app: TestApp) {
    let email = "contested@example.com";
    let (squatter, _) = app.register(email, PW).await;
    let app = std::sync::Arc::new(app);
    let hold = app.hold_at("change_password:hashed");
    let racing = tokio::spawn({
        let app = app.clone();
        async move {
            let change = "mutation C($input: ChangePasswordInput!) { changePassword(input: $input) }";
            let vars = json!({ "input": { "currentPassword": PW, "newPassword": "squatter keeps it 2026" } });
            app.authed(&squatter, change, vars).await
        }
    });
    hold.reached().await;
    app.gql(REQUEST_RESET, json!({ "e": email })).await;
    let link = app.mailed_token(email, "Reset your password", 1).await;
    let input = json!({ "input": { "token": link, "newPassword": "rightful holder 2026" } });
    assert_eq!(app.gql(RESET, input).await.body["data"]["resetPassword"], true);
    let owner = app.login(email, "rightful holder 2026").await;
    let owner = str_of(&owner.body["data"]["login"]["token"]);
    hold.release(1);
    let reply = racing.await.unwrap();
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{}", reply.body);
    assert_eq!(app.login(email, "squatter keeps it 2026").await.code(), Some("INVALID_CREDENTIALS"));
    assert!(app.me(&owner).await.body["data"]["me"].is_object(), "the owner's session lives");
}
