use std::time::Duration;

use axum::{extract::State, http::StatusCode};

use super::AppState;

/// The process is up and serving HTTP.
pub async fn alive() -> &'static str {
    "ok"
}

/// The database answers; otherwise 503 so a load balancer routes elsewhere.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match domain::db::ready(&state.auth, Duration::from_secs(2)).await {
        true => (StatusCode::OK, "ready"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}
