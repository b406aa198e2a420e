//! `GET /auth/callback/{provider}`: where a provider sends the browser back.
//! Success and failures alike end in a redirect to the flow's `redirectTo`
//! (failures with `?error=CODE`) once the flow is known; before that (bad,
//! replayed or foreign state) there is nowhere safe to send the browser,
//! so the answer is a 400 with the code.

use axum::{
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::{
    error::Code,
    sign_in::oauth::{self, CallbackError, CallbackParams, Completed},
};
use serde_json::json;

use super::{AppState, client, cookie};
use crate::graphql::effects::Effect;

pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    request: Request,
) -> Response {
    let auth = &state.auth;
    let (parts, _) = request.into_parts();
    let meta = client::meta(&parts, auth);
    let params = params(parts.uri.query().unwrap_or_default());
    let browser_state = cookie::read(&parts.headers, cookie::oauth_state_name(auth.config.cookie_secure()));
    let result = oauth::finish(auth, &provider, params, browser_state.as_deref(), &meta).await;
    // The state cookie is cleared only once its flow was found and spent: a
    // stray link to the callback must not cancel a sign-in in progress.
    let spent = !matches!(result, Err(CallbackError { redirect_to: None, .. }));
    let mut response = match result {
        Ok((Completed::SecondFactor { challenge, binding }, redirect_to)) => {
            // No session: the app finishes with `completeSignIn`, from this
            // browser (the cookie travels with its request, not in the URL).
            use secrecy::ExposeSecret;
            let mut response = see_other(&with_param(&redirect_to, "challenge", challenge.expose_secret()));
            cookie::append(response.headers_mut(), &cookie::sign_in_binding(binding.expose_secret(), auth));
            response
        }
        Ok((completed, redirect_to)) => {
            let mut response = see_other(&redirect_to);
            if let Completed::SignedIn(signed) = completed {
                let (token, expires_at) = (signed.token, signed.session.expires_at);
                cookie::apply(&Effect::SessionCookie { token, expires_at }, auth, response.headers_mut());
            }
            response
        }
        Err(CallbackError { error, redirect_to: Some(redirect_to) }) => {
            error.report();
            see_other(&with_param(&redirect_to, "error", error.code().as_str()))
        }
        Err(CallbackError { error, redirect_to: None }) => {
            error.report();
            let status = match error.code() {
                Code::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let body = json!({ "error": { "code": error.code().as_str(), "message": error.to_string() } });
            (status, axum::Json(body)).into_response()
        }
    };
    if spent {
        cookie::append(response.headers_mut(), &cookie::oauth_state_cleared(auth));
    }
    response
}

/// `code`, `state` and `error` from the query string (first of each; the
/// rest is ignored).
fn params(query: &str) -> CallbackParams {
    let mut params = CallbackParams::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut params.code,
            "state" => &mut params.state,
            "error" => &mut params.error,
            "error_description" => &mut params.error_description,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.into_owned());
    }
    params
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        // Checked against the allow-list when the flow began; cannot happen.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `redirect_to` with `name=value` in its query (`error`, `challenge`).
fn with_param(redirect_to: &str, name: &str, value: &str) -> String {
    match url::Url::parse(redirect_to) {
        Ok(mut url) => {
            // Ours are the only `error` and `challenge` the app will read.
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "error" && k != "challenge")
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            url.query_pairs_mut().clear().extend_pairs(kept).append_pair(name, value);
            url.into()
        }
        Err(_) => redirect_to.to_owned(),
    }
}
