//! Edge hardening, end to end: exact bytes over a raw socket, and what the
//! origin received (the sample origin echoes `/api/echo` and reports every
//! request target in `x-origin-path`). One test per review finding.

#![allow(clippy::expect_used)]

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

/// Splits a raw response into (status, lower-case head, body).
fn parse(raw: &str) -> (u16, String, String) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {raw:?}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The headers the origin received, from `/api/echo`'s body.
fn echoed(body: &str) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["headers"].as_object().expect("headers").clone()
}

/// A raw GET of `target` with extra header lines, `Connection: close`.
fn raw_get(gate: &Gate, target: &str, lines: &[&str]) -> (u16, String, String) {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: test\r\n");
    for l in lines {
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    parse(&gate.raw(req.as_bytes()))
}

fn gate(profile: &str) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(profile, &origin.addr));
    (origin, gate)
}

/// Finding 1: `X_Tollgate_Account` and friends, with or without a key, never
/// reach the origin; neither do credentials or the untrusted client-IP header.
#[test]
fn spoofed_identity_headers_never_reach_the_origin() {
    let (_o, gate) = gate("mobiusquant.toml");
    gate.create_account("alice", "token");
    let (_, token) = gate.create_key("alice", "k");
    let spoofs = [
        "X_Tollgate_Account: victim",
        "X_TOLLGATE_PLAN: enterprise",
        "x-tollgate-account: victim",
        "X-Tollgate_Key_Id: 00000000-0000-0000-0000-000000000000",
        "X_Api_Key: mq_stolen",
        "CF_Connecting_IP: 198.51.100.7",
        "CF-Connecting-IP: 198.51.100.7",
        "X-Original-URL: /api/admin",
        "X_Rewrite_URL: /api/admin",
        "X-HTTP-Method-Override: DELETE",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Proto: gopher",
    ];
    let auth = format!("Authorization: Bearer {token}");
    for with_key in [false, true] {
        let mut lines: Vec<&str> = spoofs.to_vec();
        if with_key {
            lines.push(&auth);
        }
        let (status, _, body) = raw_get(&gate, "/api/echo", &lines);
        assert_eq!(status, 200, "{body}");
        let h = echoed(&body);
        let mut own = vec!["x-tollgate-client-ip", "x-tollgate-plan"];
        if with_key {
            own.extend([
                "x-tollgate-account",
                "x-tollgate-key-id",
                "x-tollgate-key-prefix",
            ]);
        }
        for name in h.keys() {
            let dashed = name.replace('_', "-");
            assert!(
                !dashed.starts_with("x-tollgate-") || own.contains(&name.as_str()),
                "{name} reached the origin"
            );
            for gone in [
                "authorization",
                "x-api-key",
                "cf-connecting-ip",
                "x-original-url",
                "x-rewrite-url",
                "x-http-method-override",
                "x-forwarded-host",
            ] {
                assert_ne!(dashed, gone, "{name} reached the origin");
            }
        }
        // tollgate's own, not the client's `gopher`.
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_ne!(
            h.get("x-tollgate-key-id").and_then(Value::as_str),
            Some("00000000-0000-0000-0000-000000000000")
        );
        let plan = if with_key { "token" } else { "anonymous" };
        assert_eq!(h["x-tollgate-plan"], plan);
        assert_eq!(h["x-tollgate-client-ip"], "127.0.0.1");
        if with_key {
            assert_eq!(h["x-tollgate-account"], "alice");
        } else {
            assert!(!h.contains_key("x-tollgate-account"));
        }
    }
}

/// Finding 7: forwarding headers from an untrusted peer are replaced by the
/// address tollgate metered; a trusted proxy's are appended to.
#[test]
fn forwarding_headers_are_vouched_for() {
    let claims = [
        "X-Forwarded-For: 203.0.113.9",
        "X_Forwarded_For: 203.0.113.10",
        "X-Real-IP: 203.0.113.9",
        "Forwarded: for=203.0.113.9",
        "True-Client-IP: 203.0.113.9",
        "CF-Connecting-IP: 203.0.113.9",
        "CF_Connecting_IP: 203.0.113.11",
    ];
    let (_o, gate) = gate("mobiusquant.toml");
    let (status, _, body) = raw_get(&gate, "/api/echo", &claims);
    assert_eq!(status, 200, "{body}");
    let h = echoed(&body);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-tollgate-client-ip"], "127.0.0.1");
    for gone in [
        "x-real-ip",
        "forwarded",
        "true-client-ip",
        "cf-connecting-ip",
    ] {
        assert!(!h.contains_key(gone), "{gone} from an untrusted peer");
    }

    let origin = start_origin();
    let trusted = start_gate(GateOpts::new("mobiusquant.toml", &origin.addr).trust_loopback());
    let (status, _, body) = raw_get(&trusted, "/api/echo", &claims);
    assert_eq!(status, 200, "{body}");
    let h = echoed(&body);
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["forwarded"], "for=203.0.113.9, for=127.0.0.1");
    assert_eq!(h["x-real-ip"], "203.0.113.9");
    assert_eq!(h["true-client-ip"], "203.0.113.9");
    assert_eq!(h["cf-connecting-ip"], "203.0.113.9");
    assert_eq!(h["x-tollgate-client-ip"], "203.0.113.9");
    assert!(h.keys().all(|k| !k.contains('_')), "{h:?}");
}

/// Finding 2: spellings that a Java or IIS origin reads as the dearer, plan-
/// restricted route are refused, never forwarded on the cheap catch-all; an
/// encoded reserved character stays encoded on the way upstream.
#[test]
fn path_spellings_cannot_reach_a_cheaper_route() {
    let (_o, gate) = gate("quantconomy.toml");
    gate.create_account("free-co", "free");
    let (_, token) = gate.create_key("free-co", "k");
    let auth = format!("Authorization: Bearer {token}");
    let (status, _, body) = raw_get(&gate, "/api/v1/sec/filings", &[&auth]);
    assert_eq!(status, 403, "{body}");
    for target in [
        "/api/v1/sec;x/filings",
        "/api/v1/sec%3Bx/filings",
        "/api/v1/SEC/filings",
        "/api/v1/sec./filings",
        "/api/v1/sec%2e/filings",
        "/api/v1/sec%20/filings",
        "/Api/V1/Sec/Filings",
        "/api/v1/Account/api-keys",
        "/;x/api/v1/sec/filings",
        "/api/v1/;x/sec/filings",
        "/api/v1/%20/sec/filings",
        "/api/v1/(S(abc))/sec/filings",
        "/api/v1/%C5%BFec/filings",
    ] {
        let (status, head, body) = raw_get(&gate, target, &[&auth]);
        assert_eq!(status, 400, "{target}: {body}");
        assert!(
            !head.contains("x-origin-server"),
            "{target} reached the origin"
        );
        assert!(body.contains("ambiguous path"), "{target}: {body}");
    }
    // Twice-encoded dots are refused: a front that decodes once more reads `..`.
    let (status, head, body) = raw_get(&gate, "/api/v1/x/%252e%252e/sec/filings", &[&auth]);
    assert_eq!(status, 400, "{body}");
    assert!(!head.contains("x-origin-server"));
    // Reserved characters the client encoded stay encoded; unreserved ones are decoded.
    for (target, upstream) in [
        ("/api/v1/markets%3Bx", "/api/v1/markets%3Bx"),
        ("/api/v1/a%2Bb%3Fc%3Dd", "/api/v1/a%2Bb%3Fc%3Dd"),
        ("/api/v1/%6Darkets", "/api/v1/markets"),
    ] {
        let (status, head, body) = raw_get(&gate, target, &[&auth]);
        assert!(
            head.contains("x-origin-server"),
            "{target}: {status} {body}"
        );
        assert!(
            head.contains(&format!("x-origin-path: {}", upstream.to_ascii_lowercase())),
            "{target}: {head}"
        );
    }
}

/// Finding 3: a flood of unknown keys from one address slows down only the
/// unknown keys; a valid key from the same address still passes.
fn bad_keys_never_lock_out_a_valid_key(backend: Backend) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("mobiusquant.toml", &origin.addr).backend(backend));
    gate.create_account("alice", "token");
    let (_, token) = gate.create_key("alice", "k");
    let unknown = format!("mq_{}", "A".repeat(43));
    let unknown = unknown.as_str();
    let mut statuses = Vec::new();
    for _ in 0..70 {
        statuses.push(gate.get_with("/api/markets", unknown).status);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().expect("some"), 429, "{statuses:?}");
    let r = gate.get_with("/api/markets", unknown);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    let ok = gate.get_with("/api/markets", &token);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.reached_origin());
}

/// Finding 5: on a plan with a result cap and no pagination, a body could
/// carry `limit` and `cursor` past the query policy: it is refused.
fn capped_plans_take_no_body(backend: Backend) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("quantconomy.toml", &origin.addr).backend(backend));
    let demo = [("authorization", "Bearer mtk_demo")];
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", "limit=50&cursor=abc"),
        ("application/json", r#"{"limit": 50, "cursor": "abc"}"#),
    ] {
        let r = gate.send(
            "POST",
            "/api/v1/entries",
            &[demo[0], ("content-type", ctype)],
            Some(body),
        );
        assert_eq!(r.status, 400, "{ctype}: {}", r.body);
        assert!(!r.reached_origin());
        assert!(
            r.body.contains("request bodies are not accepted"),
            "{}",
            r.body
        );
    }
    // Matrix parameters (Spring, JAX-RS) would carry them in the path.
    let r = gate.get("/api/v1/entries;limit=50;cursor=abc", &demo);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.reached_origin());
    let r = gate.get("/api/v1/entries", &demo);
    assert_eq!(r.status, 200, "{}", r.body);
    // A plan without query policies may send bodies.
    gate.create_account("pro", "professional");
    let (_, token) = gate.create_key("pro", "k");
    let r = gate.send(
        "POST",
        "/api/echo",
        &[("authorization", &format!("Bearer {token}"))],
        Some(r#"{"limit": 50}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.reached_origin());
}

on_both_stores!(
    bad_keys_never_lock_out_a_valid_key,
    capped_plans_take_no_body
);

/// Finding 6: an upgrade is refused unless the route opts in; an opted-in
/// upgrade is admitted and charged as one call; `h2c` is ignored.
#[test]
fn upgrades_pass_only_where_a_route_opts_in() {
    let (_o, gate) = gate("mobiusquant.toml");
    let ws = [
        "Upgrade: websocket",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];
    let mut req = String::from("GET /api/echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n");
    for l in ws {
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let (status, head, body) = parse(&gate.raw(req.as_bytes()));
    assert_eq!(status, 400, "{body}");
    assert!(!head.contains("x-origin-server"));
    assert!(body.contains("upgrades"), "{body}");

    let (status, _, body) = raw_get(
        &gate,
        "/api/echo",
        &["Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA"],
    );
    assert_eq!(status, 200, "{body}");
    let h = echoed(&body);
    assert!(
        !h.contains_key("upgrade") && !h.contains_key("http2-settings"),
        "{h:?}"
    );

    // A profile with `upgrade = true` on its metered catch-all route; its
    // credits are exact, so the charge is seen without any timing.
    let text = std::fs::read_to_string(root().join("conf/quantconomy.toml")).expect("profile");
    let marker = "paths = [\"/*\"]\naccess = \"key\"\n";
    let opted = text.replacen(marker, &format!("{marker}upgrade = true\n"), 1);
    assert_ne!(opted, text, "the profile's catch-all route moved");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("upgrade.toml");
    std::fs::write(&path, opted).expect("write profile");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(path.to_str().expect("utf-8"), &origin.addr));
    gate.create_account("free-co", "free");
    let (_, token) = gate.create_key("free-co", "k");
    let credits = |head: &str| -> u64 {
        head.lines()
            .find_map(|l| l.strip_prefix("x-credits-remaining: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no credits header: {head}"))
    };
    let auth = format!("Authorization: Bearer {token}");
    let (status, head, _) = raw_get(&gate, "/api/echo", &[&auth]);
    assert_eq!(status, 200);
    let before = credits(&head);
    let upgrade = req.replace("Host: t\r\n", &format!("Host: t\r\n{auth}\r\n"));
    let (status, head, body) = parse(&gate.raw(upgrade.as_bytes()));
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-origin-server"));
    assert_eq!(echoed(&body)["upgrade"], "websocket");
    assert_eq!(credits(&head), before - 1, "charged as one call: {head}");
}

/// Finding 9: `get` is not `GET`: refused before routing, never forwarded.
#[test]
fn lower_case_methods_are_refused() {
    let (_o, gate) = gate("quantconomy.toml");
    for m in ["get", "Get", "post"] {
        let raw = gate.raw(
            format!("{m} /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let (status, head, body) = parse(&raw);
        assert_eq!(status, 400, "{m}: {body}");
        assert!(!head.contains("x-origin-server"));
        assert!(body.contains("case-sensitive"), "{body}");
    }
    let (status, _, _) = raw_get(&gate, "/health", &[]);
    assert_eq!(status, 200);
}

/// Finding 9: `RUST_LOG=debug` (or `trace`) never writes a caller's credential to the log.
#[test]
fn trace_logs_never_show_a_credential() {
    // At trace level Pingora logs whole request headers and the admin API's
    // response bodies (with a new key's plaintext); its crates are held at info.
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("mobiusquant.toml", &origin.addr).env("RUST_LOG", "trace"));
    gate.create_account("alice", "token");
    let (_, token) = gate.create_key("alice", "k");
    assert_eq!(gate.get_with("/api/markets", &token).status, 200);
    // Built at run time so no key-shaped literal sits in the source.
    let secret = format!("mq_{}{}", "notarealkeybutasecretanyway", "0".repeat(16));
    let secret = secret.as_str();
    assert_eq!(gate.get_with("/api/markets", secret).status, 401);
    assert_eq!(
        gate.get("/api/markets", &[("x-api-key", "apikeysecretvalue123")])
            .status,
        200
    );
    let log = gate.log_after_a_refused_credential();
    assert!(log.contains("DEBUG"), "debug logging is on");
    assert!(!log.contains(&token), "the key is in the log");
    assert!(!log.contains(ADMIN_TOKEN), "the admin token is in the log");
    assert!(!log.contains(secret), "the bad key is in the log");
    assert!(
        !log.contains("apikeysecretvalue123"),
        "x-api-key is in the log"
    );
}
