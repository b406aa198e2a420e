//! Rate limits, counted per attempt: every execution of a guarded operation
//! counts, whether it came alone, as one of many aliases or inside a batch,
//! because the services call `hit` themselves. Counters live in the
//! database or in Redis (shared by every instance), in fixed windows.

pub mod counters;
pub mod device;

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use crate::config::{Rate, Rule};
use crate::{
    AuthContext,
    config::ExposeSecret,
    error::AuthError,
    limits::counters::{CounterStore, DbCounters, RedisCounters},
};

/// The counter's key: the rule and a hash of the subject (an IP or an
/// email), so the table holds no addresses in clear.
fn key(rule: Rule, subject: &str) -> String {
    let digest = Sha256::digest(subject.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{hex}", rule.name())
}

/// The limiter: rules from the configuration, counters from a store.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn CounterStore>,
}

impl Limiter {
    pub(crate) fn new(store: Arc<dyn CounterStore>) -> Self {
        Self { store }
    }

    /// Redis when `REDIS_URL` is set, else the database.
    pub(crate) fn from_config(
        config: &crate::config::Config,
        db: &sea_orm::DatabaseConnection,
    ) -> anyhow::Result<Self> {
        let store: Arc<dyn CounterStore> = match &config.redis_url {
            Some(url) => Arc::new(RedisCounters::new(url.expose_secret(), &config.redis_prefix)?),
            None => Arc::new(DbCounters(db.clone())),
        };
        Ok(Self::new(store))
    }
}

/// Counts one attempt against `rule` for `subject`; `RATE_LIMITED` (with the
/// seconds until the window ends) once the count passes the limit.
pub(crate) async fn hit(auth: &AuthContext, rule: Rule, subject: &str) -> Result<(), AuthError> {
    let rate = auth.config.rates.get(rule);
    if rate.limit == 0 {
        return Ok(());
    }
    let (start, length) = window(auth, rate);
    let expires_at = DateTime::from_timestamp(start + length, 0).unwrap_or_else(Utc::now);
    let count = auth.limiter.store.increment(&key(rule, subject), start, length, expires_at).await?;
    if count > rate.limit {
        let retry_after = (start + length - auth.clock.now().timestamp()).max(1) as u64;
        tracing::info!(rule = rule.name(), retry_after, "rate limited");
        metrics::counter!("authgate_auth_events_total", "event" => crate::telemetry::AuthEvent::RateLimited.label(), "rule" => rule.name())
            .increment(1);
        return Err(AuthError::RateLimited { retry_after });
    }
    Ok(())
}

/// Forgets the attempts of `subject` under `rule` (a successful sign-in).
pub(crate) async fn clear(auth: &AuthContext, rule: Rule, subject: &str) -> Result<(), AuthError> {
    let rate = auth.config.rates.get(rule);
    if rate.limit == 0 {
        return Ok(());
    }
    let (start, _) = window(auth, rate);
    auth.limiter.store.clear(&key(rule, subject), start).await
}

/// The fixed window `rate` is in now: its start and length, in seconds.
fn window(auth: &AuthContext, rate: Rate) -> (i64, i64) {
    let length = rate.window.as_secs().max(1) as i64;
    let now = auth.clock.now().timestamp();
    (now - now.rem_euclid(length), length)
}

/// The subject of the per-address rules: an IPv4 address, or the /64 an
/// IPv6 address is in (one host is routinely given a whole /64, so keying
/// by the address would hand it 2^64 budgets). IPv4-mapped IPv6 counts as
/// its IPv4 address. Requests without a peer address (never the case over
/// TCP) share one counter.
pub(crate) fn ip_subject(meta: &crate::ClientMeta) -> String {
    match parsed(meta) {
        Some(ip @ IpAddr::V4(_)) => ip.to_string(),
        Some(ip) => format!("{}/64", client_of(ip)),
        None => "unknown".to_owned(),
    }
}

/// The network a client is in, for rules that must cost an attacker more
/// than one host: an IPv4 /24, an IPv6 /48 (a site's usual allocation).
pub(crate) fn network_subject(meta: &crate::ClientMeta) -> String {
    match parsed(meta) {
        Some(ip @ IpAddr::V4(_)) => format!("{}/24", network_of(ip)),
        Some(ip) => format!("{}/48", network_of(ip)),
        None => "unknown".to_owned(),
    }
}

/// The client an address belongs to, for every per-client rule and cap:
/// itself (IPv4; an IPv4-mapped IPv6 address is its IPv4 address), or its
/// /64 (one host commonly holds a whole /64).
pub fn client_of(ip: IpAddr) -> IpAddr {
    masked(ip, 32, 64)
}

/// The network an address belongs to: its /24 (IPv4), or its /48 (a site).
pub fn network_of(ip: IpAddr) -> IpAddr {
    masked(ip, 24, 48)
}

fn masked(ip: IpAddr, v4_bits: u32, v6_bits: u32) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & (u32::MAX << (32 - v4_bits))).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (u128::MAX << (128 - v6_bits))).into()),
    }
}

fn parsed(meta: &crate::ClientMeta) -> Option<IpAddr> {
    meta.ip_address.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()).map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::{ip_subject, network_subject};

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        let subject =
            |ip: &str| network_subject(&ClientMeta { ip_address: Some(ip.into()), ..Default::default() });
        assert_eq!(subject("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(subject("::ffff:192.0.2.7"), "192.0.2.0/24");
        assert_eq!(subject("2001:db8:1:2::1"), "2001:db8:1::/48");
        assert_eq!(subject("2001:db8:1:ffff::1"), subject("2001:db8:1::9"));
        assert_ne!(subject("2001:db8:2::1"), subject("2001:db8:1::1"));
    }
    use crate::ClientMeta;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let subject =
            |ip: &str| ip_subject(&ClientMeta { ip_address: Some(ip.into()), ..Default::default() });
        assert_eq!(subject("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(subject("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(subject("2001:db8:1:3::1"), subject("2001:db8:1:2::1"));
        assert_eq!(subject("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(subject("192.0.2.7"), "192.0.2.7");
        assert_ne!(subject("192.0.2.8"), subject("192.0.2.7"));
        assert_eq!(ip_subject(&ClientMeta::default()), "unknown");
    }
}
