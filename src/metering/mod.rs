//! Metering: plans, GCRA token buckets, the admission decision and its headers.

pub mod credits;
pub mod gcra;
pub mod headers;
pub mod owner;
pub mod plan;

pub use owner::{Bucket, Owner};
pub use plan::Plan;

use std::time::Duration;

/// What admission decided: allowed, or why it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything was taken.
    Allowed,
    /// The token bucket was empty.
    RateLimited,
    /// The credit balance was below the cost.
    InsufficientCredits,
    /// The short-lived token's request limit is used up.
    RequestLimitExhausted,
    /// The short-lived token is revoked (or unknown to the store).
    TokenRevoked,
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
    /// The credit balance after this request (or as it stands, when refused).
    pub credits: Option<i64>,
    /// Until the credit balance refills, if it does.
    pub credits_refill_in: Option<Duration>,
    /// Requests left on the short-lived token after this one.
    pub token_remaining: Option<i64>,
}

impl AdmitOutcome {
    /// A revoked (or expired) short-lived token: the verdict is all there is
    /// to say, on both stores.
    pub fn token_revoked() -> Self {
        Self {
            verdict: Verdict::TokenRevoked,
            remaining: 0,
            retry_after: Duration::ZERO,
            reset_after: Duration::ZERO,
            credits: None,
            credits_refill_in: None,
            token_remaining: None,
        }
    }
}

/// One admission: which bucket at what rate, and what it costs, all taken
/// together or not at all.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Who owns the state this touches: the Redis Cluster hash tag and the
    /// credit balance's holder.
    pub owner: Owner,
    /// The bucket within the owner.
    pub bucket: Bucket,
    /// Microseconds between two tokens.
    pub interval_us: i64,
    /// Bucket capacity.
    pub burst: u32,
    /// Credits to take from the owner's balance.
    pub credits: Option<credits::CreditCharge>,
    /// The short-lived token whose request limit this request counts against.
    pub token: Option<uuid::Uuid>,
}
