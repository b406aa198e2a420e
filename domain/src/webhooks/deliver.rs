//! Delivering webhooks, at least once. Two steps, each safe with any
//! number of instances:
//! 1. Fan-out: under the `webhooks` cursor's row lock, the events after
//!    the cursor (in commit order, `events::read::after`) become one
//!    `pending` delivery per endpoint that wants them, and the cursor
//!    moves, in one transaction: a crash before its commit redoes it
//!    (the unique (endpoint, event) index keeps one delivery each).
//! 2. Delivery: due deliveries are claimed for a lease (`locked_until`,
//!    `FOR UPDATE SKIP LOCKED` on PostgreSQL), sent, and marked
//!    `delivered`, retried later, or `failed` after the last attempt. A
//!    crash mid-attempt leaves the lease to run out; the next claim sends
//!    it again with the same `webhook-id`.
//!
//! Delivery never runs in a request: it is this background task's work.
//! Order: attempts run side by side and retries come later, so a receiver
//! orders by the payload's event `id` (it grows with commit order per
//! subject), not by arrival.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{events, webhook_deliveries, webhook_endpoints};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult,
    QueryFilter, Statement, sea_query::Expr,
};
use uuid::Uuid;

use super::{Endpoint, network::Reach, sign};
use crate::{
    AuthContext,
    error::AuthError,
    events::read::{self, Position},
};

pub(crate) const PENDING: &str = "pending";
pub(crate) const DELIVERED: &str = "delivered";
pub(crate) const FAILED: &str = "failed";

const CURSOR: &str = "webhooks";
/// Why a delivery was not attempted (`replay` sends it).
const OFF: &str = "the endpoint was turned off";
/// Events moved per fan-out transaction.
const FAN_OUT_BATCH: u64 = 500;
/// The fan-out runs at most this often (the worker wakes more often while
/// attempts end).
const FAN_OUT_EVERY: Duration = Duration::from_millis(50);
/// Deliveries in flight per instance.
const IN_FLIGHT: usize = 32;
/// Deliveries in flight per endpoint from one instance (N instances: N × this).
const PER_ENDPOINT: u64 = 8;
/// The wait after each attempt that failed (Standard Webhooks' schedule,
/// stretched to about three days), each with ±20 % jitter. After the
/// last, the delivery is `failed` (listed, replayable).
const BACKOFF: [u64; 9] = [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 72_000];
/// A `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: u64 = 24 * 3600;
/// The answer's body is not read: a receiver cannot make us hold much.
const USER_AGENT: &str = concat!("authgate-webhooks/", env!("CARGO_PKG_VERSION"));

/// How often to look for work when nothing woke the worker.
fn idle_poll(has_endpoints: bool) -> Duration {
    if has_endpoints { Duration::from_millis(200) } else { Duration::from_secs(2) }
}

/// The worker: runs until the process ends.
pub async fn run(auth: AuthContext) {
    let client = match client(&auth) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("webhooks cannot be delivered: {e:#}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let busy = InFlight::default();
    let mut fanned: Option<std::time::Instant> = None;
    loop {
        // Woken by every attempt that ends, the fan-out (a write) still
        // runs at most every `FAN_OUT_EVERY`.
        let fan = fanned.is_none_or(|at| at.elapsed() >= FAN_OUT_EVERY);
        if fan {
            fanned = Some(std::time::Instant::now());
        }
        let has_endpoints = match tick(&auth, &client, &slots, &busy, fan).await {
            Ok(has) => has,
            Err(e) => {
                e.report();
                true
            }
        };
        // An attempt that ends frees a slot: look for work at once (a
        // backlog drains at the receivers' pace, not one round per poll).
        tokio::select! {
            _ = tokio::time::sleep(idle_poll(has_endpoints)) => {}
            _ = busy.ended.notified() => {}
        }
    }
}

/// One round: fan out, then claim and start what is due. Whether any
/// endpoint is enabled.
pub(crate) async fn tick(
    auth: &AuthContext,
    client: &reqwest::Client,
    slots: &Arc<tokio::sync::Semaphore>,
    busy: &InFlight,
    fan: bool,
) -> Result<bool, AuthError> {
    // Not fanning out this time: there were endpoints at the last fan-out.
    let mut has_endpoints = !fan;
    if fan {
        loop {
            let (moved, endpoints) = fan_out(auth).await?;
            has_endpoints = has_endpoints || endpoints;
            if moved < FAN_OUT_BATCH {
                break;
            }
        }
    }
    if !has_endpoints {
        return Ok(false);
    }
    let free = slots.available_permits();
    if free == 0 {
        return Ok(true);
    }
    for claimed in claim(auth, free as u64, busy).await? {
        let Ok(permit) = slots.clone().acquire_owned().await else { break };
        let (auth, client) = (auth.clone(), client.clone());
        let attempting = busy.start(claimed.endpoint_id);
        tokio::spawn(async move {
            let _attempting = attempting;
            if let Err(e) = attempt(&auth, &client, claimed).await {
                e.report();
            }
            drop(permit);
        });
    }
    Ok(true)
}

async fn all_endpoints(conn: &impl ConnectionTrait) -> Result<Vec<Endpoint>, AuthError> {
    let rows = webhook_endpoints::Entity::find().all(conn).await?;
    Ok(rows.into_iter().map(Endpoint::of).collect())
}

/// Moves up to a batch of events into deliveries: how many events it
/// moved past, and whether any endpoint is enabled.
async fn fan_out(auth: &AuthContext) -> Result<(u64, bool), AuthError> {
    let (_turn, txn) = auth.write().await?;
    // A write first: it takes the row's lock (and SQLite's write lock) at once.
    let locked = entity::event_cursors::Entity::update_many()
        .col_expr(entity::event_cursors::Column::Name, Expr::value(CURSOR))
        .filter(entity::event_cursors::Column::Name.eq(CURSOR))
        .exec(&txn)
        .await?;
    let from = if locked.rows_affected == 0 {
        start_cursor(&txn).await?
    } else {
        let row = entity::event_cursors::Entity::find_by_id(CURSOR).one(&txn).await?;
        row.map(|r| Position { tx: r.tx, id: r.event_id }).unwrap_or_default()
    };
    // Read under the lock: an endpoint added before this fan-out gets its events.
    let endpoints = all_endpoints(&txn).await?;
    let batch = read::after(&txn, from, FAN_OUT_BATCH).await?;
    let any_enabled = endpoints.iter().any(|e| e.enabled);
    let Some(last) = batch.last() else { return Ok((0, any_enabled)) };
    let to = Position::of(last);
    let now = auth.clock.now();
    let mut rows = Vec::new();
    for event in &batch {
        for endpoint in endpoints.iter().filter(|e| e.wants(&event.kind) && event.occurred_at >= e.created_at)
        {
            // A turned-off endpoint's events are kept as failed deliveries:
            // `webhooks failed` lists them and `replay` sends them once it
            // is back, so nothing is lost while it was off.
            let (status, error) = match endpoint.enabled {
                true => (PENDING, None),
                false => (FAILED, Some(OFF.to_owned())),
            };
            rows.push(webhook_deliveries::ActiveModel {
                id: Set(Uuid::new_v4()),
                endpoint_id: Set(endpoint.id),
                event_id: Set(event.id),
                status: Set(status.to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                locked_until: Set(None),
                last_status: Set(None),
                last_error: Set(error),
                created_at: Set(now),
                delivered_at: Set(None),
            });
        }
    }
    for chunk in rows.chunks(200) {
        webhook_deliveries::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    webhook_deliveries::Column::EndpointId,
                    webhook_deliveries::Column::EventId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .do_nothing()
            .exec(&txn)
            .await?;
    }
    entity::event_cursors::Entity::update_many()
        .col_expr(entity::event_cursors::Column::Tx, Expr::value(to.tx))
        .col_expr(entity::event_cursors::Column::EventId, Expr::value(to.id))
        .filter(entity::event_cursors::Column::Name.eq(CURSOR))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok((batch.len() as u64, any_enabled))
}

/// The cursor's row, made on first use at the start of the record (an
/// endpoint gets only events from its own creation on, see `fan_out`).
async fn start_cursor(conn: &impl ConnectionTrait) -> Result<Position, AuthError> {
    let row =
        entity::event_cursors::ActiveModel { name: Set(CURSOR.to_owned()), tx: Set(0), event_id: Set(0) };
    entity::event_cursors::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(entity::event_cursors::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(conn)
        .await?;
    let row = entity::event_cursors::Entity::find_by_id(CURSOR).one(conn).await?;
    Ok(row.map(|r| Position { tx: r.tx, id: r.event_id }).unwrap_or_default())
}

/// How long a claimed attempt is this instance's: past it, another
/// instance (or this one after a restart) sends it again.
fn lease(auth: &AuthContext) -> chrono::Duration {
    chrono::Duration::from_std(auth.config.webhook_timeout * 2 + Duration::from_secs(2))
        .unwrap_or(chrono::Duration::minutes(1))
}

/// Claims up to `limit` due deliveries of enabled endpoints for a lease,
/// counting the attempt. Each endpoint with work gets a fair share of the
/// free slots and never more than `PER_ENDPOINT` in flight from this
/// instance (`busy`): a slow receiver holds its own share, not every slot.
/// The endpoints are taken in a random order.
async fn claim(
    auth: &AuthContext,
    limit: u64,
    busy: &InFlight,
) -> Result<Vec<webhook_deliveries::Model>, AuthError> {
    use rand::seq::SliceRandom;
    let now = auth.clock.now();
    let mut due = due_endpoints(auth, now).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    due.shuffle(&mut rand::thread_rng());
    let share = (limit / due.len() as u64).max(1);
    let mut claimed = Vec::new();
    for endpoint in due {
        let taken = busy.of(endpoint);
        let room =
            PER_ENDPOINT.saturating_sub(taken).min(share).min(limit.saturating_sub(claimed.len() as u64));
        if room > 0 {
            claimed.extend(claim_for(auth, endpoint, room, now).await?);
        }
    }
    Ok(claimed)
}

/// This instance's attempts in flight, per endpoint, and a bell rung when
/// one ends.
#[derive(Clone, Default)]
pub(crate) struct InFlight {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<Uuid, u64>>>,
    ended: Arc<tokio::sync::Notify>,
}

impl InFlight {
    fn of(&self, endpoint: Uuid) -> u64 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(&endpoint).copied().unwrap_or(0)
    }

    /// Counts an attempt until the returned guard drops.
    fn start(&self, endpoint: Uuid) -> Attempting {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()).entry(endpoint).or_default() += 1;
        Attempting(self.clone(), endpoint)
    }
}

struct Attempting(InFlight, Uuid);

impl Drop for Attempting {
    fn drop(&mut self) {
        {
            let mut counts = self.0.counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.1);
                }
            }
        }
        self.0.ended.notify_one();
    }
}

/// The enabled endpoints with a delivery due and not under a lease (one
/// indexed probe per endpoint, however long a backlog is).
async fn due_endpoints(auth: &AuthContext, now: DateTime<Utc>) -> Result<Vec<Uuid>, AuthError> {
    use sea_orm::{Condition, QuerySelect, sea_query::Query};
    use webhook_deliveries::Column;
    let due = Query::select()
        .expr(Expr::val(1))
        .from(webhook_deliveries::Entity)
        .and_where(
            Expr::col((webhook_deliveries::Entity, Column::EndpointId))
                .equals((webhook_endpoints::Entity, webhook_endpoints::Column::Id)),
        )
        .and_where(Expr::col(Column::Status).eq(PENDING))
        .and_where(Expr::col(Column::NextAttemptAt).lte(now))
        .cond_where(
            Condition::any()
                .add(Expr::col(Column::LockedUntil).is_null())
                .add(Expr::col(Column::LockedUntil).lte(now)),
        )
        .limit(1)
        .to_owned();
    Ok(webhook_endpoints::Entity::find()
        .select_only()
        .column(webhook_endpoints::Column::Id)
        .filter(webhook_endpoints::Column::Enabled.eq(true))
        .filter(Expr::exists(due))
        .into_tuple()
        .all(&auth.db)
        .await?)
}

/// Claims up to `limit` of `endpoint`'s due deliveries, oldest due first.
async fn claim_for(
    auth: &AuthContext,
    endpoint: Uuid,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<webhook_deliveries::Model>, AuthError> {
    let until = now + lease(auth);
    let backend = auth.db.get_database_backend();
    let (sql, lock) = match backend {
        DatabaseBackend::Postgres => (POSTGRES_CLAIM, " FOR UPDATE SKIP LOCKED"),
        _ => (SQLITE_CLAIM, ""),
    };
    let sql = sql.replace("{lock}", lock);
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [until.into(), PENDING.into(), now.into(), now.into(), endpoint.into(), (limit as i64).into()],
    );
    Ok(webhook_deliveries::Model::find_by_statement(statement).all(&auth.db).await?)
}

const POSTGRES_CLAIM: &str = "UPDATE webhook_deliveries SET locked_until = $1, attempts = attempts + 1 \
    WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
    WHERE d.status = $2 AND e.enabled AND d.next_attempt_at <= $3 AND (d.locked_until IS NULL OR d.locked_until <= $4) \
    AND d.endpoint_id = $5 ORDER BY d.next_attempt_at LIMIT $6{lock}) RETURNING *";
const SQLITE_CLAIM: &str = "UPDATE webhook_deliveries SET locked_until = ?, attempts = attempts + 1 \
    WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
    WHERE d.status = ? AND e.enabled AND d.next_attempt_at <= ? AND (d.locked_until IS NULL OR d.locked_until <= ?) \
    AND d.endpoint_id = ? ORDER BY d.next_attempt_at LIMIT ?{lock}) RETURNING *";

/// The HTTP client: public addresses only (its resolver), no proxy from
/// the environment (one would dial for us), no redirects (one to
/// 169.254.169.254 would leave the checks behind), a deadline per attempt.
pub(crate) fn client(auth: &AuthContext) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(Reach::new(&auth.config.webhook_allow_networks)))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(auth.config.webhook_timeout)
        .connect_timeout(auth.config.webhook_timeout.min(Duration::from_secs(5)))
        .user_agent(USER_AGENT)
        .build()?)
}

/// What one attempt came to.
enum Outcome {
    Delivered(u16),
    /// Retry (a status, or an error without one), after at least `after`.
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<u64>,
    },
    /// `410 Gone`: the endpoint is turned off.
    Gone,
}

async fn attempt(
    auth: &AuthContext,
    client: &reqwest::Client,
    delivery: webhook_deliveries::Model,
) -> Result<(), AuthError> {
    let endpoint = webhook_endpoints::Entity::find_by_id(delivery.endpoint_id).one(&auth.db).await?;
    let event = events::Entity::find_by_id(delivery.event_id).one(&auth.db).await?;
    let (Some(endpoint), Some(event)) = (endpoint, event) else {
        // The event aged out of the record, or the endpoint was removed.
        return finish(&auth.db, &delivery, FAILED, None, Some("the event or endpoint is gone".into()), None)
            .await;
    };
    let outcome = send(auth, client, &endpoint, &event).await;
    let now = auth.clock.now();
    match outcome {
        Outcome::Delivered(status) => {
            finish(&auth.db, &delivery, DELIVERED, Some(status), None, Some(now)).await
        }
        Outcome::Gone => {
            tracing::warn!(endpoint_id = %endpoint.id, "webhook endpoint answered 410 Gone: turned off");
            let (_turn, txn) = auth.write().await?;
            webhook_endpoints::Entity::update_many()
                .col_expr(webhook_endpoints::Column::Enabled, Expr::value(false))
                .col_expr(
                    webhook_endpoints::Column::DisabledReason,
                    Expr::value("the endpoint answered 410 Gone"),
                )
                .col_expr(webhook_endpoints::Column::UpdatedAt, Expr::value(now))
                .filter(webhook_endpoints::Column::Id.eq(endpoint.id))
                .exec(&txn)
                .await?;
            finish(&txn, &delivery, FAILED, Some(410), Some("410 Gone".into()), None).await?;
            Ok(txn.commit().await?)
        }
        Outcome::Retry { status, error, after } => {
            let spent = usize::try_from(delivery.attempts).unwrap_or(usize::MAX);
            let Some(wait) = BACKOFF.get(spent.saturating_sub(1)) else {
                tracing::warn!(endpoint_id = %endpoint.id, event_id = event.id, %error, "webhook given up after its last attempt");
                return finish(&auth.db, &delivery, FAILED, status, Some(error), None).await;
            };
            let jittered = (*wait as f64 * rand::Rng::gen_range(&mut rand::thread_rng(), 0.8..1.2)) as u64;
            let wait = jittered.max(after.unwrap_or(0).min(MAX_RETRY_AFTER)).max(1);
            tracing::info!(endpoint_id = %endpoint.id, event_id = event.id, %error, retry_in_s = wait, "webhook attempt failed");
            let next = now + chrono::Duration::seconds(wait as i64);
            webhook_deliveries::Entity::update_many()
                .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(next))
                .col_expr(webhook_deliveries::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(webhook_deliveries::Column::LastStatus, Expr::value(status.map(i32::from)))
                .col_expr(webhook_deliveries::Column::LastError, Expr::value(truncate(&error)))
                .filter(webhook_deliveries::Column::Id.eq(delivery.id))
                .exec(&auth.db)
                .await?;
            Ok(())
        }
    }
}

async fn finish(
    conn: &impl ConnectionTrait,
    delivery: &webhook_deliveries::Model,
    status: &str,
    http_status: Option<u16>,
    error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
) -> Result<(), AuthError> {
    webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value(status))
        .col_expr(webhook_deliveries::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(webhook_deliveries::Column::LastStatus, Expr::value(http_status.map(i32::from)))
        .col_expr(webhook_deliveries::Column::LastError, Expr::value(error.as_deref().map(truncate)))
        .col_expr(webhook_deliveries::Column::DeliveredAt, Expr::value(delivered_at))
        .filter(webhook_deliveries::Column::Id.eq(delivery.id))
        .exec(conn)
        .await?;
    Ok(())
}

fn truncate(text: &str) -> String {
    text.chars().take(500).collect()
}

/// The payload: `{type, timestamp, data}` with the event's ids and names.
pub(crate) fn payload(event: &events::Model) -> String {
    serde_json::json!({
        "type": event.kind,
        "timestamp": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": read::as_json(event),
    })
    .to_string()
}

/// The same on every attempt (receivers deduplicate on it).
pub(crate) fn message_id(event: &events::Model) -> String {
    format!("evt_{}", event.id)
}

async fn send(
    auth: &AuthContext,
    client: &reqwest::Client,
    endpoint: &webhook_endpoints::Model,
    event: &events::Model,
) -> Outcome {
    let retry = |error: String| Outcome::Retry { status: None, error, after: None };
    // A literal address is dialled without the resolver: checked here.
    let Ok(url) = url::Url::parse(&endpoint.url) else { return retry("the URL does not parse".into()) };
    let reach = Reach::new(&auth.config.webhook_allow_networks);
    if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host() {
        let ip: Option<std::net::IpAddr> =
            url.host_str().and_then(|h| h.trim_matches(['[', ']']).parse().ok());
        if !ip.is_some_and(|ip| reach.permits(ip)) {
            return retry(super::network::Refused(url.host_str().unwrap_or_default().to_owned()).to_string());
        }
    }
    let secrets = match open_secrets(auth, endpoint) {
        Ok(secrets) => secrets,
        Err(e) => return retry(e.to_string()),
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let body = payload(event);
    let id = message_id(event);
    // The attempt's time: a receiver refuses a stale timestamp (replays).
    let timestamp = Utc::now().timestamp();
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign::signature(&secrets, &id, timestamp, &body))
        .body(body)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(e) => return retry(describe(&e)),
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered(status.as_u16());
    }
    if status == reqwest::StatusCode::GONE {
        return Outcome::Gone;
    }
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let kind = if status.is_redirection() { "a redirect (not followed)" } else { "an error status" };
    Outcome::Retry { status: Some(status.as_u16()), error: format!("{kind}: {status}"), after }
}

/// An error's chain without the URL (it may carry a token in its query).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() { "timed out".to_owned() } else { "request failed".to_owned() };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The endpoint's secrets, newest first.
fn open_secrets(auth: &AuthContext, endpoint: &webhook_endpoints::Model) -> Result<Vec<String>, AuthError> {
    let open = |sealed: &str| {
        auth.keys
            .sealer
            .open(sealed, endpoint.id.as_bytes())
            .map_err(|e| {
                AuthError::internal(
                    &format!("the secret of webhook endpoint {} does not open", endpoint.id),
                    e,
                )
            })
            .and_then(|(plain, _)| {
                String::from_utf8(plain).map_err(|e| AuthError::internal("a webhook secret", e))
            })
    };
    let mut secrets = vec![open(&endpoint.secret)?];
    if let Some(previous) = &endpoint.previous_secret {
        secrets.push(open(previous)?);
    }
    Ok(secrets)
}
