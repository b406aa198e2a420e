//! The GraphiQL playground: scripts from unpkg by default, or from a local
//! directory (`AUTHGATE_GRAPHIQL_ASSETS`, a `node_modules` holding graphiql,
//! react and react-dom) for air-gapped deployments. Cookies are sent, so
//! cookie sessions work from the playground too.

use std::{path::PathBuf, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::AppState;

/// The asset files the page loads, relative to the asset base.
const ASSETS: [(&str, &str); 4] = [
    ("react/umd/react.production.min.js", "text/javascript; charset=utf-8"),
    ("react-dom/umd/react-dom.production.min.js", "text/javascript; charset=utf-8"),
    ("graphiql/graphiql.min.js", "text/javascript; charset=utf-8"),
    ("graphiql/graphiql.min.css", "text/css; charset=utf-8"),
];

/// Versions pinned on the CDN, matching tests/browser/package.json.
const CDN: [&str; 4] = [
    "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
    "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css",
];

const CDN_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' https://unpkg.com; \
     style-src 'self' 'unsafe-inline' https://unpkg.com; font-src 'self' data: https://unpkg.com; \
     img-src 'self' data: https:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'";

const LOCAL_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'";

#[derive(Clone)]
pub struct Page {
    html: Arc<str>,
    csp: &'static str,
    assets: Option<PathBuf>,
}

impl Page {
    pub fn new(assets: Option<PathBuf>) -> Self {
        let urls: Vec<String> = match &assets {
            Some(_) => ASSETS.iter().map(|(path, _)| format!("/graphiql/assets/{path}")).collect(),
            None => CDN.iter().map(|url| (*url).to_owned()).collect(),
        };
        let html = format!(
            r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>authgate · GraphiQL</title>
  <link rel="stylesheet" href="{css}">
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{react}"></script>
  <script src="{react_dom}"></script>
  <script src="{graphiql}"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({{
      url: '/graphql',
      // Send the session cookie, and prove this is not a cross-site form.
      fetch: (url, init) => fetch(url, {{ ...init, credentials: 'include' }}),
      headers: {{ 'X-Requested-With': 'GraphiQL' }},
    }});
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {{ fetcher, defaultEditorToolsVisibility: true, isHeadersEditorEnabled: true }}),
    );
  </script>
</body>
</html>
"#,
            react = urls[0],
            react_dom = urls[1],
            graphiql = urls[2],
            css = urls[3],
        );
        let csp = if assets.is_some() { LOCAL_CSP } else { CDN_CSP };
        Self { html: html.into(), csp, assets }
    }

    pub fn response(&self) -> Response {
        let mut response = axum::response::Html(self.html.to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(self.csp));
        response
    }
}

/// `GET /graphiql/assets/{path}`: one of the four files, from the local directory.
pub async fn asset(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let Some(dir) = state.graphiql.as_ref().and_then(|page| page.assets.as_ref()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some((file, content_type)) = ASSETS.iter().find(|(known, _)| *known == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(dir.join(file)).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=86400")], bytes)
                .into_response()
        }
        Err(e) => {
            tracing::warn!(file, error = %e, "GraphiQL asset missing");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}
