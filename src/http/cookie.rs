//! The `session_token` cookie: HttpOnly, SameSite=Lax, Path=/, Secure when
//! configured, Max-Age equal to the session's remaining lifetime. And the
//! `oauth_state` cookie that binds an OAuth flow to the browser that began it.

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite, time::Duration};
use domain::{AuthContext, limits::device::Device};

use crate::graphql::effects::Effect;

/// The session cookie's name over plain HTTP (development).
pub const NAME: &str = "session_token";
/// Its name behind HTTPS: `__Host-` makes browsers insist on Secure, Path=/
/// and no Domain, so a sibling subdomain cannot plant or shadow it.
pub const HOST_NAME: &str = "__Host-session_token";

pub fn session_name(secure: bool) -> &'static str {
    if secure { HOST_NAME } else { NAME }
}
/// Behind HTTPS the state cookie is `__Host-` prefixed (Secure, Path=/, no
/// Domain), so a sibling subdomain cannot plant one in the user's browser.
pub fn oauth_state_name(secure: bool) -> &'static str {
    if secure { "__Host-oauth_state" } else { "oauth_state" }
}

fn build(value: &str, max_age_secs: i64, secure: bool) -> String {
    build_named(session_name(secure), "/", value, max_age_secs, secure)
}

fn build_named(
    name: &'static str,
    path: &'static str,
    value: &str,
    max_age_secs: i64,
    secure: bool,
) -> String {
    // Lax: sent on the provider's top-level redirect back to us, never on
    // cross-site subrequests.
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path(path)
        .secure(secure)
        .max_age(Duration::seconds(max_age_secs.max(0)))
        .build()
        .to_string()
}

/// Appends the `Set-Cookie` headers that carry out what a request recorded.
pub fn apply(effect: &Effect, auth: &AuthContext, headers: &mut HeaderMap) {
    let values = match effect {
        Effect::SessionCookie { token, expires_at } => vec![session(token, *expires_at, auth)],
        Effect::SessionEnded => cleared(auth),
        Effect::DeviceTrusted(trusted) => vec![device(trusted, auth)],
        Effect::OAuthStarted { state } => vec![oauth_state(state, auth)],
    };
    for value in values {
        append(headers, &value);
    }
}

/// Appends one `Set-Cookie` header (the values built here are always valid).
pub fn append(headers: &mut HeaderMap, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        headers.append(header::SET_COOKIE, value);
    }
}

/// The cookie carrying `token` until `expires_at`.
fn session(token: &str, expires_at: DateTime<Utc>, auth: &AuthContext) -> String {
    let remaining = (expires_at - auth.clock.now()).num_seconds();
    build(token, remaining, auth.config.cookie_secure())
}

/// Cookies that make the browser forget the session: behind HTTPS both
/// names, so a session cookie from before the `__Host-` switch cannot sign
/// the browser back in after a sign-out.
fn cleared(auth: &AuthContext) -> Vec<String> {
    let secure = auth.config.cookie_secure();
    let mut cookies = vec![build("", 0, secure)];
    if secure {
        cookies.push(build_named(NAME, "/", "", 0, secure));
    }
    cookies
}

/// The cookie that ties an OAuth flow's `state` to this browser.
fn oauth_state(state: &str, auth: &AuthContext) -> String {
    let ttl = auth.config.oauth_flow_ttl.as_secs().try_into().unwrap_or(i64::MAX);
    let secure = auth.config.cookie_secure();
    build_named(oauth_state_name(secure), "/", state, ttl, secure)
}

/// Makes the browser forget the OAuth state (the flow is spent).
pub fn oauth_state_cleared(auth: &AuthContext) -> String {
    let secure = auth.config.cookie_secure();
    build_named(oauth_state_name(secure), "/", "", 0, secure)
}

/// The cookie that binds a provider's two-factor challenge to the browser
/// the callback redirected: `__Host-` prefixed behind HTTPS.
pub fn sign_in_binding_name(secure: bool) -> &'static str {
    if secure { "__Host-signin_binding" } else { "signin_binding" }
}

/// The `signin_binding` cookie for a challenge the callback just issued
/// (as long as the challenge lives).
pub fn sign_in_binding(value: &str, auth: &AuthContext) -> String {
    let ttl = domain::sign_in::second_step::CHALLENGE_TTL.num_seconds();
    let secure = auth.config.cookie_secure();
    build_named(sign_in_binding_name(secure), "/", value, ttl, secure)
}

/// The device cookie's name: `__Host-` prefixed behind HTTPS.
pub fn device_name(secure: bool) -> &'static str {
    if secure { "__Host-device" } else { "device" }
}

/// The signed device cookie for `device` (HMAC with a key derived from
/// `AUTHGATE_SECRET_KEY`); long-lived, HttpOnly, not a session.
fn device(device: &Device, auth: &AuthContext) -> String {
    let secure = auth.config.cookie_secure();
    let ttl = auth.config.device_cookie_ttl.as_secs().try_into().unwrap_or(i64::MAX);
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&auth.keys.cookies).add(
        Cookie::build((device_name(secure), device.value()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(secure)
            .max_age(Duration::seconds(ttl)),
    );
    jar.get(device_name(secure)).map(|c| c.to_string()).unwrap_or_default()
}

/// The device in the request's cookies, if its signature checks out.
pub fn find_device(headers: &HeaderMap, auth: &AuthContext) -> Option<Device> {
    let name = device_name(auth.config.cookie_secure());
    let raw = read(headers, name)?;
    let mut jar = cookie::CookieJar::new();
    jar.add_original(Cookie::new(name, raw));
    let verified = jar.signed(&auth.keys.cookies).get(name)?;
    Device::parse(verified.value())
}

/// The session token from the request's cookies, if there is one: the
/// `__Host-` cookie first, else the plain name (still read during a move
/// to HTTPS, so nobody is signed out by the rename).
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    read(headers, HOST_NAME).or_else(|| read(headers, NAME))
}

/// The value of cookie `name` in the request's `Cookie` headers: the one
/// place that parses them.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}
