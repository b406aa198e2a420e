//! API types, separate from the entities: a row never becomes an API type by
//! accident, so a password hash can never leak through a derive.

use async_graphql::{
    Context, ID, InputObject, InputValueError, InputValueResult, MaybeUndefined, Object, Scalar, ScalarType,
    SimpleObject, Value,
};
use chrono::{SecondsFormat, Utc};
use domain::{
    account::{PasswordChange, profile::ProfileUpdate},
    error::AuthError,
    sign_in::{SignedIn, register::Registration},
};
use entity::{accounts, sessions, users};

use super::{guard::own_session, loaders::Loaders};
use crate::graphql::GqlResult;

/// An RFC 3339 timestamp in UTC with the `Z` suffix, e.g. `2026-11-29T20:42:56.123Z`.
#[derive(Clone, Copy, Debug)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// An RFC 3339 timestamp in UTC with the `Z` suffix and milliseconds,
/// e.g. `2026-11-29T20:42:56.123Z`.
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

pub struct User(pub users::Model);

/// A person who can sign in.
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

    /// Whether sign-in needs a second factor (a TOTP or recovery code).
    async fn two_factor_enabled(&self) -> bool {
        self.0.two_factor_enabled
    }

    /// The user's live (unexpired, unrevoked) sessions, newest first. Visible
    /// only to the user's own session: empty for anyone else (a `User`
    /// returned by `verifyEmail` may be read without a session).
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        let Some(current) = own_session(ctx, self.0.id).await.gql()? else {
            return Ok(Vec::new());
        };
        let rows = ctx.data::<Loaders>()?.sessions().load_one(self.0.id).await;
        let rows = rows.map_err(AuthError::from).gql()?.unwrap_or_default();
        Ok(rows.into_iter().map(|row| Session { current: row.id == current.session.id, row }).collect())
    }

    /// The user's passkeys, oldest first. Visible only to the user's own
    /// session: empty for anyone else.
    async fn passkeys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Passkey>> {
        let Some(current) = own_session(ctx, self.0.id).await.gql()? else {
            return Ok(Vec::new());
        };
        let auth = ctx.data::<domain::AuthContext>()?;
        let rows = domain::factors::passkey::of_user(auth, current.user.id).await.gql()?;
        Ok(rows.into_iter().map(Passkey).collect())
    }

    /// The ways this user can sign in (`providerId` `"credential"` is email
    /// and password). Visible only to the user's own session: empty for anyone else.
    async fn accounts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Account>> {
        if own_session(ctx, self.0.id).await.gql()?.is_none() {
            return Ok(Vec::new());
        }
        let rows = ctx.data::<Loaders>()?.accounts().load_one(self.0.id).await;
        let rows = rows.map_err(AuthError::from).gql()?.unwrap_or_default();
        Ok(rows.into_iter().map(Account).collect())
    }
}

pub struct Session {
    row: sessions::Model,
    current: bool,
}

pub struct Passkey(pub entity::passkeys::Model);

/// A passkey (WebAuthn credential) that signs the user in.
#[Object]
impl Passkey {
    /// Stable unique identifier (a UUID), for `removePasskey`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The name given at registration, if any.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// When it was registered.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When it last signed in or proved presence; `null` if never.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
}

/// A signed-in device or browser.
#[Object]
impl Session {
    /// Pass it to `revokeSession` to sign that device out.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// When the session was signed in.
    async fn created_at(&self) -> DateTime {
        DateTime(self.row.created_at)
    }

    /// When it ends unless used again (never past 30 days after sign-in by default).
    async fn expires_at(&self) -> DateTime {
        DateTime(self.row.expires_at)
    }

    /// The client's address at sign-in.
    async fn ip_address(&self) -> Option<&str> {
        self.row.ip_address.as_deref()
    }

    /// The client's `User-Agent` at sign-in.
    async fn user_agent(&self) -> Option<&str> {
        self.row.user_agent.as_deref()
    }

    /// Whether this is the session making the request.
    async fn current(&self) -> bool {
        self.current
    }

    /// The last time this session proved the user's presence: its sign-in
    /// or a `reauthenticate`. Step-up operations need it recent.
    async fn authenticated_at(&self) -> DateTime {
        DateTime(self.row.authenticated_at)
    }

    /// 1: signed in with one factor (a password or a provider); 2: with
    /// two (a second-factor code as well).
    async fn assurance_level(&self) -> i32 {
        i32::from(self.row.assurance_level)
    }
}

pub struct Account(accounts::Model);

/// A way to sign in, linked to a user.
#[Object]
impl Account {
    /// Identifier of the link.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// `"credential"` for email and password, else the OAuth provider's name.
    async fn provider_id(&self) -> &str {
        &self.0.provider_id
    }

    /// The user's id at the provider (for `credential`, the user's own id).
    async fn account_id(&self) -> &str {
        &self.0.account_id
    }

    /// When the sign-in method was linked.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
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

/// A new password, proven by the current one.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// The password in use now.
    pub current_password: String,
    /// 8 to 128 characters, different from the current one.
    pub new_password: String,
    /// Sign out every other session (default true).
    #[graphql(default = true)]
    pub revoke_other_sessions: bool,
}

impl From<ChangePasswordInput> for PasswordChange {
    fn from(input: ChangePasswordInput) -> Self {
        Self {
            current_password: input.current_password,
            new_password: input.new_password,
            revoke_other_sessions: input.revoke_other_sessions,
        }
    }
}

/// Profile changes: an omitted field stays as it is, `null` clears it.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// Display name, at most 100 characters.
    pub name: MaybeUndefined<String>,
    /// Avatar URL: `http` or `https`, at most 2048 characters.
    pub image: MaybeUndefined<String>,
}

fn change<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

impl From<UpdateProfileInput> for ProfileUpdate {
    fn from(input: UpdateProfileInput) -> Self {
        Self { name: change(input.name), image: change(input.image) }
    }
}

/// A new password, proven by the token from a reset mail.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token from the reset link.
    pub token: String,
    /// 8 to 128 characters.
    pub new_password: String,
    /// Also remove every provider (OAuth) link and every passkey, leaving the
    /// new password as the only way in: for an owner who fears someone
    /// linked their own provider account or registered their own passkey.
    /// Default false.
    #[graphql(default = false)]
    pub remove_provider_links: bool,
}
