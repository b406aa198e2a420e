//! The HTTP layer: routes, extracting credentials and client details, and
//! GraphQL over HTTP. It polices requests and writes answers (statuses,
//! headers, the cookies the resolvers asked for as `graphql::effects`); it
//! decides nothing about accounts or sessions itself.

mod client;
mod cookie;
pub(crate) mod graphiql;
mod graphql;
mod headers;
mod health;
mod oauth;
pub(crate) mod observe;
mod respond;
pub mod server;
mod subscribe;
mod tokens;

use axum::{Router, routing::get};
use domain::AuthContext;

use crate::graphql::AppSchema;

/// Shared by every request (axum clones it into each: one atomic increment).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of an `AppState`.
pub struct Shared {
    pub auth: AuthContext,
    pub schema: AppSchema,
    /// GraphiQL page, rendered once at start-up.
    pub graphiql: Option<graphiql::Page>,
    /// The metric labels operations may carry (the schema's root fields).
    pub operation_labels: std::sync::Arc<std::collections::HashSet<String>>,
    /// Documents parsed (and validated) before, by their text.
    pub documents: crate::graphql::Documents,
}

pub fn router(state: AppState) -> Router {
    let config = state.auth.config.clone();
    let mut routes = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready));
    // With a metrics address of its own, `/metrics` is served there only.
    if config.metrics_bind.is_none() {
        routes = routes.route("/metrics", get(observe::metrics));
    }
    let routes = routes
        .route("/graphiql/assets/{name}", get(graphiql::asset))
        .route("/auth/callback/{provider}", get(oauth::callback))
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route("/.well-known/openid-configuration", get(tokens::openid_configuration))
        .route("/revocations", get(tokens::revocations))
        .with_state(state);
    headers::apply(routes, &config).layer(axum::middleware::from_fn(observe::trace))
}

/// `/metrics` alone, for `AUTHGATE_METRICS_BIND`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(observe::metrics)).with_state(state)
}
