//! Short-lived tokens in Redis, all under their owner's hash tag so that
//! admission reaches the request counter in its one script: the counter
//! (`tok:ID`, what `admit.lua` decrements), the record (`tokrec:ID`, JSON), both
//! expiring with the token, and the set of a static key's token ids
//! (`toks:PARENT`).

use super::layout::{token_key, token_record_key, token_set_key};
use super::{decode, encode, RedisStore, ADMIN_TIMEOUT};
use crate::metering::Owner;
use crate::store::{StoreError, TokenRecord, TokenStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use uuid::Uuid;

impl RedisStore {
    /// The ids of a static key's short-lived tokens (some may have expired).
    async fn token_ids(
        &self,
        op: &'static str,
        owner: &Owner,
        parent: Uuid,
    ) -> Result<Vec<String>, StoreError> {
        let set = token_set_key(owner, parent);
        self.link
            .call(
                op,
                ADMIN_TIMEOUT,
                |mut c| async move { c.smembers(set).await },
            )
            .await
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
                    let set = token_set_key(owner, parent);
                    let _: i64 = self
                        .link
                        .call("list_tokens", ADMIN_TIMEOUT, |mut c| async move {
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
        let record_key = token_record_key(owner, id);
        let mut pipe = redis::pipe();
        pipe.get(&record_key).get(token_key(owner, Some(id)));
        let (rec, left): (Option<String>, Option<i64>) = self.query("token", pipe).await?;
        let (Some(rec), Some(left)) = (rec, left) else {
            return Ok(None);
        };
        let rec: TokenRecord = decode("token record", &record_key, &rec)?;
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
