//! The one error type of the services, and the single place that maps it to
//! the contract's `extensions.code`.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, RuntimeErr};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{message}")]
    BadUserInput { field: &'static str, message: String },
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("the email address is not verified")]
    EmailNotVerified,
    #[error("the token is invalid, expired or already used")]
    InvalidToken,
    #[error("too many attempts; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the service is temporarily unavailable; retry shortly")]
    ServiceUnavailable,
    #[error("forbidden")]
    Forbidden,
    #[error("redirectTo must be an absolute http(s) URL of at most 2048 characters on an allowed origin")]
    RedirectNotAllowed,
    #[error("the sign-in link is invalid, expired, already used or from another browser")]
    OAuthStateInvalid,
    #[error("the provider did not grant access")]
    OAuthDenied,
    #[error("the provider's answer could not be verified")]
    OAuthFailed,
    #[error("the provider shared no usable email address")]
    OAuthEmailMissing,
    #[error("the provider does not assert that this email address is verified")]
    OAuthEmailNotVerified,
    #[error("this provider account is already linked to another user")]
    AccountAlreadyLinked,
    #[error("the last way to sign in cannot be removed")]
    LastSignInMethod,
    #[error("the account already has a password; use changePassword")]
    PasswordAlreadySet,
    #[error("sign in again (within the last 10 minutes) to do this")]
    ReauthenticationRequired,
    /// Logged in full where it is created; clients only see a generic message.
    #[error("internal server error")]
    Internal,
}

impl AuthError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadUserInput { field, message: message.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::BadUserInput { .. } => "BAD_USER_INPUT",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::Forbidden => "FORBIDDEN",
            Self::RedirectNotAllowed => "REDIRECT_NOT_ALLOWED",
            Self::OAuthStateInvalid => "OAUTH_STATE_INVALID",
            Self::OAuthDenied => "OAUTH_DENIED",
            Self::OAuthFailed => "OAUTH_FAILED",
            Self::OAuthEmailMissing => "OAUTH_EMAIL_MISSING",
            Self::OAuthEmailNotVerified => "OAUTH_EMAIL_NOT_VERIFIED",
            Self::AccountAlreadyLinked => "ACCOUNT_ALREADY_LINKED",
            Self::LastSignInMethod => "LAST_SIGN_IN_METHOD",
            Self::PasswordAlreadySet => "PASSWORD_ALREADY_SET",
            Self::ReauthenticationRequired => "REAUTHENTICATION_REQUIRED",
            Self::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl From<DbErr> for AuthError {
    fn from(err: DbErr) -> Self {
        Self::from_db(&err)
    }
}

impl AuthError {
    /// Logs a database error in full and classifies it for the client.
    pub fn from_db(err: &DbErr) -> Self {
        if is_unavailable(err) {
            tracing::warn!(error = %err, "database unavailable");
            // sqlx does not report how many requests wait for a connection;
            // the ones that waited in vain are counted here.
            let cause = if timed_out(err) { "pool_timeout" } else { "connection" };
            metrics::counter!("authgate_db_unavailable_total", "cause" => cause).increment(1);
            Self::ServiceUnavailable
        } else {
            tracing::error!(error = %err, "database error");
            Self::Internal
        }
    }
}

/// No pooled connection became free within the acquire timeout.
fn timed_out(err: &DbErr) -> bool {
    matches!(
        err,
        DbErr::ConnectionAcquire(_)
            | DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut))
            | DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut))
    )
}

/// Connection-level failures (pool timeout, refused, reset) are worth a retry;
/// anything else is a bug or a constraint and is reported as internal.
fn is_unavailable(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return false,
    };
    match runtime {
        RuntimeErr::SqlxError(e) => {
            matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Protocol(_)
            ) || matches!(e, sqlx::Error::Database(d) if d.message().contains("database is locked"))
        }
        RuntimeErr::Internal(_) => false,
    }
}

impl ErrorExtensions for AuthError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| {
            e.set("code", self.code());
            match self {
                Self::BadUserInput { field, .. } => e.set("field", *field),
                Self::RateLimited { retry_after } => e.set("retryAfter", (*retry_after).max(1)),
                _ => {}
            }
        })
    }
}

/// Resolvers turn service results into GraphQL results through this, never
/// through a bare `?` (which would keep the message and drop the code).
pub trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, AuthError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.extend())
    }
}
