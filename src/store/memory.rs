//! The embedded store: one process, no Redis. Exact and atomic within the
//! process, not durable: everything is lost on restart.

use super::{
    types::{day_of, last_days, DAILY_DAYS, EXPIRED_KEY_GRACE, RECENT_CALLS},
    Account, AccountStore, CallRecord, Identity, KeyRecord, KeyStore, KeyUsage, Meter,
    Reachability, StoreError, TokenRecord, TokenStore, UsageEvent, UsageStore,
};
use crate::auth::keys::KeyHash;
use crate::metering::credits::{CreditCharge, CreditState};
use crate::metering::{gcra, Admission, AdmitOutcome, Bucket, Owner, Verdict};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Admissions between two sweeps of full buckets (and expired keys).
const SWEEP_EVERY: u64 = 4096;
/// Key insertions between two sweeps of expired keys, so that issuing trial
/// keys with no traffic at all still prunes the old ones.
const PRUNE_EVERY_INSERTS: u64 = 1024;

#[derive(Default)]
struct Directory {
    accounts: HashMap<String, Account>,
    keys: HashMap<Uuid, KeyRecord>,
    by_hash: HashMap<KeyHash, Uuid>,
}

#[derive(Default)]
struct UsageData {
    last_used_at: Option<DateTime<Utc>>,
    recent: VecDeque<CallRecord>,
    daily: BTreeMap<String, u64>,
}

/// The in-process store.
#[derive(Default)]
pub struct MemoryStore {
    dir: RwLock<Directory>,
    buckets: DashMap<(Owner, Bucket), i64>,
    credits: DashMap<Owner, CreditState>,
    tokens: DashMap<(Owner, Uuid), (TokenRecord, i64)>,
    usage: Mutex<HashMap<Uuid, UsageData>>,
    admissions: AtomicU64,
    inserts: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes what belongs to keys that expired more than [`EXPIRED_KEY_GRACE`]
    /// before `now`: trial keys (no account) altogether, and the usage of every
    /// expired key (an account's expired keys stay in its listing). Runs every
    /// `SWEEP_EVERY` admissions and every `PRUNE_EVERY_INSERTS` insertions,
    /// like the Redis store's expiries.
    pub fn prune_expired(&self, now: DateTime<Utc>) {
        let gone = |k: &KeyRecord| k.expires_at.is_some_and(|e| e + EXPIRED_KEY_GRACE <= now);
        let expired: Vec<(Uuid, KeyHash, bool)> = self
            .dir
            .read()
            .keys
            .values()
            .filter(|k| gone(k))
            .map(|k| (k.id, k.hash, k.account.is_none()))
            .collect();
        if expired.is_empty() {
            return;
        }
        {
            let mut dir = self.dir.write();
            for (id, hash, trial) in &expired {
                if *trial && dir.keys.get(id).is_some_and(gone) {
                    dir.keys.remove(id);
                    dir.by_hash.remove(hash);
                }
            }
        }
        let mut usage = self.usage.lock();
        for (id, _, _) in &expired {
            usage.remove(id);
        }
    }

    /// Keys held (for tests of the pruning).
    pub fn key_count(&self) -> usize {
        self.dir.read().keys.len()
    }

    /// Replaces an account's plan; false if there is no such account. No
    /// endpoint changes a plan yet: this is the embedded counterpart of
    /// rewriting `tg:{a:ACCOUNT}:acct` in Redis, which the store conformance
    /// suite does to show that both stores meter a key with its account's
    /// plan as it is when the key is resolved.
    pub fn set_account_plan(&self, id: &str, plan: &str) -> bool {
        match self.dir.write().accounts.get_mut(id) {
            Some(account) => {
                account.plan = plan.to_string();
                true
            }
            None => false,
        }
    }
}

/// What one admission reads and, when it admits, writes: the bucket, the
/// owner's credits and a short-lived token's counter, as the memory store
/// holds them and as `admit.lua` finds them in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdmitState {
    /// The bucket's TAT in µs; `None`: a full bucket (no key in Redis).
    pub tat: Option<i64>,
    /// The owner's credit balance; `None`: none stored.
    pub credits: Option<CreditState>,
    /// A short-lived token's requests left; `None`: revoked or expired.
    pub token_left: Option<i64>,
}

/// One admission at `now_us` (µs since the epoch) on `state`: the outcome and
/// the state after it, unchanged when refused. This is the memory store's
/// decision, on [`gcra::step`] and [`CreditCharge`]; `admit.lua` makes the same
/// one in Redis (`tests/store_parity.rs` holds them to it). A refusal takes
/// nothing, and reports the bucket as it stands.
pub fn admit_at(now_us: i64, a: &Admission, state: AdmitState) -> (AdmitOutcome, AdmitState) {
    if a.token.is_some() && state.token_left.is_none() {
        return (AdmitOutcome::token_revoked(), state);
    }
    let now_ms = now_us.div_euclid(1000);
    let step = gcra::step(now_us, state.tat, a.interval_us, a.burst, 1);
    let credits = a
        .credits
        .map(|charge| (charge, charge.current(state.credits, now_ms)));
    let mut outcome = AdmitOutcome {
        verdict: Verdict::Allowed,
        remaining: step.remaining,
        retry_after: micros(step.retry_after_us),
        reset_after: micros(step.reset_after_us),
        credits: credits.map(|(_, c)| c.balance),
        credits_refill_in: a
            .credits
            .and_then(|charge| charge.refill_in_ms(now_ms))
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        token_remaining: a.token.and(state.token_left),
    };
    if !step.allowed {
        outcome.verdict = Verdict::RateLimited;
        return (outcome, state);
    }
    // Refused after the bucket had a token: it is full again when it would
    // have been without this request (`step` reports it with the token taken).
    let standing = micros(state.tat.unwrap_or(now_us).max(now_us) - now_us);
    if credits.is_some_and(|(charge, c)| c.balance < charge.cost_i64()) {
        outcome.verdict = Verdict::InsufficientCredits;
        outcome.reset_after = standing;
        return (outcome, state);
    }
    if a.token.is_some() && state.token_left.is_some_and(|left| left <= 0) {
        outcome.verdict = Verdict::RequestLimitExhausted;
        outcome.reset_after = standing;
        return (outcome, state);
    }
    let mut after = state;
    after.tat = Some(step.tat);
    if let Some((charge, c)) = credits {
        let c = CreditState {
            balance: c.balance - charge.cost_i64(),
            ..c
        };
        after.credits = Some(c);
        outcome.credits = Some(c.balance);
    }
    if let (Some(_), Some(left)) = (a.token, state.token_left) {
        after.token_left = Some(left - 1);
        outcome.token_remaining = Some(left - 1);
    }
    (outcome, after)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// The embedded store is in process: always reachable.
#[async_trait]
impl Reachability for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_account(&self, account: Account) -> Result<Account, StoreError> {
        let mut dir = self.dir.write();
        if dir.accounts.contains_key(&account.id) {
            return Err(StoreError::Conflict(format!("account {}", account.id)));
        }
        dir.accounts.insert(account.id.clone(), account.clone());
        Ok(account)
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.dir.read().accounts.get(id).cloned())
    }

    async fn add_credits(
        &self,
        owner: &Owner,
        delta: i64,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError> {
        let now_ms = now_us() / 1000;
        let mut c = self
            .credits
            .entry(owner.clone())
            .or_insert_with(|| policy.current(None, now_ms));
        *c = policy
            .add(Some(*c), delta, now_ms)
            .map_err(|balance| StoreError::CreditRange { balance })?;
        Ok(c.balance)
    }

    async fn credit_balance(
        &self,
        owner: &Owner,
        policy: &CreditCharge,
    ) -> Result<i64, StoreError> {
        let now_ms = now_us() / 1000;
        let state = self.credits.get(owner).map(|c| *c);
        Ok(policy.current(state, now_ms).balance)
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_key(
        &self,
        key: KeyRecord,
        max_active: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        let mut dir = self.dir.write();
        // A key is metered with its own plan or its account's: refuse one
        // with neither, as the Redis store does.
        match (&key.plan, &key.account) {
            (Some(_), _) => {}
            (None, Some(a)) if dir.accounts.contains_key(a) => {}
            (None, Some(a)) => return Err(StoreError::NotFound(format!("account {a}"))),
            (None, None) => return Err(StoreError::NotFound("plan".into())),
        }
        if let (Some(max), Some(account)) = (max_active, key.account.as_deref()) {
            let active = dir
                .keys
                .values()
                .filter(|k| k.account.as_deref() == Some(account) && k.is_active(now))
                .count();
            if active >= max as usize {
                return Err(StoreError::KeyLimit { max });
            }
        }
        if dir.by_hash.contains_key(&key.hash) {
            return Err(StoreError::Conflict("key".into()));
        }
        dir.by_hash.insert(key.hash, key.id);
        dir.keys.insert(key.id, key.clone());
        drop(dir);
        if self.inserts.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY_INSERTS
            == PRUNE_EVERY_INSERTS - 1
        {
            self.prune_expired(now);
        }
        Ok(key)
    }

    async fn resolve(&self, hash: &KeyHash) -> Result<Option<Identity>, StoreError> {
        let dir = self.dir.read();
        let Some(key) = dir.by_hash.get(hash).and_then(|id| dir.keys.get(id)) else {
            return Ok(None);
        };
        let plan = match (&key.plan, &key.account) {
            (Some(p), _) => p.clone(),
            (None, Some(a)) => match dir.accounts.get(a) {
                Some(acc) => acc.plan.clone(),
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        Ok(Some(Identity {
            key: key.clone(),
            plan,
        }))
    }

    async fn key(&self, id: Uuid) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.dir.read().keys.get(&id).cloned())
    }

    async fn list_keys(&self, account: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let dir = self.dir.read();
        let mut keys: Vec<KeyRecord> = dir
            .keys
            .values()
            .filter(|k| k.account.as_deref() == Some(account))
            .cloned()
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(keys)
    }

    async fn revoke_key(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let mut dir = self.dir.write();
        Ok(dir.keys.get_mut(&id).map(|k| {
            if k.revoked_at.is_none() {
                k.revoked_at = Some(now);
            }
            k.clone()
        }))
    }
}

#[async_trait]
impl Meter for MemoryStore {
    async fn admit(&self, a: &Admission) -> Result<AdmitOutcome, StoreError> {
        let now = now_us();
        let now_ms = now / 1000;
        if self.admissions.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.buckets.retain(|_, tat| *tat > now);
            let now_utc = Utc::now();
            self.tokens.retain(|_, t| t.0.expires_at > now_utc);
            self.prune_expired(now_utc);
        }
        // Lock order: bucket, token, then credits; all are held until the
        // decision is written.
        let mut tat = self
            .buckets
            .entry((a.owner.clone(), a.bucket))
            .or_insert(now);
        let mut token = a.token.and_then(|id| {
            let now_utc = Utc::now();
            self.tokens
                .get_mut(&(a.owner.clone(), id))
                .filter(|t| t.0.expires_at > now_utc)
        });
        let mut credits = match (&a.credits, a.token.is_some() && token.is_none()) {
            (Some(charge), false) => Some(
                self.credits
                    .entry(a.owner.clone())
                    .or_insert_with(|| charge.current(None, now_ms)),
            ),
            _ => None,
        };
        let state = AdmitState {
            tat: Some(*tat),
            credits: credits.as_deref().copied(),
            token_left: token.as_ref().map(|t| t.1),
        };
        let (outcome, after) = admit_at(now, a, state);
        if let Some(t) = after.tat {
            *tat = t;
        }
        if let (Some(c), Some(new)) = (credits.as_mut(), after.credits) {
            **c = new;
        }
        if let (Some(t), Some(left)) = (token.as_mut(), after.token_left) {
            t.1 = left;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_tokens(&self, owner: &Owner, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        for t in tokens {
            let limit = i64::try_from(t.request_limit).unwrap_or(i64::MAX);
            self.tokens
                .insert((owner.clone(), t.id), (t.clone(), limit));
        }
        Ok(())
    }

    async fn list_tokens(
        &self,
        owner: &Owner,
        parent: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TokenRecord, u64)>, StoreError> {
        self.tokens.retain(|_, t| t.0.expires_at > now);
        let mut out: Vec<(TokenRecord, u64)> = self
            .tokens
            .iter()
            .filter(|e| e.key().0 == *owner && e.value().0.parent == parent)
            .map(|e| (e.value().0.clone(), u64::try_from(e.value().1).unwrap_or(0)))
            .collect();
        out.sort_by_key(|(t, _)| t.created_at);
        Ok(out)
    }

    async fn token(
        &self,
        owner: &Owner,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenRecord, u64)>, StoreError> {
        Ok(self
            .tokens
            .get(&(owner.clone(), id))
            .filter(|t| t.0.expires_at > now)
            .map(|t| (t.0.clone(), u64::try_from(t.1).unwrap_or(0))))
    }

    async fn revoke_token(
        &self,
        owner: &Owner,
        parent: Uuid,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let key = (owner.clone(), id);
        Ok(self
            .tokens
            .remove_if(&key, |_, t| t.0.parent == parent)
            .is_some())
    }

    async fn revoke_tokens_of(&self, owner: &Owner, parent: Uuid) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        self.tokens.retain(|k, t| {
            let hit = k.0 == *owner && t.0.parent == parent;
            removed += u64::from(hit);
            !hit
        });
        Ok(removed)
    }
}

#[async_trait]
impl UsageStore for MemoryStore {
    async fn record_usage(&self, batch: Vec<UsageEvent>) -> Result<(), StoreError> {
        let mut usage = self.usage.lock();
        for event in batch {
            let data = usage.entry(event.key).or_default();
            if data.last_used_at.is_none_or(|t| t < event.call.at) {
                data.last_used_at = Some(event.call.at);
            }
            *data.daily.entry(day_of(&event.call.at)).or_insert(0) += 1;
            while data.daily.len() > DAILY_DAYS as usize + 1 {
                data.daily.pop_first();
            }
            data.recent.push_front(event.call);
            data.recent.truncate(RECENT_CALLS);
        }
        Ok(())
    }

    async fn usage(
        &self,
        key: Uuid,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<KeyUsage, StoreError> {
        let usage = self.usage.lock();
        let Some(data) = usage.get(&key) else {
            return Ok(KeyUsage {
                daily: last_days(now, days).into_iter().map(|d| (d, 0)).collect(),
                ..KeyUsage::default()
            });
        };
        Ok(KeyUsage {
            last_used_at: data.last_used_at,
            recent: data.recent.iter().cloned().collect(),
            daily: last_days(now, days)
                .into_iter()
                .map(|d| {
                    let c = data.daily.get(&d).copied().unwrap_or(0);
                    (d, c)
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyKind;

    fn key(account: &str, token: &str) -> KeyRecord {
        KeyRecord {
            id: Uuid::new_v4(),
            hash: KeyHash::of(token),
            account: Some(account.into()),
            plan: None,
            name: "k".into(),
            key_prefix: token.chars().take(12).collect(),
            kind: KeyKind::Standard,
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn key_cap_counts_active_only() {
        let s = MemoryStore::new();
        let now = Utc::now();
        s.create_account(Account {
            id: "a".into(),
            plan: "p".into(),
            created_at: now,
        })
        .await
        .expect("account");
        let k1 = s
            .insert_key(key("a", "t1"), Some(2), now)
            .await
            .expect("k1");
        s.insert_key(key("a", "t2"), Some(2), now)
            .await
            .expect("k2");
        assert_eq!(
            s.insert_key(key("a", "t3"), Some(2), now).await,
            Err(StoreError::KeyLimit { max: 2 })
        );
        s.revoke_key(k1.id, now).await.expect("revoke");
        s.insert_key(key("a", "t3"), Some(2), now)
            .await
            .expect("k3 after revoke");
        let id = s
            .resolve(&KeyHash::of("t3"))
            .await
            .expect("ok")
            .expect("found");
        assert_eq!(id.plan, "p");
    }

    fn one_call(key: Uuid, at: DateTime<Utc>) -> UsageEvent {
        UsageEvent {
            key,
            call: CallRecord {
                token: None,
                at,
                method: "GET".into(),
                path: "/p".into(),
                status: 200,
                latency_ms: 1,
            },
        }
    }

    #[tokio::test]
    async fn expired_trial_keys_and_usage_are_pruned() {
        let s = MemoryStore::new();
        let now = Utc::now();
        s.create_account(Account {
            id: "a".into(),
            plan: "p".into(),
            created_at: now,
        })
        .await
        .expect("account");
        let long_ago = now - EXPIRED_KEY_GRACE - chrono::Duration::minutes(1);
        let just_expired = now - chrono::Duration::minutes(1);
        let trial = |token: &str, exp| KeyRecord {
            account: None,
            plan: Some("p".into()),
            kind: KeyKind::Trial,
            expires_at: Some(exp),
            ..key("a", token)
        };
        let old_trial = trial("t-old", long_ago);
        let recent_trial = trial("t-recent", just_expired);
        let live_trial = trial("t-live", now + chrono::Duration::days(7));
        let old_account_key = KeyRecord {
            expires_at: Some(long_ago),
            ..key("a", "k-old")
        };
        let forever = key("a", "k-forever");
        let public = Uuid::new_v4(); // a config key: usage only, no record
        let all = [
            &old_trial,
            &recent_trial,
            &live_trial,
            &old_account_key,
            &forever,
        ];
        for k in all {
            s.insert_key(k.clone(), None, now).await.expect("insert");
        }
        let mut events: Vec<UsageEvent> = all.iter().map(|k| one_call(k.id, now)).collect();
        events.push(one_call(public, now));
        s.record_usage(events).await.expect("usage");

        s.prune_expired(now);

        // The trial key past its grace is gone, record and usage.
        assert_eq!(s.key(old_trial.id).await.expect("key"), None);
        assert_eq!(s.resolve(&old_trial.hash).await.expect("resolve"), None);
        let u = s.usage(old_trial.id, 7, now).await.expect("usage");
        assert!(u.last_used_at.is_none() && u.recent.is_empty());
        // An expired account key stays listed; its usage goes.
        assert!(s.key(old_account_key.id).await.expect("key").is_some());
        let u = s.usage(old_account_key.id, 7, now).await.expect("usage");
        assert!(u.last_used_at.is_none());
        // Within the grace, live, without expiry, or not stored: untouched.
        for id in [recent_trial.id, live_trial.id, forever.id, public] {
            let u = s.usage(id, 7, now).await.expect("usage");
            assert_eq!(u.recent.len(), 1, "{id}");
        }
        assert_eq!(s.key_count(), 4);
    }

    #[tokio::test]
    async fn issuing_keys_prunes_expired_trials_without_any_traffic() {
        let s = MemoryStore::new();
        let now = Utc::now();
        let old = KeyRecord {
            account: None,
            plan: Some("p".into()),
            kind: KeyKind::Trial,
            expires_at: Some(now - EXPIRED_KEY_GRACE - chrono::Duration::minutes(1)),
            ..key("a", "t-old")
        };
        s.insert_key(old.clone(), None, now).await.expect("old");
        for i in 1..PRUNE_EVERY_INSERTS {
            let k = KeyRecord {
                account: None,
                plan: Some("p".into()),
                kind: KeyKind::Trial,
                expires_at: Some(now + chrono::Duration::days(7)),
                ..key("a", &format!("t-{i}"))
            };
            s.insert_key(k, None, now).await.expect("insert");
        }
        assert_eq!(s.key(old.id).await.expect("key"), None);
        assert_eq!(s.key_count() as u64, PRUNE_EVERY_INSERTS - 1);
    }

    #[tokio::test]
    async fn credit_changes_stay_within_the_bound() {
        use crate::metering::credits::MAX_CREDITS;
        let s = MemoryStore::new();
        let prepaid = CreditCharge {
            cost: 0,
            budget: 1,
            refill_ms: None,
        };
        let max = i64::try_from(MAX_CREDITS).expect("fits");
        let owner = Owner::Account("x".into());
        assert_eq!(s.add_credits(&owner, max, &prepaid).await, Ok(max));
        assert_eq!(
            s.add_credits(&owner, 1, &prepaid).await,
            Err(StoreError::CreditRange { balance: max })
        );
        assert_eq!(s.credit_balance(&owner, &prepaid).await, Ok(max));
        assert_eq!(s.add_credits(&owner, -2 * max, &prepaid).await, Ok(-max));
        assert_eq!(
            s.add_credits(&owner, i64::MIN, &prepaid).await,
            Err(StoreError::CreditRange { balance: -max })
        );
    }

    #[tokio::test]
    async fn usage_keeps_last_fifty() {
        let s = MemoryStore::new();
        let k = Uuid::new_v4();
        let now = Utc::now();
        let batch = (0..60)
            .map(|i| UsageEvent {
                key: k,
                call: CallRecord {
                    token: None,
                    at: now,
                    method: "GET".into(),
                    path: format!("/p/{i}"),
                    status: 200,
                    latency_ms: 1,
                },
            })
            .collect();
        s.record_usage(batch).await.expect("record");
        let u = s.usage(k, 7, now).await.expect("usage");
        assert_eq!(u.recent.len(), 50);
        assert_eq!(u.recent[0].path, "/p/59");
        assert_eq!(u.daily.len(), 7);
        assert_eq!(u.daily[6].1, 60);
    }
}
