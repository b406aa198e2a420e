//! The contract's own document, sent as it is with each `operationName`,
//! runs every operation against the real server with its documented result.

use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{Reply, TestApp, str_of, token_in},
};

both_backends!(every_contract_operation_behaves_as_documented);

fn contract() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/operations.graphql");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn run(app: &TestApp, document: &str, operation: &str, variables: Value, token: Option<&str>) -> Reply {
    let body = json!({ "query": document, "operationName": operation, "variables": variables });
    let call = app.post().json(&body);
    let call = match token {
        Some(token) => call.bearer(token),
        None => call,
    };
    let reply = call.send().await;
    assert_eq!(reply.status, 200, "{operation}: {}", reply.text);
    reply
}

async fn every_contract_operation_behaves_as_documented(app: TestApp) {
    let doc = contract();
    let (email, password) = ("cleo@example.com", "contract password one");
    let input =
        json!({ "input": { "email": " Cleo@Example.com ", "password": password, "name": "Con Tract" } });

    let registered = run(&app, &doc, "Register", input, None).await;
    let reg = &registered.body["data"]["register"];
    assert_eq!(reg["user"]["email"], email, "{}", registered.body);
    let first = str_of(&reg["token"]);

    let login =
        run(&app, &doc, "Login", json!({ "input": { "email": email, "password": password } }), None).await;
    let second = str_of(&login.body["data"]["login"]["token"]);
    let bad =
        run(&app, &doc, "Login", json!({ "input": { "email": email, "password": "nope nope nope" } }), None)
            .await;
    assert_eq!(bad.code(), Some("INVALID_CREDENTIALS"));

    let me = run(&app, &doc, "Me", json!({}), Some(&second)).await;
    assert_eq!(me.body["data"]["me"]["name"], "Con Tract");
    assert_eq!(run(&app, &doc, "Me", json!({}), None).await.code(), Some("UNAUTHENTICATED"));

    let sessions = run(&app, &doc, "MySessions", json!({}), Some(&second)).await;
    let list = sessions.body["data"]["me"]["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let first_id = list.iter().find(|s| s["current"] == false).map(|s| str_of(&s["id"])).unwrap();
    assert_eq!(sessions.body["data"]["me"]["accounts"][0]["providerId"], "credential");

    let profile = run(
        &app,
        &doc,
        "UpdateProfile",
        json!({ "input": { "image": "https://img.example.com/c.png" } }),
        Some(&second),
    )
    .await;
    assert_eq!(profile.body["data"]["updateProfile"]["image"], "https://img.example.com/c.png");
    assert_eq!(profile.body["data"]["updateProfile"]["name"], "Con Tract");

    let revoked = run(&app, &doc, "RevokeSession", json!({ "id": first_id }), Some(&second)).await;
    assert_eq!(revoked.body["data"]["revokeSession"], true);
    assert_eq!(run(&app, &doc, "Me", json!({}), Some(&first)).await.code(), Some("UNAUTHENTICATED"));

    let third = str_of(&app.login(email, password).await.body["data"]["login"]["token"]);
    let others = run(&app, &doc, "RevokeOtherSessions", json!({}), Some(&second)).await;
    assert_eq!(others.body["data"]["revokeOtherSessions"], 1);
    assert_eq!(app.me(&third).await.code(), Some("UNAUTHENTICATED"));

    let change = json!({ "input": { "currentPassword": password, "newPassword": "contract password two" } });
    assert_eq!(
        run(&app, &doc, "ChangePassword", change, Some(&second)).await.body["data"]["changePassword"],
        true
    );

    let verify_mail = app.mailed_token(email, "Confirm your email address", 1).await;
    let requested = run(&app, &doc, "RequestEmailVerification", json!({}), Some(&second)).await;
    assert_eq!(requested.body["data"]["requestEmailVerification"], true);
    let fresh = app.mailed_token(email, "Confirm your email address", 2).await;
    assert_ne!(fresh, verify_mail);
    let verified = run(&app, &doc, "VerifyEmail", json!({ "token": fresh }), None).await;
    assert_eq!(verified.body["data"]["verifyEmail"]["emailVerified"], true);
    assert_eq!(
        run(&app, &doc, "VerifyEmail", json!({ "token": fresh }), None).await.code(),
        Some("INVALID_TOKEN")
    );

    let asked = run(&app, &doc, "RequestPasswordReset", json!({ "email": email }), None).await;
    assert_eq!(asked.body["data"]["requestPasswordReset"], true);
    let unknown =
        run(&app, &doc, "RequestPasswordReset", json!({ "email": "nobody@example.com" }), None).await;
    assert_eq!(unknown.body["data"]["requestPasswordReset"], true);
    let reset_token = token_in(&app.wait_for_mails(email, "Reset your password", 1).await[0]);
    let reset = json!({ "input": { "token": reset_token, "newPassword": "contract password three" } });
    assert_eq!(run(&app, &doc, "ResetPassword", reset, None).await.body["data"]["resetPassword"], true);
    assert_eq!(app.me(&second).await.code(), Some("UNAUTHENTICATED"), "reset ends every session");

    let last = str_of(&app.login(email, "contract password three").await.body["data"]["login"]["token"]);
    let other = str_of(&app.login(email, "contract password three").await.body["data"]["login"]["token"]);
    assert_eq!(run(&app, &doc, "Logout", json!({}), Some(&other)).await.body["data"]["logout"], true);
    let wrong =
        run(&app, &doc, "DeleteAccount", json!({ "password": "contract password two" }), Some(&last)).await;
    assert_eq!(wrong.code(), Some("INVALID_CREDENTIALS"));
    let deleted =
        run(&app, &doc, "DeleteAccount", json!({ "password": "contract password three" }), Some(&last)).await;
    assert_eq!(deleted.body["data"]["deleteAccount"], true);
    assert_eq!(app.login(email, "contract password three").await.code(), Some("INVALID_CREDENTIALS"));
}
