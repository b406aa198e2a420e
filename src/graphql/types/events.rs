//! The event record as GraphQL: a user's security activity, the audit
//! log (both Relay-style connections, newest first), webhook endpoints.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use domain::{
    error::{AuthError, Input},
    events::read::{MAX_PAGE, Page},
};
use entity::events;

use super::DateTime;

pub struct SecurityEvent(pub events::Model);

/// Something that happened to an account: a sign-in, a refused attempt, a
/// change of password or factors, a session ended, an admin's action.
#[Object]
impl SecurityEvent {
    /// The event's id (it also orders events: a later event has a larger id).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Dot-delimited: `session.created`, `login.failed`, `user.password_changed`, ….
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    /// When it happened (for counted events, the first time in the window).
    async fn occurred_at(&self) -> DateTime {
        DateTime(self.0.occurred_at)
    }

    /// How many times it happened: refused sign-ins of one account are
    /// counted into one event per 15 minutes (else 1).
    async fn count(&self) -> i32 {
        self.0.count
    }

    /// The client's address, as the server saw it (an admin's, on an admin's
    /// doing, is shown to admins only).
    async fn ip_address(&self, ctx: &Context<'_>) -> Option<&str> {
        self.shown(ctx, self.0.ip_address.as_deref()).await
    }

    /// The client's `User-Agent` (an admin's, on an admin's doing, is shown
    /// to admins only).
    async fn user_agent(&self, ctx: &Context<'_>) -> Option<&str> {
        self.shown(ctx, self.0.user_agent.as_deref()).await
    }

    /// Who acted: the user, an admin; null for the server itself (or an
    /// unknown party, such as whoever typed a wrong password).
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|id| ID(id.to_string()))
    }

    /// The user the event is about.
    async fn subject_user_id(&self) -> Option<ID> {
        self.0.subject_user_id.map(|id| ID(id.to_string()))
    }

    /// The admin acting as the user, when the event happened in an impersonation.
    async fn impersonator_id(&self) -> Option<ID> {
        self.0.impersonator_id.map(|id| ID(id.to_string()))
    }

    /// The session the event is about (created, ended) or that acted.
    async fn session_id(&self) -> Option<ID> {
        self.0.session_id.map(|id| ID(id.to_string()))
    }

    /// Details as a JSON object of ids and names (`method`, `reason`,
    /// `provider`, `fields`, …); never a secret.
    async fn details(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(serde_json::from_str(&self.0.data).unwrap_or_default())
    }
}

impl SecurityEvent {
    /// Where an admin was when they acted on a user (or acted as them) is
    /// not the user's to see: only admins read it.
    async fn shown<'a>(&self, ctx: &Context<'_>, value: Option<&'a str>) -> Option<&'a str> {
        let event = &self.0;
        let by_admin = event.impersonator_id.is_some()
            || (event.actor_id.is_some() && event.actor_id != event.subject_user_id);
        if by_admin && !crate::graphql::guard::sees_as_admin(ctx).await {
            return None;
        }
        value
    }
}

/// One event of a page, with its place in the list.
#[derive(SimpleObject)]
pub struct SecurityEventEdge {
    /// Pass it as `after` to continue after this event.
    pub cursor: String,
    /// The event.
    pub node: SecurityEvent,
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more (older) items follow.
    pub has_next_page: bool,
    /// The last edge's cursor: pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of events, newest first (Relay-style).
#[derive(SimpleObject)]
pub struct SecurityEventConnection {
    /// The events of this page.
    pub edges: Vec<SecurityEventEdge>,
    /// Whether older events follow, and the cursor to ask for them.
    pub page_info: PageInfo,
}

impl From<Page> for SecurityEventConnection {
    fn from(page: Page) -> Self {
        let edges: Vec<SecurityEventEdge> = page
            .events
            .into_iter()
            .map(|event| SecurityEventEdge { cursor: event.id.to_string(), node: SecurityEvent(event) })
            .collect();
        let end_cursor = edges.last().map(|edge| edge.cursor.clone());
        SecurityEventConnection { edges, page_info: PageInfo { has_next_page: page.has_next, end_cursor } }
    }
}

/// A page's size and cursor, checked: `first` 1 to 100 (20 when omitted),
/// `after` a cursor this server gave.
pub fn page_args(first: Option<i32>, after: Option<&str>) -> Result<(u64, Option<i64>), AuthError> {
    let first = first.unwrap_or(20);
    let max = MAX_PAGE as i32;
    if !(1..=max).contains(&first) {
        return Err(AuthError::bad_input(Input::First, format!("first must be between 1 and {max}")));
    }
    let after = match after {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| AuthError::bad_input(Input::After, "not a cursor of this list"))?,
        ),
    };
    Ok((first as u64, after))
}

/// Narrows the audit log.
#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// One event type (`session.created`).
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// Events about this user.
    pub user_id: Option<ID>,
    /// Events at or after this time.
    pub after: Option<DateTime>,
    /// Events before this time.
    pub before: Option<DateTime>,
}

pub struct WebhookEndpoint(pub domain::webhooks::Endpoint);

/// Where events are delivered (Standard Webhooks 1.0).
#[Object]
impl WebhookEndpoint {
    /// The endpoint's id (`authgate webhooks list` shows it too).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where deliveries are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// The event types delivered; empty: every type.
    async fn event_types(&self) -> &[String] {
        &self.0.event_types
    }

    /// Off after the endpoint answered `410 Gone` (`authgate webhooks enable` turns it on).
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
}

/// A new webhook endpoint.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// An http(s) URL whose host resolves to a public address (or a network
    /// the operator allows with `AUTHGATE_WEBHOOK_ALLOW_NETWORKS`).
    pub url: String,
    /// Event types to deliver; omitted or empty: every type.
    pub event_types: Option<Vec<String>>,
}

/// An endpoint just added, with its secret.
#[derive(SimpleObject)]
pub struct CreatedWebhookEndpoint {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_…`), shown this once.
    pub secret: String,
}
