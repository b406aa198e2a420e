//! Writing GraphQL-over-HTTP responses: content negotiation, status codes,
//! and the headers every auth response carries.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::error::{AuthError, Code};
use serde_json::json;

/// The media type of the response, chosen from the request's `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: 200 for every well-formed request (legacy clients).
    Json,
    /// `application/graphql-response+json`: 4xx when the request failed before execution.
    GraphqlResponse,
}

impl Format {
    pub fn from_accept(headers: &HeaderMap) -> Self {
        let accepts = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/graphql-response+json"));
        if accepts { Self::GraphqlResponse } else { Self::Json }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// An error answered before (or instead of) executing anything.
pub fn error(status: StatusCode, format: Format, code: Code, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    finish(status, format, body.to_string(), HeaderMap::new())
}

/// The result of executing one GraphQL request.
pub fn single(format: Format, response: async_graphql::Response) -> Response {
    // A request error (parse, validation, bad variables) stopped the request
    // before execution: it has errors without a path and no data at all.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let headers = response.http_headers.clone();
    if !request_error {
        // The common case is written straight to text, without a JSON tree.
        let body = serde_json::to_string(&response).unwrap_or_else(internal_body);
        return finish(StatusCode::OK, format, body, headers);
    }
    let body = json!({ "errors": response.errors });
    let status = match format {
        Format::GraphqlResponse => StatusCode::BAD_REQUEST,
        Format::Json => StatusCode::OK,
    };
    finish(status, format, body.to_string(), headers)
}

/// The results of a batch, in order.
pub fn batch(format: Format, responses: Vec<async_graphql::Response>) -> Response {
    let mut headers = HeaderMap::new();
    for (name, value) in responses.iter().flat_map(|r| r.http_headers.iter()) {
        headers.append(name, value.clone());
    }
    let body = serde_json::to_string(&responses).unwrap_or_else(internal_body);
    finish(StatusCode::OK, format, body, headers)
}

fn internal_body(cause: serde_json::Error) -> String {
    let internal = AuthError::internal("serialising the answer", cause);
    json!({ "errors": [{ "message": internal.to_string(), "extensions": { "code": internal.code().as_str() } }] })
        .to_string()
}

fn finish(status: StatusCode, format: Format, body: String, extra: HeaderMap) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, format.content_type());
    // Tokens and user data must never sit in a shared or browser cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in extra.iter() {
        headers.append(name, value.clone());
    }
    response
}
