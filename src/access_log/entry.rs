//! One access-log line: who called, what for, what came of it, as a JSON
//! object with every field present (`null` when absent). Never a
//! credential: the entry has no field for one, and the caller is named by
//! account, key id and key prefix only.

use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// Longest path logged, in bytes.
pub const MAX_PATH: usize = 256;

/// Longest key prefix logged, in characters.
pub const MAX_KEY_PREFIX: usize = 12;

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` characters.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Who called and what it cost; absent values are `null`.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Party<'a> {
    pub account: Option<&'a str>,
    pub key_id: Option<uuid::Uuid>,
    /// At most [`MAX_KEY_PREFIX`] characters in the line.
    pub key_prefix: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// Credits charged, for an admitted call.
    pub cost: Option<u64>,
    /// The balance sent in `X-Credits-Remaining`.
    pub credits_remaining: Option<i64>,
    /// Response body bytes sent to the client.
    pub bytes_sent: Option<usize>,
}

/// One request, as logged. Absent values are `null`.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When the request started: RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    /// The route's name, or the label of tollgate's own endpoint.
    pub route: Option<&'a str>,
    /// The canonical path (never the query), at most [`MAX_PATH`] bytes.
    pub path: Option<&'a str>,
    /// `None`: no response was written (the client went away).
    pub status: Option<u16>,
    /// `public`, `admitted`, `managed`, `preflight`, `rejected` or `pending`.
    pub decision: &'static str,
    /// The refusal's kind, for a rejected request (`rate_limited`, …).
    pub reason: Option<&'static str>,
    /// Who called, and what it cost.
    #[serde(flatten)]
    pub party: Party<'a>,
    pub duration_ms: f64,
    /// Time to the origin's response header, for a forwarded request.
    pub upstream_ms: Option<f64>,
}

/// What an [`Entry`] is made from, before cutting and formatting.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: Option<&'a str>,
    pub path: Option<&'a str>,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub party: Party<'a>,
    pub duration: Duration,
    pub upstream: Option<Duration>,
}

impl<'a> Entry<'a> {
    /// The entry for `f`: the path and key prefix cut, times in milliseconds.
    pub fn new(f: Fields<'a>) -> Self {
        let started = f.started.unwrap_or_else(chrono::Utc::now);
        Self {
            ts: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id: f.request_id,
            method: f.method,
            route: f.route,
            path: f.path.map(|p| truncate_bytes(p, MAX_PATH)),
            status: (f.status != 0).then_some(f.status),
            decision: f.decision,
            reason: f.reason,
            party: Party {
                key_prefix: f
                    .party
                    .key_prefix
                    .map(|p| truncate_chars(p, MAX_KEY_PREFIX)),
                ..f.party
            },
            duration_ms: millis(f.duration),
            upstream_ms: f.upstream.map(millis),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entry(f: Fields<'_>) -> Value {
        serde_json::to_value(Entry::new(f)).expect("json")
    }

    #[test]
    fn every_field_is_present_and_absent_ones_are_null() {
        let v = entry(Fields {
            request_id: "r1",
            method: "GET",
            decision: "pending",
            ..Fields::default()
        });
        let obj = v.as_object().expect("object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        for k in [
            "ts",
            "request_id",
            "method",
            "route",
            "path",
            "status",
            "decision",
            "reason",
            "account",
            "key_id",
            "key_prefix",
            "plan",
            "client_ip",
            "cost",
            "credits_remaining",
            "bytes_sent",
            "duration_ms",
            "upstream_ms",
        ] {
            assert!(keys.contains(&k), "{k} missing from {v}");
        }
        assert_eq!(obj.len(), 18);
        for k in [
            "route",
            "path",
            "status",
            "account",
            "key_id",
            "cost",
            "upstream_ms",
        ] {
            assert!(v[k].is_null(), "{k}: {v}");
        }
    }

    #[test]
    fn values_are_formatted_and_cut() {
        let started = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678912Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let long = format!("/api/{}", "é".repeat(200));
        let id = uuid::Uuid::from_u128(7);
        let v = entry(Fields {
            started: Some(started),
            request_id: "abc",
            method: "POST",
            route: Some("api"),
            path: Some(&long),
            status: 402,
            decision: "rejected",
            reason: Some("insufficient_credits"),
            party: Party {
                account: Some("acme"),
                key_id: Some(id),
                key_prefix: Some("tg_abcdefghijklmnop"),
                plan: Some("pro"),
                client_ip: Some("2001:db8::1".parse().expect("ip")),
                cost: None,
                credits_remaining: Some(0),
                bytes_sent: Some(120),
            },
            duration: Duration::from_micros(1234),
            upstream: Some(Duration::from_nanos(500_400)),
        });
        assert_eq!(v["ts"], "2025-01-02T03:04:05.678Z");
        assert_eq!(v["status"], 402);
        assert_eq!(v["reason"], "insufficient_credits");
        assert_eq!(v["key_id"], id.to_string());
        assert_eq!(v["key_prefix"], "tg_abcdefghi");
        assert_eq!(v["client_ip"], "2001:db8::1");
        assert_eq!(v["credits_remaining"], 0);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["upstream_ms"], 0.5);
        let path = v["path"].as_str().expect("path");
        assert!(
            path.len() <= MAX_PATH && path.len() >= MAX_PATH - 1,
            "{}",
            path.len()
        );
        assert!(long.starts_with(path));
    }

    #[test]
    fn cutting_respects_characters() {
        assert_eq!(truncate_bytes("héllo", 2), "h");
        assert_eq!(truncate_bytes("héllo", 3), "hé");
        assert_eq!(truncate_bytes("abc", 10), "abc");
        assert_eq!(truncate_chars("ééé", 2), "éé");
        assert_eq!(truncate_chars("ab", 12), "ab");
    }
}
