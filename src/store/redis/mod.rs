//! The Redis store: several tollgate instances share one Redis (single node or
//! Cluster). One `EVALSHA` per metered request, Redis `TIME` as the clock, hash
//! tags so that every key a script touches is in one Cluster slot, a key-record
//! cache invalidated over pub/sub, and every call under a short timeout and a
//! circuit breaker.
//!
//! Key layout (`{...}` is the Cluster hash tag):
//!
//! | key | holds |
//! |---|---|
//! | `tg:{a:ACCOUNT}:acct` | the account (JSON) |
//! | `tg:{a:ACCOUNT}:keys` | hash: key id → key record summary, for listing and the active-key cap |
//! | `tg:kh:SHA256` | the key record with its plan (JSON), for authentication |
//! | `tg:kid:UUID` | the sha256 of a key, by id |
//! | `tg:{TAG}:b:BUCKET` | a token bucket's TAT in µs, expiring when full |
//! | `tg:{k:UUID}:u:*` | usage: `last` (ms), `calls` (list of 50), `d:YYYY-MM-DD` (count, 8 days), `exp` (a key's expiry in ms, for keys that have one, expiring when their usage may go) |
//!
//! A trial key's `tg:kh:*` and `tg:kid:*` (it has no account hash) expire
//! [`EXPIRED_KEY_GRACE`] after the key does; so does the usage of every key with
//! an expiry (the usage writer gives it the remaining TTL of `exp`, read in the
//! background flush, never on the request path). Usage of a key without expiry
//! stays bounded: one `last`, at most 50 `calls` (paths cut to 256 bytes) and
//! daily counters that expire.

mod breaker;
mod cache;
mod conn;
pub mod service;

pub use breaker::Breaker;
pub use cache::AuthCache;

use super::{
    types::{day_of, last_days, EXPIRED_KEY_GRACE, RECENT_CALLS},
    Account, AccountStore, CallRecord, Identity, KeyRecord, KeyStore, KeyUsage, Meter, StoreError,
    TokenRecord, TokenStore, UsageEvent, UsageStore,
};
use crate::auth::keys::KeyHash;
use crate::config::RedisSettings;
use crate::metering::credits::{CreditCharge, MAX_CREDITS};
use crate::metering::{Admission, AdmitOutcome, Bucket, Owner, Verdict};
use crate::metrics::metrics;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use conn::Conn;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The pub/sub channel of key invalidations (payload: sha256 hex, or `*`).
pub const INVALIDATE_CHANNEL: &str = "tg:invalidate";

/// Deadline of management calls (not on the request path).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Days a daily usage counter is kept.
const DAILY_TTL_SECS: i64 = 8 * 86_400;

/// When the store deletes what belongs to a key expiring at `exp` (ms).
fn purge_at_ms(exp: DateTime<Utc>) -> i64 {
    (exp + EXPIRED_KEY_GRACE).timestamp_millis()
}

/// Whether a key's records expire with it: a trial key (no account). Account
/// keys stay, expired or not, in their account's listing.
fn records_expire(key: &KeyRecord) -> bool {
    key.account.is_none() && key.expires_at.is_some()
}

/// The Redis store.
pub struct RedisStore {
    pub settings: RedisSettings,
    conn: OnceLock<Conn>,
    breaker: Breaker,
    pub cache: AuthCache,
    admit_script: Script,
    insert_key_script: Script,
    credits_script: Script,
}

/// A key record as kept in an account's key hash.
#[derive(Serialize, Deserialize)]
struct Summary {
    rec: KeyRecord,
    exp: Option<i64>,
    rev: Option<i64>,
}

impl Summary {
    fn of(rec: &KeyRecord) -> Self {
        Self {
            exp: rec.expires_at.map(|t| t.timestamp_millis()),
            rev: rec.revoked_at.map(|t| t.timestamp_millis()),
            rec: rec.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    key: KeyRecord,
    plan: String,
}

fn account_key(account: &str) -> String {
    format!("tg:{{a:{account}}}:acct")
}
fn account_keys(account: &str) -> String {
    format!("tg:{{a:{account}}}:keys")
}
fn hash_key(hash: &KeyHash) -> String {
    format!("tg:kh:{}", hash.to_hex())
}
fn id_key(id: Uuid) -> String {
    format!("tg:kid:{id}")
}
fn usage_key(id: Uuid, part: &str) -> String {
    format!("tg:{{k:{id}}}:u:{part}")
}

/// A bucket key, tagged by its owner so that it shares a Cluster slot with the
/// owner's credit balance (and anything else one admission touches).
pub fn bucket_key(owner: &Owner, bucket: &Bucket) -> String {
    format!("tg:{{{owner}}}:b:{bucket}")
}

/// An owner's credit balance.
pub fn credits_key(owner: &Owner) -> String {
    format!("tg:{{{owner}}}:credits")
}

/// A short-lived token's remaining requests (a placeholder in the same slot
/// when the admission has no token).
pub fn token_key(owner: &Owner, id: Option<Uuid>) -> String {
    match id {
        Some(id) => format!("tg:{{{owner}}}:tok:{id}"),
        None => format!("tg:{{{owner}}}:tok:-"),
    }
}

fn token_record_key(owner: &Owner, id: Uuid) -> String {
    format!("tg:{{{owner}}}:tokrec:{id}")
}

fn token_set_key(owner: &Owner, parent: Uuid) -> String {
    format!("tg:{{{owner}}}:toks:{parent}")
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| unavailable(format!("corrupt record: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(unavailable)
}

impl RedisStore {
    /// A store that connects later, in [`service::RedisService`].
    pub fn new(settings: RedisSettings) -> Self {
        Self {
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
            cache: AuthCache::new(settings.auth_cache_ttl, settings.negative_cache_ttl),
            settings,
            conn: OnceLock::new(),
            admit_script: Script::new(include_str!("admit.lua")),
            insert_key_script: Script::new(include_str!("insert_key.lua")),
            credits_script: Script::new(include_str!("credits.lua")),
        }
    }

    fn set_conn(&self, conn: Conn) {
        let _ = self.conn.set(conn);
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.conn
            .get()
            .cloned()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }

    /// Runs one Redis exchange under the deadline and the breaker.
    async fn call<T, F>(&self, op: &'static str, deadline: Duration, f: F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let m = metrics();
        if !self.breaker.allow() {
            m.redis_errors
                .with_label_values(&[op, "breaker_open"])
                .inc();
            return Err(StoreError::Unavailable("redis circuit breaker open".into()));
        }
        let start = Instant::now();
        let result = tokio::time::timeout(deadline, f).await;
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

    async fn publish_invalidation(&self, hash: &KeyHash) {
        let Ok(mut c) = self.conn() else { return };
        let r: Result<i64, _> = self
            .call("publish", ADMIN_TIMEOUT, async move {
                c.publish(INVALIDATE_CHANNEL, hash.to_hex()).await
            })
            .await;
        if let Err(e) = r {
            log::warn!("key invalidation not published: {e}");
        }
        self.cache.invalidate(hash);
    }

    async fn get_identity(&self, hash: &KeyHash) -> Result<Option<StoredIdentity>, StoreError> {
        let mut c = self.conn()?;
        let key = hash_key(hash);
        let raw: Option<String> = self
            .call(
                "resolve",
                self.settings.timeout,
                async move { c.get(key).await },
            )
            .await?;
        raw.map(|r| decode::<StoredIdentity>(&r)).transpose()
    }

    async fn save_identity(&self, stored: &StoredIdentity) -> Result<(), StoreError> {
        let mut first = redis::pipe();
        first
            .set(hash_key(&stored.key.hash), encode(stored)?)
            .ignore();
        let mut second = redis::pipe();
        second
            .set(id_key(stored.key.id), stored.key.hash.to_hex())
            .ignore();
        if let (true, Some(exp)) = (records_expire(&stored.key), stored.key.expires_at) {
            // Every save (a revocation too) sets the expiry again: SET clears it.
            first
                .pexpire_at(hash_key(&stored.key.hash), purge_at_ms(exp))
                .ignore();
            second
                .pexpire_at(id_key(stored.key.id), purge_at_ms(exp))
                .ignore();
        }
        let mut pipes = vec![first, second];
        if let Some(account) = &stored.key.account {
            let mut third = redis::pipe();
            third
                .hset(
                    account_keys(account),
                    stored.key.id.to_string(),
                    encode(&Summary::of(&stored.key))?,
                )
                .ignore();
            pipes.push(third);
        }
        self.run_pipelines("save_key", pipes).await
    }

    /// Runs pipelines whose commands each stay in one Cluster slot: merged
    /// into one round trip on a single node, one round trip each on a Cluster.
    async fn run_pipelines(
        &self,
        op: &'static str,
        pipes: Vec<redis::Pipeline>,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let batches = if matches!(conn, Conn::Cluster(_)) {
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
            let mut c = conn.clone();
            self.call(op, ADMIN_TIMEOUT, async move {
                pipe.query_async::<()>(&mut c).await
            })
            .await?;
        }
        Ok(())
    }

    /// The sha256 of the key with this id.
    async fn hash_of(&self, id: Uuid) -> Result<Option<KeyHash>, StoreError> {
        let mut c = self.conn()?;
        let k = id_key(id);
        let hex: Option<String> = self
            .call("key", ADMIN_TIMEOUT, async move { c.get(k).await })
            .await?;
        Ok(hex.as_deref().and_then(KeyHash::from_hex))
    }

    /// The ids of a static key's short-lived tokens (some may have expired).
    async fn token_ids(
        &self,
        op: &'static str,
        owner: &Owner,
        parent: Uuid,
    ) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn()?;
        let set = token_set_key(owner, parent);
        self.call(op, ADMIN_TIMEOUT, async move { c.smembers(set).await })
            .await
    }

    /// For each key with an expiry, the milliseconds until its usage may go:
    /// the remaining TTL of its `u:exp` marker, which expires exactly then.
    /// Read by the usage writer in the background, never on the request path.
    async fn usage_ttls(&self, ids: &[Uuid]) -> Result<Vec<Option<i64>>, StoreError> {
        let conn = self.conn()?;
        // PTTL: -2 no marker (no expiry), -1 a marker without TTL (never written so).
        let ttl = |ms: i64| (ms > 0).then_some(ms);
        if matches!(conn, Conn::Cluster(_)) {
            // One slot per key.
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let mut c = conn.clone();
                let k = usage_key(*id, "exp");
                let ms: i64 = self
                    .call(
                        "record_usage",
                        ADMIN_TIMEOUT,
                        async move { c.pttl(k).await },
                    )
                    .await?;
                out.push(ttl(ms));
            }
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.pttl(usage_key(*id, "exp"));
        }
        let mut c = conn;
        let all: Vec<i64> = self
            .call("record_usage", ADMIN_TIMEOUT, async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Ok(all.into_iter().map(ttl).collect())
    }

    /// The cached record of a key, however old: used by `fail_open` routes.
    pub fn cached_identity(&self, hash: &KeyHash) -> Option<Identity> {
        self.cache.stale(hash)
    }
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn create_account(&self, account: Account) -> Result<Account, StoreError> {
        let mut c = self.conn()?;
        let key = account_key(&account.id);
        let json = encode(&account)?;
        let created: bool = self
            .call("create_account", ADMIN_TIMEOUT, async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("NX")
                    .query_async::<Option<String>>(&mut c)
                    .await
                    .map(|r| r.is_some())
            })
            .await?;
        if created {
            Ok(account)
        } else {
            Err(StoreError::Conflict(format!("account {}", account.id)))
        }
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let mut c = self.conn()?;
        let key = account_key(id);
        let raw: Option<String> = self
            .call("account", ADMIN_TIMEOUT, async move { c.get(key).await })
            .await?;
        raw.map(|r| decode(&r)).transpose()
    }

    async fn add_credits(
        &self,
        owner: &Owner,
        delta: i64,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError> {
        let mut c = self.conn()?;
        let mut inv = self.credits_script.key(credits_key(owner));
        inv.arg(delta)
            .arg(policy.budget)
            .arg(policy.refill_ms.unwrap_or(0))
            .arg(MAX_CREDITS);
        let (changed, balance): (i64, i64) = self
            .call("credits", ADMIN_TIMEOUT, async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::CreditRange { balance });
        }
        Ok(balance)
    }

    async fn credit_balance(
        &self,
        owner: &Owner,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError> {
        self.add_credits(owner, 0, policy).await
    }
}

#[async_trait]
impl KeyStore for RedisStore {
    async fn insert_key(
        &self,
        key: KeyRecord,
        max_active: Option<u32>,
        _now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        let plan = match (&key.plan, &key.account) {
            (Some(p), _) => p.clone(),
            (None, Some(a)) => {
                self.account(a)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("account {a}")))?
                    .plan
            }
            (None, None) => return Err(StoreError::NotFound("plan".into())),
        };
        if let Some(account) = &key.account {
            let mut c = self.conn()?;
            let mut inv = self.insert_key_script.key(account_keys(account));
            inv.arg(max_active.unwrap_or(0))
                .arg(key.id.to_string())
                .arg(encode(&Summary::of(&key))?);
            let r: i64 = self
                .call("insert_key", ADMIN_TIMEOUT, async move {
                    inv.invoke_async(&mut c).await
                })
                .await?;
            if r < 0 {
                return Err(StoreError::KeyLimit {
                    max: max_active.unwrap_or(0),
                });
            }
        }
        if let Some(exp) = key.expires_at {
            // Tells the usage writer when this key's usage may go.
            let mut pipe = redis::pipe();
            pipe.set(usage_key(key.id, "exp"), exp.timestamp_millis())
                .ignore()
                .pexpire_at(usage_key(key.id, "exp"), purge_at_ms(exp))
                .ignore();
            self.run_pipelines("insert_key", vec![pipe]).await?;
        }
        let stored = StoredIdentity { key, plan };
        self.save_identity(&stored).await?;
        // Drop a negative cache entry on every instance.
        self.publish_invalidation(&stored.key.hash).await;
        Ok(stored.key)
    }

    async fn resolve(&self, hash: &KeyHash) -> Result<Option<Identity>, StoreError> {
        if let Some(answer) = self.cache.fresh(hash) {
            return Ok(answer);
        }
        let epoch = self.cache.epoch();
        let identity = self.get_identity(hash).await?.map(|s| Identity {
            key: s.key,
            plan: s.plan,
        });
        self.cache.put(*hash, identity.clone(), epoch);
        Ok(identity)
    }

    fn cached(&self, hash: &KeyHash) -> Option<Identity> {
        self.cached_identity(hash)
    }

    async fn key(&self, id: Uuid) -> Result<Option<KeyRecord>, StoreError> {
        let Some(hash) = self.hash_of(id).await? else {
            return Ok(None);
        };
        Ok(self.get_identity(&hash).await?.map(|s| s.key))
    }

    async fn list_keys(&self, account: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let mut c = self.conn()?;
        let k = account_keys(account);
        let raw: Vec<String> = self
            .call("list_keys", ADMIN_TIMEOUT, async move { c.hvals(k).await })
            .await?;
        let mut keys = raw
            .iter()
            .map(|r| decode::<Summary>(r).map(|s| s.rec))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(keys)
    }

    async fn revoke_key(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let Some(hash) = self.hash_of(id).await? else {
            return Ok(None);
        };
        let Some(mut stored) = self.get_identity(&hash).await? else {
            return Ok(None);
        };
        if stored.key.revoked_at.is_none() {
            stored.key.revoked_at = Some(now);
            self.save_identity(&stored).await?;
        }
        self.publish_invalidation(&hash).await;
        Ok(Some(stored.key))
    }
}

#[async_trait]
impl Meter for RedisStore {
    async fn admit(&self, a: &Admission) -> Result<AdmitOutcome, StoreError> {
        let mut c = self.conn()?;
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
        type Reply = (i64, i64, i64, i64, i64, i64, i64);
        let (code, remaining, retry_us, reset_us, balance, refill_ms, token_left): Reply = self
            .call("admit", self.settings.timeout, async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(AdmitOutcome {
            verdict: match code {
                1 => Verdict::Allowed,
                2 => Verdict::InsufficientCredits,
                3 => Verdict::RequestLimitExhausted,
                4 => Verdict::TokenRevoked,
                _ => Verdict::RateLimited,
            },
            remaining: u32::try_from(remaining).unwrap_or(0),
            retry_after: us(retry_us),
            reset_after: us(reset_us),
            credits: a.credits.is_some().then_some(balance),
            credits_refill_in: (refill_ms >= 0 && a.credits.is_some())
                .then(|| Duration::from_millis(u64::try_from(refill_ms).unwrap_or(0))),
            token_remaining: a.token.is_some().then_some(token_left.max(0)),
        })
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn create_tokens(&self, owner: &Owner, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut pipe = redis::pipe();
        for t in tokens {
            let ttl = t.ttl_ms(now);
            pipe.cmd("SET")
                .arg(token_key(owner, Some(t.id)))
                .arg(t.request_limit)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .cmd("SET")
                .arg(token_record_key(owner, t.id))
                .arg(encode(t)?)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .sadd(token_set_key(owner, t.parent), t.id.to_string())
                .ignore()
                .pexpire(token_set_key(owner, t.parent), ttl.max(86_400_000))
                .ignore();
        }
        // Every key is under the owner's tag: one slot, one round trip.
        self.run_pipelines("create_tokens", vec![pipe]).await
    }

    async fn list_tokens(
        &self,
        owner: &Owner,
        parent: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TokenRecord, u64)>, StoreError> {
        let ids = self.token_ids("list_tokens", owner, parent).await?;
        let mut out = Vec::new();
        for id in ids {
            let Ok(id) = Uuid::parse_str(&id) else {
                continue;
            };
            match self.token(owner, id, now).await? {
                Some(t) => out.push(t),
                None => {
                    let mut c = self.conn()?;
                    let set = token_set_key(owner, parent);
                    let _: i64 = self
                        .call("list_tokens", ADMIN_TIMEOUT, async move {
                            c.srem(set, id.to_string()).await
                        })
                        .await?;
                }
            }
        }
        out.sort_by_key(|(t, _)| t.created_at);
        Ok(out)
    }

    async fn token(
        &self,
        owner: &Owner,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenRecord, u64)>, StoreError> {
        let mut c = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.get(token_record_key(owner, id))
            .get(token_key(owner, Some(id)));
        let (rec, left): (Option<String>, Option<i64>) = self
            .call("token", ADMIN_TIMEOUT, async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        let (Some(rec), Some(left)) = (rec, left) else {
            return Ok(None);
        };
        let rec: TokenRecord = decode(&rec)?;
        Ok((rec.expires_at > now).then(|| (rec, u64::try_from(left).unwrap_or(0))))
    }

    async fn revoke_token(
        &self,
        owner: &Owner,
        parent: Uuid,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let Some((rec, _)) = self.token(owner, id, Utc::now()).await? else {
            return Ok(false);
        };
        if rec.parent != parent {
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        pipe.del(token_key(owner, Some(id)))
            .ignore()
            .del(token_record_key(owner, id))
            .ignore()
            .srem(token_set_key(owner, parent), id.to_string())
            .ignore();
        self.run_pipelines("revoke_token", vec![pipe]).await?;
        Ok(true)
    }

    async fn revoke_tokens_of(&self, owner: &Owner, parent: Uuid) -> Result<u64, StoreError> {
        let ids = self.token_ids("revoke_tokens", owner, parent).await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            if let Ok(id) = Uuid::parse_str(id) {
                pipe.del(token_key(owner, Some(id)))
                    .ignore()
                    .del(token_record_key(owner, id))
                    .ignore();
            }
        }
        pipe.del(token_set_key(owner, parent)).ignore();
        self.run_pipelines("revoke_tokens", vec![pipe]).await?;
        Ok(ids.len() as u64)
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
        let mut pipe = redis::pipe();
        pipe.get(usage_key(key, "last")).lrange(
            usage_key(key, "calls"),
            0,
            RECENT_CALLS as isize - 1,
        );
        for d in &day_names {
            pipe.get(usage_key(key, &format!("d:{d}")));
        }
        let mut c = self.conn()?;
        let values: Vec<redis::Value> = self
            .call("usage", ADMIN_TIMEOUT, async move {
                pipe.query_async(&mut c).await
            })
            .await?;
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
            recent: calls
                .iter()
                .filter_map(|c| serde_json::from_str(c).ok())
                .collect(),
            daily,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_share_the_tag_of_their_owner() {
        let id = Uuid::from_u128(1);
        assert_eq!(
            bucket_key(&Owner::Client("1.2.3.4".into()), &Bucket::Client),
            "tg:{ip:1.2.3.4}:b:ip"
        );
        assert_eq!(
            bucket_key(&Owner::Account("acme".into()), &Bucket::AccountKey(id)),
            "tg:{a:acme}:b:key:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            credits_key(&Owner::Account("acme".into())),
            "tg:{a:acme}:credits"
        );
        assert_eq!(
            token_key(&Owner::Account("acme".into()), Some(id)),
            "tg:{a:acme}:tok:00000000-0000-0000-0000-000000000001"
        );
    }
}
