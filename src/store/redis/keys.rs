//! Keys in Redis: the record by sha256 (`tg:kh:*`, what authentication reads,
//! through the [`AuthCache`](super::AuthCache)), the sha256 by id (`tg:kid:*`)
//! and, for an account's keys, a summary in the account's hash (`insert_key.lua`
//! enforces the active-key cap there, atomically with the insert). Creation and
//! revocation publish an invalidation to every instance's cache.

use super::layout::{account_keys, hash_key, id_key, usage_key, INVALIDATE_CHANNEL};
use super::{corrupt, decode, encode, RedisStore, ADMIN_TIMEOUT};
use crate::auth::keys::KeyHash;
use crate::store::types::EXPIRED_KEY_GRACE;
use crate::store::{AccountStore, Identity, KeyRecord, KeyStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// When the store deletes what belongs to a key expiring at `exp` (ms).
pub(super) fn purge_at_ms(exp: DateTime<Utc>) -> i64 {
    (exp + EXPIRED_KEY_GRACE).timestamp_millis()
}

/// Whether a key's records expire with it: a trial key (no account). Account
/// keys stay, expired or not, in their account's listing.
fn records_expire(key: &KeyRecord) -> bool {
    key.account.is_none() && key.expires_at.is_some()
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

/// A key record as kept under its sha256, with the plan it had at insert.
#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    key: KeyRecord,
    plan: String,
}

impl RedisStore {
    /// Drops the key from every instance's cache (this one's even if the
    /// message cannot be published).
    async fn publish_invalidation(&self, hash: &KeyHash) {
        if !self.connected() {
            return;
        }
        let payload = hash.to_hex();
        let r: Result<i64, _> = self
            .link
            .call("publish", ADMIN_TIMEOUT, |mut c| async move {
                c.publish(INVALIDATE_CHANNEL, payload).await
            })
            .await;
        if let Err(e) = r {
            log::warn!("key invalidation not published: {e}");
        }
        self.cache.invalidate(hash);
    }

    async fn get_identity(&self, hash: &KeyHash) -> Result<Option<StoredIdentity>, StoreError> {
        let key = hash_key(hash);
        let k = key.clone();
        let raw: Option<String> = self
            .link
            .call("resolve", self.settings.timeout, |mut c| async move {
                c.get(k).await
            })
            .await?;
        raw.map(|r| decode("key record", &key, &r)).transpose()
    }

    /// The identity of a stored key, decided as the memory store decides it:
    /// its own plan (trial keys), else its account's plan as it is now; none
    /// without either.
    async fn identity_of(&self, stored: StoredIdentity) -> Result<Option<Identity>, StoreError> {
        let plan = match (&stored.key.plan, &stored.key.account) {
            (Some(plan), _) => plan.clone(),
            (None, Some(account)) => {
                match self
                    .read_account("resolve", self.settings.timeout, account)
                    .await?
                {
                    Some(a) => a.plan,
                    None => return Ok(None),
                }
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Identity {
            key: stored.key,
            plan,
        }))
    }

    /// Writes a new key's record under its sha256 unless one is there already
    /// (`SET NX`, with the trial expiry): false for a duplicate hash.
    async fn claim_hash(&self, stored: &StoredIdentity) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(hash_key(&stored.key.hash))
            .arg(encode(stored)?)
            .arg("NX");
        if let (true, Some(exp)) = (records_expire(&stored.key), stored.key.expires_at) {
            cmd.arg("PXAT").arg(purge_at_ms(exp));
        }
        self.link
            .call("insert_key", ADMIN_TIMEOUT, |mut c| async move {
                cmd.query_async::<Option<String>>(&mut c)
                    .await
                    .map(|r| r.is_some())
            })
            .await
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

    /// The sha256 of the key with this id.
    async fn hash_of(&self, id: Uuid) -> Result<Option<KeyHash>, StoreError> {
        let key = id_key(id);
        let k = key.clone();
        let hex: Option<String> = self
            .link
            .call("key", ADMIN_TIMEOUT, |mut c| async move { c.get(k).await })
            .await?;
        hex.map(|h| KeyHash::from_hex(&h).ok_or_else(|| corrupt("key id", &key, "not a sha256")))
            .transpose()
    }

    /// The cached record of a key, however old: used by `fail_open` routes.
    pub fn cached_identity(&self, hash: &KeyHash) -> Option<Identity> {
        self.cache.stale(hash)
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
            let mut inv = self.insert_key_script.key(account_keys(account));
            inv.arg(max_active.unwrap_or(0))
                .arg(key.id.to_string())
                .arg(encode(&Summary::of(&key))?);
            let r: i64 = self
                .link
                .call("insert_key", ADMIN_TIMEOUT, |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await?;
            if r < 0 {
                return Err(StoreError::KeyLimit {
                    max: max_active.unwrap_or(0),
                });
            }
        }
        let stored = StoredIdentity { key, plan };
        if !self.claim_hash(&stored).await? {
            // Another key has this sha256: take back the summary just added.
            if let Some(account) = &stored.key.account {
                let (hash, id) = (account_keys(account), stored.key.id.to_string());
                let _: i64 = self
                    .link
                    .call("insert_key", ADMIN_TIMEOUT, |mut c| async move {
                        c.hdel(hash, id).await
                    })
                    .await?;
            }
            return Err(StoreError::Conflict("key".into()));
        }
        if let Some(exp) = stored.key.expires_at {
            // Tells the usage writer when this key's usage may go.
            let mut pipe = redis::pipe();
            pipe.set(usage_key(stored.key.id, "exp"), exp.timestamp_millis())
                .ignore()
                .pexpire_at(usage_key(stored.key.id, "exp"), purge_at_ms(exp))
                .ignore();
            self.run_pipelines("insert_key", vec![pipe]).await?;
        }
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
        let identity = match self.get_identity(hash).await? {
            Some(stored) => self.identity_of(stored).await?,
            None => None,
        };
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
        let key = account_keys(account);
        let k = key.clone();
        let raw: Vec<String> = self
            .link
            .call("list_keys", ADMIN_TIMEOUT, |mut c| async move {
                c.hvals(k).await
            })
            .await?;
        let mut keys = raw
            .iter()
            .map(|r| decode::<Summary>("key summary", &key, r).map(|s| s.rec))
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
