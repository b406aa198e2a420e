//! Response headers every answer carries, and CORS for the allowed origins.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderMap, HeaderName, HeaderValue, Method, header},
    response::Response,
};
use domain::config::Config;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// JSON answers need nothing: no scripts, no frames.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// One layer for all of them (a layer per header cost a service clone each
/// on every request).
pub fn apply(router: Router, config: &Config) -> Router {
    let defaults: Vec<(HeaderName, HeaderValue)> = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ]
    .into_iter()
    .map(|(name, value)| (name, HeaderValue::from_static(value)))
    .collect();
    let hsts = (!config.hsts_max_age.is_zero())
        .then(|| format!("max-age={}; includeSubDomains", config.hsts_max_age.as_secs()))
        .and_then(|value| HeaderValue::from_str(&value).ok());
    let fixed = Arc::new(Fixed { defaults, hsts });
    let router = router.layer(axum::middleware::map_response(move |mut response: Response| {
        let fixed = fixed.clone();
        async move {
            fixed.add_to(response.headers_mut());
            response
        }
    }));
    match cors(config) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// The headers every answer carries.
struct Fixed {
    /// Added unless the handler set its own (GraphiQL's page has its own CSP).
    defaults: Vec<(HeaderName, HeaderValue)>,
    /// Always this value.
    hsts: Option<HeaderValue>,
}

impl Fixed {
    fn add_to(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.defaults {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
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
