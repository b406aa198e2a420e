//! authgate: a GraphQL authentication server.
//!
//! Data flows one way: HTTP (`http`) → resolver (`graphql`) → service
//! (`auth`) → database (`entity`).

pub mod commands;
pub mod graphql;
pub mod http;

use std::sync::Arc;

use axum::Router;
use domain::{clock::Clock, config::Config, mail::Postman};
use sea_orm::DatabaseConnection;

use crate::http::AppState;

/// Everything the server shares, from a connected database.
pub fn state(db: DatabaseConnection, config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let mail = Postman::from_config(&config)?;
    state_with_mail(db, config, clock, mail)
}

/// As `state`, with a given mailer (tests capture mail this way).
pub fn state_with_mail(
    db: DatabaseConnection,
    config: Config,
    clock: Arc<dyn Clock>,
    mail: Postman,
) -> anyhow::Result<AppState> {
    config.validate()?;
    let graphiql =
        config.graphiql_enabled().then(|| http::graphiql::Page::new(config.graphiql_assets.clone()));
    http::observe::prometheus();
    let config = Arc::new(config);
    let auth = domain::services(db, config.clone(), clock, mail)?;
    let documents = graphql::Documents::default();
    let schema = graphql::build_schema(auth.clone(), &config);
    let operation_labels = Arc::new(graphql::operation_labels());
    Ok(AppState::new(http::Shared { auth, schema, graphiql, operation_labels, documents }))
}

pub use domain::preflight;

/// The log filter for `AUTHGATE_LOG`, with SeaORM capped at `info`
/// whatever is asked: its debug spans print statements with their bound
/// values (password hashes, emails), which must never reach a log.
pub fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    ["sea_orm=info", "sea_orm_migration=info"]
        .into_iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |filter, directive| filter.add_directive(directive))
}

/// The HTTP application: shared by `main`, the tests and the benchmark.
pub fn app(state: AppState) -> Router {
    http::router(state)
}
