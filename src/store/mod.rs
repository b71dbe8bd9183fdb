//! State: accounts, keys, buckets and usage, behind one trait family with two
//! implementations: [`memory::MemoryStore`] (embedded, the default) and Redis.

pub mod memory;
pub mod redis;
pub mod types;

pub use types::*;

use crate::auth::keys::KeyHash;
use crate::metering::credits::CreditCharge;
use crate::metering::{Admission, AdmitOutcome, Owner};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;
use uuid::Uuid;

/// A store failure, as the gateway and admin API see it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("active key limit reached ({max})")]
    KeyLimit { max: u32 },
    /// A credit change would take the balance (`balance`, unchanged) beyond
    /// ±[`crate::metering::credits::MAX_CREDITS`].
    #[error(
        "credit balance {balance} cannot change by that much (the limit is ±{})",
        crate::metering::credits::MAX_CREDITS
    )]
    CreditRange { balance: i64 },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record that does not parse: the store answered, but what it
    /// holds is damaged (not an outage). `what` names the record and where it
    /// is (e.g. `key record tg:kh:<sha256>`), `detail` the parse error.
    #[error("corrupt record ({what}): {detail}")]
    Corrupt { what: String, detail: String },
}

impl StoreError {
    /// Whether the store could not be reached or did not answer in time: the
    /// only failure `fail_open` routes decide around. A corrupt record is not one.
    pub fn is_outage(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Accounts: owners of keys, with a plan.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account; `Conflict` if the id is taken.
    async fn create_account(&self, account: Account) -> Result<Account, StoreError>;
    /// One account.
    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError>;
    /// Adds `delta` credits (negative removes) to an owner's balance under the
    /// plan's policy; returns the new balance. `CreditRange` (and no change)
    /// if the balance would leave ±[`crate::metering::credits::MAX_CREDITS`].
    async fn add_credits(
        &self,
        owner: &Owner,
        delta: i64,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError>;
    /// An owner's balance now (a stale refill window counts as refilled).
    async fn credit_balance(&self, owner: &Owner, policy: &CreditCharge)
        -> Result<i64, StoreError>;
}

/// Keys: stored only as sha256.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key. With `max_active`, refuses (`KeyLimit`) when the account
    /// already holds that many active keys, atomically with the insert.
    async fn insert_key(
        &self,
        key: KeyRecord,
        max_active: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError>;
    /// The key with this hash and the plan it is metered with.
    async fn resolve(&self, hash: &KeyHash) -> Result<Option<Identity>, StoreError>;
    /// A cached record, however old, for deciding while the store is
    /// unreachable (`fail_open`). Stores without a cache have none.
    fn cached(&self, _hash: &KeyHash) -> Option<Identity> {
        None
    }
    /// One key by id.
    async fn key(&self, id: Uuid) -> Result<Option<KeyRecord>, StoreError>;
    /// Every key of an account, newest first.
    async fn list_keys(&self, account: &str) -> Result<Vec<KeyRecord>, StoreError>;
    /// Revokes a key (idempotent); `None` if there is no such key.
    async fn revoke_key(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError>;
}

/// Token buckets.
#[async_trait]
pub trait Meter: Send + Sync {
    /// Checks and takes, atomically, everything an admission asks for.
    async fn admit(&self, admission: &Admission) -> Result<AdmitOutcome, StoreError>;
}

/// Usage per key: `lastUsedAt`, the last calls and daily counts.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Records a batch of calls.
    async fn record_usage(&self, batch: Vec<UsageEvent>) -> Result<(), StoreError>;
    /// Usage of one key over the last `days` days (today included).
    async fn usage(&self, key: Uuid, days: u32, now: DateTime<Utc>)
        -> Result<KeyUsage, StoreError>;
}

/// Short-lived tokens: their records and request-limit counters, under the
/// owner (`a:<account>`) so that admission reaches the counter in one call.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores new tokens with their full request limit.
    async fn create_tokens(&self, owner: &Owner, tokens: &[TokenRecord]) -> Result<(), StoreError>;
    /// Active tokens of a static key with their remaining requests.
    async fn list_tokens(
        &self,
        owner: &Owner,
        parent: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TokenRecord, u64)>, StoreError>;
    /// One active token with its remaining requests.
    async fn token(
        &self,
        owner: &Owner,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenRecord, u64)>, StoreError>;
    /// Revokes a token of `parent`; false if there is no such active token.
    async fn revoke_token(&self, owner: &Owner, parent: Uuid, id: Uuid)
        -> Result<bool, StoreError>;
    /// Revokes every token of a static key (when the key itself is revoked).
    async fn revoke_tokens_of(&self, owner: &Owner, parent: Uuid) -> Result<u64, StoreError>;
}

/// Whether the store answers now: what the admin API's `/readyz` asks.
#[async_trait]
pub trait Reachability: Send + Sync {
    /// One cheap round trip to the store, under its call deadline and circuit
    /// breaker; `Unavailable` when it cannot be reached (or the breaker is open).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The whole store.
pub trait Store: AccountStore + KeyStore + Meter + UsageStore + TokenStore + Reachability {}

impl<T: AccountStore + KeyStore + Meter + UsageStore + TokenStore + Reachability> Store for T {}
