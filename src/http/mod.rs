//! The HTTP layer: routes, extracting credentials and client details, and
//! GraphQL over HTTP.

mod client;
pub mod cookie;
pub mod graphiql;
mod graphql;
mod headers;
mod health;
mod oauth;
pub mod observe;
mod respond;

use axum::{Router, routing::get};

use crate::{auth::AuthContext, graphql::AppSchema};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub auth: AuthContext,
    pub schema: AppSchema,
    /// GraphiQL page, rendered once at start-up.
    pub graphiql: Option<graphiql::Page>,
}

pub fn router(state: AppState) -> Router {
    let config = state.auth.config.clone();
    let routes = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(observe::metrics))
        .route("/graphiql/assets/{*path}", get(graphiql::asset))
        .route("/auth/callback/{provider}", get(oauth::callback))
        .with_state(state);
    headers::apply(routes, &config).layer(axum::middleware::from_fn(observe::trace))
}
