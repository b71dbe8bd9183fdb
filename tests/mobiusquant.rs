//! End to end: every behaviour of the MobiusQuant seed (000) from
//! `conf/mobiusquant.toml`, through real sockets.
#![allow(clippy::expect_used)]

#[macro_use]
mod common;

on_both_stores!(
    eleventh_anonymous_call_from_one_ip_gets_429_with_exact_retry_after,
    spoofed_client_ip_header_from_untrusted_peer_is_ignored,
    ipv6_callers_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4,
    exempt_paths_need_no_token_and_cost_nothing,
    token_gets_60_per_minute_with_full_minute_burst,
    invalid_expired_and_revoked_tokens_get_401_on_an_anonymous_route,
    malformed_credentials_get_401_and_never_reach_the_origin,
    encoded_path_tricks_never_reach_a_metered_route_as_a_public_one,
    eleventh_active_token_gets_the_documented_400,
    trial_tokens_last_seven_days_and_need_human_verification,
    usage_per_key_is_readable_through_the_admin_api_and_cli,
    operator_cli_manages_accounts_and_keys,
    admin_api_refuses_bad_tokens_and_bad_json,
    unreachable_origin_gets_a_json_502_that_says_to_retry,
    client_sent_identity_headers_are_replaced,
    metrics_count_requests_and_rejections,
    a_flood_of_invalid_keys_from_one_client_is_throttled,
);

use common::*;
use serde_json::json;
use std::time::Duration;

const PROFILE: &str = "mobiusquant.toml";

fn setup(b: Backend) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(PROFILE, &origin.addr).backend(b));
    (origin, gate)
}

fn setup_trusted(b: Backend) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(PROFILE, &origin.addr)
            .trust_loopback()
            .backend(b),
    );
    (origin, gate)
}

const UNAUTHORIZED: &str = "invalid, expired or revoked token";

fn assert_401(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json(), json!({"detail": UNAUTHORIZED}));
    assert!(
        !r.reached_origin(),
        "a refused request must not reach the origin"
    );
}

fn eleventh_anonymous_call_from_one_ip_gets_429_with_exact_retry_after(b: Backend) {
    let (_o, gate) = setup_trusted(b);
    let ip = [("cf-connecting-ip", "203.0.113.7")];
    let first = std::time::Instant::now();
    for i in 0..10 {
        let r = gate.get("/api/markets", &ip);
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
        assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(&*(9 - i).to_string())
        );
    }
    let r = gate.get("/api/markets", &ip);
    assert_eq!(r.status, 429);
    assert!(!r.reached_origin());
    // One token every 6 s: the next one is due 6 s after the first call,
    // rounded up to whole seconds (6 when the calls took under a second; the
    // clock here starts a little before the bucket's, so one more is possible).
    let due = 6 - first.elapsed().as_secs().min(5);
    let retry = r
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .expect("retry-after");
    assert!(
        retry == due || retry == due + 1,
        "Retry-After {retry}, due in {due}"
    );
    assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"anonymous\";q=10;w=60")
    );
    assert_eq!(
        r.header("ratelimit"),
        Some(&*format!("\"anonymous\";r=0;t={retry}"))
    );
    assert_eq!(
        r.json(),
        json!({"detail": "rate limit exceeded (10/min); consider batching requests."})
    );
    // Another client IP has its own bucket.
    let other = gate.get("/api/markets", &[("cf-connecting-ip", "203.0.113.8")]);
    assert_eq!(other.status, 200);
    // The origin is told who the anonymous caller is.
    let echo = gate.get("/api/echo", &[("cf-connecting-ip", "203.0.113.9")]);
    assert_eq!(
        echo.json()["headers"]["x-tollgate-client-ip"],
        "203.0.113.9"
    );
}

fn spoofed_client_ip_header_from_untrusted_peer_is_ignored(b: Backend) {
    let (_o, gate) = setup(b);
    for i in 0..10 {
        let spoof = format!("198.51.100.{i}");
        let r = gate.get("/api/markets", &[("cf-connecting-ip", &spoof)]);
        assert_eq!(r.status, 200, "call {i}");
    }
    let r = gate.get("/api/markets", &[("cf-connecting-ip", "198.51.100.200")]);
    assert_eq!(r.status, 429, "all calls count against the TCP peer");
    // The spoofed header does not reach the origin either; the address used does.
    let echo = gate.get(
        "/api/health/../echo",
        &[("cf-connecting-ip", "198.51.100.1")],
    );
    let echo = echo.json();
    assert!(echo["headers"].get("cf-connecting-ip").is_none(), "{echo}");
    let echo_ip = gate.get("/api/health", &[]);
    assert_eq!(echo_ip.status, 200);
}

fn ipv6_callers_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4(b: Backend) {
    let (_o, gate) = setup_trusted(b);
    for i in 0..10 {
        let ip = format!("2001:db8:1:2::{:x}", i + 1);
        assert_eq!(
            gate.get("/api/markets", &[("cf-connecting-ip", &ip)])
                .status,
            200
        );
    }
    let same64 = gate.get(
        "/api/markets",
        &[("cf-connecting-ip", "2001:db8:1:2:ffff::1")],
    );
    assert_eq!(same64.status, 429);
    let other64 = gate.get("/api/markets", &[("cf-connecting-ip", "2001:db8:1:3::1")]);
    assert_eq!(other64.status, 200);
    for _ in 0..10 {
        assert_eq!(
            gate.get("/api/markets", &[("cf-connecting-ip", "192.0.2.1")])
                .status,
            200
        );
    }
    let mapped = gate.get("/api/markets", &[("cf-connecting-ip", "::ffff:192.0.2.1")]);
    assert_eq!(mapped.status, 429, "::ffff:192.0.2.1 is 192.0.2.1");
}

fn exempt_paths_need_no_token_and_cost_nothing(b: Backend) {
    let (_o, gate) = setup(b);
    for _ in 0..3 {
        for path in [
            "/api/health",
            "/agents.md",
            "/docs",
            "/redoc",
            "/openapi.json",
        ] {
            let r = gate.get(path, &[]);
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            assert!(
                r.header("x-ratelimit-limit").is_none(),
                "{path} is not metered"
            );
            // A token, even a bad one, is not read on exempt paths.
            let r = gate.get_with(path, "garbage");
            assert_eq!(r.status, 200, "{path} with a bad token");
        }
    }
    let r = gate.get("/api/markets", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        Some("9"),
        "30 exempt calls took nothing"
    );
}

fn token_gets_60_per_minute_with_full_minute_burst(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "token");
    let (_, token) = gate.create_key("acme", "production-2026");
    assert!(token.starts_with("mq_") && token.len() == 46, "{token}");
    // A full minute's burst: 60 calls at once, then one more per second.
    let first = std::time::Instant::now();
    let mut admitted = 0u64;
    let r = loop {
        let r = gate.get_with("/api/klines?symbol=BTCUSDT&limit=5", &token);
        if r.status != 200 {
            break r;
        }
        assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
        admitted += 1;
        assert!(admitted <= 120, "never limited");
    };
    let refilled = first.elapsed().as_secs() + 1;
    assert!(
        admitted >= 60 && admitted <= 60 + refilled,
        "admitted {admitted}"
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        r.json(),
        json!({"detail": "rate limit exceeded (60/min); consider batching requests."})
    );
    // The anonymous bucket of the same IP is untouched.
    assert_eq!(
        gate.get("/api/markets", &[])
            .header("x-ratelimit-remaining"),
        Some("9")
    );
    // The origin sees the identity, not the credential.
    std::thread::sleep(Duration::from_millis(1100));
    let echo = gate.get_with("/api/echo", &token).json();
    assert_eq!(echo["headers"]["x-tollgate-account"], "acme");
    assert_eq!(echo["headers"]["x-tollgate-plan"], "token");
    assert!(echo["headers"].get("authorization").is_none());
}

fn invalid_expired_and_revoked_tokens_get_401_on_an_anonymous_route(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "token");
    // Unknown but well-formed.
    assert_401(&gate.get_with("/api/markets", &format!("mq_{}", "A".repeat(43))));
    // Wrong prefix, wrong length, wrong alphabet.
    assert_401(&gate.get_with("/api/markets", "mq_short"));
    assert_401(&gate.get_with("/api/markets", &format!("xx_{}", "A".repeat(43))));
    assert_401(&gate.get_with("/api/markets", &format!("mq_{}", "*".repeat(43))));
    // Expired.
    let exp = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "short", "expiresAt": exp})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let short = r.json()["token"].as_str().expect("token").to_string();
    assert_eq!(gate.get_with("/api/markets", &short).status, 200);
    std::thread::sleep(Duration::from_millis(1700));
    assert_401(&gate.get_with("/api/markets", &short));
    // Revoked: refused on the very next request.
    let (id, token) = gate.create_key("acme", "to-revoke");
    assert_eq!(gate.get_with("/api/markets", &token).status, 200);
    let r = gate.admin("DELETE", &format!("/v1/keys/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["isActive"], false);
    assert_401(&gate.get_with("/api/markets", &token));
    // None of these fell back to the anonymous bucket.
    assert_eq!(
        gate.get("/api/markets", &[])
            .header("x-ratelimit-remaining"),
        Some("9")
    );
}

fn malformed_credentials_get_401_and_never_reach_the_origin(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "token");
    let (_, token) = gate.create_key("acme", "k");
    let bearer = format!("Bearer {token}");
    for value in [
        "Basic dXNlcjpwYXNz".to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        token.clone(),
        format!("Bearer {token} extra"),
        format!("Bearer {}", "a".repeat(1000)),
    ] {
        assert_401(&gate.get("/api/markets", &[("authorization", &value)]));
    }
    // Scheme is case-insensitive.
    assert_eq!(
        gate.get(
            "/api/markets",
            &[("authorization", &format!("bEaReR {token}"))]
        )
        .status,
        200
    );
    // Duplicated header, even with the same valid value.
    let dup = format!(
        "GET /api/markets HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nAuthorization: {bearer}\r\n\r\n"
    );
    let raw = gate.raw(dup.as_bytes());
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(raw.contains(UNAUTHORIZED));
    // Non-UTF-8 bytes.
    let mut bad =
        b"GET /api/markets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mq_\xff\xfe\xfd\r\n\r\n"
            .to_vec();
    let raw = gate.raw(&bad);
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    bad.clear();
    // Oversized header section: 431 with the JSON body.
    let big = "x".repeat(20_000);
    let r = gate.get("/api/markets", &[("x-padding", &big)]);
    assert_eq!(r.status, 431);
    assert_eq!(r.json(), json!({"detail": "request headers too large"}));
    assert!(!r.reached_origin());
}

fn encoded_path_tricks_never_reach_a_metered_route_as_a_public_one(b: Backend) {
    let (_o, gate) = setup(b);
    // Dot segments resolve to the real route, which is metered, and the origin
    // receives the normalised path.
    let r = gate.get("/api/health/../echo", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("9"));
    assert_eq!(r.json()["path"], "/api/echo");
    let r = gate.get("/api/health/%2e%2e/echo", &[]);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("8"));
    assert_eq!(r.json()["path"], "/api/echo");
    let r = gate.get("/docs/..//api//echo", &[]);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("7"));
    assert_eq!(r.json()["path"], "/api/echo");
    // Ambiguous forms are refused, never guessed.
    for path in [
        "/api/health%2f..%2fmarkets",
        "/api/health%2F..%2Fmarkets",
        "/docs%5c..%5capi/markets",
        "/api/%zz",
        "/api/%00",
        "/%2e%2e/api/markets",
        "/docs/..;/api/markets",
        "/docs/..%20/api/markets",
        "/docs/.../api/markets",
    ] {
        let raw = gate.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert!(raw.starts_with("HTTP/1.1 400"), "{path}: {raw}");
        assert!(raw.contains("\"detail\""), "{path}: {raw}");
        assert!(
            !raw.to_ascii_lowercase().contains("x-origin-server"),
            "{path}"
        );
    }
    let raw = gate.raw(b"GET /api/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    // Only the documented exempt paths are exempt, not what lies below them.
    let r = gate.get("/docs/anything", &[]);
    assert_eq!(r.status, 404);
    // Unknown routes are 404 with the profile's body.
    let r = gate.get("/nope", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"detail": "no route for /nope"}));
    assert!(!r.reached_origin());
}

fn eleventh_active_token_gets_the_documented_400(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "token");
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(gate.create_key("acme", &format!("k{i}")).0);
    }
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "k10"})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"detail": "未吊销 token 已达上限 10,请先吊销旧的"})
    );
    let r = gate.admin("DELETE", &format!("/v1/keys/{}", ids[0]), None);
    assert_eq!(r.status, 200);
    gate.create_key("acme", "k10");
    let shown = gate.admin("GET", "/v1/accounts/acme", None).json();
    assert_eq!(shown["activeKeys"], 10);
    assert_eq!(shown["maxActiveKeys"], 10);
    // Listing never shows a secret, only the 12-character prefix; the revoked
    // token shows only when asked for.
    let list = gate
        .admin("GET", "/v1/keys?account=acme&include=revoked", None)
        .json();
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 11);
    for k in keys {
        assert!(k.get("token").is_none());
        assert_eq!(k["keyPrefix"].as_str().map(str::len), Some(12));
    }
    assert_eq!(keys.iter().filter(|k| k["isActive"] == false).count(), 1);
}

fn trial_tokens_last_seven_days_and_need_human_verification(b: Backend) {
    let stub = start_siteverify("turnstile-secret", "human-ok");
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(PROFILE, &origin.addr)
            .backend(b)
            .env("TOLLGATE_TURNSTILE_URL", &stub.url)
            .env("TOLLGATE_TURNSTILE_SECRET", "turnstile-secret"),
    );
    let path = "/api/auth/trial-token";
    // A missing required field: 422 with the validation array (seed 000's error table).
    let r = gate.send("POST", path, &[], Some(r#"{"name": "eval"}"#));
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["body", "captchaToken"])
    );
    let r = gate.send("POST", path, &[], Some(r#"{"captchaToken": "bot"}"#));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json(), json!({"detail": "human verification failed"}));
    let r = gate.send(
        "POST",
        path,
        &[],
        Some(r#"{"name": "eval", "captchaToken": "human-ok"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    let token = v["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("mq_") && token.len() == 46);
    assert_eq!(v["name"], "eval");
    assert_eq!(v["kind"], "trial");
    let expires = chrono::DateTime::parse_from_rfc3339(v["expiresAt"].as_str().expect("exp"))
        .expect("rfc3339");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "expires in {days} h");
    // The siteverify call carried the secret, the response and the client IP.
    let seen = stub.seen.lock().expect("lock").join("\n");
    assert!(seen.contains("secret=turnstile-secret") && seen.contains("remoteip=127.0.0.1"));
    // Same 60/min as a permanent token.
    let r = gate.get_with("/api/markets", &token);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
    // Bad bodies: 422.
    let r = gate.send("POST", path, &[], Some("{not json"));
    assert_eq!(r.status, 422);
    let r = gate.send(
        "POST",
        path,
        &[],
        Some(r#"{"captchaToken": "human-ok", "admin": true}"#),
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("admin"));
    let r = gate.get(path, &[]);
    assert_eq!(r.status, 405);
}

fn usage_per_key_is_readable_through_the_admin_api_and_cli(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "token");
    let (id, token) = gate.create_key("acme", "k");
    gate.get_with("/api/markets", &token);
    gate.get_with("/api/klines?limit=3", &token);
    gate.get_with("/api/markets/nowhere/symbols", &token);
    let usage = eventually(Duration::from_secs(3), || {
        let u = gate
            .admin("GET", &format!("/v1/keys/{id}/usage"), None)
            .json();
        (u["recentCalls"].as_array().map(Vec::len) == Some(3)).then_some(u)
    });
    assert!(usage["lastUsedAt"].is_string());
    let calls = usage["recentCalls"].as_array().expect("calls");
    assert_eq!(calls[0]["path"], "/api/markets/nowhere/symbols");
    assert_eq!(calls[0]["status"], 404);
    assert_eq!(calls[1]["path"], "/api/klines");
    assert_eq!(calls[2]["method"], "GET");
    assert!(calls[2]["latencyMs"].is_u64());
    let daily = usage["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 7);
    assert_eq!(daily[6]["count"], 3);
    assert_eq!(
        daily[6]["date"],
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    );
    // The CLI prints the same JSON.
    let out = std::process::Command::new(bin())
        .args(["keys", "usage", &id])
        .env("TOLLGATE_ADMIN_URL", &gate.admin_url)
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("cli");
    assert!(out.status.success());
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cli json");
    assert_eq!(cli["recentCalls"].as_array().map(Vec::len), Some(3));
    // lastUsedAt shows in the listing too.
    let list = gate.admin("GET", "/v1/keys?account=acme", None).json();
    assert!(list["keys"][0]["lastUsedAt"].is_string());
    // The plaintext key never appears in the logs; the prefix may.
    assert!(!gate.log().contains(&token), "a plaintext key was logged");
    assert!(gate.log().contains(&token[..12]));
}

fn operator_cli_manages_accounts_and_keys(b: Backend) {
    let (_o, gate) = setup(b);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .env("TOLLGATE_ADMIN_URL", &gate.admin_url)
            .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("cli");
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json)
    };
    let (code, acc) = cli(&["accounts", "create", "acme", "--plan", "token"]);
    assert_eq!(code, Some(0));
    assert_eq!(acc["plan"], "token");
    let (code, key) = cli(&[
        "keys",
        "create",
        "--account",
        "acme",
        "--name",
        "ci",
        "--expires-at",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(code, Some(0));
    let token = key["token"].as_str().expect("token");
    assert_eq!(key["keyPrefix"].as_str(), Some(&token[..12]));
    assert_eq!(key["expiresAt"], "2099-01-01T00:00:00.000Z");
    assert_eq!(gate.get_with("/api/markets", token).status, 200);
    let (_, list) = cli(&["keys", "list", "--account", "acme"]);
    assert_eq!(list["keys"].as_array().map(Vec::len), Some(1));
    let id = key["id"].as_str().expect("id");
    let (code, revoked) = cli(&["keys", "revoke", id]);
    assert_eq!(code, Some(0));
    assert_eq!(revoked["isActive"], false);
    assert_eq!(gate.get_with("/api/markets", token).status, 401);
    let (code, shown) = cli(&["accounts", "show", "acme"]);
    assert_eq!(code, Some(0));
    assert_eq!(shown["activeKeys"], 0);
    let (code, err) = cli(&["accounts", "show", "nobody"]);
    assert_eq!(code, Some(1));
    assert_eq!(err["detail"], "account not found");
}

fn admin_api_refuses_bad_tokens_and_bad_json(b: Backend) {
    let (_o, gate) = setup(b);
    let r = gate.admin_as(None, "GET", "/v1/accounts/x", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"detail": "invalid, expired or revoked token"})
    );
    let r = gate.admin_as(
        Some("wrong-token-wrong-token"),
        "GET",
        "/v1/accounts/x",
        None,
    );
    assert_eq!(r.status, 401);
    // Bodies of the wrong shape: 422 with the validation array, as on the API.
    let r = gate.admin("POST", "/v1/accounts", Some(json!({"id": "a"})));
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["body", "plan"]),
        "{}",
        r.body
    );
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "a", "plan": "gold"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("gold"));
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "a", "plan": "token", "x": 1})),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["type"], "extra_forbidden");
    gate.create_account("a", "token");
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "a", "plan": "token"})),
    );
    assert_eq!(r.status, 409);
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "a", "name": ""})),
    );
    assert_eq!(r.status, 400);
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "a", "name": "x", "expiresAt": "tomorrow"})),
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("expiresAt"), "{}", r.body);
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "a", "name": "x", "expiresAt": "2001-01-01T00:00:00Z"})),
    );
    assert_eq!(r.status, 400);
    let r = gate.admin("DELETE", "/v1/keys/not-a-uuid", None);
    assert_eq!(r.status, 400);
    let r = gate.admin("GET", "/healthz", None);
    assert_eq!(r.status, 200);
}

fn unreachable_origin_gets_a_json_502_that_says_to_retry(b: Backend) {
    let dead = format!("127.0.0.1:{}", free_port());
    let gate = start_gate(GateOpts::new(PROFILE, &dead).backend(b));
    let r = gate.get("/api/markets", &[]);
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"detail": "upstream unavailable; retry in 30 seconds"})
    );
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "the client must not reuse it"
    );
    let m = gate.metrics();
    assert!(
        m.contains("tollgate_upstream_errors_total{origin=\"api\"}"),
        "{m}"
    );
}

fn client_sent_identity_headers_are_replaced(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "token");
    let (_, token) = gate.create_key("acme", "k");
    let bearer = format!("Bearer {token}");
    let echo = gate
        .get(
            "/api/echo",
            &[
                ("authorization", &bearer),
                ("x-tollgate-account", "someone-else"),
                ("x-tollgate-plan", "enterprise"),
                ("x-tollgate-anything", "1"),
            ],
        )
        .json();
    let h = &echo["headers"];
    assert_eq!(h["x-tollgate-account"], "acme");
    assert_eq!(h["x-tollgate-plan"], "token");
    assert!(h.get("x-tollgate-anything").is_none());
    assert!(h.get("authorization").is_none());
    // Anonymous callers cannot claim an identity either.
    let echo = gate
        .get("/api/echo", &[("x-tollgate-account", "someone-else")])
        .json();
    assert!(echo["headers"].get("x-tollgate-account").is_none());
}

fn metrics_count_requests_and_rejections(b: Backend) {
    let (_o, gate) = setup(b);
    gate.get("/api/health", &[]);
    gate.get_with("/api/markets", "bad");
    let m = gate.metrics();
    assert!(
        m.contains(
            "tollgate_requests_total{decision=\"public\",route=\"exempt\",status=\"200\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("tollgate_rejections_total{reason=\"unauthorized\"} 1"),
        "{m}"
    );
    assert!(m.contains("tollgate_request_duration_seconds_bucket"));
    assert!(m.contains("tollgate_upstream_duration_seconds_bucket"));
}

fn a_flood_of_invalid_keys_from_one_client_is_throttled(b: Backend) {
    let (_o, gate) = setup_trusted(b);
    let attacker = [("cf-connecting-ip", "203.0.113.66")];
    for i in 0..60 {
        let guess = format!("Bearer mq_{:043}", i);
        let r = gate.get("/api/markets", &[attacker[0], ("authorization", &guess)]);
        assert_eq!(r.status, 401, "guess {i}");
    }
    let r = gate.get(
        "/api/markets",
        &[
            attacker[0],
            ("authorization", &format!("Bearer mq_{}", "Z".repeat(43))),
        ],
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("60"));
    // Exempt paths and other clients are unaffected.
    assert_eq!(gate.get("/api/health", &attacker).status, 200);
    let r = gate.get(
        "/api/markets",
        &[
            ("cf-connecting-ip", "203.0.113.67"),
            ("authorization", "Bearer mq_nope"),
        ],
    );
    assert_eq!(r.status, 401);
}
