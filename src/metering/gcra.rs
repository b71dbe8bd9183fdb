//! The generic cell rate algorithm: a token bucket held as one timestamp, the
//! theoretical arrival time (TAT). The same arithmetic runs in the memory store
//! and in the Redis script.

/// The result of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraStep {
    pub allowed: bool,
    /// The TAT to store (unchanged when denied).
    pub tat: i64,
    /// Tokens left after this request.
    pub remaining: u32,
    /// Microseconds until a request would be admitted (0 when allowed).
    pub retry_after_us: i64,
    /// Microseconds until the bucket is full.
    pub reset_after_us: i64,
}

/// One request of `cost` tokens at `now` against a bucket of `burst` tokens that
/// refills one token every `interval` (all in microseconds). A denied request
/// takes nothing.
pub fn step(now: i64, tat: Option<i64>, interval: i64, burst: u32, cost: u32) -> GcraStep {
    let interval = interval.max(1);
    let tat = tat.unwrap_or(now).max(now);
    let capacity = interval.saturating_mul(i64::from(burst));
    let new_tat = tat.saturating_add(interval.saturating_mul(i64::from(cost)));
    let allow_at = new_tat - capacity;
    if now < allow_at {
        let remaining = ((now - (tat - capacity)) / interval).clamp(0, i64::from(burst));
        return GcraStep {
            allowed: false,
            tat,
            remaining: remaining as u32,
            retry_after_us: allow_at - now,
            reset_after_us: tat - now,
        };
    }
    let remaining = ((now - allow_at) / interval).clamp(0, i64::from(burst));
    GcraStep {
        allowed: true,
        tat: new_tat,
        remaining: remaining as u32,
        retry_after_us: 0,
        reset_after_us: new_tat - now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn full_burst_then_exact_retry() {
        // 10 per minute, burst 10: one token every 6 s.
        let interval = 6 * SEC;
        let mut tat = None;
        for i in 0..10 {
            let s = step(0, tat, interval, 10, 1);
            assert!(s.allowed, "request {i}");
            assert_eq!(s.remaining, 9 - i);
            tat = Some(s.tat);
        }
        let denied = step(SEC / 2, tat, interval, 10, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after_us, 6 * SEC - SEC / 2);
        assert_eq!(denied.tat, 60 * SEC, "a denied request takes nothing");
        let later = step(6 * SEC, tat, interval, 10, 1);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn refills_fully() {
        let s = step(0, None, SEC, 5, 5);
        assert!(s.allowed);
        assert_eq!(s.remaining, 0);
        let s2 = step(5 * SEC, Some(s.tat), SEC, 5, 1);
        assert!(s2.allowed);
        assert_eq!(s2.remaining, 4);
    }
}
