//! Notices to an account's owner: every change to a way in is told, but
//! nobody can turn them into a mail bomb, and a flood of them neither
//! loses nor delays anyone's reset link.

use serde_json::json;

use crate::{
    both_backends,
    common::TestApp,
    two_factor::{PW, enable},
};

both_backends!(
    aliased_changes_mail_one_notice_and_others_mail_goes_out,
    a_way_in_removed_and_added_again_is_told_again,
    the_same_change_by_another_session_is_told_again,
    an_address_nobody_proved_gets_no_notices,
);

const NOTICE: &str = "Two-factor sign-in changed on your account";

/// Waits until every queued job has run and every mail it handed over is
/// delivered: what the outbox holds then is all there will be.
async fn settled(app: &TestApp) {
    app.state.auth.jobs().drained().await;
    for _ in 0..400 {
        if app.state.auth.mail().in_flight() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("mail still in flight after 20 s");
}

/// One request with 32 aliased `regenerateRecoveryCodes`: at most
/// `AUTHGATE_RATE_FACTOR_CHANGE_ACCOUNT` (10) run, the rest are refused,
/// and the owner gets one notice (they all say the same), not 32. Another
/// user's reset link goes out meanwhile.
async fn aliased_changes_mail_one_notice_and_others_mail_goes_out(app: TestApp) {
    let email = "bombed@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    enable(&app, &token).await;
    settled(&app).await;
    let before = app.mails(email, NOTICE).len();
    let aliases: String = (0..32).map(|i| format!("r{i}: regenerateRecoveryCodes ")).collect();
    let reply = app.authed(&token, &format!("mutation {{ {aliases} }}"), json!({})).await;
    let errors = reply.body["errors"].as_array().cloned().unwrap_or_default();
    let limited = errors.iter().filter(|e| e["extensions"]["code"] == "RATE_LIMITED").count();
    let ran = (0..32).filter(|i| reply.body["data"][format!("r{i}")].is_array()).count();
    // `enable` spent one change (startTotpSetup) of the ten an hour.
    assert_eq!((ran, limited), (9, 23), "{}", reply.body);

    let (other, _) = app.register("bystander@example.com", PW).await;
    drop(other);
    let request = "mutation R($e: String!) { requestPasswordReset(email: $e) }";
    app.gql(request, json!({ "e": "bystander@example.com" })).await;
    settled(&app).await;
    assert_eq!(app.mails("bystander@example.com", "Reset your password").len(), 1, "the reset link went out");
    let notices = app.mails(email, NOTICE);
    assert_eq!(notices.len() - before, 1, "one notice for nine identical changes");
    assert!(notices.last().unwrap().contains("New recovery codes were made"), "{}", notices.last().unwrap());
}

/// Coalescing never hides news: a passkey added, removed by the owner and
/// added again within the window is three notices, though the list of
/// ways in reads the same after the first and the last.
async fn a_way_in_removed_and_added_again_is_told_again(app: TestApp) {
    let email = "again@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let (_, first) = crate::passkeys::add_passkey(&app, &token, "first").await;
    let remove = "mutation($id: ID!) { removePasskey(id: $id) }";
    let removed = app.authed(&token, remove, json!({ "id": first["id"] })).await;
    assert_eq!(removed.body["data"]["removePasskey"], true, "{}", removed.body);
    crate::passkeys::add_passkey(&app, &token, "second").await;
    settled(&app).await;
    let added = app.mails(email, "A new way to sign in was added to your account");
    assert_eq!(added.len(), 2, "both additions are told");
    assert_eq!(app.mails(email, "A passkey was removed from your account").len(), 1);
}

/// Repeats are coalesced per session: the owner replacing the recovery
/// codes and, minutes later, an intruder's session doing the same are two
/// notices (else the intruder's would go unseen and the owner's codes die
/// quietly).
async fn the_same_change_by_another_session_is_told_again(app: TestApp) {
    use crate::two_factor::{challenge, code_at, complete};
    let email = "twice@example.com";
    let (owner, _) = app.register_verified(email, PW).await;
    let (secret, _) = enable(&app, &owner).await;
    let first = challenge(&app, email).await;
    let other = complete(&app, &first, &code_at(&secret, app.clock_now())).await;
    let other = crate::common::str_of(&other.body["data"]["completeSignIn"]["token"]);
    settled(&app).await;
    let before = app.mails(email, NOTICE).len();
    for token in [&owner, &owner, &other] {
        let reply = app.authed(token, "mutation { regenerateRecoveryCodes }", json!({})).await;
        assert!(reply.body["data"]["regenerateRecoveryCodes"].is_array(), "{}", reply.body);
    }
    settled(&app).await;
    assert_eq!(app.mails(email, NOTICE).len() - before, 2, "one per session");
}

/// Whoever registered an address they do not own cannot use its account's
/// notices to mail it at will: an address nobody proved gets none (its
/// verification mail, within its own limit, is all), once proved it does.
async fn an_address_nobody_proved_gets_no_notices(app: TestApp) {
    let email = "not-theirs@example.com";
    let (token, _) = app.register(email, PW).await;
    let mut password = PW.to_owned();
    for next in ["first of many 2026", "second of many 2026", "third of many 2026"] {
        let session =
            crate::common::str_of(&app.login(email, &password).await.body["data"]["login"]["token"]);
        app.change_password(&session, &password, next).await;
        password = next.to_owned();
    }
    settled(&app).await;
    assert_eq!(app.mails(email, "Your password was changed").len(), 0, "no notice to an unproved address");
    assert_eq!(app.mails(email, "Confirm your email address").len(), 1, "its verification mail only");
    drop(token);

    let session = crate::common::str_of(&app.login(email, &password).await.body["data"]["login"]["token"]);
    app.verify_address(&session).await;
    app.change_password(&session, &password, "violet harbour lamp 2026").await;
    app.wait_for_mails(email, "Your password was changed", 1).await;
}
