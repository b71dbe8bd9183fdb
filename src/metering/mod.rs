//! Metering: plans, GCRA token buckets, the admission decision and its headers.

pub mod gcra;
pub mod headers;
pub mod plan;

pub use plan::Plan;

use std::time::Duration;

/// Why admission refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything was taken.
    Allowed,
    /// The token bucket was empty.
    RateLimited,
}

/// What one admission decided, with what the headers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitOutcome {
    pub verdict: Verdict,
    /// Requests left in the bucket after this one.
    pub remaining: u32,
    /// Until the next request would be admitted (zero when allowed).
    pub retry_after: Duration,
    /// Until the bucket is full again.
    pub reset_after: Duration,
}

/// One admission: which bucket, at what rate.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The bucket's store key, e.g. `ip:1.2.3.4` or `key:<uuid>`.
    pub bucket: String,
    /// Microseconds between two tokens.
    pub interval_us: i64,
    /// Bucket capacity.
    pub burst: u32,
}
