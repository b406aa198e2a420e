//! A service of your own behind authgate's access tokens: every request
//! needs a token for this service's audience, verified here with the
//! published keys, and refused once its session ends (the revocation
//! feed). Run it beside authgate:
//!
//! ```sh
//! AUTHGATE_URL=http://127.0.0.1:8000 AUDIENCE=https://api.example.com \
//! AUTHGATE_SERVICE_KEY=<one of AUTHGATE_SERVICE_KEYS> \
//! cargo run --example verify_service
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/hello
//! ```
//!
//! `AUTHGATE_ISSUER` names the tokens' `iss` when authgate is reached at
//! another address than its `AUTHGATE_PUBLIC_URL`. `LISTEN` sets the address (127.0.0.1:8080; port 0 picks one). It prints
//! `listening on http://…` once it serves. The tests run it as a process
//! of its own (tests/api/verifier.rs).

use authgate_verify::{
    Config, Verifier,
    axum::{RequireToken, Token},
};
use axum::{Json, Router, routing::get};
use serde_json::json;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let mut config =
        Config::new(env("AUTHGATE_URL"), env("AUDIENCE")).service_key(env("AUTHGATE_SERVICE_KEY"));
    // When authgate is reached at another address than its public one.
    if let Ok(issuer) = std::env::var("AUTHGATE_ISSUER") {
        config = config.issuer(issuer);
    }
    let verifier = Verifier::start(config).await?;
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(RequireToken::new(verifier))
        // Outside the layer: no token needed.
        .route("/healthz", get(|| async { "ok" }));
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Who the request is for: the token's user and session.
async fn hello(Token(claims): Token) -> Json<serde_json::Value> {
    Json(json!({ "sub": claims.sub, "sid": claims.sid, "acr": claims.acr, "amr": claims.amr }))
}
