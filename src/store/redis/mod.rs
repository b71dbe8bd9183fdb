//! The Redis store: several tollgate instances share one Redis (single node or
//! Cluster). One `EVALSHA` per metered request, Redis `TIME` as the clock, hash
//! tags so that every key a script touches is in one Cluster slot, a key-record
//! cache invalidated over pub/sub, and every call under a short timeout and a
//! circuit breaker.
//!
//! This file holds [`RedisStore`] and the one way it talks to Redis:
//! [`RedisStore::call`] (connection, deadline, breaker, metrics) and
//! [`RedisStore::run_pipelines`] on top of it. The traits are implemented by
//! topic: `accounts` (accounts and credit balances), `keys`, `tokens`
//! (short-lived tokens), `usage` and `meter` (admission); [`layout`] names
//! every key, with the layout table.

mod accounts;
mod batch;
mod breaker;
mod cache;
mod conn;
mod keys;
pub mod layout;
mod meter;
mod ping;
pub mod service;
mod tokens;
mod usage;

pub use breaker::Breaker;
pub use cache::AuthCache;
pub use layout::{bucket_key, credits_key, token_key, INVALIDATE_CHANNEL};

use super::StoreError;
use crate::config::RedisSettings;
use crate::metrics::metrics;
use batch::Admissions;
use conn::Conn;
use redis::Script;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Deadline of management calls (not on the request path).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis store.
pub struct RedisStore {
    pub settings: RedisSettings,
    link: Arc<Link>,
    pub cache: AuthCache,
    /// Admissions, coalesced into one script call per batch.
    admissions: Arc<Admissions>,
    insert_key_script: Script,
    credits_script: Script,
}

/// The connection, once made, and the circuit breaker every call goes
/// through: shared by the store and its admission batchers.
pub(super) struct Link {
    conn: OnceLock<Conn>,
    breaker: Breaker,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Reads a stored record. A record that does not parse is not an outage:
/// [`StoreError::Corrupt`], logged with its Redis key (never a secret: keys
/// hold ids and sha256s) and counted by `record`.
fn decode<T: for<'de> Deserialize<'de>>(
    record: &'static str,
    key: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(record, key, e))
}

/// A corrupt `record` at Redis key `key`, logged and counted.
fn corrupt(record: &'static str, key: &str, detail: impl std::fmt::Display) -> StoreError {
    let what = format!("{record} {key}");
    let detail = detail.to_string();
    log::error!("corrupt {what} in redis: {detail}");
    metrics()
        .store_corrupt_records
        .with_label_values(&[record])
        .inc();
    StoreError::Corrupt { what, detail }
}

fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(unavailable)
}

impl Link {
    fn conn(&self) -> Result<Conn, StoreError> {
        self.conn
            .get()
            .cloned()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }

    fn is_cluster(&self) -> Result<bool, StoreError> {
        Ok(matches!(self.conn()?, Conn::Cluster(_)))
    }

    /// Runs one Redis exchange, `f` on a connection, under `deadline` and the
    /// breaker; its latency and failures are counted as `op`. Every call the
    /// store makes goes through here.
    async fn call<T, Fut: Future<Output = redis::RedisResult<T>>>(
        &self,
        op: &'static str,
        deadline: Duration,
        f: impl FnOnce(Conn) -> Fut,
    ) -> Result<T, StoreError> {
        self.call_on(self.conn()?, (op, deadline), f).await
    }

    /// [`Self::call`] on a given connection (an admission batcher's own).
    async fn call_on<T, F, Fut>(
        &self,
        conn: Conn,
        (op, deadline): (&'static str, Duration),
        f: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let m = metrics();
        if !self.breaker.allow() {
            m.redis_errors
                .with_label_values(&[op, "breaker_open"])
                .inc();
            return Err(StoreError::Unavailable("redis circuit breaker open".into()));
        }
        let start = Instant::now();
        let result = tokio::time::timeout(deadline, f(conn)).await;
        m.redis_duration
            .with_label_values(&[op])
            .observe(start.elapsed().as_secs_f64());
        match result {
            Ok(Ok(v)) => {
                self.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.breaker.failure();
                m.redis_errors.with_label_values(&[op, "error"]).inc();
                Err(unavailable(e))
            }
            Err(_) => {
                self.breaker.failure();
                m.redis_errors.with_label_values(&[op, "timeout"]).inc();
                Err(StoreError::Unavailable(format!("redis {op} timed out")))
            }
        }
    }
}

impl RedisStore {
    /// A store that connects later, in [`service::RedisService`] (or
    /// [`Self::connect`]).
    pub fn new(settings: RedisSettings) -> Self {
        let link = Arc::new(Link {
            conn: OnceLock::new(),
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
        });
        Self {
            link: link.clone(),
            admissions: Arc::new(Admissions::new(link, &settings)),
            cache: AuthCache::new(settings.auth_cache_ttl, settings.negative_cache_ttl),
            settings,
            insert_key_script: Script::new(include_str!("insert_key.lua")),
            credits_script: Script::new(include_str!("credits.lua")),
        }
    }

    /// Connects according to the settings, in the current tokio runtime. The
    /// first connection stays: later calls connect and drop theirs.
    pub async fn connect(&self) -> redis::RedisResult<()> {
        let conn = Conn::connect(&self.settings).await?;
        let _ = self.link.conn.set(conn);
        Ok(())
    }

    fn connected(&self) -> bool {
        self.link.conn.get().is_some()
    }

    fn is_cluster(&self) -> Result<bool, StoreError> {
        self.link.is_cluster()
    }

    /// Runs one pipeline under [`ADMIN_TIMEOUT`] and reads its replies.
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipe: redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.link
            .call(op, ADMIN_TIMEOUT, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await
    }

    /// Runs pipelines whose commands each stay in one Cluster slot: merged
    /// into one round trip on a single node, one round trip each on a Cluster.
    async fn run_pipelines(
        &self,
        op: &'static str,
        pipes: Vec<redis::Pipeline>,
    ) -> Result<(), StoreError> {
        let batches = if self.is_cluster()? {
            pipes
        } else {
            let mut merged = redis::pipe();
            for p in &pipes {
                for cmd in p.cmd_iter() {
                    merged.add_command(cmd.clone()).ignore();
                }
            }
            vec![merged]
        };
        for pipe in batches {
            self.query::<()>(op, pipe).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_does_not_parse_is_corrupt_not_unavailable() {
        let e = decode::<crate::store::Account>("account", "tg:{a:acme}:acct", "{\"id\":")
            .expect_err("corrupt");
        let StoreError::Corrupt { what, detail } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(what, "account tg:{a:acme}:acct");
        assert_eq!(detail, "EOF while parsing a value at line 1 column 6");
        assert_eq!(
            e.to_string(),
            "corrupt record (account tg:{a:acme}:acct): EOF while parsing a value at line 1 column 6"
        );
    }
}
