//! API types, separate from the entities: a row never becomes an API type by
//! accident, so a password hash can never leak through a derive.

use async_graphql::{
    ID, InputObject, InputValueError, InputValueResult, Object, Scalar, ScalarType, SimpleObject, Value,
};
use chrono::{SecondsFormat, Utc};
use entity::users;

use crate::auth::account::{Registration, SignedIn};

/// An RFC 3339 timestamp in UTC with the `Z` suffix, e.g. `2026-11-29T20:42:56.123Z`.
#[derive(Clone, Copy, Debug)]
pub struct DateTime(pub chrono::DateTime<Utc>);

#[Scalar(name = "DateTime", specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 timestamp")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// A person who can sign in.
pub struct User(pub users::Model);

#[Object]
impl User {
    /// Stable unique identifier (a UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The sign-in email, trimmed and lower-cased.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Display name, if the user gave one.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// Avatar URL (http or https), if any.
    async fn image(&self) -> Option<&str> {
        self.0.image.as_deref()
    }

    /// Whether the user proved they own the email address.
    async fn email_verified(&self) -> bool {
        self.0.email_verified
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the profile last changed.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
}

/// The result of signing in: the session token (also set as the
/// `session_token` cookie), its expiry and the signed-in user.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Session token; send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends unless it is used (sessions slide on use).
    pub expires_at: DateTime,
    /// The signed-in user.
    pub user: User,
}

impl From<SignedIn> for AuthPayload {
    fn from(signed: SignedIn) -> Self {
        Self { token: signed.token, expires_at: DateTime(signed.session.expires_at), user: User(signed.user) }
    }
}

/// A new account with email and password.
#[derive(InputObject)]
pub struct RegisterInput {
    /// Email address; trimmed and compared case-insensitively.
    pub email: String,
    /// 8 to 128 characters; never truncated or case-folded.
    pub password: String,
    /// Optional display name, at most 100 characters.
    pub name: Option<String>,
}

impl From<RegisterInput> for Registration {
    fn from(input: RegisterInput) -> Self {
        Self { email: input.email, password: input.password, name: input.name }
    }
}

/// Email and password of an existing account.
#[derive(InputObject)]
pub struct LoginInput {
    /// The account's email address (any case, surrounding spaces ignored).
    pub email: String,
    /// The account's password.
    pub password: String,
}
