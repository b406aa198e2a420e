//! Rate limits, counted per attempt: every execution of a guarded operation
//! counts, whether it came alone, as one of many aliases or inside a batch,
//! because the services call `hit` themselves. Counters live in the
//! database or in Redis (shared by every instance), in fixed windows.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{
    AuthContext,
    counters::{CounterStore, DbCounters, RedisCounters},
};
use crate::error::AuthError;

/// `N/duration`: at most N attempts per window; `0/…` turns the rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub window: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (limit, window) =
            s.split_once('/').ok_or_else(|| format!("{s:?}: expected N/duration, e.g. 10/15m"))?;
        let limit = limit.trim().parse().map_err(|_| format!("{s:?}: {limit:?} is not a number"))?;
        let window = humantime::parse_duration(window.trim()).map_err(|e| format!("{s:?}: {e}"))?;
        if window.as_secs() == 0 {
            return Err(format!("{s:?}: the window must be at least 1s"));
        }
        Ok(Self { limit, window })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, humantime::format_duration(self.window))
    }
}

/// What a counter counts, named in its key.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    LoginIp,
    LoginAccountIp,
    LoginAccount,
    LoginDevice,
    RegisterIp,
    RegisterEmail,
    RegisterGlobal,
    MailIp,
    MailAccount,
    TokenIp,
    PasswordAccount,
    OAuthIp,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Self::LoginIp => "login_ip",
            Self::LoginAccountIp => "login_account_ip",
            Self::LoginAccount => "login_account",
            Self::LoginDevice => "login_device",
            Self::RegisterIp => "register_ip",
            Self::RegisterEmail => "register_email",
            Self::RegisterGlobal => "register_global",
            Self::MailIp => "mail_ip",
            Self::MailAccount => "mail_account",
            Self::TokenIp => "token_ip",
            Self::PasswordAccount => "password_account",
            Self::OAuthIp => "oauth_ip",
        }
    }

    fn rate(self, auth: &AuthContext) -> Rate {
        let c = &auth.config;
        match self {
            Self::LoginIp => c.rate_login_ip,
            Self::LoginAccountIp => c.rate_login_account_ip,
            Self::LoginAccount => c.rate_login_account,
            // A device gets the budget a client has for one account.
            Self::LoginDevice => c.rate_login_account_ip,
            Self::RegisterIp => c.rate_register_ip,
            Self::RegisterEmail => c.rate_register_email,
            Self::RegisterGlobal => c.rate_register_global,
            Self::MailIp => c.rate_mail_ip,
            Self::MailAccount => c.rate_mail_account,
            Self::TokenIp => c.rate_token_ip,
            Self::PasswordAccount => c.rate_password_account,
            Self::OAuthIp => c.rate_oauth_ip,
        }
    }

    /// The counter's key: the rule and a hash of the subject (an IP or an
    /// email), so the table holds no addresses in clear.
    fn key(self, subject: &str) -> String {
        let digest = Sha256::digest(subject.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{hex}", self.name())
    }
}

/// The limiter: rules from the configuration, counters from a store.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn CounterStore>,
}

impl Limiter {
    pub fn new(store: Arc<dyn CounterStore>) -> Self {
        Self { store }
    }

    /// Redis when `REDIS_URL` is set, else the database.
    pub fn from_config(
        config: &crate::config::Config,
        db: &sea_orm::DatabaseConnection,
    ) -> anyhow::Result<Self> {
        let store: Arc<dyn CounterStore> = match &config.redis_url {
            Some(url) => Arc::new(RedisCounters::new(url, &config.redis_prefix)?),
            None => Arc::new(DbCounters(db.clone())),
        };
        Ok(Self::new(store))
    }
}

/// Counts one attempt against `rule` for `subject`; `RATE_LIMITED` (with the
/// seconds until the window ends) once the count passes the limit.
pub async fn hit(auth: &AuthContext, rule: Rule, subject: &str) -> Result<(), AuthError> {
    let rate = rule.rate(auth);
    if rate.limit == 0 {
        return Ok(());
    }
    let (start, length) = window(auth, rate);
    let expires_at = DateTime::from_timestamp(start + length, 0).unwrap_or_else(Utc::now);
    let count = auth.limiter.store.increment(&rule.key(subject), start, length, expires_at).await?;
    if count > rate.limit {
        let retry_after = (start + length - auth.clock.now().timestamp()).max(1) as u64;
        tracing::info!(rule = rule.name(), retry_after, "rate limited");
        metrics::counter!("authgate_auth_events_total", "event" => "rate_limited", "rule" => rule.name())
            .increment(1);
        return Err(AuthError::RateLimited { retry_after });
    }
    Ok(())
}

/// Forgets the attempts of `subject` under `rule` (a successful sign-in).
pub async fn clear(auth: &AuthContext, rule: Rule, subject: &str) -> Result<(), AuthError> {
    let rate = rule.rate(auth);
    if rate.limit == 0 {
        return Ok(());
    }
    let (start, _) = window(auth, rate);
    auth.limiter.store.clear(&rule.key(subject), start).await
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
pub fn ip_subject(meta: &super::ClientMeta) -> String {
    use std::net::IpAddr;
    let parsed = meta.ip_address.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
    match parsed.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Rate, ip_subject};
    use crate::auth::ClientMeta;

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

    #[test]
    fn rates_parse() {
        let rate: Rate = "10/15m".parse().unwrap();
        assert_eq!((rate.limit, rate.window.as_secs()), (10, 900));
        assert_eq!("0/1h".parse::<Rate>().unwrap().limit, 0);
        for bad in ["10", "x/1m", "10/0s", "10/soon"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
