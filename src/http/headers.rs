//! Response headers every answer carries, and CORS for the allowed origins.

use std::time::Duration;

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, header},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
};

use crate::config::Config;

/// JSON answers need nothing: no scripts, no frames.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

pub fn apply(router: Router, config: &Config) -> Router {
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ];
    let mut router = router;
    for (name, value) in defaults {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    if !config.hsts_max_age.is_zero() {
        let value = format!("max-age={}; includeSubDomains", config.hsts_max_age.as_secs());
        if let Ok(value) = HeaderValue::from_str(&value) {
            router =
                router.layer(SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, value));
        }
    }
    match cors(config) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// Credentials (the cookie) are allowed only for the listed origins; no
/// wildcard, and no CORS headers at all when the list is empty.
fn cors(config: &Config) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty() && *o != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-requested-with"),
                HeaderName::from_static("apollo-require-preflight"),
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}
