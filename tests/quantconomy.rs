//! End to end: every behaviour of the QuantConomy seed (002) from
//! `conf/quantconomy.toml`, on both stores, through real sockets.
#![allow(clippy::expect_used)]

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

on_both_stores!(
    only_root_and_health_are_open,
    keys_are_mtk_44_with_a_12_character_prefix,
    demo_key_is_capped_at_three_results_without_pagination,
    demo_key_cannot_manage_keys,
    demo_key_draws_from_one_pooled_budget_and_one_shared_bucket,
    credits_are_charged_per_endpoint_and_a_refusal_costs_nothing,
    self_service_keys_create_list_revoke,
    self_service_enforces_the_plan_key_cap_and_custom_expiry,
    sec_data_needs_starter_or_better,
    pooled_demo_budget_refills_when_its_period_ends,
);

const PROFILE: &str = "quantconomy.toml";
const DEMO: &str = "mtk_demo";
const KEYS: &str = "/api/v1/account/api-keys";

fn setup(b: Backend) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(PROFILE, &origin.addr).backend(b));
    (origin, gate)
}

fn code(r: &Resp) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn account_with_key(gate: &Gate, id: &str, plan: &str) -> String {
    gate.create_account(id, plan);
    gate.create_key(id, "primary").1
}

fn only_root_and_health_are_open(b: Backend) {
    let (_o, gate) = setup(b);
    assert_eq!(gate.get("/", &[]).status, 200);
    assert_eq!(gate.get("/health", &[]).status, 200);
    for path in [
        "/api/v1/entries",
        "/api/v1/sec/filings",
        "/anything",
        "/healthz",
    ] {
        let r = gate.get(path, &[]);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(code(&r), "UNAUTHORIZED");
        assert!(!r.reached_origin());
    }
    assert_eq!(
        gate.send("POST", "/", &[], Some("{}")).status,
        401,
        "only GET / is open"
    );
    for bad in [
        "Token abc",
        "Bearer",
        "mtk_demo",
        "Bearer mtk_unknownkey",
        "Basic bXRrX2RlbW8=",
    ] {
        assert_eq!(
            gate.get("/api/v1/entries", &[("authorization", bad)])
                .status,
            401,
            "{bad}"
        );
    }
    assert_eq!(
        gate.get_with("/api/v1/entries", &format!("mtk_{}", "a".repeat(44)))
            .status,
        401
    );
    // x-api-key is not a form this profile accepts.
    assert_eq!(
        gate.get("/api/v1/entries", &[("x-api-key", DEMO)]).status,
        401
    );
    // Expired and revoked keys.
    gate.create_account("acme", "professional");
    let exp = (chrono::Utc::now() + chrono::Duration::milliseconds(1200)).to_rfc3339();
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "short", "expiresAt": exp})),
    );
    let short = r.json()["token"].as_str().expect("token").to_string();
    assert_eq!(gate.get_with("/api/v1/entries", &short).status, 200);
    std::thread::sleep(Duration::from_millis(1400));
    assert_eq!(gate.get_with("/api/v1/entries", &short).status, 401);
}

fn keys_are_mtk_44_with_a_12_character_prefix(b: Backend) {
    let (_o, gate) = setup(b);
    let token = account_with_key(&gate, "acme", "starter");
    assert!(token.starts_with("mtk_"));
    assert_eq!(token.len(), 48);
    assert!(token[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
    let r = gate.get_with(KEYS, &token);
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = &r.json()["data"][0];
    assert_eq!(listed["keyPrefix"], json!(&token[..12]));
    assert!(
        !r.body.contains(&token),
        "the secret is never returned again"
    );
}

fn demo_key_is_capped_at_three_results_without_pagination(b: Backend) {
    let (_o, gate) = setup(b);
    let r = gate.get_with("/api/v1/entries", DEMO);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["data"].as_array().map(Vec::len),
        Some(3),
        "list endpoints return at most 3"
    );
    let r = gate.get_with("/api/v1/entries?limit=2", DEMO);
    assert_eq!(r.json()["data"].as_array().map(Vec::len), Some(2));
    for q in [
        "limit=5",
        "limit=4",
        "limit=3&limit=50",
        "LIMIT=50",
        "%6Cimit=50",
        "limit[]=10",
        "limit=1e3",
        "limit=%2B9",
        "cursor=3",
        "offset=3",
        "page=2",
        "Page=2",
        "x=1;limit=500",
        "a=1;cursor=abc",
    ] {
        let r = gate.get_with(&format!("/api/v1/entries?{q}"), DEMO);
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(code(&r), "BAD_REQUEST", "{q}");
        assert!(!r.reached_origin());
    }
    // A refused request costs nothing: 2 calls so far, cost 1 each.
    let r = gate.get_with("/api/v1/entries", DEMO);
    assert_eq!(r.header("x-credits-remaining"), Some("97"));
    // SEC datasets are included for the demo key (cost 5).
    let r = gate.get_with("/api/v1/sec/filings", DEMO);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(r.header("x-credits-remaining"), Some("92"));
}

fn demo_key_cannot_manage_keys(b: Backend) {
    let (_o, gate) = setup(b);
    for (method, path, body) in [
        ("GET", KEYS.to_string(), None),
        ("POST", KEYS.to_string(), Some(r#"{"name": "x"}"#)),
        (
            "DELETE",
            format!("{KEYS}/00000000-0000-0000-0000-000000000000"),
            None,
        ),
    ] {
        let r = gate.send(method, &path, &[("authorization", "Bearer mtk_demo")], body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(code(&r), "FORBIDDEN");
    }
}

fn demo_key_draws_from_one_pooled_budget_and_one_shared_bucket(b: Backend) {
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(PROFILE, &origin.addr)
            .backend(b)
            .trust_loopback(),
    );
    // Different callers (client IPs) draw from the same bucket and budget.
    let started = std::time::Instant::now();
    let mut remaining = u32::MAX;
    for i in 0..100 {
        let ip = format!("198.51.100.{}", i % 7);
        let r = gate.get(
            "/api/v1/entries",
            &[
                ("authorization", "Bearer mtk_demo"),
                ("cf-connecting-ip", &ip),
            ],
        );
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
        assert_eq!(
            r.header("x-credits-remaining"),
            Some(&*(99 - i).to_string())
        );
        assert_eq!(r.header("x-ratelimit-limit"), Some("240"));
        remaining = r
            .header("x-ratelimit-remaining")
            .and_then(|v| v.parse().ok())
            .expect("remaining");
    }
    // One shared bucket: 100 calls from 7 addresses took 100 of its 240 tokens
    // (it refills one every 250 ms meanwhile).
    let refilled = (started.elapsed().as_millis() / 250) as u32 + 1;
    assert!(
        remaining <= 140 + refilled,
        "remaining {remaining}, refilled {refilled}"
    );
    let r = gate.get_with("/api/v1/entries", DEMO);
    assert_eq!(r.status, 402, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], "INSUFFICIENT_CREDITS");
    assert_eq!(v["error"]["details"]["balance"], 0);
    assert_eq!(v["error"]["details"]["cost"], 1);
    let refill: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=3600).contains(&refill));
    assert!(!r.reached_origin());
    // Exactly one Retry-After, the time to the refill (the bucket itself is not empty).
    let raw = gate
        .raw(b"GET /api/v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mtk_demo\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 402"), "{raw}");
    let retry_afters: Vec<&str> = raw
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
        .collect();
    assert_eq!(retry_afters.len(), 1, "{raw}");
    let secs: u64 = retry_afters[0][12..].trim().parse().expect("secs");
    assert!(secs + 2 >= refill && secs <= refill, "{secs} vs {refill}");
    // Anyone's own key is unaffected by the demo pool.
    let token = account_with_key(&gate, "acme", "free");
    assert_eq!(gate.get_with("/api/v1/entries", &token).status, 200);
}

fn credits_are_charged_per_endpoint_and_a_refusal_costs_nothing(b: Backend) {
    let (_o, gate) = setup(b);
    let token = account_with_key(&gate, "acme", "starter");
    let r = gate.get_with("/api/v1/entries", &token);
    assert_eq!(r.header("x-credits-remaining"), Some("49999"));
    let shown = gate.admin("GET", "/v1/accounts/acme", None).json();
    assert_eq!(shown["credits"], 49999);
    // Bring the balance down to 3 through the admin API.
    let r = gate.admin(
        "POST",
        "/v1/accounts/acme/credits",
        Some(json!({"add": -49996})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["credits"], 3);
    let r = gate.get_with("/api/v1/sec/filings", &token);
    assert_eq!(r.status, 402, "cost 5 > balance 3");
    assert_eq!(
        r.json()["error"]["details"],
        json!({"balance": 3, "cost": 5, "refillsInSeconds": r.json()["error"]["details"]["refillsInSeconds"]})
    );
    for left in ["2", "1", "0"] {
        let r = gate.get_with("/api/v1/entries", &token);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-credits-remaining"), Some(left));
    }
    let r = gate.get_with("/api/v1/entries", &token);
    assert_eq!(r.status, 402);
    assert_eq!(code(&r), "INSUFFICIENT_CREDITS");
    // Key management is free even at a zero balance.
    assert_eq!(gate.get_with(KEYS, &token).status, 200);
    // The operator tops up; the CLI prints the balance.
    let out = std::process::Command::new(bin())
        .args(["accounts", "credits", "acme", "--add", "10"])
        .env("TOLLGATE_ADMIN_URL", &gate.admin_url)
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["credits"], 10);
    assert_eq!(
        gate.get_with("/api/v1/entries", &token)
            .header("x-credits-remaining"),
        Some("9")
    );
    // Creating an account with starting credits on a plan that pools them is refused.
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "x", "plan": "demo", "credits": 5})),
    );
    assert_eq!(r.status, 400);
}

fn self_service_keys_create_list_revoke(b: Backend) {
    let (_o, gate) = setup(b);
    let token = account_with_key(&gate, "acme", "professional");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let before = gate.admin("GET", "/v1/accounts/acme", None).json()["credits"].clone();
    let r = gate.send(
        "POST",
        KEYS,
        &h,
        Some(r#"{"name": "My Trading Bot", "expiresAt": "2099-12-31T23:59:59.000Z"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json()["data"].clone();
    let new_key = created["apiKey"].as_str().expect("apiKey").to_string();
    assert!(new_key.starts_with("mtk_") && new_key.len() == 48);
    assert_eq!(created["keyPrefix"], json!(&new_key[..12]));
    assert_eq!(created["expiresAt"], "2099-12-31T23:59:59.000Z");
    assert_eq!(created["isActive"], true);
    assert_eq!(gate.get_with("/api/v1/entries", &new_key).status, 200);
    let r = gate.get_with(KEYS, &token);
    assert_eq!(r.status, 200);
    let list = r.json()["data"].as_array().expect("list").clone();
    assert_eq!(list.len(), 2);
    for k in &list {
        for field in [
            "id",
            "name",
            "keyPrefix",
            "isActive",
            "expiresAt",
            "lastUsedAt",
            "createdAt",
        ] {
            assert!(k.get(field).is_some(), "{field} missing in {k}");
        }
        assert!(k.get("apiKey").is_none());
    }
    // Revoke by id: takes effect at once.
    let id = created["id"].as_str().expect("id");
    let r = gate.send("DELETE", &format!("{KEYS}/{id}"), &h, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["isActive"], false);
    assert_eq!(gate.get_with("/api/v1/entries", &new_key).status, 401);
    // By prefix, or another account's id: 404.
    let r = gate.send("DELETE", &format!("{KEYS}/{}", &new_key[..12]), &h, None);
    assert_eq!(r.status, 404);
    let other = account_with_key(&gate, "other", "free");
    let other_id = gate.get_with(KEYS, &other).json()["data"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = gate.send("DELETE", &format!("{KEYS}/{other_id}"), &h, None);
    assert_eq!(r.status, 404);
    assert_eq!(code(&r), "NOT_FOUND");
    assert_eq!(
        gate.get_with("/api/v1/entries", &other).status,
        200,
        "still active"
    );
    // Key management costs no credits (the data calls above cost 1 each, on another key of acme: 1 call).
    let after = gate.admin("GET", "/v1/accounts/acme", None).json()["credits"].clone();
    assert_eq!(before.as_i64().map(|b| b - 1), after.as_i64());
    // Bad bodies name the field.
    let r = gate.send("POST", KEYS, &h, Some(r#"{"nme": "x"}"#));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nme"));
    let r = gate.send(
        "POST",
        KEYS,
        &h,
        Some(r#"{"name": "x", "expiresAt": "soon"}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("expiresAt"));
    assert_eq!(gate.send("PUT", KEYS, &h, Some("{}")).status, 405);
}

fn self_service_enforces_the_plan_key_cap_and_custom_expiry(b: Backend) {
    let (_o, gate) = setup(b);
    let token = account_with_key(&gate, "acme", "free");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let r = gate.send(
        "POST",
        KEYS,
        &h,
        Some(r#"{"name": "k", "expiresAt": "2099-01-01T00:00:00Z"}"#),
    );
    assert_eq!(r.status, 403, "custom expiry is Professional+: {}", r.body);
    assert!(r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .contains("free"));
    assert_eq!(
        gate.send("POST", KEYS, &h, Some(r#"{"name": "second"}"#))
            .status,
        201
    );
    let r = gate.send("POST", KEYS, &h, Some(r#"{"name": "third"}"#));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(code(&r), "KEY_LIMIT_REACHED");
    assert_eq!(
        r.json()["error"]["message"],
        "API key limit reached: the free plan allows 2 active keys; revoke a key first"
    );
    assert_eq!(r.json()["error"]["details"]["maxActiveKeys"], 2);
    // The caps per plan.
    for (plan, cap) in [("starter", 5), ("professional", 20), ("enterprise", 100)] {
        gate.create_account(plan, plan);
        let shown = gate
            .admin("GET", &format!("/v1/accounts/{plan}"), None)
            .json();
        assert_eq!(shown["maxActiveKeys"], cap, "{plan}");
    }
    for _ in 0..5 {
        gate.create_key("starter", "k");
    }
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "starter", "name": "sixth"})),
    );
    assert_eq!(r.status, 400);
}

fn sec_data_needs_starter_or_better(b: Backend) {
    let (_o, gate) = setup(b);
    let free = account_with_key(&gate, "f", "free");
    let r = gate.get_with("/api/v1/sec/filings", &free);
    assert_eq!(r.status, 403);
    assert_eq!(code(&r), "FORBIDDEN");
    let starter = account_with_key(&gate, "s", "starter");
    let r = gate.get_with("/api/v1/sec/filings?limit=10", &starter);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"].as_array().map(Vec::len),
        Some(10),
        "own keys get full results"
    );
    assert_eq!(
        gate.get_with("/api/v1/entries?cursor=10", &starter).status,
        200,
        "pagination"
    );
}

fn pooled_demo_budget_refills_when_its_period_ends(b: Backend) {
    let profile = std::fs::read_to_string(root().join("conf").join(PROFILE)).expect("profile");
    let fast = profile.replace(
        r#"credits = { budget = 100, refill = "1h", pool = "plan" }"#,
        r#"credits = { budget = 5, refill = "2s", pool = "plan" }"#,
    );
    assert_ne!(fast, profile, "the demo plan line moved; update this test");
    let path = std::env::temp_dir().join(format!(
        "quantconomy-fast-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, fast).expect("write");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&path.display().to_string(), &origin.addr).backend(b));
    // Exhaust the pool, then wait for the next period: the first call after the
    // refill sees the full budget (5, minus itself).
    eventually(Duration::from_secs(5), || {
        (gate.get_with("/api/v1/entries", DEMO).status == 402).then_some(())
    });
    let first = eventually(Duration::from_secs(5), || {
        let r = gate.get_with("/api/v1/entries", DEMO);
        (r.status == 200).then_some(r)
    });
    assert_eq!(
        first.header("x-credits-remaining"),
        Some("4"),
        "refilled to the budget"
    );
    let mut admitted = 1;
    for _ in 0..7 {
        if gate.get_with("/api/v1/entries", DEMO).status == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "exactly one budget per period");
    let r = gate.get_with("/api/v1/entries", DEMO);
    assert_eq!(r.status, 402);
    assert_eq!(r.json()["error"]["details"]["balance"], 0);
}
