//! For axum services: a layer that lets only requests with a valid token
//! through (`RequireToken`), and an extractor for the claims (`Token`).
//!
//! ```no_run
//! # async fn run(verifier: authgate_verify::Verifier) {
//! use authgate_verify::axum::{RequireToken, Token};
//! use axum::{Router, routing::get};
//! let app: Router = Router::new()
//!     .route("/hello", get(|Token(claims): Token| async move { format!("hello {}", claims.sub) }))
//!     .layer(RequireToken::new(verifier));
//! # }
//! ```
//!
//! A refusal is `401` with `WWW-Authenticate: Bearer error="invalid_token"`
//! (RFC 6750) and the reason; a verifier that cannot know which sessions
//! ended answers `503`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    extract::{FromRequestParts, Request},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};

use crate::{Claims, Refused, Verifier};

/// The claims of the request's verified token.
#[derive(Clone, Debug)]
pub struct Token(pub Claims);

/// Takes the claims `RequireToken` put on the request. A handler outside
/// the layer gets a `500` naming the mistake: never a request let through
/// unverified.
impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Token>().cloned().ok_or_else(|| {
            let why = "the Token extractor needs the RequireToken layer on its route";
            tracing::error!("{why}");
            (StatusCode::INTERNAL_SERVER_ERROR, why).into_response()
        })
    }
}

async fn verify_parts(verifier: &Verifier, parts: &Parts) -> Result<Claims, Refused> {
    let token = bearer(parts).ok_or(Refused::Missing)?;
    verifier.verify(token).await
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, challenge) = match &self {
            Refused::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            Refused::Missing => (StatusCode::UNAUTHORIZED, Some("Bearer".to_owned())),
            other => {
                // A quoted-string (RFC 9110): no quote or backslash inside.
                let description = other.to_string().replace(['"', '\\'], "'");
                let challenge =
                    format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
                (StatusCode::UNAUTHORIZED, Some(challenge))
            }
        };
        let mut response = (status, self.to_string()).into_response();
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A layer that answers every request without a valid token itself, and
/// puts the claims on the others (`Token` takes them).
#[derive(Clone)]
pub struct RequireToken {
    verifier: Verifier,
}

impl RequireToken {
    pub fn new(verifier: Verifier) -> Self {
        RequireToken { verifier }
    }
}

impl<S> tower::Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService { inner, verifier: self.verifier.clone() }
    }
}

#[derive(Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> tower::Service<Request> for RequireTokenService<S>
where
    S: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was made ready serves this request; a fresh
        // clone stays behind for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match verify_parts(&verifier, &parts).await {
                Ok(claims) => {
                    parts.extensions.insert(Token(claims));
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refused) => Ok(refused.into_response()),
            }
        })
    }
}
