//! Request ids, one tracing span per request, and Prometheus metrics.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use super::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id from `X-Request-Id` when it is a sane token, else a new
/// UUID; returned on the response and recorded on the request's span (with
/// the GraphQL operation and its outcome, filled in by the handler).
pub async fn trace(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        // A random UUID from the thread's generator, not the OS (`new_v4`
        // asks the kernel: a system call per request).
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        operation = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let started = Instant::now();
    let _in_flight = InFlight::enter();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(status, latency_ms = started.elapsed().as_secs_f64() * 1000.0, "request done");
    });
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// Counts a request in `authgate_http_requests_in_flight` until dropped
/// (also when the client goes away mid-request). With the pool's `in_use`
/// at its maximum, in-flight requests beyond it are waiting for a connection.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!("authgate_http_requests_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("authgate_http_requests_in_flight").decrement(1.0);
    }
}

/// Records what ran and how it ended, on the span and in the latency histogram.
pub fn record_operation(operation: &str, outcome: &str, started: Instant) {
    let span = tracing::Span::current();
    span.record("operation", operation);
    span.record("outcome", outcome);
    metrics::histogram!(
        "authgate_graphql_request_duration_seconds",
        "operation" => operation.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .record(started.elapsed().as_secs_f64());
}

/// How often the recorder drains its histogram samples into buckets. Without
/// it, samples pile up in memory until someone scrapes `/metrics`.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with a
/// thread of its own for upkeep (it needs no async runtime).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets =
                [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|e| tracing::warn!(error = %e, "metrics upkeep not started"))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = prometheus() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (size, idle) = domain::db::pool_stats(&state.auth);
    metrics::gauge!("authgate_db_pool_connections", "state" => "in_use")
        .set(size.saturating_sub(idle) as f64);
    metrics::gauge!("authgate_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("authgate_db_pool_max_connections").set(state.auth.config.db_max_connections as f64);
    let (held, live) = domain::session::cache_state(&state.auth);
    metrics::gauge!("authgate_session_cache_entries").set(held as f64);
    metrics::gauge!("authgate_session_cache_live").set(if live { 1.0 } else { 0.0 });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}
