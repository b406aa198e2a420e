//! Webhooks (Standard Webhooks 1.0) from the event record: endpoints with
//! a type filter and a signing secret shown once; deliveries made at least
//! once, by whichever instance claims them (`deliver`).

pub(crate) mod deliver;
pub mod network;
pub mod secrets;
pub(crate) mod sign;

use chrono::{DateTime, Utc};
use entity::{webhook_deliveries, webhook_endpoints};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

pub use self::deliver::run as run_worker;
use crate::{
    AuthContext, ClientMeta,
    error::{AuthError, Input},
    events::{Event, Kind},
};

/// An endpoint, as an operator sees it (never its secret).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Endpoint {
    fn of(row: webhook_endpoints::Model) -> Self {
        Self {
            event_types: serde_json::from_str(&row.event_types).unwrap_or_default(),
            id: row.id,
            url: row.url,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            created_at: row.created_at,
        }
    }

    /// Whether events of `kind` go to this endpoint.
    pub(crate) fn wants(&self, kind: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind)
    }
}

/// A new endpoint and its secret, shown this once.
pub struct Created {
    pub endpoint: Endpoint,
    pub secret: secrecy::SecretString,
}

const MAX_URL: usize = 2048;

/// Adds an endpoint for `url` receiving `event_types` (none: every type).
/// The URL must be http(s) without credentials, and its host must resolve
/// to an address webhooks may reach (checked again at every delivery).
/// `actor` is the admin who added it (`None`: the command line).
pub async fn create(
    auth: &AuthContext,
    url: &str,
    event_types: Vec<String>,
    actor: Option<Uuid>,
    meta: &ClientMeta,
) -> Result<Created, AuthError> {
    let mut event_types = event_types;
    event_types.sort();
    event_types.dedup();
    if let Some(unknown) = event_types.iter().find(|t| Kind::parse(t).is_none()) {
        return Err(AuthError::bad_input(Input::EventTypes, format!("unknown event type {unknown:?}")));
    }
    let url = check_url(auth, url).await?;
    let id = Uuid::new_v4();
    let secret = sign::new_secret();
    let sealed = auth
        .keys
        .sealer
        .seal(secret.as_bytes(), id.as_bytes())
        .map_err(|e| AuthError::internal("sealing a webhook secret", e))?;
    let now = auth.clock.now();
    let (_turn, txn) = auth.write().await?;
    let row = webhook_endpoints::ActiveModel {
        id: Set(id),
        url: Set(url.to_string()),
        event_types: Set(serde_json::Value::from(event_types.clone()).to_string()),
        secret: Set(sealed),
        previous_secret: Set(None),
        enabled: Set(true),
        disabled_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let mut event = Event::new(Kind::WebhookEndpointCreated, id)
        .with("endpoint_id", id.to_string())
        .with("host", url.host_str().unwrap_or_default())
        .about_nobody();
    event = match actor {
        Some(actor) => event.by(actor),
        None => event.by_server(),
    };
    event.record(&txn, auth, meta).await?;
    txn.commit().await?;
    tracing::info!(endpoint_id = %id, host = url.host_str().unwrap_or_default(), "webhook endpoint added");
    Ok(Created { endpoint: Endpoint::of(row), secret: secret.into() })
}

async fn check_url(auth: &AuthContext, raw: &str) -> Result<url::Url, AuthError> {
    let bad = |why: &str| AuthError::bad_input(Input::Url, why);
    if raw.len() > MAX_URL {
        return Err(bad("the URL is longer than 2048 characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("not an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("the URL must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("the URL must not carry credentials"));
    }
    let Some(host) = url.host_str() else { return Err(bad("the URL has no host")) };
    let port = url.port_or_known_default().unwrap_or(443);
    let reach = network::Reach::new(&auth.config.webhook_allow_networks);
    let host = host.trim_matches(['[', ']']);
    let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => return Err(bad("the URL's host does not resolve")),
    };
    if !addrs.iter().any(|addr| reach.permits(addr.ip())) {
        return Err(bad(&network::Refused(host.to_owned()).to_string()));
    }
    Ok(url)
}

/// Every endpoint, oldest first.
pub async fn list(auth: &AuthContext) -> Result<Vec<Endpoint>, AuthError> {
    let rows = webhook_endpoints::Entity::find()
        .order_by_asc(webhook_endpoints::Column::CreatedAt)
        .all(&auth.db)
        .await?;
    Ok(rows.into_iter().map(Endpoint::of).collect())
}

/// Turns an endpoint on again (after a `410`, say); `false` for an unknown id.
pub async fn enable(auth: &AuthContext, id: Uuid) -> Result<bool, AuthError> {
    let updated = webhook_endpoints::Entity::update_many()
        .col_expr(webhook_endpoints::Column::Enabled, Expr::value(true))
        .col_expr(webhook_endpoints::Column::DisabledReason, Expr::value(Option::<String>::None))
        .col_expr(webhook_endpoints::Column::UpdatedAt, Expr::value(auth.clock.now()))
        .filter(webhook_endpoints::Column::Id.eq(id))
        .exec(&auth.db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// A delivery, for listing.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

/// Deliveries given up on (`failed`), newest first, at most `limit`.
pub async fn failed(auth: &AuthContext, limit: u64) -> Result<Vec<Delivery>, AuthError> {
    let rows = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::Status.eq(deliver::FAILED))
        .order_by_desc(webhook_deliveries::Column::CreatedAt)
        .limit(limit)
        .all(&auth.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| Delivery {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            status: row.status,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
        })
        .collect())
}

/// Delivers failed deliveries again from now (all of an endpoint's, or
/// one): they keep their `webhook-id`. Returns how many.
pub async fn replay(
    auth: &AuthContext,
    endpoint: Option<Uuid>,
    delivery: Option<Uuid>,
) -> Result<u64, AuthError> {
    let mut update = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value(deliver::PENDING))
        .col_expr(webhook_deliveries::Column::Attempts, Expr::value(0))
        .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(auth.clock.now()))
        .col_expr(webhook_deliveries::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(webhook_deliveries::Column::Status.eq(deliver::FAILED));
    if let Some(endpoint) = endpoint {
        update = update.filter(webhook_deliveries::Column::EndpointId.eq(endpoint));
    }
    if let Some(delivery) = delivery {
        update = update.filter(webhook_deliveries::Column::Id.eq(delivery));
    }
    Ok(update.exec(&auth.db).await?.rows_affected)
}
