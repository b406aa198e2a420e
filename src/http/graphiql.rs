//! The GraphiQL playground, served from authgate's own binary: the pinned
//! GraphiQL, React and CSS in `vendor/graphiql` (with their licences) are
//! embedded at build time, so the page works offline and its
//! Content-Security-Policy allows scripts from `'self'` only. `AUTHGATE_GRAPHIQL_ASSETS` may
//! point at a `node_modules` holding other versions instead. Cookies are
//! sent, so cookie sessions work from the playground too.

use std::path::PathBuf;

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::AppState;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file the page loads from `/graphiql/assets/{name}`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    embedded: &'static [u8],
    /// Where it is inside a `node_modules` given as `AUTHGATE_GRAPHIQL_ASSETS`;
    /// `None` for authgate's own files, always served from the binary.
    in_node_modules: Option<&'static str>,
}

const ASSETS: [Asset; 6] = [
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        embedded: include_bytes!("../../vendor/graphiql/react.production.min.js"),
        in_node_modules: Some("react/umd/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        embedded: include_bytes!("../../vendor/graphiql/react-dom.production.min.js"),
        in_node_modules: Some("react-dom/umd/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        embedded: include_bytes!("../../vendor/graphiql/graphiql.min.js"),
        in_node_modules: Some("graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        embedded: include_bytes!("../../vendor/graphiql/graphiql.min.css"),
        in_node_modules: Some("graphiql/graphiql.min.css"),
    },
    Asset {
        name: "init.js",
        content_type: JS,
        embedded: include_bytes!("graphiql/init.js"),
        in_node_modules: None,
    },
    Asset {
        name: "page.css",
        content_type: CSS,
        embedded: include_bytes!("graphiql/page.css"),
        in_node_modules: None,
    },
];

const PAGE: &str = include_str!("graphiql/page.html");

/// Scripts from this server only (no inline script, no other origin).
/// Styles also allow inline ones: GraphiQL's dialogs (Radix's scroll lock)
/// and CodeMirror inject `<style>` elements and `style` attributes with
/// values computed at run time, which no hash can name; an injected style
/// cannot run code. Fonts and icons come as `data:` URLs in its stylesheet.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone)]
pub struct Page {
    html: axum::body::Bytes,
    /// A `node_modules` to read GraphiQL and React from instead of the binary.
    node_modules: Option<PathBuf>,
}

impl Page {
    pub fn new(node_modules: Option<PathBuf>) -> Self {
        // Asset URLs carry the server's version, so a day of browser caching
        // never mixes an old file into a new release's page.
        let html = PAGE.replace("{version}", env!("CARGO_PKG_VERSION")).into();
        // Rendered once; each answer shares these bytes.
        Self { html, node_modules }
    }

    pub fn response(&self) -> Response {
        let mut response = axum::response::Html(self.html.clone()).into_response();
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        response
    }
}

/// `GET /graphiql/assets/{name}`: one of the page's files, by name only.
pub async fn asset(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(page) = state.graphiql.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers =
        [(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "public, max-age=86400")];
    let (Some(dir), Some(file)) = (&page.node_modules, asset.in_node_modules) else {
        return (headers, asset.embedded).into_response();
    };
    match tokio::fs::read(dir.join(file)).await {
        Ok(bytes) => (headers, bytes).into_response(),
        Err(e) => {
            tracing::warn!(file, error = %e, "GraphiQL asset missing");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}
