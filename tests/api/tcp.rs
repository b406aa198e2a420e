//! The server over a real TCP socket, as a client sees it.

use std::net::SocketAddr;

use entity::sessions;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{LOGOUT, ME, REGISTER, TestApp},
};

both_backends!(register_me_logout_over_tcp_with_cookies);

async fn register_me_logout_over_tcp_with_cookies(app: TestApp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app.router.clone().into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });

    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let url = format!("http://{addr}/graphql");
    let call = |query: &'static str, variables: Value| {
        client
            .post(&url)
            .header("user-agent", "authgate-test/1.0")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
    };
    let registered: Value =
        call(REGISTER, json!({ "input": { "email": "tcp@example.com", "password": "over the wire" } }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(registered["data"]["register"]["user"]["email"], "tcp@example.com");

    // The client's cookie jar now carries the session.
    let me: Value = call(ME, json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(me["data"]["me"]["email"], "tcp@example.com");
    let session = sessions::Entity::find().one(app.db()).await.unwrap().unwrap();
    assert_eq!(session.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(session.user_agent.as_deref(), Some("authgate-test/1.0"));

    let out: Value = call(LOGOUT, json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(out["data"]["logout"], true);
    let after: Value = call(ME, json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(after["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    server.abort();
}
