//! Time comes from here, so tests move time instead of sleeping.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time, truncated to microseconds (what PostgreSQL stores), so a
/// value read back equals the value written on every backend.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        now.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(now)
    }
}

#[cfg(any(test, feature = "test-support"))]
pub use manual::ManualClock;

#[cfg(any(test, feature = "test-support"))]
mod manual {
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Duration, DurationRound, Utc};

    use super::{Clock, SystemClock};

    /// A clock that only moves when told to (for tests).
    #[derive(Clone)]
    pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

    impl ManualClock {
        /// Starts at the next full hour: every rate-limit window (each
        /// divides an hour) opens exactly when a test begins, so what a
        /// test sees never depends on the time of day it runs at. Ahead
        /// of the wall clock by less than an hour, never behind it (Redis
        /// expires its counters on the wall clock).
        pub fn new() -> Self {
            let now = SystemClock.now();
            let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
            Self(Arc::new(Mutex::new(hour + Duration::hours(1))))
        }

        pub fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
            *now += by;
        }
    }

    impl Default for ManualClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}
