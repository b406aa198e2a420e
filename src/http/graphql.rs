//! GraphQL over HTTP: `POST /graphql` (JSON) runs anything, `GET /graphql`
//! runs queries only (and serves GraphiQL to browsers).

use async_graphql::{
    Pos,
    parser::types::{DocumentOperations, OperationType},
};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use domain::error::AuthError;
use serde_json::Value;

use super::{
    AppState, client, cookie, observe,
    respond::{self, Format},
    subscribe,
};
use crate::graphql::{
    self as refusal, Loaders, check_shape,
    effects::Effects,
    guard::{PresentedToken, RequestAuth, TokenSource},
};

/// Why a request was refused before execution: at the HTTP level (a
/// status and an error), or as a GraphQL request error (over a limit),
/// whose status follows the response media type.
enum Rejection {
    Http(Refusal),
    OverLimit(String),
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        Self::Http(refusal)
    }
}

impl Rejection {
    fn into_response(self, format: Format) -> Response {
        match self {
            Self::Http(refusal) => refusal.into_response(format),
            over_limit => respond::single(format, over_limit.into_graphql()),
        }
    }

    fn into_graphql(self) -> async_graphql::Response {
        match self {
            Self::Http(refusal) => refusal::refusal(&refusal.error),
            Self::OverLimit(message) => refusal::refusal(&AuthError::ValidationFailed(message)),
        }
    }
}

struct Refusal {
    status: StatusCode,
    error: AuthError,
}

impl Refusal {
    fn new(status: StatusCode, error: AuthError) -> Self {
        Self { status, error }
    }

    /// `FORBIDDEN`, saying why.
    fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, AuthError::Forbidden(message.into()))
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::bad(StatusCode::BAD_REQUEST, message)
    }

    /// `BAD_REQUEST` with a status of its own (405, 408, 413, 415).
    fn bad(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, AuthError::BadRequest(message.into()))
    }

    fn into_response(self, format: Format) -> Response {
        let mut response = respond::error(self.status, format, self.error.code(), &self.error.to_string());
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

pub async fn post(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let format = Format::from_accept(&parts.headers);
    // The body is read (or, when too large, drained up to a bound) before
    // any refusal, so browsers and `fetch` get the JSON answer rather than a
    // connection reset. One deadline covers the whole request, the body's
    // arrival included: a client trickling its body cannot hold on past it.
    let deadline = tokio::time::Instant::now() + state.auth.config.request_timeout;
    let reading = read_body(body, &parts.headers, state.auth.config.max_body_bytes);
    let body = match tokio::time::timeout_at(deadline, reading).await {
        Ok(Ok(body)) => body,
        Ok(Err(refusal)) => return refusal.into_response(format),
        Err(_) => {
            let late = Refusal::bad(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time");
            let mut response = late.into_response(format);
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    // A cross-site form can only send "simple" requests (`text/plain`,
    // form encodings): such a body is never run as GraphQL, with or
    // without a cookie, so a signed-out victim cannot be signed in to the
    // attacker's account either (login CSRF).
    if !csrf_proof(&parts.headers) {
        // The contract: 403 when the request carries the session cookie
        // (a forged form post), else 415.
        let with_cookie = presented_token(&parts.headers).is_some_and(|t| t.source == TokenSource::Cookie);
        let message = "POST /graphql takes application/json (or a request with an X-Requested-With header)";
        let refusal = match with_cookie {
            true => Refusal::forbidden(message),
            false => Refusal::bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, message),
        };
        return refusal.into_response(format);
    }
    if cross_site_with_cookies(&parts.headers, &state.auth.config) {
        let message = "a request carrying cookies from another site's page is refused; list that origin in AUTHGATE_CORS_ORIGINS";
        return Refusal::forbidden(message).into_response(format);
    }
    let token = presented_token(&parts.headers);
    // A single request is read straight into its type; only a batch goes
    // through a generic JSON value first.
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_batch {
        return match parse_single(&body).map_err(Rejection::from).and_then(|r| prepare(&state, r, false)) {
            Ok((request, label, OperationType::Subscription)) => {
                if !subscribe::wants_stream(&parts.headers) {
                    let message =
                        "a subscription streams as Server-Sent Events: send Accept: text/event-stream";
                    return Refusal::bad(StatusCode::NOT_ACCEPTABLE, message).into_response(format);
                }
                subscribe::stream(&state, &parts, token, (request, label), format).await
            }
            Ok((request, label, _)) => {
                respond::single(format, run(&state, &parts, token, (request, label), deadline).await)
            }
            Err(rejection) => rejection.into_response(format),
        };
    }
    let batch: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(_) => return Refusal::bad_request("the body is not valid JSON").into_response(format),
    };
    let max = state.auth.config.max_batch;
    if max == 0 {
        return Refusal::bad_request("batch requests are disabled").into_response(format);
    }
    if batch.is_empty() || batch.len() > max {
        return Refusal::bad_request(format!("a batch holds 1 to {max} operations")).into_response(format);
    }
    let mut responses = Vec::with_capacity(batch.len());
    for item in batch {
        let response = match parse_request(item)
            .map_err(Rejection::from)
            .and_then(|r| prepare(&state, r, false))
        {
            Ok((_, _, OperationType::Subscription)) => {
                Rejection::from(Refusal::bad_request("a subscription cannot be part of a batch"))
                    .into_graphql()
            }
            Ok((request, label, _)) => run(&state, &parts, token.clone(), (request, label), deadline).await,
            Err(rejection) => rejection.into_graphql(),
        };
        responses.push(response);
    }
    respond::batch(format, responses)
}

pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let format = Format::from_accept(&parts.headers);
    let query = parts.uri.query().unwrap_or("");
    if wants_html(&parts.headers) && !query.split('&').any(|p| p.starts_with("query=")) {
        return match &state.graphiql {
            Some(page) => page.response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let request = match parse_get(&parts) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(format),
    };
    let token = presented_token(&parts.headers);
    let deadline = tokio::time::Instant::now() + state.auth.config.request_timeout;
    match prepare(&state, request, true) {
        Ok((request, label, _)) => {
            respond::single(format, run(&state, &parts, token, (request, label), deadline).await)
        }
        Err(rejection) => rejection.into_response(format),
    }
}

async fn run(
    state: &AppState,
    parts: &Parts,
    token: Option<PresentedToken>,
    (request, operation): (async_graphql::Request, String),
    deadline: tokio::time::Instant,
) -> async_graphql::Response {
    let started = std::time::Instant::now();
    let response = execute(state, parts, token, request, deadline).await;
    let outcome = response
        .errors
        .first()
        .and_then(|e| e.extensions.as_ref())
        .and_then(|e| e.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => Some(code.as_str()),
            _ => None,
        })
        .unwrap_or("ok");
    observe::record_operation(&operation, outcome, started);
    response
}

async fn execute(
    state: &AppState,
    parts: &Parts,
    token: Option<PresentedToken>,
    request: async_graphql::Request,
    deadline: tokio::time::Instant,
) -> async_graphql::Response {
    let meta = client::meta(parts, &state.auth);
    let effects = Effects::default();
    let request = request
        .data(RequestAuth::new(token))
        .data(meta)
        .data(Loaders::new(&state.auth))
        .data(effects.clone());
    let limit = state.auth.config.request_timeout;
    let mut response = match tokio::time::timeout_at(deadline, state.schema.execute(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            let error = crate::graphql::codes::to_graphql(&AuthError::ServiceUnavailable)
                .into_server_error(Pos::default());
            async_graphql::Response::from_errors(vec![error])
        }
    };
    // What finished before a timeout happened (a sign-out that committed):
    // the cookies say so even when the answer is an error.
    for effect in effects.take() {
        cookie::apply(&effect, &state.auth, &mut response.http_headers);
    }
    response
}

/// Parses the document once, or takes it from the cache (async-graphql
/// reuses it), and checks that the
/// operation to run exists, may run over this method, and is within the
/// size and shape limits.
fn prepare(
    state: &AppState,
    mut request: async_graphql::Request,
    over_get: bool,
) -> Result<(async_graphql::Request, String, OperationType), Rejection> {
    let config = &state.auth.config;
    if request.query.len() > config.max_query_bytes {
        return Err(Rejection::OverLimit(format!(
            "the document is {} bytes; at most {} are allowed",
            request.query.len(),
            config.max_query_bytes
        )));
    }
    let name = request.operation_name.clone();
    let Some(document) = state.documents.parse(&mut request) else {
        // Let the schema report it, with its code, as a GraphQL response.
        return Ok((request, "invalid".to_owned(), OperationType::Query));
    };
    let operation = match (&document.operations, name.as_deref()) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => {
            return Err(Refusal::bad_request(
                "the document has several operations: operationName is required",
            )
            .into());
        }
        (DocumentOperations::Single(_), Some(_)) => None,
    };
    let Some(operation) = operation else {
        return Err(
            Refusal::bad_request(format!("unknown operationName {:?}", name.unwrap_or_default())).into()
        );
    };
    if over_get && operation.node.ty != OperationType::Query {
        let message = "only queries run over GET; send mutations with POST";
        return Err(Refusal::bad(StatusCode::METHOD_NOT_ALLOWED, message).into());
    }
    check_shape(document, &operation.node, config.max_aliases, config.max_root_fields)
        .map_err(Rejection::OverLimit)?;
    // The spec's rule ("single root field"), which also keeps one request
    // to one stream: aliases would open one each.
    if operation.node.ty == OperationType::Subscription && operation.node.selection_set.node.items.len() != 1
    {
        return Err(Rejection::OverLimit("a subscription selects exactly one root field".into()));
    }
    let label = operation_label(&operation.node, &state.operation_labels);
    let kind = operation.node.ty;
    Ok((request, label, kind))
}

/// `mutation:login`: the operation type and its first field, when the
/// schema has that field; `invalid` for anything else. A label taken from
/// the document as sent (an operation name, an unknown field) would let
/// anonymous clients create metric series without bound.
fn operation_label(
    operation: &async_graphql::parser::types::OperationDefinition,
    known: &std::collections::HashSet<String>,
) -> String {
    let kind = match operation.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    let field = operation.selection_set.node.items.iter().find_map(|item| match &item.node {
        async_graphql::parser::types::Selection::Field(field) => Some(field.node.name.node.as_str()),
        _ => None,
    });
    let label = format!("{kind}:{}", field.unwrap_or("fragment"));
    if known.contains(&label) { label } else { "invalid".to_owned() }
}

fn parse_request(value: Value) -> Result<async_graphql::Request, Refusal> {
    if !value.is_object() {
        return Err(Refusal::bad_request("the body must be a JSON object with a \"query\""));
    }
    let request: async_graphql::Request = serde_json::from_value(value)
        .map_err(|e| Refusal::bad_request(format!("invalid GraphQL request: {e}")))?;
    checked(request)
}

/// `?query=...&operationName=...&variables={...}` (GraphQL over HTTP's names).
#[derive(serde::Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
}

fn parse_get(parts: &Parts) -> Result<async_graphql::Request, Refusal> {
    let axum::extract::Query(params) = axum::extract::Query::<GetParams>::try_from_uri(&parts.uri)
        .map_err(|_| Refusal::bad_request("the query string is not a GraphQL request"))?;
    let mut request = async_graphql::Request::new(params.query.unwrap_or_default());
    if let Some(name) = params.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables.filter(|v| !v.is_empty()) {
        let value: Value = serde_json::from_str(&variables)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| Refusal::bad_request("variables must be a JSON object"))?;
        request = request.variables(async_graphql::Variables::from_json(value));
    }
    checked(request)
}

fn parse_single(body: &[u8]) -> Result<async_graphql::Request, Refusal> {
    let request: async_graphql::Request = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            Refusal::bad_request("the body is not valid JSON")
        }
        _ => Refusal::bad_request("the body must be a JSON object with a \"query\" string"),
    })?;
    checked(request)
}

fn checked(request: async_graphql::Request) -> Result<async_graphql::Request, Refusal> {
    if request.query.trim().is_empty() {
        return Err(Refusal::bad_request("missing query"));
    }
    Ok(request)
}

/// How much of an over-large body is read and thrown away before the 413,
/// so the client sees the answer; beyond it the connection is closed.
const DRAIN_MAX: usize = 1024 * 1024;

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<axum::body::Bytes, Refusal> {
    let too_large = || {
        let message = format!("the request body exceeds {limit} bytes");
        Refusal::bad(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let drain = limit.max(DRAIN_MAX);
    if declared.is_some_and(|len| len > drain) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let Ok(chunk) = chunk else { return Err(too_large()) };
        seen += chunk.len();
        if seen > drain {
            return Err(too_large());
        }
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        }
    }
    if seen > limit { Err(too_large()) } else { Ok(kept.into()) }
}

/// `Authorization` alone decides when present (a malformed one fails
/// authentication); otherwise the `session_token` cookie.
fn presented_token(headers: &HeaderMap) -> Option<PresentedToken> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| v[7..].trim()))
            .unwrap_or_default();
        return Some(PresentedToken { value: token.to_owned(), source: TokenSource::Bearer });
    }
    cookie::session_token(headers).map(|value| PresentedToken { value, source: TokenSource::Cookie })
}

/// A cross-site form can only send "simple" requests: a JSON content type
/// (any charset) or a custom header proves the request came from script on
/// an allowed origin (anything else needs a CORS preflight we refuse).
fn csrf_proof(headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    json || ["x-requested-with", "apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight"]
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// A request carrying cookies that a browser sent from another site's page
/// not listed in `AUTHGATE_CORS_ORIGINS`. Browsers say where a request
/// comes from in `Sec-Fetch-Site` (which page script cannot set); without
/// it, the `Origin` must be this server's or a listed one. Requests without
/// cookies (bearer clients, servers) are not judged by this.
fn cross_site_with_cookies(headers: &HeaderMap, config: &domain::config::Config) -> bool {
    if !headers.contains_key(header::COOKIE) {
        return false;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(|o| o.trim_end_matches('/'));
    let listed = |origin: &str| {
        config.cors_origins.iter().any(|o| o.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    match headers.get("sec-fetch-site").map(|v| v.as_bytes().to_ascii_lowercase()) {
        // Same origin, same site, or typed by the user: not a cross-site page.
        Some(site) if site != b"cross-site" => false,
        Some(_) => !origin.is_some_and(listed),
        None => origin.is_some_and(|o| !listed(o) && !same_origin(o, headers, &config.public_url)),
    }
}

/// `origin` is this server: the origin of `AUTHGATE_PUBLIC_URL`, or the
/// scheme-less authority the request was sent to (`Host`).
fn same_origin(origin: &str, headers: &HeaderMap, public_url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(origin) else { return false };
    let public = url::Url::parse(public_url).ok().map(|u| u.origin());
    if public.is_some_and(|public| public == parsed.origin()) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let authority = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => return false,
    };
    host.is_some_and(|host| host.eq_ignore_ascii_case(&authority))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}
