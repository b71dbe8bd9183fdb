//! Throttling of invalid credentials per client IP, with Pingora's
//! count-min-sketch rate estimator: memory stays bounded however many
//! addresses a flood comes from. It only ever answers for a credential that
//! failed: past the limit, the client's invalid credentials get 429 instead of
//! 401, and a valid one from the same address still passes (behind a CDN
//! without trusted proxies, one address is everyone).

use pingora_limits::rate::Rate;
use std::time::Duration;

/// Estimated invalid credentials per client per minute.
pub struct FailureThrottle {
    rate: Rate,
    limit: u32,
}

impl FailureThrottle {
    /// `limit` failures per minute per client; 0 disables.
    pub fn new(limit: u32) -> Self {
        Self {
            rate: Rate::new(Duration::from_secs(60)),
            limit,
        }
    }

    /// The configured limit (0: off).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Records one invalid credential from `client`.
    pub fn failed(&self, client: &str) {
        if self.limit > 0 {
            self.rate.observe(&client, 1);
        }
    }

    /// Whether `client` is over the limit (a sliding estimate of the last minute).
    pub fn blocked(&self, client: &str) -> bool {
        if self.limit == 0 {
            return false;
        }
        let recent = self.rate.rate_with(&client, |r| {
            r.prev_samples as f64 * (1.0 - r.current_interval_fraction) + r.curr_samples as f64
        });
        recent >= f64::from(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_per_client() {
        let t = FailureThrottle::new(3);
        for _ in 0..3 {
            assert!(!t.blocked("1.2.3.4"));
            t.failed("1.2.3.4");
        }
        assert!(t.blocked("1.2.3.4"));
        assert!(!t.blocked("5.6.7.8"));
        let off = FailureThrottle::new(0);
        off.failed("x");
        assert!(!off.blocked("x"));
    }
}
