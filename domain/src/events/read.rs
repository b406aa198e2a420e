//! Reading the record: a user's activity and the audit log (newest first,
//! paged by id), and the ordered feed that webhooks and exports follow
//! (oldest first, in commit order, never skipping a late commit).

use chrono::{DateTime, Utc};
use entity::events;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use crate::{AuthContext, error::AuthError};

/// Which events: all of them, or narrowed.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kind: Option<String>,
    pub user_id: Option<Uuid>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

/// A page, newest first, and whether older events follow.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<events::Model>,
    pub has_next: bool,
}

/// At most this many events per page.
pub const MAX_PAGE: u64 = 100;

/// Events matching `filter`, newest first, older than the event `before_id`
/// (the previous page's last cursor). Ids only grow, so a page boundary
/// stays put while new events arrive.
pub async fn newest_first(
    auth: &AuthContext,
    filter: &Filter,
    first: u64,
    before_id: Option<i64>,
) -> Result<Page, AuthError> {
    let first = first.clamp(1, MAX_PAGE);
    let mut query = events::Entity::find().filter(matching(filter));
    if let Some(id) = before_id {
        query = query.filter(events::Column::Id.lt(id));
    }
    let mut events = query.order_by_desc(events::Column::Id).limit(first + 1).all(&auth.db).await?;
    let has_next = events.len() as u64 > first;
    events.truncate(first as usize);
    Ok(Page { events, has_next })
}

fn matching(filter: &Filter) -> Condition {
    let mut condition = Condition::all();
    if let Some(kind) = &filter.kind {
        condition = condition.add(events::Column::Kind.eq(kind.as_str()));
    }
    if let Some(user_id) = filter.user_id {
        condition = condition.add(events::Column::SubjectUserId.eq(user_id));
    }
    if let Some(after) = filter.after {
        condition = condition.add(events::Column::OccurredAt.gte(after));
    }
    if let Some(before) = filter.before {
        condition = condition.add(events::Column::OccurredAt.lt(before));
    }
    condition
}

/// A place in the record's commit order: `(tx, id)` of the last event read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub tx: i64,
    pub id: i64,
}

impl Position {
    pub fn of(event: &events::Model) -> Self {
        Self { tx: event.tx, id: event.id }
    }
}

/// Up to `limit` events after `from`, in commit order. On PostgreSQL only
/// events of transactions older than every transaction still running:
/// one still running may hold a smaller id, and a reader that moved past
/// it would never see it. SQLite writes one transaction at a time, so
/// every committed event is final.
pub async fn after(
    conn: &impl ConnectionTrait,
    from: Position,
    limit: u64,
) -> Result<Vec<events::Model>, AuthError> {
    let mut query = events::Entity::find().filter(
        Condition::any()
            .add(events::Column::Tx.gt(from.tx))
            .add(Condition::all().add(events::Column::Tx.eq(from.tx)).add(events::Column::Id.gt(from.id))),
    );
    query = only_final(query, conn);
    Ok(query.order_by_asc(events::Column::Tx).order_by_asc(events::Column::Id).limit(limit).all(conn).await?)
}

/// The committed events running transactions still hold back from
/// `after` (PostgreSQL; never on SQLite): the first `limit` of them, oldest
/// first, and when the oldest of all of them occurred.
pub(crate) async fn held_back(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> Result<(Vec<Position>, Option<DateTime<Utc>>), AuthError> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok((Vec::new(), None));
    }
    let held = || {
        events::Entity::find()
            .filter(Expr::cust("tx >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
    };
    let first: Vec<(i64, i64)> = held()
        .select_only()
        .column(events::Column::Tx)
        .column(events::Column::Id)
        .order_by_asc(events::Column::Tx)
        .order_by_asc(events::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    if first.is_empty() {
        return Ok((Vec::new(), None));
    }
    let oldest: Option<Option<DateTime<Utc>>> = held()
        .select_only()
        .column_as(events::Column::OccurredAt.min(), "oldest")
        .into_tuple()
        .one(conn)
        .await?;
    Ok((first.into_iter().map(|(tx, id)| Position { tx, id }).collect(), oldest.flatten()))
}

/// Narrows `query` to events no running transaction can still add before:
/// on PostgreSQL those of transactions older than every one still running
/// (see `after`); on SQLite every committed event.
pub(crate) fn only_final(
    query: sea_orm::Select<events::Entity>,
    conn: &impl ConnectionTrait,
) -> sea_orm::Select<events::Entity> {
    match conn.get_database_backend() {
        DatabaseBackend::Postgres => {
            query.filter(Expr::cust("tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        }
        _ => query,
    }
}

/// Events that occurred at or after `since`, oldest first, in pages of
/// `page` (the export): `f` is called per page until it returns `false`.
pub async fn since(
    auth: &AuthContext,
    since: DateTime<Utc>,
    page: u64,
    mut f: impl FnMut(Vec<events::Model>) -> bool,
) -> Result<u64, AuthError> {
    let mut last = 0i64;
    let mut total = 0;
    loop {
        let rows = events::Entity::find()
            .filter(events::Column::OccurredAt.gte(since))
            .filter(events::Column::Id.gt(last))
            .order_by_asc(events::Column::Id)
            .limit(page)
            .all(&auth.db)
            .await?;
        let Some(tail) = rows.last() else { return Ok(total) };
        last = tail.id;
        total += rows.len() as u64;
        let full = rows.len() as u64 == page;
        if !f(rows) || !full {
            return Ok(total);
        }
    }
}

/// `2026-12-01T00:00:00Z`, or a duration back from `now` (`24h`, `30days`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    use anyhow::Context as _;
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc());
    }
    let back = humantime::parse_duration(text)
        .with_context(|| format!("--since {text:?}: neither an RFC 3339 time nor a duration"))?;
    let back = chrono::Duration::from_std(back).context("--since: too long ago")?;
    now.checked_sub_signed(back).context("--since: too long ago")
}

/// One event as a line of the NDJSON export.
pub fn export_line(event: &events::Model) -> String {
    as_json(event).to_string()
}

/// An event's fields, as the export and webhook payloads (`data`) carry them.
pub fn as_json(event: &events::Model) -> serde_json::Value {
    let details: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
    serde_json::json!({
        "id": event.id.to_string(),
        "type": event.kind,
        "occurred_at": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "last_at": event.last_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "count": event.count,
        "user_id": event.subject_user_id,
        "actor_id": event.actor_id,
        "impersonator_id": event.impersonator_id,
        "session_id": event.session_id,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "details": details,
    })
}
