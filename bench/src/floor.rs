//! The floor: a bare async-graphql + axum server answering the bench's `Me`
//! document from memory — no database, auth, limits or tracing. What the
//! stock stack can do on this machine; `me` is measured against it.

use std::net::SocketAddr;

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};
use axum::{Json, Router, extract::State, routing::post};

#[derive(SimpleObject, Clone)]
struct User {
    id: ID,
    email: String,
    name: Option<String>,
    email_verified: bool,
}

struct Query;

#[Object]
impl Query {
    async fn me(&self) -> User {
        User {
            id: ID("4b0e7c2a-6f1d-4c55-9a57-8d2f0e1b3c4d".into()),
            email: "floor@example.com".into(),
            name: Some("Floor".into()),
            email_verified: true,
        }
    }
}

type FloorSchema = Schema<Query, EmptyMutation, EmptySubscription>;

async fn graphql(
    State(schema): State<FloorSchema>,
    Json(request): Json<async_graphql::Request>,
) -> Json<async_graphql::Response> {
    Json(schema.execute(request).await)
}

/// Serves until killed (run as `authgate-bench --floor-server ADDR`).
pub async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    let schema = Schema::build(Query, EmptyMutation, EmptySubscription).finish();
    let app = Router::new()
        .route("/graphql", post(graphql))
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .with_state(schema);
    let listener = tokio::net::TcpListener::bind(bind).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
