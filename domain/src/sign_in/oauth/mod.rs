//! Sign-in with external providers: `start` remembers a flow (state, nonce,
//! PKCE verifier, where to go afterwards) and returns the provider's URL;
//! `finish` runs when the provider sends the browser back, spends the flow
//! once, and signs the user in (or links the provider to a signed-in user).

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context as _;
use entity::oauth_flows;
use openidconnect::{PkceCodeChallenge, reqwest};
use provider::Provider;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    config::Config,
    error::{AuthError, Input},
    limits,
    limits::Rule,
    session,
    session::{CurrentSession, step_up},
    token,
};

mod callback;
mod link;
mod provider;

pub use callback::Completed;
pub use link::unlink;
pub use provider::Identity;

/// The configured providers and where their flows may end.
pub struct OAuth {
    providers: BTreeMap<String, Provider>,
    /// Origins (`scheme://host[:port]`) a flow may redirect to.
    redirect_origins: Vec<String>,
    default_redirect: String,
}

impl OAuth {
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<Self> {
        // No redirects followed: a provider endpoint must answer itself.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the OAuth HTTP client")?;
        let mut providers = BTreeMap::new();
        for provider in &config.oauth {
            let built = Provider::new(provider.clone(), &config.public_url, http.clone())?;
            if providers.insert(provider.name.clone(), built).is_some() {
                anyhow::bail!("OAuth provider {} is configured twice", provider.name);
            }
        }
        let listed: Vec<&str> = if config.oauth_redirect_origins.is_empty() {
            vec![config.app_url.as_str()]
        } else {
            config.oauth_redirect_origins.iter().map(String::as_str).collect()
        };
        let redirect_origins = listed
            .into_iter()
            .map(|raw| {
                url::Url::parse(raw.trim())
                    .ok()
                    .and_then(|url| origin(&url))
                    .with_context(|| format!("{raw:?} is not an http(s) origin"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { providers, redirect_origins, default_redirect: config.app_url.clone() })
    }

    /// Names of the configured providers, sorted.
    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    fn provider(&self, name: &str) -> Result<&Provider, AuthError> {
        self.providers.get(name).ok_or_else(|| AuthError::bad_input(Input::Provider, "unknown provider"))
    }

    /// `redirectTo` if it is an absolute http(s) URL on an allowed origin;
    /// the app's URL when omitted.
    fn redirect_target(&self, requested: Option<&str>) -> Result<String, AuthError> {
        let Some(requested) = requested else { return Ok(self.default_redirect.clone()) };
        let url = url::Url::parse(requested.trim()).map_err(|_| AuthError::RedirectNotAllowed)?;
        // Measured after parsing (percent-encoding lengthens it); no
        // `user@` part, which only serves to mislead whoever reads the URL.
        let allowed = url.as_str().len() <= 2048
            && url.username().is_empty()
            && url.password().is_none()
            && origin(&url).is_some_and(|o| self.redirect_origins.contains(&o));
        // The parsed form (ASCII, normalised) is what the browser is sent to:
        // the very string the allow-list judged.
        if allowed { Ok(url.into()) } else { Err(AuthError::RedirectNotAllowed) }
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin(url: &url::Url) -> Option<String> {
    matches!(url.scheme(), "http" | "https").then_some(())?;
    url.host_str()?;
    Some(url.origin().ascii_serialization())
}

/// A flow just started: send the browser to `url`; `state` goes into the
/// browser-bound cookie that the callback checks.
pub struct Started {
    pub url: String,
    pub state: String,
}

/// Starts a sign-in (or, for the caller's session `link`, a link) with `provider`.
/// The names of the providers this server offers, sorted.
pub fn providers(auth: &AuthContext) -> Vec<String> {
    auth.oauth.names()
}

#[instrument(skip_all, fields(provider = %provider))]
pub async fn start(
    auth: &AuthContext,
    provider: &str,
    redirect_to: Option<&str>,
    link: Option<&CurrentSession>,
    meta: &ClientMeta,
) -> Result<Started, AuthError> {
    let target = auth.oauth.provider(provider)?;
    let redirect_to = auth.oauth.redirect_target(redirect_to)?;
    // A new way in needs a proved address and a recent sign-in, not merely
    // a (possibly stolen) session.
    if let Some(current) = link {
        step_up::require_to_add(auth, current)?;
    }
    limits::hit(auth, Rule::OAuthIp, &limits::ip_subject(meta)).await?;
    let state = token::generate();
    let nonce = token::generate().secret;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = target.authorize_url(&state.secret, &nonce, challenge).await?;
    let now = auth.clock.now();
    oauth_flows::ActiveModel {
        id: Set(Uuid::new_v4()),
        state_hash: Set(state.hash),
        provider: Set(target.name().to_owned()),
        pkce_verifier: Set(verifier.secret().clone()),
        nonce: Set(nonce),
        redirect_to: Set(redirect_to),
        link_user_id: Set(link.map(|current| current.user.id)),
        link_session_id: Set(link.map(|current| current.session.id)),
        expires_at: Set(now + auth.config.oauth_flow_ttl),
        created_at: Set(now),
    }
    .insert(&auth.db)
    .await?;
    Ok(Started { url, state: state.secret })
}

/// What the provider put on the callback URL.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A failed callback; `redirect_to` is known once the flow was found.
pub struct CallbackError {
    pub error: AuthError,
    pub redirect_to: Option<String>,
}

impl From<AuthError> for CallbackError {
    fn from(error: AuthError) -> Self {
        Self { error, redirect_to: None }
    }
}

/// Completes a flow. The `state` must match the cookie of the browser that
/// started it, name a live flow of this provider, and is spent whatever
/// happens next (a replay finds nothing).
#[instrument(skip_all, fields(provider = %provider))]
pub async fn finish(
    auth: &AuthContext,
    provider: &str,
    params: CallbackParams,
    browser_state: Option<&str>,
    meta: &ClientMeta,
) -> Result<(Completed, String), CallbackError> {
    let state = params.state.as_deref().filter(|s| Some(*s) == browser_state);
    let hash = state.and_then(token::hash_presented).ok_or(AuthError::OAuthStateInvalid)?;
    let flow = oauth_flows::Entity::find()
        .filter(oauth_flows::Column::StateHash.eq(hash))
        .one(&auth.db)
        .await
        .map_err(AuthError::from)?
        .ok_or(AuthError::OAuthStateInvalid)?;
    // Exactly one callback can delete the row: the single use, even under a race.
    let spent = oauth_flows::Entity::delete_by_id(flow.id).exec(&auth.db).await.map_err(AuthError::from)?;
    if spent.rows_affected != 1 || flow.expires_at <= auth.clock.now() || flow.provider != provider {
        return Err(AuthError::OAuthStateInvalid.into());
    }
    let redirect_to = flow.redirect_to.clone();
    let fail = |error| CallbackError { error, redirect_to: Some(redirect_to.clone()) };
    if let Some(error) = &params.error {
        // Escaped (`?`): the provider's text must not forge log lines.
        let description =
            params.error_description.as_deref().map(|d| d.chars().take(256).collect::<String>());
        tracing::info!(error = ?error.chars().take(64).collect::<String>(), ?description, "provider refused the sign-in");
        return Err(fail(AuthError::OAuthDenied));
    }
    let code = params
        .code
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| fail(AuthError::OAuthFailed))?;
    if let (Some(user_id), Some(session_id)) = (flow.link_user_id, flow.link_session_id) {
        // Signed out (or every session ended by a password reset) since the
        // link began: a stolen session's pending link dies with it.
        let alive = session::is_alive(&auth.db, auth, user_id, session_id).await.map_err(fail)?;
        if !alive {
            return Err(fail(AuthError::Unauthenticated));
        }
    }
    let target = auth.oauth.provider(provider).map_err(|_| fail(AuthError::OAuthStateInvalid))?;
    let identity = target.identity(code, flow.pkce_verifier, &flow.nonce).await.map_err(fail)?;
    auth.checkpoints.reach("oauth:identity_checked").await;
    let link = flow.link_user_id.zip(flow.link_session_id);
    let completed = callback::complete(auth, provider, identity, link, meta).await.map_err(fail)?;
    Ok((completed, redirect_to))
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth").field("providers", &self.names()).finish_non_exhaustive()
    }
}
