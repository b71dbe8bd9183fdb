//! The access log and request ids, end to end: a real tollgate writing its
//! access log to a file, one JSON line per request with the fields the
//! operations issue lists; the request id a client sent (when well-formed)
//! or tollgate's own, on the response, at the origin and in the log; no key
//! ever in the access log or the process log; sampling that leaves out
//! admitted calls but never refusals.

#![allow(clippy::expect_used)]

#[macro_use]
mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a line may take to reach the file (the writer flushes every 50 ms).
const LOGGED: Duration = Duration::from_secs(10);

/// The access log's lines so far, parsed.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The line of the request with this id, once it is written.
fn line_of(path: &Path, request_id: &str) -> Value {
    eventually(LOGGED, || {
        lines(path)
            .into_iter()
            .find(|l| l["request_id"] == request_id)
    })
}

/// A gateway on `profile` logging to `log`, with a route to a port nothing listens on.
fn gate(profile: &str, origin: &Origin, log: &Path) -> Gate {
    let down = format!("127.0.0.1:{}", free_port());
    start_gate(
        GateOpts::new(profile, &origin.addr)
            .env("TOLLGATE_ACCESS_LOG", &log.display().to_string())
            .env("TOLLGATE_DOWN_ORIGIN", &down),
    )
}

/// The headers the origin received, from `/api/echo`'s body.
fn echoed(r: &Resp) -> serde_json::Map<String, Value> {
    r.json()["headers"].as_object().expect("headers").clone()
}

/// The id a response carries, checked to be a UUID v4 when tollgate made it.
fn generated_id(r: &Resp) -> String {
    let id = r.header("x-request-id").expect("x-request-id").to_string();
    let uuid = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
    assert_eq!(uuid.get_version_num(), 4, "{id}");
    id
}

/// Checks the fields every line has, whatever the request.
fn common_fields(l: &Value, method: &str, path: &str, status: u16) {
    assert_eq!(l["method"], method, "{l}");
    assert_eq!(l["path"], path, "{l}");
    assert_eq!(l["status"], status, "{l}");
    assert_eq!(l["client_ip"], "127.0.0.1", "{l}");
    let ts = l["ts"].as_str().expect("ts");
    let parsed = chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
    assert!(
        ts.ends_with('Z') && ts.len() == "2025-01-01T00:00:00.000Z".len(),
        "{ts}"
    );
    let age = chrono::Utc::now().signed_duration_since(parsed);
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::minutes(5),
        "{ts}"
    );
    assert!(
        l["duration_ms"].as_f64().expect("duration_ms") >= 0.0,
        "{l}"
    );
    assert!(l["bytes_sent"].as_u64().is_some(), "{l}");
}

/// A refusal's line: decided by tollgate, never forwarded.
fn refused(l: &Value, reason: &str) {
    assert_eq!(l["decision"], "rejected", "{l}");
    assert_eq!(l["reason"], reason, "{l}");
    assert!(l["cost"].is_null(), "{l}");
}

#[test]
fn every_answer_is_logged_with_its_fields_and_its_request_id() {
    let origin = start_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let gate = gate(&fixture("access_log.toml"), &origin, &log);
    gate.create_account("acme", "metered");
    gate.create_account("tiny", "tight");
    let (acme_id, acme) = gate.create_key("acme", "k");
    let (tiny_id, tiny) = gate.create_key("tiny", "k");
    let auth = |token: &str| format!("Bearer {token}");

    // 200, admitted, with a well-formed id of the client's: echoed, and the
    // origin got the same one.
    let r = gate.get(
        "/api/echo",
        &[
            ("authorization", &auth(&acme)),
            ("x-request-id", "client-req-42"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("client-req-42"));
    assert_eq!(echoed(&r)["x-request-id"], "client-req-42");
    let l = line_of(&log, "client-req-42");
    common_fields(&l, "GET", "/api/echo", 200);
    assert_eq!(l["decision"], "admitted", "{l}");
    assert!(l["reason"].is_null(), "{l}");
    assert_eq!(l["route"], "api");
    assert_eq!(l["account"], "acme");
    assert_eq!(l["key_id"], acme_id.as_str());
    assert_eq!(l["key_prefix"], &acme[..12]);
    assert_eq!(l["plan"], "metered");
    assert_eq!(l["cost"], 1);
    assert_eq!(l["credits_remaining"], 1);
    assert_eq!(r.header("x-credits-remaining"), Some("1"));
    assert_eq!(l["bytes_sent"], r.body.len());
    assert!(
        l["upstream_ms"].as_f64().expect("upstream_ms") >= 0.0,
        "{l}"
    );

    // A malformed id (a space, too long, non-ASCII) is replaced by tollgate's
    // own, which the origin gets instead of the client's.
    for bad in ["has space", &"x".repeat(129)] {
        let r = gate.get("/api/health", &[("x-request-id", bad)]);
        assert_eq!(r.status, 200, "{}", r.body);
        let id = generated_id(&r);
        let l = line_of(&log, &id);
        assert_eq!(l["decision"], "public", "{l}");
        assert_eq!(l["route"], "health", "{l}");
        assert!(l["account"].is_null() && l["key_prefix"].is_null(), "{l}");
    }
    let raw = gate.raw(b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-Request-Id: caf\xc3\xa9\r\nConnection: close\r\n\r\n");
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{raw}");
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("x-request-id")
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(line_of(&log, &id)["decision"], "public");
    let r = gate.get(
        "/api/echo",
        &[
            ("authorization", &auth(&acme)),
            ("x-request-id", "two words"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = generated_id(&r);
    assert_eq!(echoed(&r)["x-request-id"], id.as_str());
    assert_eq!(line_of(&log, &id)["credits_remaining"], 0);

    // 402: the two credits are spent.
    let r = gate.get(
        "/api/echo",
        &[("authorization", &auth(&acme)), ("x-request-id", "req-402")],
    );
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-402"));
    let l = line_of(&log, "req-402");
    common_fields(&l, "GET", "/api/echo", 402);
    refused(&l, "insufficient_credits");
    assert_eq!(l["route"], "api");
    assert_eq!(l["account"], "acme");
    assert_eq!(l["key_id"], acme_id.as_str());
    assert_eq!(l["key_prefix"], &acme[..12]);
    assert_eq!(l["plan"], "metered");
    assert_eq!(l["credits_remaining"], 0);
    assert!(l["upstream_ms"].is_null(), "{l}");

    // 429: a bucket of two.
    for _ in 0..2 {
        assert_eq!(gate.get_with("/api/markets", &tiny).status, 200);
    }
    let r = gate.get(
        "/api/markets",
        &[("authorization", &auth(&tiny)), ("x-request-id", "req-429")],
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-429"));
    let l = line_of(&log, "req-429");
    common_fields(&l, "GET", "/api/markets", 429);
    refused(&l, "rate_limited");
    assert_eq!(l["route"], "api");
    assert_eq!(l["account"], "tiny");
    assert_eq!(l["key_id"], tiny_id.as_str());
    assert_eq!(l["key_prefix"], &tiny[..12]);
    assert_eq!(l["plan"], "tight");
    assert!(l["credits_remaining"].is_null(), "{l}");

    // 401: a key nobody issued; tollgate's own id on the answer.
    let planted = format!("tg_{}", "PlantedKeyNeverIssued0123456789abcdefghijk");
    let r = gate.get_with("/api/echo?x=1", &planted);
    assert_eq!(r.status, 401, "{}", r.body);
    let id = generated_id(&r);
    let l = line_of(&log, &id);
    common_fields(&l, "GET", "/api/echo", 401);
    refused(&l, "unauthorized");
    assert_eq!(l["route"], "api");
    for k in [
        "account",
        "key_id",
        "key_prefix",
        "plan",
        "credits_remaining",
    ] {
        assert!(l[k].is_null(), "{k}: {l}");
    }

    // 502: the origin is down.
    let r = gate.get("/down/quotes", &[("x-request-id", "req-502")]);
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-502"));
    let l = line_of(&log, "req-502");
    common_fields(&l, "GET", "/down/quotes", 502);
    refused(&l, "bad_gateway");
    assert_eq!(l["route"], "down");
    assert!(l["account"].is_null(), "{l}");

    // 404: no route, no endpoint.
    let r = gate.get("/nowhere", &[("x-request-id", "req-404")]);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-404"));
    let l = line_of(&log, "req-404");
    refused(&l, "not_found");
    assert!(l["route"].is_null(), "{l}");

    // No key, issued or planted, in the access log or the process log.
    let text = std::fs::read_to_string(&log).expect("access log");
    let process_log = gate.log();
    for secret in [&acme, &tiny, &planted] {
        assert_eq!(
            text.matches(secret.as_str()).count(),
            0,
            "a key is in the access log"
        );
        assert_eq!(
            process_log.matches(secret.as_str()).count(),
            0,
            "a key is in the process log"
        );
    }
    assert!(
        !text.contains(ADMIN_TOKEN),
        "the admin token is in the access log"
    );
    assert!(!text.to_ascii_lowercase().contains("bearer"), "{text}");
    // Every line is one JSON object with every field.
    for l in lines(&log) {
        assert_eq!(l.as_object().expect("object").len(), 18, "{l}");
    }
    assert!(gate
        .metrics()
        .contains("tollgate_access_log_dropped_total 0"));
}

/// The fixture with `sample` replaced, written next to the log.
fn sampled_profile(dir: &Path, sample: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture("access_log.toml")).expect("fixture");
    assert!(text.contains("sample = 1.0"));
    let path = dir.join("sampled.toml");
    std::fs::write(
        &path,
        text.replace("sample = 1.0", &format!("sample = {sample}")),
    )
    .expect("profile");
    path
}

#[test]
fn sampling_leaves_out_admitted_calls_but_never_refusals() {
    let origin = start_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let profile = sampled_profile(dir.path(), "0.0");
    let gate = gate(&profile.display().to_string(), &origin, &log);
    gate.create_account("tiny", "tight");
    let (_, tiny) = gate.create_key("tiny", "k");
    // Admitted and public calls: not logged.
    for (i, path) in ["/api/markets", "/api/markets", "/api/health"]
        .iter()
        .enumerate()
    {
        let id = format!("sampled-out-{i}");
        let r = gate.get(
            path,
            &[
                ("authorization", &format!("Bearer {tiny}")),
                ("x-request-id", &id),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    }
    // Refusals: logged whatever the rate.
    let r = gate.get(
        "/api/markets",
        &[
            ("authorization", &format!("Bearer {tiny}")),
            ("x-request-id", "kept-429"),
        ],
    );
    assert_eq!(r.status, 429);
    let r = gate.get_with("/api/markets", "tg_notakey");
    assert_eq!(r.status, 401);
    let unauthorized = generated_id(&r);
    let r = gate.get("/down/x", &[("x-request-id", "kept-502")]);
    assert_eq!(r.status, 502);
    for id in ["kept-429", unauthorized.as_str(), "kept-502"] {
        assert_eq!(line_of(&log, id)["decision"], "rejected");
    }
    // Every request was answered before the last refusal was sent, and each
    // request's line is queued before its connection takes the next one.
    let all = lines(&log);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|l| l["decision"] == "rejected"), "{all:?}");
}

#[test]
fn no_access_log_without_a_path() {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&fixture("access_log.toml"), &origin.addr));
    // Request ids do not need the access log.
    let r = gate.get("/api/health", &[("x-request-id", "plain")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("plain"));
    let r = gate.get("/api/health", &[]);
    generated_id(&r);
    assert_eq!(
        gate.get("/nowhere", &[("x-request-id", "n")])
            .header("x-request-id"),
        Some("n")
    );
}
