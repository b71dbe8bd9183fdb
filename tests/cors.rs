//! CORS end to end, through real sockets to a real tollgate in front of the
//! sample origin (which sends CORS headers of its own to any request with
//! `Origin`): preflights answered by tollgate, never forwarded or charged;
//! disallowed origins refused without CORS headers; wildcard subdomains that
//! match whole labels only; the CORS headers of the origin's responses and of
//! tollgate's own 401/404/429; routes that leave CORS to the origin, turn it
//! off, or have a policy of their own; the Mobula profile's default; and
//! `tollgate check` refusing `*` with credentials.
//!
//! `tests/fixtures/cors.toml` is the profile, except where a test says otherwise.
#![allow(clippy::expect_used)]

#[macro_use]
mod common;

use common::*;
use std::process::Command;

on_both_stores!(preflight_is_never_forwarded_or_charged);

const PROFILE: &str = "cors.toml";
/// The allowed exact origin of the fixture.
const APP: &str = "https://app.example.com";
/// The origin the fixture's `entries` route allows (with credentials).
const PARTNER: &str = "https://partner.example.net";
/// What every response to an allowed origin exposes by default.
const EXPOSED: &str = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, RateLimit, \
                       RateLimit-Policy, Retry-After, X-Credits-Remaining, \
                       X-Token-Requests-Remaining, X-Request-Id";

fn setup(b: Backend) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&fixture(PROFILE), &origin.addr).backend(b));
    (origin, gate)
}

/// A key on the fixture's `small` plan (3 calls an hour) of a new account.
fn small_key(gate: &Gate, account: &str) -> String {
    gate.create_account(account, "small");
    gate.create_key(account, "browser-backend").1
}

fn get(gate: &Gate, path: &str, headers: &[(&str, &str)]) -> Resp {
    gate.send("GET", path, headers, None)
}

/// Whether the response's `Vary` names `Origin`.
fn varies_on_origin(r: &Resp) -> bool {
    r.header("vary")
        .unwrap_or_default()
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("origin"))
}

/// A short-lived token minted from `key` with a request limit.
fn mint(gate: &Gate, key: &str, limit: u32) -> String {
    let body = format!(r#"{{"requestLimit": "{limit}"}}"#);
    let r = gate.send(
        "POST",
        "/auth/tokens",
        &[("authorization", &format!("Bearer {key}"))],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["createApiTokens"][0]["token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A browser's preflight for a `GET` with `Authorization`, plus `extra` headers.
fn preflight_with(gate: &Gate, path: &str, origin: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![
        ("origin", origin),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    headers.extend_from_slice(extra);
    gate.send("OPTIONS", path, &headers, None)
}

fn preflight(gate: &Gate, path: &str, origin: &str) -> Resp {
    preflight_with(gate, path, origin, &[])
}

/// A GET with a bearer credential from a page on `origin`.
fn get_from(gate: &Gate, path: &str, origin: &str, token: &str) -> Resp {
    get(
        gate,
        path,
        &[
            ("origin", origin),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
}

/// Every `Access-Control-*` header of a response, for messages.
fn cors_of(r: &Resp) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    out
}

/// The CORS headers tollgate writes for an allowed origin without credentials.
fn assert_allowed(r: &Resp, origin: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin),
        "{:?}",
        cors_of(r)
    );
    assert_eq!(r.header("access-control-expose-headers"), Some(EXPOSED));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert!(varies_on_origin(r), "{:?}", r.header("vary"));
}

/// No CORS header at all.
fn assert_no_cors(r: &Resp) {
    assert!(cors_of(r).is_empty(), "{:?}", cors_of(r));
}

/// The `name:` lines of a raw response head, lower-cased names.
fn raw_header_lines<'a>(raw: &'a str, name: &str) -> Vec<&'a str> {
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .collect()
}

#[test]
fn preflight_from_an_allowed_origin_is_answered_by_tollgate() {
    let (_o, gate) = setup(Backend::Memory);
    // No credential, and a bogus one: a preflight never reads it.
    for extra in [vec![], vec![("authorization", "Bearer tg_bogus")]] {
        let r = preflight_with(&gate, "/api/echo", APP, &extra);
        assert_eq!(r.status, 204, "{}", r.body);
        assert!(!r.reached_origin(), "a preflight is never forwarded");
        assert_eq!(r.header("access-control-allow-origin"), Some(APP));
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("Authorization, Content-Type, X-Api-Key")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert_eq!(r.header("access-control-allow-credentials"), None);
        assert!(varies_on_origin(&r), "{:?}", r.header("vary"));
        assert_eq!(r.body, "");
    }
    // tollgate's own token endpoint inherits [cors] too.
    let r = gate.send(
        "OPTIONS",
        "/auth/tokens",
        &[
            ("origin", APP),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    // On the wire: a 204 with no content headers and no body.
    let raw = gate.raw(
        format!(
            "OPTIONS /api/echo HTTP/1.1\r\nHost: t\r\nOrigin: {APP}\r\n\
             Access-Control-Request-Method: DELETE\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(raw.starts_with("HTTP/1.1 204"), "{raw}");
    assert!(raw_header_lines(&raw, "content-length").is_empty(), "{raw}");
    assert!(raw_header_lines(&raw, "content-type").is_empty(), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body: {raw}");
}

#[test]
fn preflight_from_a_disallowed_origin_is_refused_without_cors_headers() {
    let (_o, gate) = setup(Backend::Memory);
    for origin in [
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
    ] {
        let r = preflight(&gate, "/api/echo", origin);
        assert_eq!(r.status, 403, "{origin}: {}", r.body);
        assert_no_cors(&r);
        assert!(!r.reached_origin(), "{origin}: never forwarded");
        assert_eq!(r.json()["error"]["code"], "FORBIDDEN", "the error template");
        assert_eq!(
            r.json()["error"]["message"],
            format!("origin {origin:?} is not allowed to call this API from a browser")
        );
    }
}

#[test]
fn wildcard_subdomains_match_whole_labels_only() {
    let (_o, gate) = setup(Backend::Memory);
    for origin in [
        "https://a.example.org",
        "https://deep.sub.example.org",
        "https://x-1.example.org",
    ] {
        let r = preflight(&gate, "/api/echo", origin);
        assert_eq!(r.status, 204, "{origin}: {}", r.body);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
    for origin in [
        "https://example.org",
        "https://evilexample.org",
        "https://a.example.org.evil.com",
        "https://a.example.org:8443",
        "http://a.example.org",
        "https://a.example.organic",
        "https://.example.org",
        "https://user@a.example.org",
    ] {
        let r = preflight(&gate, "/api/echo", origin);
        assert_eq!(r.status, 403, "{origin}: {}", r.body);
        assert_no_cors(&r);
    }
}

#[test]
fn origin_responses_get_tollgates_cors_headers_instead_of_the_origins() {
    let (_o, gate) = setup(Backend::Memory);
    let key = small_key(&gate, "acme");
    let r = get_from(&gate, "/api/echo", APP, &key);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.reached_origin());
    assert_allowed(&r, APP);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    // Exactly one Access-Control-Allow-Origin: the origin's `*` is replaced.
    let raw = gate.raw(
        format!(
            "GET /api/echo HTTP/1.1\r\nHost: t\r\nOrigin: {APP}\r\n\
             Authorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(
        raw_header_lines(&raw, "access-control-allow-origin"),
        [format!("Access-Control-Allow-Origin: {APP}")],
        "{raw}"
    );
    assert_eq!(
        raw_header_lines(&raw, "access-control-expose-headers").len(),
        1,
        "{raw}"
    );
    // A disallowed origin: the origin's own CORS headers are removed too.
    let r = get_from(&gate, "/api/echo", "https://evil.example.com", &key);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_cors(&r);
    assert!(varies_on_origin(&r), "{:?}", r.header("vary"));
    // No Origin at all: nothing to allow, but a cache must still know the
    // answer varies by Origin. (Another key: this one's three calls are used.)
    let key = small_key(&gate, "beta");
    let r = get(
        &gate,
        "/api/echo",
        &[("authorization", &format!("Bearer {key}"))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_cors(&r);
    assert!(varies_on_origin(&r), "{:?}", r.header("vary"));
}

#[test]
fn tollgate_401_and_404_carry_cors_headers() {
    let (_o, gate) = setup(Backend::Memory);
    let r = get(&gate, "/api/echo", &[("origin", APP)]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.reached_origin());
    assert_allowed(&r, APP);
    let r = get(&gate, "/nowhere", &[("origin", APP)]);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_allowed(&r, APP);
    // A preflight for a path with no route: the 404, readable.
    let r = preflight(&gate, "/nowhere", APP);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_allowed(&r, APP);
    // A disallowed origin reads none of them.
    let r = get(
        &gate,
        "/api/echo",
        &[("origin", "https://evil.example.com")],
    );
    assert_eq!(r.status, 401);
    assert_no_cors(&r);
}

#[test]
fn a_429_carries_cors_headers_and_exposes_retry_after() {
    let (_o, gate) = setup(Backend::Memory);
    let key = small_key(&gate, "acme");
    for left in ["2", "1", "0"] {
        let r = get_from(&gate, "/api/echo", APP, &key);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-remaining"), Some(left));
    }
    let r = get_from(&gate, "/api/echo", APP, &key);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(!r.reached_origin());
    assert_allowed(&r, APP);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=1200).contains(&retry), "{retry}");
    assert!(EXPOSED.contains("Retry-After"));
    assert_eq!(r.json()["error"]["code"], "RATE_LIMITED");
}

#[test]
fn a_route_that_leaves_cors_to_the_origin_gets_nothing_added() {
    let (_o, gate) = setup(Backend::Memory);
    let key = small_key(&gate, "acme");
    let r = get_from(&gate, "/api/markets", APP, &key);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    // The origin's own headers, untouched; nothing of tollgate's.
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-origin-server")
    );
    assert!(!varies_on_origin(&r), "{:?}", r.header("vary"));
    // Its preflight goes to the origin, without a credential and unmetered.
    let r = preflight(&gate, "/api/markets", APP);
    assert!(r.reached_origin(), "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-methods"), None);
    let r = get_from(&gate, "/api/markets", APP, &key);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"), "not charged");
    // tollgate's own refusal there has no CORS headers either.
    let r = get(&gate, "/api/markets", &[("origin", APP)]);
    assert_eq!(r.status, 401);
    assert_no_cors(&r);
    assert!(!varies_on_origin(&r), "{:?}", r.header("vary"));
    // A preflight carries no body past tollgate.
    let r = gate.send(
        "OPTIONS",
        "/api/markets",
        &[("origin", APP), ("access-control-request-method", "GET")],
        Some("{}"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.reached_origin());
}

#[test]
fn a_route_with_cors_off_routes_a_preflight_like_any_request() {
    let (_o, gate) = setup(Backend::Memory);
    let r = preflight(&gate, "/api/klines", APP);
    assert_eq!(r.status, 401, "an OPTIONS without a key: {}", r.body);
    assert!(!r.reached_origin());
    assert_no_cors(&r);
    assert!(!varies_on_origin(&r), "{:?}", r.header("vary"));
    let key = small_key(&gate, "acme");
    let r = get_from(&gate, "/api/klines", APP, &key);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("*"),
        "the origin's"
    );
    assert!(!varies_on_origin(&r), "{:?}", r.header("vary"));
}

#[test]
fn a_route_table_overrides_the_global_policy() {
    let (_o, gate) = setup(Backend::Memory);
    let r = preflight(&gate, "/api/v1/entries", PARTNER);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(PARTNER));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(r.header("access-control-max-age"), Some("60"));
    // The route's origins replace the global ones.
    let r = preflight(&gate, "/api/v1/entries", APP);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_no_cors(&r);
    let key = small_key(&gate, "acme");
    let r = get_from(&gate, "/api/v1/entries", PARTNER, &key);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(PARTNER));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some(EXPOSED));
}

fn preflight_is_never_forwarded_or_charged(b: Backend) {
    let (_o, gate) = setup(b);
    let key = small_key(&gate, "acme");
    let token = mint(&gate, &key, 5);
    let r = get_from(&gate, "/api/echo", APP, &token);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_allowed(&r, APP);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    assert_eq!(r.header("x-token-requests-remaining"), Some("4"));
    // More preflights than the bucket holds, one with the token itself.
    for extra in [
        vec![],
        vec![],
        vec![],
        vec![("authorization", format!("Bearer {token}"))],
    ] {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = preflight_with(&gate, "/api/echo", APP, &extra);
        assert_eq!(r.status, 204, "{}", r.body);
        assert!(!r.reached_origin());
        assert_eq!(r.header("x-ratelimit-remaining"), None, "not metered");
    }
    let r = preflight(&gate, "/auth/tokens", APP);
    assert_eq!(r.status, 204, "{}", r.body);
    let r = get_from(&gate, "/api/echo", APP, &token);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"), "unchanged");
    assert_eq!(
        r.header("x-token-requests-remaining"),
        Some("3"),
        "unchanged"
    );
}

#[test]
fn the_mobula_profile_allows_any_origin_without_credentials() {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("mobula.toml", &origin.addr));
    for path in ["/api/1/market/data", "/api/2/auth/tokens"] {
        let r = preflight(&gate, path, "https://dashboard.anywhere.test");
        assert_eq!(r.status, 204, "{path}: {}", r.body);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("access-control-allow-credentials"), None);
    }
    let r = get(
        &gate,
        "/api/1/market/data",
        &[("origin", "https://dashboard.anywhere.test")],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_allowed(&r, "*");
    // tollgate's own endpoint's reply (a minted token) is readable too.
    gate.create_account("acme", "startup");
    let key = gate.create_key("acme", "frontend-server").1;
    let r = gate.send(
        "POST",
        "/api/2/auth/tokens",
        &[
            ("origin", "https://dashboard.anywhere.test"),
            ("authorization", &key),
        ],
        Some(r#"{"requestLimit": "10"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_allowed(&r, "*");
    // TOLLGATE_CORS_ORIGINS narrows it.
    let gate = start_gate(GateOpts::new("mobula.toml", &origin.addr).env(
        "TOLLGATE_CORS_ORIGINS",
        "https://app.example.com, https://*.example.com",
    ));
    let r = preflight(&gate, "/api/1/market/data", "https://x.example.com");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://x.example.com")
    );
    let r = preflight(
        &gate,
        "/api/1/market/data",
        "https://dashboard.anywhere.test",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_no_cors(&r);
}

#[test]
fn check_refuses_every_origin_with_credentials() {
    let bad = root().join("tests/fixtures/bad/cors_star_with_credentials.toml");
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .expect("run tollgate check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "  - cors.credentials: cannot be true with origins = [\"*\"]: browsers refuse a \"*\" origin on requests with credentials"
        ),
        "{stderr}"
    );
}
