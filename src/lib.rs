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
pub mod jobs;
pub mod keys;
pub mod mail;

use std::sync::Arc;

use axum::Router;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{AuthContext, Limiter, PasswordHasher},
    clock::Clock,
    config::Config,
    http::AppState,
    jobs::Jobs,
    mail::Postman,
};

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
    let hasher =
        PasswordHasher::new(&config).map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
    let graphiql =
        config.graphiql_enabled().then(|| http::graphiql::Page::new(config.graphiql_assets.clone()));
    http::observe::prometheus();
    let config = Arc::new(config);
    let limiter = Limiter::from_config(&config, &db)?;
    let auth = AuthContext::new(auth::Services {
        db: db.clone(),
        config: config.clone(),
        clock,
        hasher: Arc::new(hasher),
        mail,
        jobs: Jobs::start(),
        limiter,
        oauth: Arc::new(auth::oauth::OAuth::from_config(&config)?),
        keys: Arc::new(keys::Keys::from_config(&config)?),
        checkpoints: Default::default(),
        sessions: auth::session_cache::SessionCache::start(&config, &db)?,
        webauthn: Arc::new(auth::passkey::relying_party(&config)?),
    });
    let documents = graphql::Documents::default();
    let schema = graphql::build_schema(auth.clone(), &config);
    let operation_labels = Arc::new(graphql::operation_labels());
    Ok(AppState::new(http::Shared { auth, schema, graphiql, operation_labels, documents }))
}

/// What `authgate serve` does before it listens: checks unknown emails
/// at the cost most stored hashes have, and checks that every sealed
/// secret opens. A server key rotated without `AUTHGATE_SECRET_KEY_PREVIOUS`
/// (or a lost key) fails here, once, with the reason, instead of as an
/// internal error at every two-factor sign-in.
pub async fn preflight(auth: &AuthContext) -> anyhow::Result<()> {
    auth::account::calibrate_dummy(auth).await.inspect_err(|e| e.report())?;
    let unopened = auth::two_factor::unopenable_secrets(auth).await.inspect_err(|e| e.report())?;
    anyhow::ensure!(
        unopened == 0,
        "{unopened} two-factor secrets do not open with AUTHGATE_SECRET_KEY nor AUTHGATE_SECRET_KEY_PREVIOUS: \
         set the key they were sealed with as AUTHGATE_SECRET_KEY_PREVIOUS and run `authgate reseal` \
         (docs/sign-in.md, \"Rotating AUTHGATE_SECRET_KEY\"); started as it is, each of those users would fail at the code step"
    );
    Ok(())
}

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
