//! Usage in Redis, per key under its own hash tag (`tg:{k:ID}:u:*`): the last
//! use, the last 50 calls and daily counters, written in pipelined batches by
//! the background usage writer. The usage of a key with an expiry goes an hour
//! after the key does, with its `exp` marker.

use super::layout::usage_key;
use super::{decode, encode, RedisStore, ADMIN_TIMEOUT};
use crate::store::types::{day_of, last_days, RECENT_CALLS};
use crate::store::{CallRecord, KeyUsage, StoreError, UsageEvent, UsageStore};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use redis::AsyncCommands;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Days a daily usage counter is kept.
const DAILY_TTL_SECS: i64 = 8 * 86_400;

impl RedisStore {
    /// For each key with an expiry, the milliseconds until its usage may go:
    /// the remaining TTL of its `u:exp` marker, which expires exactly then.
    /// Read by the usage writer in the background, never on the request path.
    async fn usage_ttls(&self, ids: &[Uuid]) -> Result<Vec<Option<i64>>, StoreError> {
        // PTTL: -2 no marker (no expiry), -1 a marker without TTL (never written so).
        let ttl = |ms: i64| (ms > 0).then_some(ms);
        if self.is_cluster()? {
            // One slot per key.
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let k = usage_key(*id, "exp");
                let ms: i64 = self
                    .link
                    .call("record_usage", ADMIN_TIMEOUT, |mut c| async move {
                        c.pttl(k).await
                    })
                    .await?;
                out.push(ttl(ms));
            }
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.pttl(usage_key(*id, "exp"));
        }
        let all: Vec<i64> = self.query("record_usage", pipe).await?;
        Ok(all.into_iter().map(ttl).collect())
    }
}

#[async_trait]
impl UsageStore for RedisStore {
    async fn record_usage(&self, batch: Vec<UsageEvent>) -> Result<(), StoreError> {
        let mut per_key: BTreeMap<Uuid, Vec<CallRecord>> = BTreeMap::new();
        for e in batch {
            per_key.entry(e.key).or_default().push(e.call);
        }
        let ids: Vec<Uuid> = per_key.keys().copied().collect();
        let ttls = self.usage_ttls(&ids).await?;
        let mut pipes = Vec::with_capacity(per_key.len());
        for ((id, calls), purge_in) in per_key.iter().zip(ttls) {
            // A key with an expiry: its usage goes with it (plus the grace),
            // when its `exp` marker does.
            let mut pipe = redis::pipe();
            let last = calls
                .iter()
                .map(|c| c.at.timestamp_millis())
                .max()
                .unwrap_or(0);
            pipe.set(usage_key(*id, "last"), last).ignore();
            let encoded = calls.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
            pipe.lpush(usage_key(*id, "calls"), encoded)
                .ignore()
                .ltrim(usage_key(*id, "calls"), 0, RECENT_CALLS as isize - 1)
                .ignore();
            if let Some(ms) = purge_in {
                pipe.pexpire(usage_key(*id, "last"), ms)
                    .ignore()
                    .pexpire(usage_key(*id, "calls"), ms)
                    .ignore();
            }
            let mut days: BTreeMap<String, i64> = BTreeMap::new();
            for c in calls {
                *days.entry(day_of(&c.at)).or_default() += 1;
            }
            for (day, n) in days {
                let k = usage_key(*id, &format!("d:{day}"));
                pipe.incr(&k, n)
                    .ignore()
                    .expire(&k, DAILY_TTL_SECS)
                    .ignore();
                if let Some(ms) = purge_in.filter(|ms| *ms < DAILY_TTL_SECS * 1000) {
                    pipe.pexpire(&k, ms).ignore();
                }
            }
            pipes.push(pipe);
        }
        self.run_pipelines("record_usage", pipes).await
    }

    async fn usage(
        &self,
        key: Uuid,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<KeyUsage, StoreError> {
        let day_names = last_days(now, days);
        let calls_key = usage_key(key, "calls");
        let mut pipe = redis::pipe();
        pipe.get(usage_key(key, "last"))
            .lrange(&calls_key, 0, RECENT_CALLS as isize - 1);
        for d in &day_names {
            pipe.get(usage_key(key, &format!("d:{d}")));
        }
        let values: Vec<redis::Value> = self.query("usage", pipe).await?;
        let mut it = values.into_iter();
        let last: Option<i64> = it
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .flatten();
        let calls: Vec<String> = it
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or_default();
        let daily = day_names
            .into_iter()
            .map(|d| {
                let n: Option<u64> = it
                    .next()
                    .and_then(|v| redis::from_redis_value(v).ok())
                    .flatten();
                (d, n.unwrap_or(0))
            })
            .collect();
        Ok(KeyUsage {
            last_used_at: last.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            // A corrupt call is logged and counted, and left out: the rest of
            // the usage is still worth answering.
            recent: calls
                .iter()
                .filter_map(|c| decode("usage call", &calls_key, c).ok())
                .collect(),
            daily,
        })
    }
}
