//! What the HTTP answer must carry besides the GraphQL body. Resolvers and
//! the guard record it here, in the request's data; the HTTP layer turns it
//! into cookies after execution. The GraphQL layer never writes a header.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use domain::limits::device::Device;

/// One thing the client must be told outside the body.
#[derive(Clone, PartialEq, Eq)]
pub enum Effect {
    /// A session began, or a cookie session's lifetime was extended: the
    /// session cookie carries `token` until `expires_at`.
    SessionCookie { token: String, expires_at: DateTime<Utc> },
    /// The session ended (sign-out, deletion): the client forgets it.
    SessionEnded,
    /// A successful sign-in from this device (the signed device cookie).
    DeviceTrusted(Device),
    /// An OAuth flow began: its `state`, bound to this browser.
    OAuthStarted { state: String },
}

// Hand-written so `{:?}` never prints a session token or an OAuth state.
impl std::fmt::Debug for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SessionCookie { expires_at, .. } => write!(f, "SessionCookie(***, until {expires_at})"),
            Self::SessionEnded => f.write_str("SessionEnded"),
            Self::DeviceTrusted(_) => f.write_str("DeviceTrusted(***)"),
            Self::OAuthStarted { .. } => f.write_str("OAuthStarted(***)"),
        }
    }
}

/// Put into each request's data by the HTTP layer, which keeps a clone to
/// read back after execution.
#[derive(Default, Clone)]
pub struct Effects(Arc<Mutex<Vec<Effect>>>);

impl Effects {
    pub fn record(&self, effect: Effect) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(effect);
    }

    /// Everything recorded, in order.
    pub fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Records `effect` for this request's HTTP answer (a request run without
/// the HTTP layer, e.g. in a unit test, has nowhere to put it).
pub fn record(ctx: &async_graphql::Context<'_>, effect: Effect) {
    if let Some(effects) = ctx.data_opt::<Effects>() {
        effects.record(effect);
    }
}
