//! Admission in Redis: one `EVALSHA` of `admit.lua` takes a bucket's token, the
//! owner's credits and a short-lived token's request, all or nothing, on Redis
//! `TIME`. The arithmetic is [`gcra::step`](crate::metering::gcra::step) and
//! [`CreditCharge`](crate::metering::credits::CreditCharge)'s, as the memory
//! store runs it; `tests/store_parity.rs` holds the two to the same answers.

use super::layout::{bucket_key, credits_key, token_key};
use super::RedisStore;
use crate::metering::{Admission, AdmitOutcome, Verdict};
use crate::store::{Meter, StoreError};
use async_trait::async_trait;
use std::time::Duration;

/// `admit.lua`'s reply: code, remaining, retry after (µs), reset after (µs),
/// balance, refill in (ms), token requests left.
type Reply = (i64, i64, i64, i64, i64, i64, i64);

/// The outcome `admit.lua`'s reply means for this admission. A revoked token
/// answers nothing but the verdict, as in the memory store.
fn outcome(a: &Admission, reply: Reply) -> AdmitOutcome {
    let (code, remaining, retry_us, reset_us, balance, refill_ms, token_left) = reply;
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let verdict = match code {
        1 => Verdict::Allowed,
        2 => Verdict::InsufficientCredits,
        3 => Verdict::RequestLimitExhausted,
        4 => Verdict::TokenRevoked,
        _ => Verdict::RateLimited,
    };
    if verdict == Verdict::TokenRevoked {
        return AdmitOutcome {
            verdict,
            remaining: 0,
            retry_after: Duration::ZERO,
            reset_after: Duration::ZERO,
            credits: None,
            credits_refill_in: None,
            token_remaining: None,
        };
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

impl RedisStore {
    /// [`Meter::admit`] with `admit.lua`'s clock fixed at `now_us` (µs since
    /// the epoch) instead of Redis `TIME`. Only tests pass a time (the parity
    /// table); the store passes `None`.
    pub async fn admit_at(
        &self,
        a: &Admission,
        now_us: Option<i64>,
    ) -> Result<AdmitOutcome, StoreError> {
        let mut inv = self.admit_script.key(bucket_key(&a.owner, &a.bucket));
        inv.key(credits_key(&a.owner))
            .key(token_key(&a.owner, a.token))
            .arg(a.interval_us)
            .arg(a.burst);
        match &a.credits {
            Some(ch) => inv
                .arg(1)
                .arg(ch.cost)
                .arg(ch.budget)
                .arg(ch.refill_ms.unwrap_or(0)),
            None => inv.arg(0).arg(0).arg(0).arg(0),
        };
        inv.arg(u8::from(a.token.is_some()));
        if let Some(now) = now_us {
            inv.arg(now);
        }
        let reply: Reply = self
            .call("admit", self.settings.timeout, |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        Ok(outcome(a, reply))
    }
}

#[async_trait]
impl Meter for RedisStore {
    async fn admit(&self, a: &Admission) -> Result<AdmitOutcome, StoreError> {
        self.admit_at(a, None).await
    }
}
