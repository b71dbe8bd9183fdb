//! A circuit breaker for Redis calls: after `threshold` consecutive failures it
//! opens for `cooldown`, during which calls fail at once; then calls go through
//! again, and one more failure re-opens it.

use crate::metrics::metrics;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The breaker.
pub struct Breaker {
    epoch: Instant,
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    tripped: AtomicBool,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a call may be made now.
    pub fn allow(&self) -> bool {
        self.now_ms() >= self.open_until_ms.load(Ordering::Relaxed)
    }

    /// Records a success: closes the breaker.
    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.tripped.swap(false, Ordering::Relaxed) {
            metrics().redis_breaker_open.set(0);
            log::info!("redis circuit breaker closed");
        }
    }

    /// Records a failure: opens the breaker at the threshold, or at once after a trip.
    pub fn failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold || self.tripped.load(Ordering::Relaxed) {
            let until =
                self.now_ms() + u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
            self.open_until_ms.store(until, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
            if !self.tripped.swap(true, Ordering::Relaxed) {
                log::warn!("redis circuit breaker opened after {n} failures");
            }
            metrics().redis_breaker_open.set(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_and_recovers() {
        let b = Breaker::new(3, Duration::from_millis(30));
        b.failure();
        b.failure();
        assert!(b.allow());
        b.failure();
        assert!(!b.allow(), "open after 3 failures");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "half-open after the cooldown");
        b.failure();
        assert!(!b.allow(), "one failure re-opens it");
        std::thread::sleep(Duration::from_millis(40));
        b.success();
        b.failure();
        assert!(b.allow(), "closed again after a success");
    }
}
