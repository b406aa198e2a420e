//! authgate: a GraphQL authentication server.
//!
//! Data flows one way: HTTP (`http`) → resolver (`graphql`) → service
//! (`auth`) → database (`entity`).

pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod http;

use std::sync::Arc;

use async_graphql::http::{Credentials, GraphiQLSource};
use axum::Router;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{AuthContext, PasswordHasher},
    clock::Clock,
    config::Config,
    http::AppState,
};

/// Everything the server shares, from a connected database.
pub fn state(db: DatabaseConnection, config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let hasher =
        PasswordHasher::new(&config).map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
    let graphiql = config.graphiql_enabled().then(|| {
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("authgate")
            // Cookie sessions work from the playground too.
            .credentials(Credentials::Include)
            .finish()
            .into()
    });
    let config = Arc::new(config);
    let auth = AuthContext { db, config: config.clone(), clock, hasher: Arc::new(hasher) };
    let schema = graphql::build_schema(auth.clone(), &config);
    Ok(AppState { auth, schema, graphiql })
}

/// The HTTP application: shared by `main`, the tests and the benchmark.
pub fn app(state: AppState) -> Router {
    http::router(state)
}
