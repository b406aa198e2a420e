//! The second factor over its life: recovery codes replaced, the
//! authenticator replaced while two-factor is on, a setup restarted
//! meanwhile. Each test fails if the old factor keeps working, the new one
//! does not, or the owner is not told.

use chrono::Duration;
use serde_json::json;

use crate::{
    both_backends,
    common::TestApp,
    two_factor::{CONFIRM, PW, START_SETUP, challenge, code_at, codes_in, complete, enable},
};

both_backends!(
    regenerated_recovery_codes_replace_the_old_ones,
    a_new_authenticator_replaces_the_old_one_and_its_codes,
    a_setup_restarted_meanwhile_is_not_confirmed_with_the_old_code,
);

const NOTICE: &str = "Two-factor sign-in changed on your account";
const REGENERATE: &str = "mutation { regenerateRecoveryCodes }";

/// A sign-in of `email` completed with `code`: its token, or the error code.
async fn sign_in_with(app: &TestApp, email: &str, code: &str) -> Result<String, String> {
    let challenge = challenge(app, email).await;
    let reply = complete(app, &challenge, code).await;
    match reply.body["data"]["completeSignIn"]["token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => Err(reply.code().unwrap_or("no code").to_owned()),
    }
}

async fn regenerated_recovery_codes_replace_the_old_ones(app: TestApp) {
    let email = "regen@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let (_, old) = enable(&app, &token).await;
    let reply = app.authed(&token, REGENERATE, json!({})).await;
    let new = codes_in(&reply, "regenerateRecoveryCodes");
    assert_eq!(new.len(), 10, "{}", reply.body);
    let distinct: std::collections::BTreeSet<_> = new.iter().collect();
    assert_eq!(distinct.len(), 10, "ten different codes");
    assert!(new.iter().all(|code| !old.contains(code)), "none of the old ones");

    // Old codes are refused (a few, within the code budget; the rows prove the rest).
    for code in &old[..3] {
        assert_eq!(sign_in_with(&app, email, code).await, Err("INVALID_CREDENTIALS".into()), "old {code}");
    }
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let rows = entity::recovery_codes::Entity::find().all(app.db()).await.unwrap();
    assert_eq!(rows.len(), 10, "only the new codes are stored");
    assert!(rows.iter().all(|r| r.used_at.is_none()));

    // Each new code signs in once.
    for code in &new {
        assert!(sign_in_with(&app, email, code).await.is_ok(), "new {code}");
    }
    assert_eq!(sign_in_with(&app, email, &new[0]).await, Err("INVALID_CREDENTIALS".into()), "spent");
    let spent = entity::recovery_codes::Entity::find()
        .filter(entity::recovery_codes::Column::UsedAt.is_not_null())
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(spent.len(), 10);

    // The owner is told (after the notice that two-factor went on).
    let mails = app.wait_for_mails(email, NOTICE, 2).await;
    assert_eq!(mails.len(), 2, "one notice per change");
    assert!(mails.iter().any(|m| m.contains("New recovery codes were made")), "{mails:?}");
}

async fn a_new_authenticator_replaces_the_old_one_and_its_codes(app: TestApp) {
    let email = "new-phone@example.com";
    let (token, _) = app.register_verified(email, PW).await;
    let (old_secret, old_codes) = enable(&app, &token).await;

    // A setup begun while two-factor is on weakens nothing: the old
    // authenticator still signs in, the pending one does not.
    let setup = app.authed(&token, START_SETUP, json!({})).await;
    let new_secret = crate::common::str_of(&setup.body["data"]["startTotpSetup"]["secret"]);
    assert!(!new_secret.is_empty() && new_secret != old_secret, "{}", setup.body);
    let pending = code_at(&new_secret, app.clock_now());
    assert_eq!(sign_in_with(&app, email, &pending).await, Err("INVALID_CREDENTIALS".into()));
    assert!(sign_in_with(&app, email, &code_at(&old_secret, app.clock_now())).await.is_ok());

    // Confirmed: the new one is the authenticator, with new recovery codes.
    app.clock.advance(Duration::seconds(30));
    let confirmed =
        app.authed(&token, CONFIRM, json!({ "code": code_at(&new_secret, app.clock_now()) })).await;
    let new_codes = codes_in(&confirmed, "confirmTotpSetup");
    assert_eq!(new_codes.len(), 10);
    app.clock.advance(Duration::seconds(30));
    let now = app.clock_now();
    assert_eq!(
        sign_in_with(&app, email, &code_at(&old_secret, now)).await,
        Err("INVALID_CREDENTIALS".into())
    );
    assert_eq!(sign_in_with(&app, email, &old_codes[0]).await, Err("INVALID_CREDENTIALS".into()));
    assert!(sign_in_with(&app, email, &code_at(&new_secret, now)).await.is_ok());
    assert!(sign_in_with(&app, email, &new_codes[0]).await.is_ok());
}

/// Two setups begun one after the other: the first one's code no longer
/// confirms anything (the secret the code was made for is gone), and the
/// second confirms with its own.
async fn a_setup_restarted_meanwhile_is_not_confirmed_with_the_old_code(app: TestApp) {
    let (token, _) = app.register_verified("restart@example.com", PW).await;
    let first = app.authed(&token, START_SETUP, json!({})).await;
    let first = crate::common::str_of(&first.body["data"]["startTotpSetup"]["secret"]);
    let second = app.authed(&token, START_SETUP, json!({})).await;
    let second = crate::common::str_of(&second.body["data"]["startTotpSetup"]["secret"]);
    assert_ne!(first, second);
    let stale = app.authed(&token, CONFIRM, json!({ "code": code_at(&first, app.clock_now()) })).await;
    assert_eq!(stale.code(), Some("BAD_USER_INPUT"), "{}", stale.body);
    let me = app.authed(&token, "query { me { twoFactorEnabled } }", json!({})).await;
    assert_eq!(me.body["data"]["me"]["twoFactorEnabled"], false, "still off");
    let fresh = app.authed(&token, CONFIRM, json!({ "code": code_at(&second, app.clock_now()) })).await;
    assert_eq!(codes_in(&fresh, "confirmTotpSetup").len(), 10);
}
