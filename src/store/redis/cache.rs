//! The in-process cache of key records in front of Redis. Creation and
//! revocation publish an invalidation that every instance applies; entries also
//! expire (positive and negative TTLs). Stale entries are kept for the
//! `fail_open` policy while Redis is unreachable.

use crate::auth::keys::KeyHash;
use crate::store::Identity;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept before stale ones are swept.
const MAX_ENTRIES: usize = 200_000;

struct Entry {
    identity: Option<Identity>,
    at: Instant,
}

/// The cache.
pub struct AuthCache {
    map: DashMap<KeyHash, Entry>,
    /// Bumped by every invalidation: a lookup that overlapped one is not cached,
    /// so a read from before a revocation cannot be stored as fresh after it.
    epoch: AtomicU64,
    ttl: Duration,
    negative_ttl: Duration,
}

impl AuthCache {
    /// An empty cache.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            map: DashMap::new(),
            epoch: AtomicU64::new(0),
            ttl,
            negative_ttl,
        }
    }

    /// A fresh answer: `Some(None)` is a fresh "unknown key".
    pub fn fresh(&self, hash: &KeyHash) -> Option<Option<Identity>> {
        let e = self.map.get(hash)?;
        let ttl = if e.identity.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        (e.at.elapsed() < ttl).then(|| e.identity.clone())
    }

    /// Any known record, however old (for `fail_open`).
    pub fn stale(&self, hash: &KeyHash) -> Option<Identity> {
        self.map.get(hash).and_then(|e| e.identity.clone())
    }

    /// The invalidation epoch, to read before a lookup and pass to [`Self::put`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores an answer read at `epoch`, unless an invalidation happened since.
    pub fn put(&self, hash: KeyHash, identity: Option<Identity>, epoch: u64) {
        if self.map.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            self.map
                .retain(|_, e| e.identity.is_some() && e.at.elapsed() < ttl);
        }
        // The epoch is checked under the entry's shard lock: an invalidation
        // bumps the epoch before it removes, so either it happened first and
        // this read is dropped, or its removal waits for the lock and drops it.
        let entry = self.map.entry(hash);
        if self.epoch() != epoch {
            return;
        }
        entry.insert(Entry {
            identity,
            at: Instant::now(),
        });
    }

    /// Drops one entry.
    pub fn invalidate(&self, hash: &KeyHash) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.map.remove(hash);
    }

    /// Drops every fresh answer (after a lost invalidation channel), keeping
    /// records for `fail_open` by marking them stale.
    pub fn expire_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let old = Instant::now().checked_sub(self.ttl.max(self.negative_ttl) * 2);
        if let Some(old) = old {
            for mut e in self.map.iter_mut() {
                e.at = old;
            }
        } else {
            self.map.clear();
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
