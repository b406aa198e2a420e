//! Every error code a client can see (`errors[].extensions.code`, the
//! OAuth callback's `?error=`), and the one error type that carries them.
//! Services return `AuthError`; the GraphQL layer (`graphql::codes`) and
//! the HTTP layer turn it into an answer. Nothing here knows GraphQL or
//! HTTP. Adding a code: one line in `codes!` below, one arm in
//! `AuthError::code` (the compiler asks for it), and the table in docs/api.md
//! (a test compares them).

use std::sync::Arc;

use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, SqlErr};

/// Declares `Code`: each code's name on the wire and what it means, the
/// one list the table in docs/api.md is checked against.
macro_rules! codes {
    ($($variant:ident => $wire:literal, $meaning:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $wire,)* }
            }

            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    Unauthenticated => "UNAUTHENTICATED", "no live session: none sent, malformed, expired or revoked";
    BadUserInput => "BAD_USER_INPUT", "an input is invalid; `extensions.field` names it";
    InvalidCredentials => "INVALID_CREDENTIALS", "unknown email or wrong password (never says which), a wrong code, or a passkey that did not verify";
    EmailTaken => "EMAIL_TAKEN", "an account with this email exists";
    EmailNotVerified => "EMAIL_NOT_VERIFIED", "the email must be verified first";
    InvalidToken => "INVALID_TOKEN", "a mailed token, a sign-in challenge (`completeSignIn`) or a passkey ceremony is unknown, expired or spent, or a provider's challenge came without its browser's `signin_binding` cookie";
    RateLimited => "RATE_LIMITED", "too many attempts; `extensions.retryAfter` says when to retry (seconds)";
    ServiceUnavailable => "SERVICE_UNAVAILABLE", "the database, Redis (the rate-limit counters) or a provider is unreachable (PostgreSQL ending the connection included: a restart, a failover, Neon suspending its compute), the password-hashing queue is full (`AUTHGATE_HASH_QUEUE`), or the request timed out; retry: nothing was half written";
    Forbidden => "FORBIDDEN", "refused before anything ran, as a possible cross-site request: cookies sent from a page of another site not in `AUTHGATE_CORS_ORIGINS`, or a non-JSON POST without `X-Requested-With` carrying the session cookie";
    RedirectNotAllowed => "REDIRECT_NOT_ALLOWED", "`redirectTo` is not on an allowed origin";
    OAuthStateInvalid => "OAUTH_STATE_INVALID", "the OAuth callback's state is unknown, spent or from another browser";
    OAuthDenied => "OAUTH_DENIED", "the user or the provider refused at the provider";
    OAuthFailed => "OAUTH_FAILED", "the provider's answer could not be verified (the reason is logged)";
    OAuthEmailMissing => "OAUTH_EMAIL_MISSING", "the provider shared no usable email address";
    OAuthEmailNotVerified => "OAUTH_EMAIL_NOT_VERIFIED", "the provider does not assert the address is verified";
    AccountAlreadyLinked => "ACCOUNT_ALREADY_LINKED", "that provider account belongs to another user";
    LastSignInMethod => "LAST_SIGN_IN_METHOD", "the last way to sign in cannot be removed";
    PasswordAlreadySet => "PASSWORD_ALREADY_SET", "the account has a password; use `changePassword`";
    ReauthenticationRequired => "REAUTHENTICATION_REQUIRED", "prove presence again first (`reauthenticate`): the session's sign-in is older than the window, or two-factor is on and the session has one factor; from `reauthenticate`, the account has neither a password nor two-factor (sign in again through its provider)";
    PermissionDenied => "PERMISSION_DENIED", "signed in, but the account does not hold the permission the field needs (`extensions.permission` names it): a role grants it (`setUserRoles`, `authgate admin grant`); an impersonation session holds none, and cannot change the user's credentials, factors or roles (`extensions.permission` is `session:own`)";
    AccountBanned => "ACCOUNT_BANNED", "the credential was right, but an admin banned the account (`extensions.bannedUntil`: when the ban ends, null for until lifted)";
    TwoFactorNotEnabled => "TWO_FACTOR_NOT_ENABLED", "two-factor is off for this account (`regenerateRecoveryCodes`)";
    SecondFactorRequired => "SECOND_FACTOR_REQUIRED", "the password (or provider) checked out; finish with `completeSignIn` and `extensions.challenge` (`extensions.methods` lists the codes accepted)";
    Internal => "INTERNAL_SERVER_ERROR", "a bug; logged in full, never detailed to the client";
    BadRequest => "BAD_REQUEST", "not a GraphQL request over HTTP: bad JSON or query string, wrong method or media type, too large";
    ParseFailed => "GRAPHQL_PARSE_FAILED", "the document does not parse";
    ValidationFailed => "GRAPHQL_VALIDATION_FAILED", "the document does not fit the schema or a limit (depth, complexity, aliases, size)";
}

/// Which input a `BAD_USER_INPUT` is about, in the services' own terms;
/// the GraphQL layer names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Email,
    /// The password of a new account.
    Password,
    /// A password replacing another, or set where there was none.
    NewPassword,
    Name,
    Image,
    Provider,
    /// A TOTP or recovery code.
    Code,
    /// A WebAuthn credential (`PublicKeyCredential.toJSON()`).
    Credential,
    /// The handle of a passkey ceremony.
    Challenge,
    /// A page's size.
    First,
    /// A page's cursor.
    After,
    /// A webhook endpoint's URL.
    Url,
    /// Event type names.
    EventTypes,
    /// An event type to filter by.
    EventType,
    /// A user's id.
    UserId,
    /// The audience an access token is asked for.
    Audience,
    /// Role names.
    Roles,
    /// One role name to filter by.
    Role,
    /// A ban's or impersonation's reason.
    Reason,
    /// When a ban ends.
    Until,
    /// The user list's search text.
    Search,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{message}")]
    BadUserInput { input: Input, message: String },
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A passkey's answer that did not verify (`INVALID_CREDENTIALS`, with
    /// words that do not speak of an email or a password).
    #[error("the passkey could not be verified")]
    PasskeyRefused,
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
    /// Refused before execution, saying why (a possible cross-site request).
    #[error("{0}")]
    Forbidden(String),
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
    #[error("prove it is you again (reauthenticate) to do this")]
    ReauthenticationRequired,
    /// The first factor checked out; the second is awaited under this
    /// challenge (a secret, shown once to the client that signed in;
    /// `Debug` redacts it).
    #[error("a second factor is required: send a code with completeSignIn")]
    SecondFactorRequired { challenge: secrecy::SecretString },
    #[error("two-factor sign-in is not turned on for this account")]
    TwoFactorNotEnabled,
    /// Signed in, without the permission (`resource:action`).
    #[error("this needs the permission {0}")]
    PermissionDenied(&'static str),
    /// The credential was proved, but the account is banned (until then;
    /// `None`: until an admin lifts it).
    #[error("this account is banned")]
    AccountBanned { until: Option<chrono::DateTime<chrono::Utc>> },
    /// A bug or an impossible state; clients only see a generic message
    /// (where there is more to say, it is logged where it arises).
    #[error("internal server error")]
    Internal,
    /// A database failure. Its message to clients is generic; the cause is
    /// logged (and counted) once, by `report`, where it leaves the server.
    #[error("{}", if unavailable(.0) { "the service is temporarily unavailable; retry shortly" } else { "internal server error" })]
    Database(Arc<DbErr>),
    /// Refused before execution: not a GraphQL request over HTTP.
    #[error("{0}")]
    BadRequest(String),
    /// Refused before execution: over a document limit.
    #[error("{0}")]
    ValidationFailed(String),
}

impl AuthError {
    pub fn bad_input(input: Input, message: impl Into<String>) -> Self {
        Self::BadUserInput { input, message: message.into() }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::Unauthenticated => Code::Unauthenticated,
            Self::BadUserInput { .. } => Code::BadUserInput,
            Self::InvalidCredentials | Self::PasskeyRefused => Code::InvalidCredentials,
            Self::EmailTaken => Code::EmailTaken,
            Self::EmailNotVerified => Code::EmailNotVerified,
            Self::InvalidToken => Code::InvalidToken,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::ServiceUnavailable => Code::ServiceUnavailable,
            Self::Database(err) if unavailable(err) => Code::ServiceUnavailable,
            Self::Forbidden(_) => Code::Forbidden,
            Self::RedirectNotAllowed => Code::RedirectNotAllowed,
            Self::OAuthStateInvalid => Code::OAuthStateInvalid,
            Self::OAuthDenied => Code::OAuthDenied,
            Self::OAuthFailed => Code::OAuthFailed,
            Self::OAuthEmailMissing => Code::OAuthEmailMissing,
            Self::OAuthEmailNotVerified => Code::OAuthEmailNotVerified,
            Self::AccountAlreadyLinked => Code::AccountAlreadyLinked,
            Self::LastSignInMethod => Code::LastSignInMethod,
            Self::PasswordAlreadySet => Code::PasswordAlreadySet,
            Self::ReauthenticationRequired => Code::ReauthenticationRequired,
            Self::SecondFactorRequired { .. } => Code::SecondFactorRequired,
            Self::TwoFactorNotEnabled => Code::TwoFactorNotEnabled,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::AccountBanned { .. } => Code::AccountBanned,
            Self::Internal | Self::Database(_) => Code::Internal,
            Self::BadRequest(_) => Code::BadRequest,
            Self::ValidationFailed(_) => Code::ValidationFailed,
        }
    }

    /// Whether this is the database out of reach (refused, reset, gone
    /// away, or no connection could be opened), not merely busy. A wait
    /// for a pooled connection that timed out while the database went on
    /// answering other requests (`answered_meanwhile`: a saturated pool, a
    /// flood) is busy; so is a SQLite file locked by a writer. Only the
    /// first may let the session cache answer from memory.
    pub(crate) fn database_unreachable(&self, answered_meanwhile: bool) -> bool {
        let Self::Database(err) = self else { return false };
        if !unavailable(err) || (timed_out(err) && answered_meanwhile) {
            return false;
        }
        let runtime = match err.as_ref() {
            DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => Some(e),
            _ => None,
        };
        !matches!(runtime, Some(RuntimeErr::SqlxError(e)) if sqlite_busy(e))
    }

    /// Whether this is a wait for a pooled connection that timed out.
    pub(crate) fn is_pool_timeout(&self) -> bool {
        matches!(self, Self::Database(err) if timed_out(err))
    }

    /// Logs a database failure in full and counts it: called once per
    /// error, where it leaves the server (a GraphQL answer, the OAuth
    /// callback's redirect, a background task). Other errors were logged
    /// where they arose, or are the client's.
    pub fn report(&self) {
        let Self::Database(err) = self else { return };
        if unavailable(err) {
            tracing::warn!(error = %err, "database unavailable");
            // sqlx does not report how many requests wait for a connection;
            // the ones that waited in vain are counted here.
            let cause = if timed_out(err) { "pool_timeout" } else { "connection" };
            metrics::counter!("authgate_db_unavailable_total", "cause" => cause).increment(1);
        } else {
            tracing::error!(error = %err, "database error");
        }
    }

    /// An internal error (a bug, or a broken invariant), logged here in
    /// full with what was being done and why; the client sees only
    /// `INTERNAL_SERVER_ERROR`. The one way to make one, so none goes
    /// unlogged (tests/api/layers.rs refuses a bare `AuthError::Internal`).
    #[track_caller]
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> AuthError {
        let at = std::panic::Location::caller();
        tracing::error!(%cause, at = %at, "internal error: {context}");
        AuthError::Internal
    }

    /// A unique index refused the row: `conflict` (e.g. `EmailTaken`); any
    /// other failure as it is.
    pub(crate) fn unique_or(err: DbErr, conflict: AuthError) -> AuthError {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => conflict,
            _ => err.into(),
        }
    }
}

impl From<DbErr> for AuthError {
    fn from(err: DbErr) -> Self {
        Self::Database(Arc::new(err))
    }
}

impl From<Arc<DbErr>> for AuthError {
    fn from(err: Arc<DbErr>) -> Self {
        Self::Database(err)
    }
}

/// No pooled connection became free within the acquire timeout (a closed
/// pool is a lost connection, not a timeout).
fn timed_out(err: &DbErr) -> bool {
    matches!(
        err,
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)
            | DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut))
            | DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut))
    )
}

/// Connection-level failures (pool timeout, refused, reset, a busy SQLite
/// file) are worth a retry; anything else is a bug or a constraint.
fn unavailable(err: &DbErr) -> bool {
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
            ) || sqlite_busy(e)
                || postgres_went_away(e)
        }
        RuntimeErr::Internal(_) => false,
    }
}

/// PostgreSQL ending the session under us: an administrator, a restart, a
/// failover or a serverless compute suspending (Neon) terminates backends
/// with SQLSTATE class 57P (operator intervention) or 08 (connection
/// exception). The request may be retried on a fresh connection.
fn postgres_went_away(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = err else { return false };
    d.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
}

/// SQLite's driver quirk: a write that waited out `busy_timeout` behind
/// another writer surfaces only as a message (`SQLITE_BUSY` is not mapped
/// to a kind by sqlx).
fn sqlite_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(d) if d.message().contains("database is locked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_sqlite_file_is_unavailable_not_a_bug() {
        use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut holder).await.unwrap();
        let mut writing = holder.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *writing).await.unwrap();
        let mut other = options.connect().await.unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (2)").execute(&mut other).await.unwrap_err();
        assert!(sqlite_busy(&err), "{err}");
        let err = AuthError::from(DbErr::Exec(RuntimeErr::SqlxError(err)));
        assert_eq!(err.code(), Code::ServiceUnavailable);
        assert_eq!(err.to_string(), "the service is temporarily unavailable; retry shortly");
        assert!(!err.database_unreachable(false), "a locked file is there, only busy");

        let other_failure =
            sqlx::query("INSERT INTO missing VALUES (1)").execute(&mut other).await.unwrap_err();
        assert!(!sqlite_busy(&other_failure), "{other_failure}");
        let err = AuthError::from(DbErr::Exec(RuntimeErr::SqlxError(other_failure)));
        assert_eq!((err.code(), err.to_string().as_str()), (Code::Internal, "internal server error"));
    }

    /// Only a database out of reach may open the session cache's outage
    /// grace: a pool that timed out while the database answered others (a
    /// flood) is not one; one that timed out with no answer from the
    /// database meanwhile is, as is a refused or reset connection.
    #[test]
    fn a_saturated_pool_is_busy_not_unreachable() {
        let timed_out = || AuthError::from(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert_eq!(timed_out().code(), Code::ServiceUnavailable);
        assert!(!timed_out().database_unreachable(true), "others were answered: busy");
        assert!(timed_out().database_unreachable(false), "nothing answered meanwhile");
        let pool_timeout = AuthError::from(DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut)));
        assert!(!pool_timeout.database_unreachable(true));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let refused = AuthError::from(DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::Io(refused))));
        assert!(refused.database_unreachable(true), "refused is out of reach, whatever the pool");
        assert!(!AuthError::ServiceUnavailable.database_unreachable(false), "not a database error");
        assert!(!AuthError::Unauthenticated.database_unreachable(false));
    }

    #[test]
    fn every_code_has_one_wire_name() {
        let names: std::collections::HashSet<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        assert!(Code::ALL.iter().all(|c| !c.meaning().is_empty()));
    }
}
