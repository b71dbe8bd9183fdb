//! Plans: what a principal may do.

use std::time::Duration;

/// A plan from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    /// Requests per `window`.
    pub rate: u32,
    pub window: Duration,
    /// Bucket capacity.
    pub burst: u32,
    /// Active keys an account on this plan may hold; `None` is unlimited.
    pub max_active_keys: Option<u32>,
}

impl Plan {
    /// Microseconds between two tokens.
    pub fn interval_us(&self) -> i64 {
        let window = i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX);
        (window / i64::from(self.rate.max(1))).max(1)
    }
}
