//! Subscriptions over Server-Sent Events (the graphql-sse protocol's
//! "distinct connections" mode): `POST /graphql` with a subscription and
//! `Accept: text/event-stream` answers a stream of `next` events, each a
//! GraphQL response, then `complete`. Sent through the same door as every
//! POST (media type, CSRF and cross-site checks, the connection caps); a
//! client without a live session is refused before the stream begins.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use domain::{error::AuthError, session};
use futures_util::{Stream, StreamExt};

use super::{AppState, client, observe, respond};
use crate::graphql::{
    Loaders,
    effects::Effects,
    guard::{PresentedToken, RequestAuth},
};

/// A comment line this often keeps proxies from closing a quiet stream
/// (and shows a dead client sooner).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether the client asked for a stream.
pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// Runs a subscription as an event stream.
pub async fn stream(
    state: &AppState,
    parts: &Parts,
    token: Option<PresentedToken>,
    (request, label): (async_graphql::Request, String),
    format: respond::Format,
) -> Response {
    let started = std::time::Instant::now();
    let meta = client::meta(parts, &state.auth);
    // Refused as a plain answer, not as a stream that says so later.
    let checked = match &token {
        Some(token) => session::authenticate(&state.auth, &token.value, meta.clone()).await.map(|_| ()),
        None => Err(AuthError::Unauthenticated),
    };
    if let Err(e) = checked {
        observe::record_operation(&label, e.code().as_str(), started);
        return respond::single(format, crate::graphql::refusal(&e));
    }
    observe::record_operation(&label, "ok", started);
    let request = request
        .data(RequestAuth::new(token))
        .data(meta)
        .data(Loaders::new(&state.auth))
        .data(Effects::default());
    let responses = state.schema.execute_stream(request);
    let mut response =
        Body::from_stream(events(responses).map(Ok::<_, std::convert::Infallible>)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx would otherwise hold events back in its buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    *response.status_mut() = StatusCode::OK;
    response
}

/// `next` per response, a keep-alive comment when quiet, `complete` at the end.
fn events(
    responses: impl Stream<Item = async_graphql::Response> + Send + Unpin + 'static,
) -> impl Stream<Item = String> + Send {
    futures_util::stream::unfold(Some(responses), |responses| async move {
        let mut responses = responses?;
        match tokio::time::timeout(KEEP_ALIVE, responses.next()).await {
            Ok(Some(response)) => {
                let data = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
                Some((format!("event: next\ndata: {data}\n\n"), Some(responses)))
            }
            Ok(None) => Some(("event: complete\ndata:\n\n".to_owned(), None)),
            Err(_quiet) => Some((":\n\n".to_owned(), Some(responses))),
        }
    })
}
