//! The `session_token` cookie: HttpOnly, SameSite=Lax, Path=/, Secure when
//! configured, Max-Age equal to the session's remaining lifetime.

use cookie::{Cookie, SameSite, time::Duration};
use entity::sessions;

use crate::auth::AuthContext;

pub const NAME: &str = "session_token";

fn build(value: &str, max_age_secs: i64, secure: bool) -> String {
    Cookie::build((NAME, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .max_age(Duration::seconds(max_age_secs.max(0)))
        .build()
        .to_string()
}

/// The cookie carrying `token` for `session`.
pub fn session(token: &str, session: &sessions::Model, auth: &AuthContext) -> String {
    let remaining = (session.expires_at - auth.clock.now()).num_seconds();
    build(token, remaining, auth.config.cookie_secure)
}

/// A cookie that makes the browser forget the session.
pub fn cleared(auth: &AuthContext) -> String {
    build("", 0, auth.config.cookie_secure)
}

/// The session token from a `Cookie` header, if there is one.
pub fn find(header: &str) -> Option<String> {
    Cookie::split_parse(header)
        .filter_map(Result::ok)
        .find(|c| c.name() == NAME)
        .map(|c| c.value().to_owned())
}
