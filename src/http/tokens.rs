//! What the app's services read to verify access tokens without calling
//! authgate: the public keys (`/.well-known/jwks.json`), where they are
//! (`/.well-known/openid-configuration`), and the sessions that ended
//! (`/revocations`, behind a service key).

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::access::{keys, revocations};
use serde_json::json;

use super::AppState;

/// The JWK Set, cacheable for `keys::JWKS_MAX_AGE`, with an `ETag` (a
/// verifier revalidating gets `304`).
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let keys::KeySet { body, etag: tag } = match keys::jwks(&state.auth).await {
        Ok(set) => set,
        Err(e) => return unavailable(e),
    };
    let cache = format!("public, max-age={}", keys::JWKS_MAX_AGE.as_secs());
    let mut answer = HeaderMap::new();
    answer.insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache).expect("ascii"));
    answer.insert(header::ETAG, HeaderValue::from_str(&tag).expect("ascii"));
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, answer).into_response();
    }
    answer.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    (StatusCode::OK, answer, body).into_response()
}

/// Where the keys are, for libraries that discover them.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let issuer = state.auth.config.public_url.trim_end_matches('/').to_owned();
    let algorithms: Vec<&str> = keys::algorithms(&state.auth).iter().map(|alg| alg.as_str()).collect();
    let body = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": [],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
    });
    let cache = format!("public, max-age={}", keys::JWKS_MAX_AGE.as_secs());
    ([(header::CACHE_CONTROL, cache)], Json(body)).into_response()
}

#[derive(serde::Deserialize)]
pub struct FeedQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /revocations?after=<cursor>`: the sessions that ended after the
/// cursor, for services holding one of `AUTHGATE_SERVICE_KEYS`.
pub async fn revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Response {
    if let Some(refused) = refuse_without_key(&state, &headers) {
        return refused;
    }
    // An `EventSource` that reconnects names the last event it saw.
    let last_seen = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    // The header first: an `EventSource` opened with `?after=` resumes
    // where it was, not at its first cursor again.
    let after = last_seen.or(query.after);
    if super::subscribe::wants_stream(&headers) {
        return match revocations::follow(&state.auth, after.as_deref()).await {
            Ok(sent) => stream(sent),
            Err(domain::error::AuthError::BadUserInput { message, .. }) => bad_cursor(message),
            Err(e) => unavailable(e),
        };
    }
    let limit = query.limit.unwrap_or(revocations::MAX_PAGE);
    match revocations::after(&state.auth, after.as_deref(), limit).await {
        Ok(page) => ([(header::CACHE_CONTROL, "no-store")], Json(page)).into_response(),
        Err(domain::error::AuthError::BadUserInput { message, .. }) => bad_cursor(message),
        Err(e) => unavailable(e),
    }
}

fn bad_cursor(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": "bad_cursor", "message": message }))).into_response()
}

/// The feed as Server-Sent Events: `revocation` events (the entry as
/// data, its cursor as `id`), and a `heartbeat` with the current cursor
/// when quiet. Reconnecting with `Last-Event-ID` resumes after it.
fn stream(sent: impl futures_util::Stream<Item = revocations::Sent> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    let events = sent.map(|sent| {
        let text = match sent {
            revocations::Sent::Entry(entry) => {
                let data = serde_json::to_string(&entry).unwrap_or_else(|_| "{}".into());
                format!("id: {}\nevent: revocation\ndata: {data}\n\n", entry.cursor)
            }
            revocations::Sent::Heartbeat { next, lag } => {
                let data = json!({ "next": next, "lagMs": lag.as_millis() as u64 });
                format!("id: {next}\nevent: heartbeat\ndata: {data}\n\n")
            }
        };
        Ok::<_, std::convert::Infallible>(text)
    });
    let mut response = axum::body::Body::from_stream(events).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `401` unless the request carries a service key (`Authorization: Bearer`).
fn refuse_without_key(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if presented.is_some_and(|key| revocations::is_service_key(&state.auth, key)) {
        return None;
    }
    let body = Json(
        json!({ "error": "unauthorized", "message": "a service key is required (AUTHGATE_SERVICE_KEYS)" }),
    );
    Some((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response())
}

fn unavailable(e: domain::error::AuthError) -> Response {
    e.report();
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "try again").into_response()
}
