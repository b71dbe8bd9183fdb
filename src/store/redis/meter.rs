//! Admission in Redis: `admit.lua` takes a bucket's token, the owner's
//! credits and a short-lived token's request, all or nothing, on Redis `TIME`;
//! concurrent admissions share one call ([`batch`](super::batch)). The
//! arithmetic is [`gcra::step`](crate::metering::gcra::step) and
//! [`CreditCharge`](crate::metering::credits::CreditCharge)'s, as the memory
//! store runs it; `tests/store_parity.rs` holds the two to the same answers.

use super::batch::{slot, Job, Reply};
use super::layout::{bucket_key, credits_key, token_key};
use super::RedisStore;
use crate::metering::{Admission, AdmitOutcome, Verdict};
use crate::store::{Meter, StoreError};
use async_trait::async_trait;
use std::time::Duration;

/// The outcome `admit.lua`'s reply means for this admission. A revoked token
/// answers nothing but the verdict, as in the memory store.
fn outcome(a: &Admission, reply: Reply) -> AdmitOutcome {
    let [code, remaining, retry_us, reset_us, balance, refill_ms, token_left] = reply;
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let verdict = match code {
        1 => Verdict::Allowed,
        2 => Verdict::InsufficientCredits,
        3 => Verdict::RequestLimitExhausted,
        4 => Verdict::TokenRevoked,
        _ => Verdict::RateLimited,
    };
    if verdict == Verdict::TokenRevoked {
        return AdmitOutcome::token_revoked();
    }
    AdmitOutcome {
        verdict,
        remaining: u32::try_from(remaining).unwrap_or(0),
        retry_after: us(retry_us),
        reset_after: us(reset_us),
        credits: a.credits.is_some().then_some(balance),
        credits_refill_in: (refill_ms >= 0 && a.credits.is_some())
            .then(|| Duration::from_millis(u64::try_from(refill_ms).unwrap_or(0))),
        token_remaining: a.token.is_some().then_some(token_left.max(0)),
    }
}

/// `admit.lua`'s keys and arguments for `a`.
fn job(a: &Admission) -> Job {
    let bucket = bucket_key(&a.owner, &a.bucket);
    let (charged, cost, budget, refill_ms) = match &a.credits {
        Some(ch) => (1, ch.cost, ch.budget, ch.refill_ms.unwrap_or(0)),
        None => (0, 0, 0, 0),
    };
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Job {
        slot: slot(&bucket),
        credits: a.credits.as_ref().map(|_| credits_key(&a.owner)),
        token: a.token.map(|id| token_key(&a.owner, Some(id))),
        bucket,
        args: [
            a.interval_us,
            i64::from(a.burst),
            charged,
            int(cost),
            int(budget),
            refill_ms,
            i64::from(a.token.is_some()),
        ],
    }
}

impl RedisStore {
    /// [`Meter::admit`] with `admit.lua`'s clock fixed at `now_us` (µs since
    /// the epoch) instead of Redis `TIME`, in a call of its own. Only tests
    /// pass a time (the parity table).
    pub async fn admit_at(
        &self,
        a: &Admission,
        now_us: Option<i64>,
    ) -> Result<AdmitOutcome, StoreError> {
        self.admit_all_at(std::slice::from_ref(a), now_us)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Unavailable("admit.lua answered nothing".into())))
    }

    /// Admits `all` in order, in one script call, on `now_us` (tests) or
    /// Redis `TIME`: what a batch of coalesced admissions does.
    pub async fn admit_all_at(
        &self,
        all: &[Admission],
        now_us: Option<i64>,
    ) -> Result<Vec<Result<AdmitOutcome, StoreError>>, StoreError> {
        let replies = self
            .admissions
            .admit_now(now_us, all.iter().map(job).collect())
            .await?;
        Ok(all
            .iter()
            .zip(replies)
            .map(|(a, reply)| reply.map(|r| outcome(a, r)))
            .collect())
    }
}

#[async_trait]
impl Meter for RedisStore {
    async fn admit(&self, a: &Admission) -> Result<AdmitOutcome, StoreError> {
        let reply = self.admissions.admit(job(a)).await?;
        Ok(outcome(a, reply))
    }
}
