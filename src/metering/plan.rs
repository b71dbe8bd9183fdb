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
    /// The credit budget; `None`: credits are not metered.
    pub credits: Option<CreditPolicy>,
    /// Largest `limit` a request may ask for.
    pub max_results: Option<u32>,
    pub pagination: bool,
    pub key_management: bool,
    pub custom_expiry: bool,
    /// One bucket and one credit pool for all callers.
    pub shared: bool,
    /// Whether keys of this plan may mint short-lived tokens.
    pub short_lived_tokens: bool,
}

/// Where a plan's credit balance lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditPool {
    /// Each account has its own balance.
    Account,
    /// One balance for every caller of the plan.
    Plan,
}

/// A plan's credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditPolicy {
    pub budget: u64,
    /// The balance resets to `budget` at the start of each period.
    pub refill: Option<Duration>,
    pub pool: CreditPool,
}

impl Plan {
    /// A plan with a rate and nothing else (tests and internal limiters).
    pub fn simple(name: &str, rate: u32, window: Duration, burst: u32) -> Self {
        Self {
            name: name.to_string(),
            rate,
            window,
            burst,
            max_active_keys: None,
            credits: None,
            max_results: None,
            pagination: true,
            key_management: true,
            custom_expiry: true,
            shared: false,
            short_lived_tokens: false,
        }
    }

    /// Microseconds between two tokens.
    pub fn interval_us(&self) -> i64 {
        let window = i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX);
        (window / i64::from(self.rate.max(1))).max(1)
    }
}
