//! `server.log_format = "json"` (here through `TOLLGATE_LOG_FORMAT`, which
//! every shipped profile reads): every line tollgate writes to stderr is one
//! JSON object with `ts`, `level`, `target` and `msg`, and even at
//! `RUST_LOG=trace` no credential is in it.
#![allow(clippy::expect_used)]

mod common;

use chrono::DateTime;
use common::*;
use serde_json::Value;

/// Checks one log line; returns its level.
fn record(line: &str) -> String {
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    let field = |name: &str| {
        v[name]
            .as_str()
            .unwrap_or_else(|| panic!("no string {name:?} in {line}"))
            .to_string()
    };
    let ts = field("ts");
    DateTime::parse_from_rfc3339(&ts).unwrap_or_else(|e| panic!("ts {ts:?}: {e}"));
    // UTC, to the millisecond: 2026-01-02T03:04:05.678Z
    assert!(ts.len() == 24 && ts.ends_with('Z'), "ts {ts:?}");
    assert!(!field("target").is_empty(), "{line}");
    field("msg");
    let level = field("level");
    assert!(
        ["error", "warn", "info", "debug", "trace"].contains(&level.as_str()),
        "{line}"
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(4), "{line}");
    level
}

#[test]
fn json_lines_at_trace_level_without_a_credential() {
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new("mobiusquant.toml", &origin.addr)
            .env("RUST_LOG", "trace")
            .env("TOLLGATE_LOG_FORMAT", "json"),
    );
    gate.create_account("alice", "token");
    let (_, token) = gate.create_key("alice", "k");
    for _ in 0..3 {
        assert_eq!(gate.get_with("/api/markets", &token).status, 200);
    }
    // Built at run time so no key-shaped literal sits in the source.
    let planted = format!("mq_{}{}", "plantedfullkeynotissued", "7".repeat(20));
    assert_eq!(gate.get_with("/api/markets", &planted).status, 401);
    // Whether or not the profile reads this header, it must not be logged.
    gate.get("/api/markets", &[("x-api-key", planted.as_str())]);
    let log = gate.log_after_a_refused_credential();
    let levels: Vec<String> = log.lines().map(record).collect();
    assert!(levels.iter().any(|l| l == "debug"), "debug logging is on");
    assert_eq!(log.matches(planted.as_str()).count(), 0, "the planted key");
    assert_eq!(log.matches(token.as_str()).count(), 0, "the issued key");
    assert_eq!(log.matches(ADMIN_TOKEN).count(), 0, "the admin token");
}
