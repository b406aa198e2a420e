//! The contract's own document, sent as it is with each `operationName`,
//! runs every operation against the real server with its documented result
//! (the test fails if one of the document's operations was not run).

use std::{collections::BTreeSet, sync::Mutex};

use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{Reply, TestApp, str_of, token_in},
};

const APP: &str = "http://localhost:3000";

both_backends!(every_contract_operation_behaves_as_documented);

/// The admin operations, by an admin made with the command line's
/// function, on another user's account.
async fn admin_operations(flow: &Flow<'_>, app: &TestApp) {
    let (token, _) = app.register("dora@example.com", "contract password five").await;
    let denied = flow.run("AdminUsers", json!({ "first": 5 }), Some(&token)).await;
    assert_eq!(denied.code(), Some("PERMISSION_DENIED"), "{}", denied.body);
    let (admin, _) = crate::admin::make_admin(app, "contract-admin@example.com", "admin").await;
    let listed =
        flow.run("AdminUsers", json!({ "filter": { "search": "DOR" }, "first": 5 }), Some(&admin)).await;
    let page = &listed.body["data"]["users"];
    assert_eq!(page["totalCount"], 1, "{}", listed.body);
    let user = page["edges"][0]["node"].clone();
    assert_eq!(
        (&user["email"], &user["banned"], &user["roles"]),
        (&json!("dora@example.com"), &json!(false), &json!([]))
    );
    let id = user["id"].clone();
    let roles = flow.run("SetUserRoles", json!({ "userId": id, "roles": ["auditor"] }), Some(&admin)).await;
    assert_eq!(roles.body["data"]["setUserRoles"]["roles"], json!(["auditor"]), "{}", roles.body);
    let roles = flow.run("SetUserRoles", json!({ "userId": id, "roles": [] }), Some(&admin)).await;
    assert_eq!(roles.body["data"]["setUserRoles"]["roles"], json!([]), "{}", roles.body);
    let reset = flow.run("ResetUserTwoFactor", json!({ "userId": id }), Some(&admin)).await;
    assert_eq!(reset.body["data"]["resetUserTwoFactor"], false, "two-factor was off: {}", reset.body);
    let reason = json!({ "input": { "userId": id, "reason": "contract check" } });
    let acting = flow.run("ImpersonateUser", reason, Some(&admin)).await;
    let as_user = str_of(&acting.body["data"]["impersonateUser"]["token"]);
    assert_eq!(acting.body["data"]["impersonateUser"]["user"]["id"], id, "{}", acting.body);
    assert_eq!(app.me(&as_user).await.body["data"]["me"]["id"], id);
    let ended = flow.run("RevokeUserSessions", json!({ "userId": id }), Some(&admin)).await;
    assert!(ended.body["data"]["revokeUserSessions"].as_i64().unwrap() >= 2, "{}", ended.body);
    assert_eq!(app.me(&as_user).await.code(), Some("UNAUTHENTICATED"));
    let ban = json!({ "input": { "userId": id, "reason": "contract" } });
    let banned = flow.run("BanUser", ban, Some(&admin)).await;
    assert_eq!(banned.body["data"]["banUser"]["banned"], true, "{}", banned.body);
    assert_eq!(banned.body["data"]["banUser"]["banReason"], "contract");
    assert_eq!(app.login("dora@example.com", "contract password five").await.code(), Some("ACCOUNT_BANNED"));
    let unbanned = flow.run("UnbanUser", json!({ "userId": id }), Some(&admin)).await;
    assert_eq!(unbanned.body["data"]["unbanUser"]["banned"], false, "{}", unbanned.body);
    let sent = flow.run("SendUserPasswordReset", json!({ "userId": id }), Some(&admin)).await;
    assert_eq!(sent.body["data"]["sendUserPasswordReset"], true, "{}", sent.body);
    app.wait_for_mails("dora@example.com", "Reset your password", 1).await;
    let deleted = flow.run("DeleteUser", json!({ "userId": id }), Some(&admin)).await;
    assert_eq!(deleted.body["data"]["deleteUser"], true, "{}", deleted.body);
    assert_eq!(
        app.login("dora@example.com", "contract password five").await.code(),
        Some("INVALID_CREDENTIALS")
    );
}

fn contract() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/operations.graphql");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The contract's document, sent with each `operationName`, and the
/// operations it ran (to prove at the end that it ran every one).
struct Flow<'a> {
    app: &'a TestApp,
    doc: String,
    ran: Mutex<BTreeSet<String>>,
}

impl Flow<'_> {
    async fn run(&self, operation: &str, variables: Value, token: Option<&str>) -> Reply {
        self.ran.lock().unwrap().insert(operation.to_owned());
        let body = json!({ "query": self.doc, "operationName": operation, "variables": variables });
        let call = self.app.post().json(&body);
        let call = match token {
            Some(token) => call.bearer(token),
            None => call,
        };
        let reply = call.send().await;
        assert_eq!(reply.status, 200, "{operation}: {}", reply.text);
        reply
    }
}

async fn every_contract_operation_behaves_as_documented(app: TestApp) {
    let flow = Flow { app: &app, doc: contract(), ran: Mutex::default() };
    let (email, password) = ("cleo@example.com", "contract password one");
    let input =
        json!({ "input": { "email": " Cleo@Example.com ", "password": password, "name": "Con Tract" } });

    let registered = flow.run("Register", input, None).await;
    let reg = &registered.body["data"]["register"];
    assert_eq!(reg["user"]["email"], email, "{}", registered.body);
    let first = str_of(&reg["token"]);

    let login = flow.run("Login", json!({ "input": { "email": email, "password": password } }), None).await;
    let second = str_of(&login.body["data"]["login"]["token"]);
    let bad =
        flow.run("Login", json!({ "input": { "email": email, "password": "nope nope nope" } }), None).await;
    assert_eq!(bad.code(), Some("INVALID_CREDENTIALS"));

    let me = flow.run("Me", json!({}), Some(&second)).await;
    assert_eq!(me.body["data"]["me"]["name"], "Con Tract");
    assert_eq!(flow.run("Me", json!({}), None).await.code(), Some("UNAUTHENTICATED"));

    let sessions = flow.run("MySessions", json!({}), Some(&second)).await;
    let list = sessions.body["data"]["me"]["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let first_id = list.iter().find(|s| s["current"] == false).map(|s| str_of(&s["id"])).unwrap();
    assert_eq!(sessions.body["data"]["me"]["accounts"][0]["providerId"], "credential");

    let profile = flow
        .run("UpdateProfile", json!({ "input": { "image": "https://img.example.com/c.png" } }), Some(&second))
        .await;
    assert_eq!(profile.body["data"]["updateProfile"]["image"], "https://img.example.com/c.png");
    assert_eq!(profile.body["data"]["updateProfile"]["name"], "Con Tract");

    let revoked = flow.run("RevokeSession", json!({ "id": first_id }), Some(&second)).await;
    assert_eq!(revoked.body["data"]["revokeSession"], true);
    assert_eq!(flow.run("Me", json!({}), Some(&first)).await.code(), Some("UNAUTHENTICATED"));

    let third = str_of(&app.login(email, password).await.body["data"]["login"]["token"]);
    let others = flow.run("RevokeOtherSessions", json!({}), Some(&second)).await;
    assert_eq!(others.body["data"]["revokeOtherSessions"], 1);
    assert_eq!(app.me(&third).await.code(), Some("UNAUTHENTICATED"));

    let change = json!({ "input": { "currentPassword": password, "newPassword": "contract password two" } });
    assert_eq!(flow.run("ChangePassword", change, Some(&second)).await.body["data"]["changePassword"], true);

    let verify_mail = app.mailed_token(email, "Confirm your email address", 1).await;
    let requested = flow.run("RequestEmailVerification", json!({}), Some(&second)).await;
    assert_eq!(requested.body["data"]["requestEmailVerification"], true);
    let fresh = app.mailed_token(email, "Confirm your email address", 2).await;
    assert_ne!(fresh, verify_mail);
    let verified = flow.run("VerifyEmail", json!({ "token": fresh }), None).await;
    assert_eq!(verified.body["data"]["verifyEmail"]["emailVerified"], true);
    assert_eq!(flow.run("VerifyEmail", json!({ "token": fresh }), None).await.code(), Some("INVALID_TOKEN"));

    // Two-factor, from setup to off, through the document's own operations.
    let password = "contract password two";
    let signed = str_of(&app.login(email, password).await.body["data"]["login"]["token"]);
    let setup = flow.run("StartTotpSetup", json!({}), Some(&signed)).await;
    let secret = str_of(&setup.body["data"]["startTotpSetup"]["secret"]);
    let code = crate::two_factor::code_at(&secret, app.clock_now());
    let confirmed = flow.run("ConfirmTotpSetup", json!({ "code": code }), Some(&signed)).await;
    assert_eq!(crate::two_factor::codes_in(&confirmed, "confirmTotpSetup").len(), 10);
    let overview = flow.run("SecurityOverview", json!({}), Some(&signed)).await;
    assert_eq!(overview.body["data"]["me"]["twoFactorEnabled"], true, "{}", overview.body);
    let renewed = flow.run("RegenerateRecoveryCodes", json!({}), Some(&signed)).await;
    let codes = crate::two_factor::codes_in(&renewed, "regenerateRecoveryCodes");
    let login = flow.run("Login", json!({ "input": { "email": email, "password": password } }), None).await;
    assert_eq!(login.code(), Some("SECOND_FACTOR_REQUIRED"));
    let challenge = str_of(&login.body["errors"][0]["extensions"]["challenge"]);
    let complete = json!({ "input": { "challenge": challenge, "code": codes[0] } });
    let completed = flow.run("CompleteSignIn", complete, None).await;
    let two = str_of(&completed.body["data"]["completeSignIn"]["token"]);
    let again = json!({ "input": { "password": password, "code": codes[1] } });
    assert_eq!(flow.run("Reauthenticate", again, Some(&two)).await.body["data"]["reauthenticate"], true);
    let off = flow.run("DisableTwoFactor", json!({}), Some(&two)).await;
    assert_eq!(off.body["data"]["disableTwoFactor"], true, "{}", off.body);

    // A passkey: registered, signed in with, removed.
    let signed = str_of(&app.login(email, password).await.body["data"]["login"]["token"]);
    let options = flow.run("StartPasskeyRegistration", json!({}), Some(&signed)).await;
    let options = options.body["data"]["startPasskeyRegistration"].clone();
    let (mut passkey, credential) = crate::common::authenticator::Authenticator::register(&options, APP);
    let finish = json!({ "input": { "credential": credential, "name": "Contract key" } });
    let added = flow.run("FinishPasskeyRegistration", finish, Some(&signed)).await;
    let passkey_id = str_of(&added.body["data"]["finishPasskeyRegistration"]["id"]);
    let started = flow.run("StartPasskeySignIn", json!({}), None).await;
    let started = &started.body["data"]["startPasskeySignIn"];
    let assertion = passkey.assert(&started["options"], APP);
    let finish = json!({ "input": { "challenge": str_of(&started["challenge"]), "credential": assertion } });
    let by_passkey = flow.run("FinishPasskeySignIn", finish, None).await;
    let by_passkey = str_of(&by_passkey.body["data"]["finishPasskeySignIn"]["token"]);
    let removed = flow.run("RemovePasskey", json!({ "id": passkey_id }), Some(&by_passkey)).await;
    assert_eq!(removed.body["data"]["removePasskey"], true, "{}", removed.body);

    // Providers: none configured here; the signed-in ways to them still answer.
    assert_eq!(flow.run("Providers", json!({}), None).await.body["data"]["providers"], json!([]));
    let start = flow.run("StartOAuth", json!({ "provider": "nowhere" }), None).await;
    assert_eq!(start.code(), Some("BAD_USER_INPUT"), "{}", start.body);
    let link = flow.run("LinkOAuth", json!({ "provider": "nowhere" }), Some(&signed)).await;
    assert_eq!(link.code(), Some("BAD_USER_INPUT"), "{}", link.body);
    let me = flow.run("MySessions", json!({}), Some(&signed)).await;
    let account = str_of(&me.body["data"]["me"]["accounts"][0]["id"]);
    let unlink = flow.run("UnlinkAccount", json!({ "id": account }), Some(&signed)).await;
    assert_eq!(unlink.code(), Some("LAST_SIGN_IN_METHOD"), "{}", unlink.body);
    let set =
        flow.run("SetPassword", json!({ "newPassword": "contract password four" }), Some(&signed)).await;
    assert_eq!(set.code(), Some("PASSWORD_ALREADY_SET"), "{}", set.body);

    let asked = flow.run("RequestPasswordReset", json!({ "email": email }), None).await;
    assert_eq!(asked.body["data"]["requestPasswordReset"], true);
    let unknown = flow.run("RequestPasswordReset", json!({ "email": "nobody@example.com" }), None).await;
    assert_eq!(unknown.body["data"]["requestPasswordReset"], true);
    let reset_token = token_in(&app.wait_for_mails(email, "Reset your password", 1).await[0]);
    let reset = json!({ "input": { "token": reset_token, "newPassword": "contract password three" } });
    assert_eq!(flow.run("ResetPassword", reset, None).await.body["data"]["resetPassword"], true);
    assert_eq!(app.me(&second).await.code(), Some("UNAUTHENTICATED"), "reset ends every session");

    let last = str_of(&app.login(email, "contract password three").await.body["data"]["login"]["token"]);
    let other = str_of(&app.login(email, "contract password three").await.body["data"]["login"]["token"]);
    let activity = flow.run("MyActivity", json!({ "first": 2 }), Some(&last)).await;
    let page = &activity.body["data"]["me"]["activity"];
    assert_eq!(page["edges"][0]["node"]["type"], "session.created", "{}", activity.body);
    assert_eq!(page["edges"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["pageInfo"]["endCursor"], page["edges"][1]["cursor"]);
    // Without a role, no admin field answers.
    let audit = flow.run("AuditEvents", json!({ "first": 5 }), Some(&last)).await;
    assert_eq!(audit.code(), Some("PERMISSION_DENIED"), "{}", audit.body);
    let hook = json!({ "input": { "url": "https://hooks.example.com/authgate" } });
    let hook = flow.run("CreateWebhookEndpoint", hook, Some(&last)).await;
    assert_eq!(hook.code(), Some("PERMISSION_DENIED"), "{}", hook.body);

    let minted = flow.run("AccessToken", json!({ "audience": "https://api.example.com" }), Some(&last)).await;
    let token = str_of(&minted.body["data"]["accessToken"]["token"]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {}", minted.body);
    assert!(minted.body["data"]["accessToken"]["expiresAt"].is_string());
    // A subscription streams (subscriptions.rs); without a session it is a plain refusal.
    flow.ran.lock().unwrap().insert("SecurityEvents".to_owned());
    let follow = json!({ "query": flow.doc, "operationName": "SecurityEvents", "variables": {} });
    let refused = app.post().json(&follow).header("accept", "text/event-stream").send().await;
    assert_eq!(refused.code(), Some("UNAUTHENTICATED"), "{}", refused.text);
    assert_eq!(flow.run("Logout", json!({}), Some(&other)).await.body["data"]["logout"], true);
    let wrong = flow.run("DeleteAccount", json!({ "password": "contract password two" }), Some(&last)).await;
    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    let deleted =
        flow.run("DeleteAccount", json!({ "password": "contract password three" }), Some(&last)).await;
    assert_eq!(deleted.body["data"]["deleteAccount"], true);
    assert_eq!(app.login(email, "contract password three").await.code(), Some("INVALID_CREDENTIALS"));

    admin_operations(&flow, &app).await;

    // Every operation of the document ran here, on this backend.
    let ran = flow.ran.into_inner().unwrap();
    let document = apollo_compiler::ast::Document::parse(&flow.doc, "operations.graphql").expect("parses");
    let listed: BTreeSet<String> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            apollo_compiler::ast::Definition::OperationDefinition(op) => {
                op.name.as_ref().map(|n| n.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ran, listed, "the contract's operations and the ones this flow ran");
}
