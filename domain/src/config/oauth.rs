//! One OAuth provider's settings, from `AUTHGATE_OAUTH_<NAME>_*` or a
//! preset: read with the rest of the configuration, used by `auth::oauth`.

use anyhow::{Context as _, bail};

/// The provider name email-and-password accounts use; no OAuth provider may take it.
pub const CREDENTIAL_PROVIDER: &str = "credential";

/// How a plain OAuth 2.0 provider's userinfo answer names things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserinfoStyle {
    /// OpenID claim names: `sub`, `email`, `email_verified`, `name`, `picture`.
    Standard,
    /// GitHub: numeric `id`, `avatar_url`; verified emails from `{userinfo}/emails`.
    GitHub,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Endpoints and keys from `{issuer}/.well-known/openid-configuration`.
    Oidc {
        issuer: String,
    },
    OAuth2 {
        auth_url: String,
        token_url: String,
        userinfo_url: String,
        style: UserinfoStyle,
    },
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Lower-case name used in the API and the callback URL (`github`).
    pub name: String,
    pub client_id: String,
    pub client_secret: secrecy::SecretString,
    pub scopes: Vec<String>,
    pub kind: ProviderKind,
}

impl ProviderConfig {
    /// Reads `AUTHGATE_OAUTH_<NAME>_{CLIENT_ID,CLIENT_SECRET,ISSUER,AUTH_URL,
    /// TOKEN_URL,USERINFO_URL,SCOPES,PRESET}` through `var`. `github` and
    /// `google` (or `PRESET=github|google`) need only the client id and secret.
    pub(crate) fn from_env(name: &str, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let name = name.to_lowercase();
        if name.is_empty()
            || name.len() > 32
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            bail!("OAuth provider name {name:?}: use 1-32 letters, digits, '-' or '_'");
        }
        if name == CREDENTIAL_PROVIDER {
            bail!("OAuth provider name {name:?} is reserved for email and password");
        }
        let prefix = format!("AUTHGATE_OAUTH_{}_", name.to_uppercase().replace('-', "_"));
        let get =
            |key: &str| var(&format!("{prefix}{key}")).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let need = |key: &str| get(key).with_context(|| format!("OAuth provider {name}: set {prefix}{key}"));
        let preset = get("PRESET").unwrap_or_else(|| name.clone());
        let kind = if let Some(issuer) = get("ISSUER") {
            ProviderKind::Oidc { issuer }
        } else if get("AUTH_URL").is_some() {
            ProviderKind::OAuth2 {
                auth_url: need("AUTH_URL")?,
                token_url: need("TOKEN_URL")?,
                userinfo_url: need("USERINFO_URL")?,
                style: if preset == "github" { UserinfoStyle::GitHub } else { UserinfoStyle::Standard },
            }
        } else {
            match preset.as_str() {
                "google" => ProviderKind::Oidc { issuer: "https://accounts.google.com".into() },
                "github" => ProviderKind::OAuth2 {
                    auth_url: "https://github.com/login/oauth/authorize".into(),
                    token_url: "https://github.com/login/oauth/access_token".into(),
                    userinfo_url: "https://api.github.com/user".into(),
                    style: UserinfoStyle::GitHub,
                },
                _ => bail!(
                    "OAuth provider {name}: set {prefix}ISSUER (OpenID Connect) or {prefix}AUTH_URL, \
                     {prefix}TOKEN_URL and {prefix}USERINFO_URL (OAuth 2.0), or {prefix}PRESET=github|google"
                ),
            }
        };
        let scopes = match get("SCOPES") {
            Some(list) => list.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            None => default_scopes(&kind),
        };
        Ok(Self {
            client_id: need("CLIENT_ID")?,
            client_secret: need("CLIENT_SECRET")?.into(),
            name,
            scopes,
            kind,
        })
    }
}

fn default_scopes(kind: &ProviderKind) -> Vec<String> {
    let scopes: &[&str] = match kind {
        // `openid` is added by the OpenID client itself.
        ProviderKind::Oidc { .. } => &["email", "profile"],
        ProviderKind::OAuth2 { style: UserinfoStyle::GitHub, .. } => &["read:user", "user:email"],
        ProviderKind::OAuth2 { style: UserinfoStyle::Standard, .. } => &["email", "profile"],
    };
    scopes.iter().map(|s| (*s).to_owned()).collect()
}
