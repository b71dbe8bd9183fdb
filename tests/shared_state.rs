//! Several tollgate instances sharing one Redis (single node and Cluster):
//! exact limits, one round trip per metered request, revocation in under a
//! second, outage policies, `SCRIPT FLUSH`, and authenticated Redis URLs.
#![allow(clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn gates(origin: &Origin, redis_url: &str, n: usize) -> Vec<Gate> {
    (0..n)
        .map(|_| start_gate(GateOpts::new(&fixture("shared.toml"), &origin.addr).redis(redis_url)))
        .collect()
}

/// Fires `total` requests with `token` round-robin over `gates` from 24
/// threads; returns how many were admitted. Refusals must be `refused`.
fn hammer_expecting(gates: &[Gate], token: &str, total: usize, refused: u16) -> usize {
    let next = AtomicUsize::new(0);
    let admitted = AtomicUsize::new(0);
    let other = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..24 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let r = gates[i % gates.len()].get_with("/api/klines?limit=1", token);
                match r.status {
                    200 => admitted.fetch_add(1, Ordering::Relaxed),
                    s if s == refused => 0,
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
    });
    assert_eq!(
        other.load(Ordering::Relaxed),
        0,
        "only 200 and {refused} are expected"
    );
    admitted.load(Ordering::Relaxed)
}

fn hammer(gates: &[Gate], token: &str, total: usize) -> usize {
    hammer_expecting(gates, token, total, 429)
}

fn credits_are_exact(redis_url: &str) {
    let origin = start_origin();
    let gates = gates(&origin, redis_url, 3);
    for (account, credits, total) in [("fifty", 50, 1000), ("one", 1, 200)] {
        let r = gates[0].admin(
            "POST",
            "/v1/accounts",
            Some(json!({"id": account, "plan": "prepaid", "credits": credits})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let (_, token) = gates[0].create_key(account, "k");
        let admitted = hammer_expecting(&gates, &token, total, 402);
        eprintln!("{account}: {admitted} of {total} admitted with {credits} credits");
        assert_eq!(admitted, credits as usize, "exactly the balance is spent");
        for g in &gates {
            let shown = g
                .admin("GET", &format!("/v1/accounts/{account}"), None)
                .json();
            assert_eq!(shown["credits"], 0, "the balance ends at 0, never below");
        }
    }
}

#[test]
fn credits_are_exact_across_three_instances_on_one_redis() {
    let redis = RedisServer::start();
    credits_are_exact(&redis.url());
}

#[test]
fn credits_are_exact_across_three_instances_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    credits_are_exact(&cluster.url());
}

fn accuracy(redis_url: &str, stats: &dyn Fn() -> (u64, u64), reset: &dyn Fn()) {
    let origin = start_origin();
    let gates = gates(&origin, redis_url, 3);
    gates[0].create_account("bulk", "bulk");
    let (_, token) = gates[0].create_key("bulk", "hammer");
    // Warm each instance's key cache, then measure from a clean slate.
    for g in &gates {
        assert_eq!(g.get_with("/api/health", &token).status, 200);
    }
    reset();
    let total = 1500;
    let admitted = hammer(&gates, &token, total);
    // burst 500, one token per 172.8 s: exactly 500 can be admitted.
    assert!(
        admitted <= 500 - 3,
        "admitted {admitted}: more than the bucket allows"
    );
    assert!(
        admitted >= 495 - 3,
        "admitted {admitted}: less than 99% of the bucket"
    );
    // Commands run inside a script count in commandstats too: a script call
    // reads the one bucket once, so any GET beyond one per call was a
    // client's. Concurrent admissions share a script call (one EVALSHA admits
    // a batch): at most one call per metered request.
    eprintln!("admitted {admitted} of {total} (bucket: 497 after 3 warm-up calls)");
    let (evalsha, gets) = stats();
    eprintln!("{evalsha} EVALSHA for {total} admissions");
    assert!(
        (1..=total as u64).contains(&evalsha),
        "{evalsha} EVALSHA: at most one per metered request"
    );
    assert_eq!(gets, evalsha, "no other synchronous Redis read per request");
}

#[test]
fn three_instances_on_one_redis_admit_exactly_the_bucket() {
    let redis = RedisServer::start();
    accuracy(
        &redis.url(),
        &|| (redis.command_calls("evalsha"), redis.command_calls("get")),
        &|| {
            redis.cli(&["CONFIG", "RESETSTAT"]);
        },
    );
}

#[test]
fn three_instances_on_a_redis_cluster_admit_exactly_the_bucket() {
    let cluster = RedisCluster::start();
    accuracy(
        &cluster.url(),
        &|| {
            (
                cluster.command_calls("evalsha"),
                cluster.command_calls("get"),
            )
        },
        &|| cluster.reset_stats(),
    );
}

#[test]
fn a_key_revoked_on_one_instance_is_refused_by_the_others_within_a_second() {
    let redis = RedisServer::start();
    let origin = start_origin();
    let gates = gates(&origin, &redis.url(), 3);
    gates[0].create_account("acme", "fast");
    let (id, token) = gates[0].create_key("acme", "k");
    // Instances B and C have the key cached.
    for g in &gates {
        assert_eq!(g.get_with("/api/markets", &token).status, 200);
    }
    let r = gates[0].admin("DELETE", &format!("/v1/keys/{id}"), None);
    assert_eq!(r.status, 200);
    let revoked_at = Instant::now();
    for g in &gates[1..] {
        eventually(Duration::from_secs(1), || {
            (g.get_with("/api/markets", &token).status == 401).then_some(())
        });
    }
    let took = revoked_at.elapsed();
    eprintln!("key revocation refused by the other instances after {took:?}");
    assert!(took < Duration::from_secs(1), "propagation took {took:?}");
    // A key created on A works at once on B and C.
    let (_, fresh) = gates[0].create_key("acme", "k2");
    for g in &gates[1..] {
        assert_eq!(g.get_with("/api/markets", &fresh).status, 200);
    }
    // Unknown keys are negatively cached: a garbage flood is not a Redis flood.
    let garbage = format!("tg_{}", "x".repeat(43));
    redis.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..50 {
        assert_eq!(gates[1].get_with("/api/markets", &garbage).status, 401);
    }
    assert!(
        redis.command_calls("get") <= 2,
        "unknown keys must be negatively cached"
    );
}

#[test]
fn redis_outage_fail_open_keeps_answering_fail_closed_answers_503_and_both_recover() {
    let mut redis = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ]);
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(&fixture("shared.toml"), &origin.addr)
            .redis(&redis.url())
            .env("TOLLGATE_REDIS_TIMEOUT", "50ms"),
    );
    gate.create_account("acme", "fast");
    let (_, token) = gate.create_key("acme", "k");
    assert_eq!(gate.get_with("/api/markets", &token).status, 200);
    let unknown = format!("tg_{}", "u".repeat(43));

    redis.kill();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut seen = std::collections::BTreeMap::new();
    while started.elapsed() < Duration::from_secs(2) {
        for (path, token) in [
            ("/api/markets", Some(token.as_str())),
            ("/api/markets", None),
            ("/api/klines?limit=1", Some(token.as_str())),
            ("/api/klines?limit=1", None),
        ] {
            let t = Instant::now();
            let r = match token {
                Some(tok) => gate.get_with(path, tok),
                None => gate.get(path, &[]),
            };
            slowest = slowest.max(t.elapsed());
            assert_ne!(r.status, 500, "never a 500");
            *seen.entry((path, token.is_some(), r.status)).or_insert(0) += 1;
            if path.starts_with("/api/markets") {
                assert_eq!(r.status, 200, "fail_open route keeps answering: {}", r.body);
            } else {
                assert_eq!(r.status, 503, "fail_closed route: {}", r.body);
                assert_eq!(r.header("retry-after"), Some("1"));
            }
        }
        // A key that was never seen cannot be vouched for: 503, not 401.
        let r = gate.get_with("/api/markets", &unknown);
        assert_eq!(r.status, 503);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited {slowest:?}"
    );
    let m = gate.metrics();
    assert!(
        m.contains("tollgate_degraded_decisions_total{outcome=\"cached_key\",route=\"open\"}"),
        "{m}"
    );
    assert!(
        m.contains("tollgate_degraded_decisions_total{outcome=\"fail_closed\",route=\"closed\"}")
    );
    assert!(m.contains("tollgate_redis_errors_total"));

    redis.restart();
    eventually(Duration::from_secs(10), || {
        (gate.get_with("/api/klines?limit=1", &token).status == 200).then_some(())
    });
    assert_eq!(gate.get("/api/klines?limit=1", &[]).status, 200);
    assert_eq!(gate.get_with("/api/markets", &token).status, 200);
    assert!(gate.metrics().contains("tollgate_redis_breaker_open 0"));
    let _ = seen;
}

#[test]
fn script_flush_mid_run_fails_no_request() {
    let redis = RedisServer::start();
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&fixture("shared.toml"), &origin.addr).redis(&redis.url()));
    gate.create_account("acme", "fast");
    let (_, token) = gate.create_key("acme", "k");
    for i in 0..200 {
        if i == 100 {
            assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
        }
        let r = gate.get_with("/api/klines?limit=1", &token);
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert!(
        redis.command_calls("script|load") >= 1,
        "the script was loaded again"
    );
}

#[test]
fn acl_user_and_password_in_the_url() {
    let redis = RedisServer::start_with(&[
        "--save",
        "",
        "--user",
        "default",
        "off",
        "--user",
        "tollgate",
        "on",
        ">s3cret-pass",
        "~*",
        "&*",
        "+@all",
    ]);
    let origin = start_origin();
    let url = format!("redis://tollgate:s3cret-pass@127.0.0.1:{}", redis.port);
    let gate = start_gate(GateOpts::new(&fixture("shared.toml"), &origin.addr).redis(&url));
    gate.create_account("acme", "fast");
    let (_, token) = gate.create_key("acme", "k");
    assert_eq!(gate.get_with("/api/klines?limit=1", &token).status, 200);
    assert!(
        !gate.log().contains("s3cret-pass"),
        "the Redis password was logged"
    );
    let r = gate.admin("GET", "/v1/accounts/acme", None);
    assert_eq!(r.json()["plan"], json!("fast"));
}

fn mobula_gates(origin: &Origin, redis_url: &str, n: usize) -> Vec<Gate> {
    (0..n)
        .map(|_| start_gate(GateOpts::new("mobula.toml", &origin.addr).redis(redis_url)))
        .collect()
}

#[test]
fn a_short_lived_token_revoked_on_one_instance_is_refused_by_the_others_within_a_second() {
    let redis = RedisServer::start();
    let origin = start_origin();
    let gates = mobula_gates(&origin, &redis.url(), 3);
    gates[0].create_account("acme", "startup");
    let (_, key) = gates[0].create_key("acme", "server");
    let r = gates[0].send(
        "POST",
        "/api/2/auth/tokens",
        &[("authorization", &key)],
        Some(r#"{"requestLimit": "100"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = &r.json()["createApiTokens"][0];
    let (id, token) = (
        t["id"].as_str().expect("id").to_string(),
        t["token"].as_str().expect("jwt").to_string(),
    );
    for g in &gates {
        assert_eq!(g.get_with("/api/1/market/data", &token).status, 200);
    }
    // The request limit is one counter for all instances: 100 - 3.
    let r = gates[2].get_with("/api/1/market/data", &token);
    assert_eq!(r.header("x-token-requests-remaining"), Some("96"));
    let r = gates[0].send(
        "DELETE",
        &format!("/api/2/auth/tokens/{id}"),
        &[("authorization", &key)],
        None,
    );
    assert_eq!(r.status, 200);
    let revoked_at = Instant::now();
    for g in &gates[1..] {
        eventually(Duration::from_secs(1), || {
            (g.get_with("/api/1/market/data", &token).status == 401).then_some(())
        });
    }
    let took = revoked_at.elapsed();
    eprintln!("token revocation refused by the other instances after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn one_redis_call_per_request_with_a_key_or_a_short_lived_token() {
    let redis = RedisServer::start();
    let origin = start_origin();
    let gate = mobula_gates(&origin, &redis.url(), 1).remove(0);
    gate.create_account("acme", "enterprise");
    let (_, key) = gate.create_key("acme", "server");
    let r = gate.send(
        "POST",
        "/api/2/auth/tokens",
        &[("authorization", &key)],
        Some(r#"{"requestLimit": "1000"}"#),
    );
    let token = r.json()["createApiTokens"][0]["token"]
        .as_str()
        .expect("jwt")
        .to_string();
    // Warm the key cache.
    assert_eq!(
        gate.get("/api/1/market/data", &[("x-api-key", &key)])
            .status,
        200
    );
    let sync = |calls: &std::collections::BTreeMap<String, u64>| -> u64 {
        calls
            .iter()
            .filter(|(op, _)| op.as_str() != "record_usage")
            .map(|(_, n)| n)
            .sum()
    };
    let before = sync(&redis_calls(&gate));
    let n = 200;
    for _ in 0..n {
        assert_eq!(gate.get_with("/api/1/market/data", &token).status, 200);
        assert_eq!(
            gate.get("/api/1/market/data", &[("x-api-key", &key)])
                .status,
            200
        );
    }
    let after = redis_calls(&gate);
    let per_request = (sync(&after) - before) as f64 / (2 * n) as f64;
    eprintln!("synchronous Redis calls per metered request: {per_request:.3} ({after:?})");
    assert!((per_request - 1.0).abs() < f64::EPSILON, "{per_request}");
    assert!(redis.command_calls("evalsha") >= 2 * n as u64);
}

#[test]
fn short_lived_token_secrets_rotate_by_kid() {
    let redis = RedisServer::start();
    let origin = start_origin();
    let old = "old-secret-0123456789abcdef0123456789abcdef";
    let new = "new-secret-0123456789abcdef0123456789abcdef";
    let gate = |env: &[(&str, &str)]| {
        let mut opts = GateOpts::new("mobula.toml", &origin.addr).redis(&redis.url());
        for (k, v) in env {
            opts = opts.env(k, v);
        }
        start_gate(opts)
    };
    let before = gate(&[("TOLLGATE_JWT_KID", "k1"), ("TOLLGATE_JWT_SECRET", old)]);
    before.create_account("acme", "startup");
    let (_, key) = before.create_key("acme", "server");
    let r = before.send(
        "POST",
        "/api/2/auth/tokens",
        &[("authorization", &key)],
        Some(r#"{"count": 1}"#),
    );
    let token = r.json()["createApiTokens"][0]["token"]
        .as_str()
        .expect("jwt")
        .to_string();
    // After the rotation: signs with k2, still verifies k1.
    let rotated = gate(&[
        ("TOLLGATE_JWT_KID", "k2"),
        ("TOLLGATE_JWT_SECRET", new),
        ("TOLLGATE_JWT_PREVIOUS_KID", "k1"),
        ("TOLLGATE_JWT_PREVIOUS_SECRET", old),
    ]);
    assert_eq!(rotated.get_with("/api/1/market/data", &token).status, 200);
    let r = rotated.send(
        "POST",
        "/api/2/auth/tokens",
        &[("authorization", &key)],
        Some(r#"{"count": 1}"#),
    );
    let fresh = r.json()["createApiTokens"][0]["token"]
        .as_str()
        .expect("jwt")
        .to_string();
    assert_eq!(rotated.get_with("/api/1/market/data", &fresh).status, 200);
    // Once the old secret is dropped, its tokens stop working.
    let dropped = gate(&[("TOLLGATE_JWT_KID", "k2"), ("TOLLGATE_JWT_SECRET", new)]);
    assert_eq!(dropped.get_with("/api/1/market/data", &token).status, 401);
    assert_eq!(dropped.get_with("/api/1/market/data", &fresh).status, 200);
}

#[test]
fn rediss_with_a_private_ca() {
    let certs = certificates("redis");
    let path = |f: &str| certs.join(f).display().to_string();
    let redis = RedisServer::start_on(&[
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &path("leaf.pem"),
        "--tls-key-file",
        &path("leaf.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--save",
        "",
    ]);
    let origin = start_origin();
    let url = format!("rediss://localhost:{}", redis.port);
    let gate = start_gate(
        GateOpts::new(&fixture("shared.toml"), &origin.addr)
            .redis(&url)
            .env("TOLLGATE_REDIS_CA_FILE", &path("ca.pem")),
    );
    gate.create_account("acme", "fast");
    let (_, token) = gate.create_key("acme", "k");
    assert_eq!(gate.get_with("/api/klines?limit=1", &token).status, 200);
    assert_eq!(redis_calls(&gate).get("admit"), Some(&1));
}
