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
    use std::sync::{Arc, Mutex, OnceLock};

    use chrono::{DateTime, Duration, DurationRound, Utc};

    use super::{Clock, SystemClock};

    /// A clock that only moves when told to (for tests).
    #[derive(Clone)]
    pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

    impl ManualClock {
        /// Starts 7 min 17 s past the next full hour, the same instant for
        /// every clock of the process (two instances in one test agree on
        /// every window). So what a test sees never depends on the time of
        /// day it runs at, and it sits inside every rate-limit window (each
        /// divides an hour) rather than on a boundary, where "the time left"
        /// and "the whole window" would look alike. Ahead of the wall clock
        /// by at most 67 minutes, never behind it (Redis expires its
        /// counters on the wall clock).
        pub fn new() -> Self {
            static START: OnceLock<DateTime<Utc>> = OnceLock::new();
            let start = *START.get_or_init(|| {
                let now = SystemClock.now();
                let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
                hour + Duration::hours(1) + Duration::seconds(437)
            });
            Self(Arc::new(Mutex::new(start)))
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
