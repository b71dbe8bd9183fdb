//! Records held by the store.

use crate::auth::keys::KeyHash;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Calls kept per key in the recent-call list.
pub const RECENT_CALLS: usize = 50;
/// Days of daily counts kept per key.
pub const DAILY_DAYS: u32 = 7;
/// Longest request path kept in a usage record, in bytes; longer ones are cut
/// on a character boundary.
pub const MAX_USAGE_PATH: usize = 256;
/// How long a key's usage, and a trial key's records, are kept after the key
/// expires (then both stores delete them).
pub const EXPIRED_KEY_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// RFC 3339 with milliseconds and `Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An account: owner of keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// The admin API's view.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "plan": self.plan, "createdAt": rfc3339(&self.created_at)})
    }
}

/// How a key came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Created for an account by the operator or the account itself.
    Standard,
    /// Issued by the public trial endpoint, with no account.
    Trial,
    /// Declared in config with a public plaintext (a demo key); never stored.
    Public,
}

/// A long-lived key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: Uuid,
    #[serde(with = "hash_hex")]
    pub hash: KeyHash,
    pub account: Option<String>,
    /// The plan for keys without an account (trial keys).
    pub plan: Option<String>,
    pub name: String,
    pub key_prefix: String,
    pub kind: KeyKind,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

mod hash_hex {
    use crate::auth::keys::KeyHash;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &KeyHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyHash, D::Error> {
        let text = String::deserialize(d)?;
        KeyHash::from_hex(&text).ok_or_else(|| D::Error::custom("bad key hash"))
    }
}

impl KeyRecord {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    /// The listing view: never the secret, only the prefix.
    pub fn to_json(&self, now: DateTime<Utc>, last_used: Option<DateTime<Utc>>) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "keyPrefix": self.key_prefix,
            "account": self.account,
            "kind": self.kind,
            "isActive": self.is_active(now),
            "createdAt": rfc3339(&self.created_at),
            "expiresAt": self.expires_at.as_ref().map(rfc3339),
            "revokedAt": self.revoked_at.as_ref().map(rfc3339),
            "lastUsedAt": last_used.as_ref().map(rfc3339),
        })
    }
}

/// A resolved key: the record and the name of the plan it is metered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key: KeyRecord,
    pub plan: String,
}

/// One call, as recorded for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The short-lived token the call was made with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub latency_ms: u64,
}

impl CallRecord {
    /// Cuts the path to at most [`MAX_USAGE_PATH`] bytes, on a UTF-8 character
    /// boundary, so that one record stays small whatever the client sent.
    pub fn truncate_path(&mut self) {
        if self.path.len() > MAX_USAGE_PATH {
            let mut end = MAX_USAGE_PATH;
            while !self.path.is_char_boundary(end) {
                end -= 1;
            }
            self.path.truncate(end);
        }
    }

    /// The usage view.
    pub fn to_json(&self) -> Value {
        json!({
            "at": rfc3339(&self.at),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "latencyMs": self.latency_ms,
            "viaToken": self.token,
        })
    }
}

/// A call to record against a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub key: Uuid,
    pub call: CallRecord,
}

/// Usage of one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyUsage {
    pub last_used_at: Option<DateTime<Utc>>,
    /// Newest first, at most [`RECENT_CALLS`].
    pub recent: Vec<CallRecord>,
    /// `(YYYY-MM-DD, count)`, oldest first, one entry per day including zeros.
    pub daily: Vec<(String, u64)>,
}

impl KeyUsage {
    /// The usage view.
    pub fn to_json(&self, key: Uuid) -> Value {
        json!({
            "keyId": key,
            "lastUsedAt": self.last_used_at.as_ref().map(rfc3339),
            "recentCalls": self.recent.iter().map(CallRecord::to_json).collect::<Vec<_>>(),
            "daily": self.daily.iter().map(|(d, c)| json!({"date": d, "count": c})).collect::<Vec<_>>(),
        })
    }
}

/// The day (UTC) of a timestamp, `YYYY-MM-DD`.
pub fn day_of(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The last `days` days up to `now`, oldest first.
pub fn last_days(now: DateTime<Utc>, days: u32) -> Vec<String> {
    (0..days)
        .rev()
        .map(|back| day_of(&(now - chrono::Duration::days(i64::from(back)))))
        .collect()
}

/// A short-lived token, without its JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: Uuid,
    /// The static key it was minted from.
    pub parent: Uuid,
    pub request_limit: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl TokenRecord {
    /// Milliseconds until expiry (at least 1).
    pub fn ttl_ms(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_milliseconds().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(path: &str) -> CallRecord {
        CallRecord {
            token: None,
            at: Utc::now(),
            method: "GET".into(),
            path: path.into(),
            status: 200,
            latency_ms: 0,
        }
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let mut short = call("/api/markets");
        short.truncate_path();
        assert_eq!(short.path, "/api/markets");

        let mut long = call(&format!("/{}", "a".repeat(8 * 1024)));
        long.truncate_path();
        assert_eq!(long.path.len(), MAX_USAGE_PATH);
        assert!(long.path.starts_with("/aaa"));

        // "é" is two bytes: byte 256 falls inside one, so the cut is at 255.
        let mut wide = call(&format!("/{}", "é".repeat(200)));
        wide.truncate_path();
        assert_eq!(wide.path.len(), MAX_USAGE_PATH - 1);
        assert!(wide.path.ends_with('é'));

        let mut exact = call(&"x".repeat(MAX_USAGE_PATH));
        exact.truncate_path();
        assert_eq!(exact.path.len(), MAX_USAGE_PATH);
    }
}
