//! The events `authgate_auth_events_total{event}` counts: one list, which
//! the docs (docs/deployment.md, "Metrics") are checked against, so a
//! dashboard can rely on every value it finds there.

/// One counted auth event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthEvent {
    /// An account was created (`register`, or a new user through a provider).
    Register,
    /// A session was created by a sign-in (`login`, `completeSignIn`,
    /// `finishPasskeySignIn`).
    LoginSuccess,
    /// A password sign-in refused its credentials.
    LoginFailure,
    /// A sign-in stopped at the second step (a challenge was issued).
    SecondFactorRequired,
    /// A second-step code was wrong.
    SecondFactorFailure,
    /// A passkey ceremony did not verify.
    PasskeyFailure,
    /// A session was created through a provider.
    OAuthLogin,
    /// A rate rule refused (with the `rule` label).
    RateLimited,
    /// A session signed out (`logout`).
    Logout,
}

impl AuthEvent {
    pub const ALL: [AuthEvent; 9] = [
        Self::Register,
        Self::LoginSuccess,
        Self::LoginFailure,
        Self::SecondFactorRequired,
        Self::SecondFactorFailure,
        Self::PasskeyFailure,
        Self::OAuthLogin,
        Self::RateLimited,
        Self::Logout,
    ];

    /// The `event` label's value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::LoginSuccess => "login_success",
            Self::LoginFailure => "login_failure",
            Self::SecondFactorRequired => "second_factor_required",
            Self::SecondFactorFailure => "second_factor_failure",
            Self::PasskeyFailure => "passkey_failure",
            Self::OAuthLogin => "oauth_login",
            Self::RateLimited => "rate_limited",
            Self::Logout => "logout",
        }
    }

    /// Counts one.
    pub fn count(self) {
        metrics::counter!("authgate_auth_events_total", "event" => self.label()).increment(1);
    }
}
