//! The Redis key layout: the name of every key the Redis store reads or
//! writes. These names are a persisted format (existing data must stay
//! readable); the test below pins them.
//!
//! `{...}` is the Cluster hash tag: every key one script touches carries the
//! same tag, its owner's ([`Owner`]'s text), so it stays in one slot.
//!
//! | key | holds |
//! |---|---|
//! | `tg:{a:ACCOUNT}:acct` | the account (JSON) |
//! | `tg:{a:ACCOUNT}:keys` | hash: key id → key record summary, for listing and the active-key cap |
//! | `tg:kh:SHA256` | the key record with the plan it had at insert (JSON), for authentication; an account key is metered with its account's plan, read at resolve |
//! | `tg:kid:UUID` | the sha256 of a key, by id |
//! | `tg:{OWNER}:b:BUCKET` | a token bucket's TAT in µs, expiring when full |
//! | `tg:{OWNER}:credits` | hash: `bal` (the balance), `win` (its refill window) |
//! | `tg:{OWNER}:tok:UUID` | a short-lived token's remaining requests |
//! | `tg:{OWNER}:tokrec:UUID` | a short-lived token's record (JSON) |
//! | `tg:{OWNER}:toks:UUID` | set: the ids of a static key's short-lived tokens |
//! | `tg:{k:UUID}:u:*` | usage: `last` (ms), `calls` (list of 50), `d:YYYY-MM-DD` (count, 8 days), `exp` (a key's expiry in ms, for keys that have one, expiring when their usage may go) |
//!
//! A trial key's `tg:kh:*` and `tg:kid:*` (it has no account hash) expire
//! [`EXPIRED_KEY_GRACE`](crate::store::types::EXPIRED_KEY_GRACE) after the key
//! does; so does the usage of every key with an expiry (the usage writer gives
//! it the remaining TTL of `exp`, read in the background flush, never on the
//! request path). Usage of a key without expiry stays bounded: one `last`, at
//! most 50 `calls` (paths cut to 256 bytes) and daily counters that expire.

use crate::auth::keys::KeyHash;
use crate::metering::{Bucket, Owner};
use uuid::Uuid;

/// The pub/sub channel of key invalidations (payload: sha256 hex, or `*`).
pub const INVALIDATE_CHANNEL: &str = "tg:invalidate";

/// An account's record.
pub(super) fn account_key(account: &str) -> String {
    format!("tg:{{a:{account}}}:acct")
}

/// An account's key summaries.
pub(super) fn account_keys(account: &str) -> String {
    format!("tg:{{a:{account}}}:keys")
}

/// A key's record, by the sha256 of the key.
pub(super) fn hash_key(hash: &KeyHash) -> String {
    format!("tg:kh:{}", hash.to_hex())
}

/// The sha256 of a key, by its id.
pub(super) fn id_key(id: Uuid) -> String {
    format!("tg:kid:{id}")
}

/// One part of a key's usage.
pub(super) fn usage_key(id: Uuid, part: &str) -> String {
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

/// A short-lived token's record.
pub(super) fn token_record_key(owner: &Owner, id: Uuid) -> String {
    format!("tg:{{{owner}}}:tokrec:{id}")
}

/// The ids of a static key's short-lived tokens.
pub(super) fn token_set_key(owner: &Owner, parent: Uuid) -> String {
    format!("tg:{{{owner}}}:toks:{parent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_are_pinned() {
        let id = Uuid::from_u128(1);
        let acme = Owner::Account("acme".into());
        assert_eq!(
            bucket_key(&Owner::Client("1.2.3.4".into()), &Bucket::Client),
            "tg:{ip:1.2.3.4}:b:ip"
        );
        assert_eq!(
            bucket_key(&acme, &Bucket::AccountKey(id)),
            "tg:{a:acme}:b:key:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(credits_key(&acme), "tg:{a:acme}:credits");
        assert_eq!(
            token_key(&acme, Some(id)),
            "tg:{a:acme}:tok:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(token_key(&acme, None), "tg:{a:acme}:tok:-");
        assert_eq!(
            token_record_key(&acme, id),
            "tg:{a:acme}:tokrec:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            token_set_key(&acme, id),
            "tg:{a:acme}:toks:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(account_key("acme"), "tg:{a:acme}:acct");
        assert_eq!(account_keys("acme"), "tg:{a:acme}:keys");
        assert_eq!(
            hash_key(&KeyHash::of("x")),
            "tg:kh:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        assert_eq!(id_key(id), "tg:kid:00000000-0000-0000-0000-000000000001");
        assert_eq!(
            usage_key(id, "last"),
            "tg:{k:00000000-0000-0000-0000-000000000001}:u:last"
        );
    }
}
