//! Deleting what has expired: sessions and spent or expired mailed tokens
//! (in bounded batches, so no statement holds locks for long), ended
//! rate-limit windows, and abandoned OAuth flows, two-factor sign-ins and
//! passkey ceremonies.

use entity::{
    oauth_flows, passkey_challenges, rate_limits, sessions, sign_in_challenges, verification_tokens,
};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::{AuthContext, error::AuthError, user::credential};

/// Rows deleted per statement.
pub(crate) const BATCH: u64 = 500;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub sessions: u64,
    pub tokens: u64,
    /// Rate-limit windows that ended.
    pub counters: u64,
    /// OAuth sign-ins never completed.
    pub oauth_flows: u64,
    /// Second steps of sign-ins, and passkey ceremonies, never completed.
    pub challenges: u64,
    /// Events older than `AUTHGATE_EVENT_RETENTION`, webhook deliveries
    /// delivered over a week ago, and failed ones over 30 days old.
    pub events: u64,
}

/// A delivered webhook's row is kept this long (to answer "did it arrive?").
const DELIVERED_KEPT: chrono::Duration = chrono::Duration::days(7);
/// A failed delivery (given up on, or made while its endpoint was turned
/// off) can be replayed this long; the rows of an endpoint left off do not
/// pile up for ever.
const FAILED_KEPT: chrono::Duration = chrono::Duration::days(30);

async fn aged_events(auth: &AuthContext, now: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
    use entity::{events, webhook_deliveries};
    let delivered = delete_in_batches::<webhook_deliveries::Entity, Uuid>(
        auth,
        webhook_deliveries::Column::Id,
        Condition::all()
            .add(webhook_deliveries::Column::Status.eq("delivered"))
            .add(webhook_deliveries::Column::DeliveredAt.lte(now - DELIVERED_KEPT)),
    )
    .await?;
    let failed = delete_in_batches::<webhook_deliveries::Entity, Uuid>(
        auth,
        webhook_deliveries::Column::Id,
        Condition::all()
            .add(webhook_deliveries::Column::Status.eq("failed"))
            .add(webhook_deliveries::Column::CreatedAt.lte(now - FAILED_KEPT)),
    )
    .await?;
    let delivered = delivered + failed;
    let retention = auth.config.event_retention;
    if retention.is_zero() {
        return Ok(delivered);
    }
    let kept = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let Some(cutoff) = now.checked_sub_signed(kept) else { return Ok(delivered) };
    let aged = delete_in_batches::<events::Entity, i64>(
        auth,
        events::Column::Id,
        Condition::all().add(events::Column::OccurredAt.lte(cutoff)),
    )
    .await?;
    Ok(delivered + aged)
}

/// One full pass; returns how many rows of each kind were deleted.
pub async fn run_once(auth: &AuthContext) -> Result<Removed, AuthError> {
    let now = auth.clock.now();
    let removed = Removed {
        sessions: delete_in_batches::<sessions::Entity, Uuid>(
            auth,
            sessions::Column::Id,
            Condition::all().add(sessions::Column::ExpiresAt.lte(now)),
        )
        .await?,
        tokens: delete_in_batches::<verification_tokens::Entity, Uuid>(
            auth,
            verification_tokens::Column::Id,
            Condition::any()
                .add(verification_tokens::Column::ExpiresAt.lte(now))
                .add(verification_tokens::Column::ConsumedAt.is_not_null()),
        )
        .await?,
        counters: rate_limits::Entity::delete_many()
            .filter(rate_limits::Column::ExpiresAt.lte(now))
            .exec(&auth.db)
            .await?
            .rows_affected,
        oauth_flows: oauth_flows::Entity::delete_many()
            .filter(oauth_flows::Column::ExpiresAt.lte(now))
            .exec(&auth.db)
            .await?
            .rows_affected,
        challenges: sign_in_challenges::Entity::delete_many()
            .filter(sign_in_challenges::Column::ExpiresAt.lte(now))
            .exec(&auth.db)
            .await?
            .rows_affected
            + passkey_challenges::Entity::delete_many()
                .filter(passkey_challenges::Column::ExpiresAt.lte(now))
                .exec(&auth.db)
                .await?
                .rows_affected,
        events: aged_events(auth, now).await?,
    };
    if removed != Removed::default() {
        tracing::info!(
            sessions = removed.sessions,
            tokens = removed.tokens,
            counters = removed.counters,
            oauth_flows = removed.oauth_flows,
            challenges = removed.challenges,
            events = removed.events,
            "expired data removed"
        );
    }
    Ok(removed)
}

/// Deletes the rows matching `stale`, `BATCH` ids at a time.
async fn delete_in_batches<E: EntityTrait, K>(
    auth: &AuthContext,
    id: E::Column,
    stale: Condition,
) -> Result<u64, DbErr>
where
    K: sea_orm::TryGetable + Into<sea_orm::Value>,
{
    let mut total = 0;
    loop {
        let ids: Vec<K> = E::find()
            .select_only()
            .column(id)
            .filter(stale.clone())
            .limit(BATCH)
            .into_tuple()
            .all(&auth.db)
            .await?;
        let last = (ids.len() as u64) < BATCH;
        if !ids.is_empty() {
            total += E::delete_many().filter(id.is_in(ids)).exec(&auth.db).await?.rows_affected;
        }
        if last {
            return Ok(total);
        }
    }
}

/// Runs `run_once` every `interval` until the process ends; failures are
/// logged and retried at the next tick.
pub async fn run_periodically(auth: AuthContext, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = run_once(&auth).await {
            e.report();
            tracing::warn!(error = %e, "cleanup failed; retrying at the next interval");
        }
        // As stored hashes are rehashed at today's cost, the dummy follows.
        if let Err(e) = credential::calibrate_dummy(&auth).await {
            e.report();
        }
    }
}
