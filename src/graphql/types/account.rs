//! What changes to an account take and answer: the password, the
//! profile, a reset, two-factor setup, a new passkey.

use async_graphql::{InputObject, Json, MaybeUndefined, SimpleObject};
use domain::account::{PasswordChange, profile::ProfileUpdate};
use serde_json::Value;

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

/// What an authenticator app needs to be set up; shown only while setting up.
#[derive(SimpleObject)]
pub struct TotpSetup {
    /// The secret in base32, for typing into the app by hand.
    pub secret: String,
    /// An `otpauth://totp/…` URI (SHA-1, 6 digits, 30 seconds).
    pub uri: String,
    /// The URI as a QR code, an SVG image.
    pub qr_code_svg: String,
}

/// The browser's answer to `startPasskeyRegistration`.
#[derive(InputObject)]
pub struct FinishPasskeyRegistrationInput {
    /// `PublicKeyCredential.toJSON()` of `navigator.credentials.create`.
    pub credential: Json<Value>,
    /// A name to tell it apart ("Phone", "Laptop"); at most 100 characters.
    pub name: Option<String>,
}
