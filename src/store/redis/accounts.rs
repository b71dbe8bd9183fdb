//! Accounts and credit balances in Redis: an account is one JSON record
//! (`tg:{a:ACCOUNT}:acct`, created with `SET NX`); a balance is changed or read
//! by `credits.lua`, with the same refill rule as `admit.lua`.

use super::layout::{account_key, credits_key};
use super::{decode, encode, RedisStore, ADMIN_TIMEOUT};
use crate::metering::credits::{CreditCharge, MAX_CREDITS};
use crate::metering::Owner;
use crate::store::{Account, AccountStore, StoreError};
use async_trait::async_trait;
use redis::AsyncCommands;
use std::time::Duration;

impl RedisStore {
    /// One account, read under `deadline` and counted as `op`.
    pub(super) async fn read_account(
        &self,
        op: &'static str,
        deadline: Duration,
        id: &str,
    ) -> Result<Option<Account>, StoreError> {
        let key = account_key(id);
        let k = key.clone();
        let raw: Option<String> = self
            .link
            .call(op, deadline, |mut c| async move { c.get(k).await })
            .await?;
        raw.map(|r| decode("account", &key, &r)).transpose()
    }

    /// [`AccountStore::add_credits`] with `credits.lua`'s clock fixed at
    /// `now_ms` instead of Redis `TIME`. Only tests pass a time (the parity
    /// table); the store passes `None`.
    pub async fn add_credits_at(
        &self,
        owner: &Owner,
        delta: i64,
        policy: &CreditCharge,
        now_ms: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut inv = self.credits_script.key(credits_key(owner));
        inv.arg(delta)
            .arg(policy.budget)
            .arg(policy.refill_ms.unwrap_or(0))
            .arg(MAX_CREDITS);
        if let Some(now) = now_ms {
            inv.arg(now);
        }
        let (changed, balance): (i64, i64) = self
            .link
            .call("credits", ADMIN_TIMEOUT, |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::CreditRange { balance });
        }
        Ok(balance)
    }
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn create_account(&self, account: Account) -> Result<Account, StoreError> {
        let key = account_key(&account.id);
        let json = encode(&account)?;
        let created: bool = self
            .link
            .call("create_account", ADMIN_TIMEOUT, |mut c| async move {
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
        self.read_account("account", ADMIN_TIMEOUT, id).await
    }

    async fn add_credits(
        &self,
        owner: &Owner,
        delta: i64,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError> {
        self.add_credits_at(owner, delta, policy, None).await
    }

    async fn credit_balance(
        &self,
        owner: &Owner,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError> {
        self.add_credits(owner, 0, policy).await
    }
}
