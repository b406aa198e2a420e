//! What the ways in take and answer: registration, password, the second
//! step, passkey ceremonies, reauthentication.

use async_graphql::{InputObject, Json, SimpleObject};
use domain::sign_in::{SignedIn, register::Registration};
use serde_json::Value;

use super::{DateTime, User};

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

/// The second step of a sign-in.
#[derive(InputObject)]
pub struct CompleteSignInInput {
    /// `extensions.challenge` of the `SECOND_FACTOR_REQUIRED` error (or
    /// the `challenge` query parameter after an OAuth sign-in).
    pub challenge: String,
    /// A current 6-digit code from the authenticator app, or an unused
    /// recovery code.
    pub code: String,
}

/// Proof of presence for the current session: a passkey (with the
/// `challenge` of `startPasskeySignIn`), or the password and/or a code.
#[derive(InputObject)]
pub struct ReauthenticateInput {
    /// The account's password (required when it has one, unless a passkey is given).
    pub password: Option<String>,
    /// A TOTP or recovery code (required when two-factor is on, unless a passkey is given).
    pub code: Option<String>,
    /// A passkey assertion (`PublicKeyCredential.toJSON()` of
    /// `navigator.credentials.get` with `startPasskeySignIn`'s options).
    pub passkey: Option<Json<Value>>,
    /// `startPasskeySignIn`'s `challenge`, with `passkey`.
    pub challenge: Option<String>,
}

/// A passkey sign-in under way.
#[derive(SimpleObject)]
pub struct PasskeyChallenge {
    /// The ceremony's handle: send it back with the answer (single use, 5 minutes).
    pub challenge: String,
    /// Request options for `PublicKeyCredential.parseRequestOptionsFromJSON`.
    pub options: Json<Value>,
}

/// The browser's answer to `startPasskeySignIn`.
#[derive(InputObject)]
pub struct FinishPasskeySignInInput {
    /// `startPasskeySignIn`'s `challenge`.
    pub challenge: String,
    /// `PublicKeyCredential.toJSON()` of `navigator.credentials.get`.
    pub credential: Json<Value>,
}
