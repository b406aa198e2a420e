//! One configured provider: its settings (from `AUTHGATE_OAUTH_<NAME>_*` or a
//! preset), its authorization URL, and the identity it vouches for after
//! the code exchange. OpenID Connect providers are discovered from their
//! issuer and their ID tokens validated by `openidconnect` (signature
//! against the JWKS, issuer, audience, expiry, nonce); plain OAuth 2.0
//! providers name the user through a userinfo endpoint.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use oauth2::basic::BasicClient;
use openidconnect::{
    AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
    reqwest,
};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{
    config::{ExposeSecret, ProviderConfig, ProviderKind, UserinfoStyle},
    error::AuthError,
};

/// What a provider told us about the person who signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user's stable id at the provider (`sub`).
    pub subject: String,
    pub email: Option<String>,
    /// Only `true` when the provider asserts it.
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
}

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovery documents (and their keys) are fetched again after this long,
/// so a provider's key rotation is picked up without a restart.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// After a failed refresh, the stale document is used this long before trying again.
const DISCOVERY_RETRY: Duration = Duration::from_secs(60);

/// An OpenID provider's discovered client (endpoints and keys).
struct Discovered {
    client: Arc<OidcClient>,
    /// When a refetch was last forced by an unknown key.
    forced_at: Option<Instant>,
    refresh_at: Instant,
}

pub(crate) struct Provider {
    pub config: ProviderConfig,
    redirect_url: RedirectUrl,
    http: reqwest::Client,
    discovered: Mutex<Option<Discovered>>,
}

impl Provider {
    pub(crate) fn new(
        config: ProviderConfig,
        public_url: &str,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let callback = format!("{}/auth/callback/{}", public_url.trim_end_matches('/'), config.name);
        let redirect_url = RedirectUrl::new(callback).context("AUTHGATE_PUBLIC_URL is not a URL")?;
        Ok(Self { config, redirect_url, http, discovered: Mutex::new(None) })
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.config.scopes.iter().map(|s| Scope::new(s.clone()))
    }

    /// The provider's authorization URL for this flow.
    pub(crate) async fn authorize_url(
        &self,
        state: &str,
        nonce: &str,
        challenge: PkceCodeChallenge,
    ) -> Result<String, AuthError> {
        let state = CsrfToken::new(state.to_owned());
        let url = match &self.config.kind {
            ProviderKind::Oidc { .. } => {
                let client = self.oidc(false).await?;
                let nonce = Nonce::new(nonce.to_owned());
                let (url, _, _) = client
                    .authorize_url(CoreAuthenticationFlow::AuthorizationCode, move || state, move || nonce)
                    .add_scopes(self.scopes())
                    .set_pkce_challenge(challenge)
                    .url();
                url
            }
            ProviderKind::OAuth2 { auth_url, token_url, .. } => {
                let (url, _) = self
                    .oauth2(auth_url, token_url)?
                    .authorize_url(move || state)
                    .add_scopes(self.scopes())
                    .set_pkce_challenge(challenge)
                    .url();
                url
            }
        };
        Ok(url.into())
    }

    /// Exchanges the code (with the PKCE verifier) and returns who signed in.
    /// `OAUTH_FAILED` for anything the provider got wrong or we cannot verify;
    /// the reason is logged, never shown.
    pub(crate) async fn identity(
        &self,
        code: String,
        verifier: String,
        nonce: &str,
    ) -> Result<Identity, AuthError> {
        let code = AuthorizationCode::new(code);
        let verifier = PkceCodeVerifier::new(verifier);
        match &self.config.kind {
            ProviderKind::Oidc { .. } => {
                let client = self.oidc(false).await?;
                let exchange = client.exchange_code(code).map_err(|e| self.failed("no token endpoint", e))?;
                let tokens = exchange
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| self.exchange_failed(e))?;
                let id_token = tokens.id_token().ok_or_else(|| self.failed("token answer", "no id_token"))?;
                let nonce = Nonce::new(nonce.to_owned());
                let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
                    Ok(claims) => claims.clone(),
                    // Signed with a key we have not seen: the provider may have
                    // rotated its keys since discovery. Look once more.
                    Err(ClaimsVerificationError::SignatureVerification(_)) => {
                        let fresh = self.oidc(true).await?;
                        id_token
                            .claims(&fresh.id_token_verifier(), &nonce)
                            .map_err(|e| self.failed("ID token", e))?
                            .clone()
                    }
                    Err(e) => return Err(self.failed("ID token", e)),
                };
                let subject = claims.subject().to_string();
                if !usable_subject(&subject) {
                    return Err(self.failed("ID token", "unusable sub"));
                }
                Ok(Identity {
                    subject,
                    email: claims.email().map(|e| e.to_string()),
                    email_verified: claims.email_verified().unwrap_or(false),
                    name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                    image: claims.picture().and_then(|p| p.get(None)).map(|p| p.to_string()),
                })
            }
            ProviderKind::OAuth2 { auth_url, token_url, userinfo_url, style } => {
                let tokens = self
                    .oauth2(auth_url, token_url)?
                    .exchange_code(code)
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| self.exchange_failed(e))?;
                let access = tokens.access_token().secret();
                let info = self.get_json(userinfo_url, access).await?;
                match style {
                    UserinfoStyle::Standard => standard_identity(&info),
                    UserinfoStyle::GitHub => {
                        let emails = self.get_json(&format!("{userinfo_url}/emails"), access).await?;
                        github_identity(&info, &emails)
                    }
                }
                .filter(|identity| usable_subject(&identity.subject))
                .ok_or_else(|| self.failed("userinfo", "no usable user id in the answer"))
            }
        }
    }

    /// A provider we could not reach is unavailable; one that answered
    /// with an error refused the exchange.
    fn exchange_failed<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
        &self,
        error: RequestTokenError<RE, T>,
    ) -> AuthError {
        if let RequestTokenError::Request(e) = &error {
            tracing::warn!(provider = %self.config.name, error = %e, "token endpoint unreachable");
            return AuthError::ServiceUnavailable;
        }
        self.failed("code exchange", error)
    }

    fn failed(&self, stage: &str, error: impl fmt::Display) -> AuthError {
        tracing::warn!(provider = %self.config.name, stage, error = %error, "OAuth sign-in refused");
        AuthError::OAuthFailed
    }

    fn oauth2(
        &self,
        auth_url: &str,
        token_url: &str,
    ) -> Result<
        BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>,
        AuthError,
    > {
        let auth_url = AuthUrl::new(auth_url.to_owned()).map_err(|e| self.failed("auth URL", e))?;
        let token_url = TokenUrl::new(token_url.to_owned()).map_err(|e| self.failed("token URL", e))?;
        Ok(BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.config.client_secret.expose_secret().to_owned()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_redirect_uri(self.redirect_url.clone()))
    }

    /// The discovered OpenID client, fetched at first use and every hour;
    /// `fresh` fetches it again now (a key the cached JWKS lacks), at most
    /// once per `DISCOVERY_RETRY`. An unreachable provider is
    /// `SERVICE_UNAVAILABLE` unless an older document is at hand.
    async fn oidc(&self, fresh: bool) -> Result<Arc<OidcClient>, AuthError> {
        let ProviderKind::Oidc { issuer } = &self.config.kind else {
            return Err(AuthError::internal(
                "OpenID discovery",
                format!("{} is not an OpenID provider", self.config.name),
            ));
        };
        let mut cached = self.discovered.lock().await;
        let forced_at = if fresh { Some(Instant::now()) } else { cached.as_ref().and_then(|k| k.forced_at) };
        if let Some(known) = cached.as_ref() {
            let due = Instant::now() >= known.refresh_at;
            let may_refetch = known.forced_at.is_none_or(|at| at.elapsed() >= DISCOVERY_RETRY);
            if !(due || fresh && may_refetch) {
                return Ok(known.client.clone());
            }
        }
        let issuer = IssuerUrl::new(issuer.clone()).map_err(|e| self.failed("issuer URL", e))?;
        let metadata = match CoreProviderMetadata::discover_async(issuer, &self.http).await {
            Ok(metadata) => metadata,
            Err(e) => {
                tracing::warn!(provider = %self.config.name, error = %e, "OpenID discovery failed");
                // A stale document beats no sign-in while the provider hiccups.
                return match cached.as_mut() {
                    Some(known) => {
                        known.refresh_at = Instant::now() + DISCOVERY_RETRY;
                        Ok(known.client.clone())
                    }
                    None => Err(AuthError::ServiceUnavailable),
                };
            }
        };
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.expose_secret().to_owned())),
        )
        .set_redirect_uri(self.redirect_url.clone());
        let client = Arc::new(client);
        let now = Instant::now();
        *cached = Some(Discovered { client: client.clone(), forced_at, refresh_at: now + DISCOVERY_TTL });
        Ok(client)
    }

    async fn get_json(&self, url: &str, access_token: &str) -> Result<Value, AuthError> {
        let answer = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| self.failed("userinfo", e.without_url()))?;
        let body = answer.bytes().await.map_err(|e| self.failed("userinfo", e.without_url()))?;
        serde_json::from_slice(&body).map_err(|e| self.failed("userinfo", e))
    }
}

/// A provider's user id we can key an account on: 1-255 printable characters.
fn usable_subject(subject: &str) -> bool {
    !subject.is_empty() && subject.len() <= 255 && !subject.chars().any(char::is_control)
}

/// A string claim, or a number rendered as one (GitHub's ids are numbers).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truthy(value: &Value) -> bool {
    value.as_bool().unwrap_or(false) || value.as_str() == Some("true")
}

fn standard_identity(info: &Value) -> Option<Identity> {
    Some(Identity {
        subject: text(&info["sub"])?,
        email: text(&info["email"]),
        email_verified: truthy(&info["email_verified"]),
        name: text(&info["name"]),
        image: text(&info["picture"]),
    })
}

/// GitHub's `/user` plus `/user/emails`: the primary verified address, else
/// any verified one; an unverified address is passed on as unverified.
fn github_identity(user: &Value, emails: &Value) -> Option<Identity> {
    let listed = emails.as_array().map(Vec::as_slice).unwrap_or_default();
    let verified = |e: &&Value| truthy(&e["verified"]);
    let chosen = listed
        .iter()
        .filter(verified)
        .find(|e| truthy(&e["primary"]))
        .or_else(|| listed.iter().find(verified))
        .and_then(|e| text(&e["email"]));
    let (email, email_verified) = match chosen {
        Some(email) => (Some(email), true),
        None => (text(&user["email"]), false),
    };
    Some(Identity {
        subject: text(&user["id"])?,
        email,
        email_verified,
        name: text(&user["name"]).or_else(|| text(&user["login"])),
        image: text(&user["avatar_url"]),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn presets_need_only_the_client() {
        let github = ProviderConfig::from_env(
            "github",
            env(&[("AUTHGATE_OAUTH_GITHUB_CLIENT_ID", "id"), ("AUTHGATE_OAUTH_GITHUB_CLIENT_SECRET", "s")]),
        )
        .unwrap();
        assert!(matches!(github.kind, ProviderKind::OAuth2 { style: UserinfoStyle::GitHub, .. }));
        assert_eq!(github.scopes, ["read:user", "user:email"]);
        assert!(!format!("{github:?}").contains("\"s\""), "the secret is redacted");
        let google = ProviderConfig::from_env(
            "google",
            env(&[("AUTHGATE_OAUTH_GOOGLE_CLIENT_ID", "id"), ("AUTHGATE_OAUTH_GOOGLE_CLIENT_SECRET", "s")]),
        )
        .unwrap();
        assert_eq!(google.kind, ProviderKind::Oidc { issuer: "https://accounts.google.com".into() });
    }

    #[test]
    fn other_providers_must_say_where_they_are() {
        let err = ProviderConfig::from_env(
            "acme",
            env(&[("AUTHGATE_OAUTH_ACME_CLIENT_ID", "id"), ("AUTHGATE_OAUTH_ACME_CLIENT_SECRET", "s")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("AUTHGATE_OAUTH_ACME_ISSUER"), "{err}");
        let err = ProviderConfig::from_env("github", env(&[])).unwrap_err();
        assert!(err.to_string().contains("AUTHGATE_OAUTH_GITHUB_CLIENT_ID"), "{err}");
        assert!(ProviderConfig::from_env("no/slash", env(&[])).is_err());
    }

    #[test]
    fn github_identity_prefers_the_primary_verified_email() {
        let user = json!({ "id": 42, "login": "octo", "name": null, "email": "public@x.io" });
        let emails = json!([
            { "email": "old@x.io", "verified": true, "primary": false },
            { "email": "main@x.io", "verified": true, "primary": true },
        ]);
        let id = github_identity(&user, &emails).unwrap();
        assert_eq!(
            (id.subject.as_str(), id.email.as_deref(), id.email_verified),
            ("42", Some("main@x.io"), true)
        );
        assert_eq!(id.name.as_deref(), Some("octo"));
        let unverified = json!([{ "email": "main@x.io", "verified": false, "primary": true }]);
        let id = github_identity(&user, &unverified).unwrap();
        assert_eq!((id.email.as_deref(), id.email_verified), (Some("public@x.io"), false));
    }
}
