//! Email verification and password reset, reading tokens from the mail
//! that was actually delivered.

use chrono::Duration;
use entity::{users, verification_tokens};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::{
    both_backends,
    common::{REGISTER, TestApp, str_of, token_in},
};

both_backends!(
    register_mails_a_verification_link,
    verify_email_is_single_use_and_needs_no_session,
    a_new_request_invalidates_the_earlier_token,
    tokens_expire,
    tokens_have_a_purpose,
    concurrent_spends_succeed_once,
    password_reset_sets_password_and_ends_sessions,
    reset_for_unknown_email_sends_nothing,
    login_can_require_a_verified_email,
    sessions_of_a_user_are_visible_only_to_that_user,
);

const PW: &str = "a fine password";
const VERIFY_SUBJECT: &str = "Confirm your email address";
const RESET_SUBJECT: &str = "Reset your password";
const VERIFY: &str =
    "mutation VerifyEmail($token: String!) { verifyEmail(token: $token) { id email emailVerified } }";
const REQUEST_VERIFY: &str = "mutation RequestEmailVerification { requestEmailVerification }";
const REQUEST_RESET: &str =
    "mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }";
const RESET: &str = "mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }";

fn reset_vars(token: &str, password: &str) -> serde_json::Value {
    json!({ "input": { "token": token, "newPassword": password } })
}

async fn register_mails_a_verification_link(app: TestApp) {
    app.register("new@example.com", PW).await;
    let mails = app.wait_for_mails("new@example.com", VERIFY_SUBJECT, 1).await;
    let mail = &mails[0];
    assert!(mail.contains("multipart/alternative"), "text and HTML parts:\n{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"));
    assert!(mail.contains("From: authgate <no-reply@localhost>"));
    let token = token_in(mail);
    assert_eq!(token.len(), 43);
    assert!(mail.contains(&format!("http://localhost:3000/verify-email?token={token}")), "{mail}");
    let stored = verification_tokens::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(stored.purpose, "email_verification");
    use sha2::Digest;
    assert_eq!(
        stored.token_hash,
        sha2::Sha256::digest(token.as_bytes()).to_vec(),
        "stored as its SHA-256 only"
    );
}

async fn verify_email_is_single_use_and_needs_no_session(app: TestApp) {
    let (session, user_id) = app.register("verify@example.com", PW).await;
    let token = app.mailed_token("verify@example.com", VERIFY_SUBJECT, 1).await;
    app.clock.advance(chrono::Duration::hours(1));
    let reply = app.gql(VERIFY, json!({ "token": token })).await;
    assert_eq!(reply.body["data"]["verifyEmail"]["id"], user_id.as_str(), "{}", reply.body);
    assert_eq!(reply.body["data"]["verifyEmail"]["emailVerified"], true);
    let me = app.me(&session).await.body["data"]["me"].clone();
    assert_eq!(me["emailVerified"], true);
    let at = |field: &str| chrono::DateTime::parse_from_rfc3339(me[field].as_str().unwrap()).unwrap();
    assert_eq!(
        at("updatedAt") - at("createdAt"),
        chrono::Duration::hours(1),
        "verification updates the user: {me}"
    );
    let again = app.gql(VERIFY, json!({ "token": token })).await;
    assert_eq!(again.code(), Some("INVALID_TOKEN"));
    for bad in ["", "garbage", &domain::token::generate().secret] {
        assert_eq!(app.gql(VERIFY, json!({ "token": bad })).await.code(), Some("INVALID_TOKEN"), "{bad:?}");
    }
    // Already verified: true, and no new token is issued.
    assert_eq!(
        app.authed(&session, REQUEST_VERIFY, json!({})).await.body["data"]["requestEmailVerification"],
        true
    );
    assert_eq!(app.gql(REQUEST_VERIFY, json!({})).await.code(), Some("UNAUTHENTICATED"));
    app.gql(REQUEST_RESET, json!({ "email": "verify@example.com" })).await;
    app.wait_for_mails("verify@example.com", RESET_SUBJECT, 1).await;
    let issued = verification_tokens::Entity::find()
        .filter(verification_tokens::Column::Purpose.eq("email_verification"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(issued, 1, "no verification token issued for a verified address");
}

async fn a_new_request_invalidates_the_earlier_token(app: TestApp) {
    let (session, _) = app.register("twice@example.com", PW).await;
    let first = app.mailed_token("twice@example.com", VERIFY_SUBJECT, 1).await;
    assert_eq!(
        app.authed(&session, REQUEST_VERIFY, json!({})).await.body["data"]["requestEmailVerification"],
        true
    );
    let second = app.mailed_token("twice@example.com", VERIFY_SUBJECT, 2).await;
    assert_ne!(first, second);
    assert_eq!(app.gql(VERIFY, json!({ "token": first })).await.code(), Some("INVALID_TOKEN"));
    assert_eq!(
        app.gql(VERIFY, json!({ "token": second })).await.body["data"]["verifyEmail"]["emailVerified"],
        true
    );
}

async fn tokens_expire(app: TestApp) {
    app.register("late@example.com", PW).await;
    let verify = app.mailed_token("late@example.com", VERIFY_SUBJECT, 1).await;
    app.gql(REQUEST_RESET, json!({ "email": "late@example.com" })).await;
    let reset = app.mailed_token("late@example.com", RESET_SUBJECT, 1).await;
    app.clock.advance(Duration::hours(1) + Duration::seconds(1));
    assert_eq!(
        app.gql(RESET, reset_vars(&reset, "new password 1")).await.code(),
        Some("INVALID_TOKEN"),
        "reset: 1 h"
    );
    assert!(
        app.gql(VERIFY, json!({ "token": verify })).await.body["data"]["verifyEmail"].is_object(),
        "verify: 24 h"
    );

    app.register("later@example.com", PW).await;
    let verify = app.mailed_token("later@example.com", VERIFY_SUBJECT, 1).await;
    app.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert_eq!(app.gql(VERIFY, json!({ "token": verify })).await.code(), Some("INVALID_TOKEN"));
}

async fn tokens_have_a_purpose(app: TestApp) {
    app.register("purpose@example.com", PW).await;
    let verify = app.mailed_token("purpose@example.com", VERIFY_SUBJECT, 1).await;
    app.gql(REQUEST_RESET, json!({ "email": "purpose@example.com" })).await;
    let reset = app.mailed_token("purpose@example.com", RESET_SUBJECT, 1).await;
    assert_eq!(app.gql(VERIFY, json!({ "token": reset })).await.code(), Some("INVALID_TOKEN"));
    assert_eq!(app.gql(RESET, reset_vars(&verify, "new password 1")).await.code(), Some("INVALID_TOKEN"));
    // Both are still good for their own purpose.
    assert!(app.gql(VERIFY, json!({ "token": verify })).await.body["data"]["verifyEmail"].is_object());
    assert_eq!(
        app.gql(RESET, reset_vars(&reset, "new password 1")).await.body["data"]["resetPassword"],
        true
    );
}

async fn concurrent_spends_succeed_once(app: TestApp) {
    app.register("race@example.com", PW).await;
    let token = app.mailed_token("race@example.com", VERIFY_SUBJECT, 1).await;
    let (a, b) =
        tokio::join!(app.gql(VERIFY, json!({ "token": token })), app.gql(VERIFY, json!({ "token": token })));
    let wins = [&a, &b].iter().filter(|r| r.body["data"]["verifyEmail"].is_object()).count();
    assert_eq!(wins, 1, "{} / {}", a.body, b.body);
    assert!([a.code(), b.code()].contains(&Some("INVALID_TOKEN")));

    app.gql(REQUEST_RESET, json!({ "email": "race@example.com" })).await;
    let reset = app.mailed_token("race@example.com", RESET_SUBJECT, 1).await;
    let (a, b) = tokio::join!(
        app.gql(RESET, reset_vars(&reset, "first new password")),
        app.gql(RESET, reset_vars(&reset, "second new password"))
    );
    let wins = [&a, &b].iter().filter(|r| r.body["data"]["resetPassword"] == true).count();
    assert_eq!(wins, 1, "{} / {}", a.body, b.body);
}

async fn password_reset_sets_password_and_ends_sessions(app: TestApp) {
    let (first, _) = app.register("forgot@example.com", PW).await;
    let second = str_of(&app.login("forgot@example.com", PW).await.body["data"]["login"]["token"]);
    let asked = app.gql(REQUEST_RESET, json!({ "email": "  Forgot@Example.com " })).await;
    assert_eq!(asked.body["data"]["requestPasswordReset"], true);
    let mails = app.wait_for_mails("forgot@example.com", RESET_SUBJECT, 1).await;
    let token = token_in(&mails[0]);
    assert!(mails[0].contains(&format!("http://localhost:3000/reset-password?token={token}")));

    let weak = app.gql(RESET, reset_vars(&token, "short")).await;
    assert_eq!((weak.code(), weak.field()), (Some("BAD_USER_INPUT"), Some("newPassword")));
    assert!(app.me(&first).await.body["data"]["me"].is_object(), "a refused reset changes nothing");

    let done = app.gql(RESET, reset_vars(&token, "remembered now")).await;
    assert_eq!(done.body["data"]["resetPassword"], true, "{}", done.body);
    assert_eq!(app.me(&first).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.me(&second).await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.login("forgot@example.com", PW).await.code(), Some("INVALID_CREDENTIALS"));
    let fresh = app.login("forgot@example.com", "remembered now").await;
    assert_eq!(fresh.body["data"]["login"]["user"]["email"], "forgot@example.com");
    let user = users::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert!(user.email_verified, "the reset proved ownership of the address");
    assert_eq!(app.gql(RESET, reset_vars(&token, "yet another one")).await.code(), Some("INVALID_TOKEN"));
    let malformed = app.gql(REQUEST_RESET, json!({ "email": "not an email" })).await;
    assert_eq!((malformed.code(), malformed.field()), (Some("BAD_USER_INPUT"), Some("email")));
}

async fn reset_for_unknown_email_sends_nothing(app: TestApp) {
    app.register("known@example.com", PW).await;
    let unknown = app.gql(REQUEST_RESET, json!({ "email": "ghost@example.com" })).await;
    assert_eq!(unknown.body["data"]["requestPasswordReset"], true, "no enumeration");
    app.gql(REQUEST_RESET, json!({ "email": "known@example.com" })).await;
    // Jobs run in order: once the second mail is out, the first request is done.
    app.wait_for_mails("known@example.com", RESET_SUBJECT, 1).await;
    assert!(app.mails("ghost@example.com", RESET_SUBJECT).is_empty());
    let resets = verification_tokens::Entity::find()
        .filter(verification_tokens::Column::Purpose.eq("password_reset"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(resets, 1);
}

async fn login_can_require_a_verified_email(app: TestApp) {
    let strict = app.sibling(|c| c.require_email_verification = true).await;
    let registered =
        strict.gql(REGISTER, json!({ "input": { "email": "strict@example.com", "password": PW } })).await;
    assert_eq!(registered.code(), Some("EMAIL_NOT_VERIFIED"), "no session before verification");
    let token = strict.mailed_token("strict@example.com", VERIFY_SUBJECT, 1).await;
    assert_eq!(strict.login("strict@example.com", PW).await.code(), Some("EMAIL_NOT_VERIFIED"));
    assert_eq!(
        strict.login("strict@example.com", "wrong password").await.code(),
        Some("INVALID_CREDENTIALS")
    );
    // The link has expired: the next correct sign-in mails a fresh one (and
    // not while one is live, which would break the link in the inbox).
    strict.clock.advance(Duration::hours(25));
    assert_eq!(strict.login("strict@example.com", PW).await.code(), Some("EMAIL_NOT_VERIFIED"));
    let fresh = strict.mailed_token("strict@example.com", VERIFY_SUBJECT, 2).await;
    assert_ne!(fresh, token);
    assert_eq!(strict.gql(VERIFY, json!({ "token": token })).await.code(), Some("INVALID_TOKEN"), "expired");
    strict.gql(VERIFY, json!({ "token": fresh })).await;
    assert!(strict.login("strict@example.com", PW).await.body["data"]["login"].is_object());
    assert_eq!(strict.mails("strict@example.com", VERIFY_SUBJECT).len(), 2, "no mail while a link was live");
}

async fn sessions_of_a_user_are_visible_only_to_that_user(app: TestApp) {
    let (owner, _) = app.register("owner@example.com", PW).await;
    let (other, _) = app.register("other@example.com", PW).await;
    let query =
        "mutation($token: String!) { verifyEmail(token: $token) { email sessions { id } accounts { id } } }";
    let token = app.mailed_token("owner@example.com", VERIFY_SUBJECT, 1).await;
    // Another user's session sees a well-formed user with nothing private in it.
    let stranger = app.authed(&other, query, json!({ "token": token })).await;
    assert!(stranger.body.get("errors").is_none(), "{}", stranger.body);
    assert_eq!(stranger.body["data"]["verifyEmail"]["email"], "owner@example.com");
    assert_eq!(stranger.body["data"]["verifyEmail"]["sessions"], json!([]));
    assert_eq!(stranger.body["data"]["verifyEmail"]["accounts"], json!([]));
    app.register("second@example.com", PW).await;
    let token = app.mailed_token("second@example.com", VERIFY_SUBJECT, 1).await;
    let anonymous = app.gql(query, json!({ "token": token })).await;
    assert_eq!(anonymous.body["data"]["verifyEmail"]["sessions"], json!([]), "{}", anonymous.body);
    assert_eq!(anonymous.body["data"]["verifyEmail"]["accounts"], json!([]));
    let own = app.authed(&owner, "{ me { sessions { id } accounts { id } } }", json!({})).await;
    assert_eq!(own.body["data"]["me"]["sessions"].as_array().unwrap().len(), 1, "{}", own.body);
}
