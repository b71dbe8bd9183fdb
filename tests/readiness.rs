//! `GET /readyz` on the admin listener (no token): 200 while the store
//! answers (or every metered route is `fail_open`) and every origin has a
//! healthy server; otherwise 503 naming what is not ready, with
//! `Retry-After`. Real tollgate processes, the sample origin and a real
//! redis-server; every change is polled for with a bound, never slept on.
#![allow(clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// How long a change (a health check, a Redis outage) may take to show.
const WITHIN: Duration = Duration::from_secs(15);

/// The profile: one health-checked origin, one metered route whose outage
/// policy `READINESS_STORE_FAILURE` sets.
fn profile() -> String {
    fixture("readiness.toml")
}

/// `/readyz`, without a token.
fn readyz(gate: &Gate) -> Resp {
    gate.admin_as(None, "GET", "/readyz", None)
}

/// Polls `/readyz` until it answers `status`.
fn until_status(gate: &Gate, status: u16) -> Resp {
    eventually(WITHIN, || {
        let r = readyz(gate);
        (r.status == status).then_some(r)
    })
}

#[test]
fn ready_with_the_embedded_store_and_a_live_origin() {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&profile(), &origin.addr));
    let r = readyz(&gate);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"status": "ready"}));
    assert_eq!(r.header("retry-after"), None);
    // Liveness is unchanged.
    let r = gate.admin_as(None, "GET", "/healthz", None);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
}

#[test]
fn not_ready_until_the_only_origin_server_is_up() {
    // Nothing listens on this port until the origin is started on it.
    let port = free_port();
    let gate = start_gate(GateOpts::new(&profile(), &format!("127.0.0.1:{port}")));
    let r = until_status(&gate, 503);
    assert_eq!(
        r.json(),
        json!({"status": "not ready", "origins": {"api": "no healthy server"}})
    );
    assert_eq!(r.header("retry-after"), Some("5"));
    let _origin = start_origin_on(port);
    let r = until_status(&gate, 200);
    assert_eq!(r.json(), json!({"status": "ready"}));
    assert_eq!(gate.get("/api/markets", &[]).status, 200);
}

#[test]
fn not_ready_while_redis_is_down() {
    let origin = start_origin();
    let mut gate = start_gate(GateOpts::new(&profile(), &origin.addr).backend(Backend::Redis));
    let r = readyz(&gate);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ready"})));

    gate.redis.as_mut().expect("the gate's own redis").kill();
    let r = until_status(&gate, 503);
    assert_eq!(
        r.json(),
        json!({"status": "not ready", "store": "unreachable"})
    );
    assert_eq!(r.header("retry-after"), Some("5"));

    gate.redis.as_mut().expect("the gate's own redis").restart();
    let r = until_status(&gate, 200);
    assert_eq!(r.json(), json!({"status": "ready"}));
}

/// The profile's public route keeps the default `fail_closed`: public routes
/// never touch the store, so only the metered one decides.
#[test]
fn ready_without_redis_when_every_metered_route_fails_open() {
    let origin = start_origin();
    let mut gate = start_gate(
        GateOpts::new(&profile(), &origin.addr)
            .backend(Backend::Redis)
            .env("READINESS_STORE_FAILURE", "fail_open"),
    );
    let r = readyz(&gate);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ready"})));

    gate.redis.as_mut().expect("the gate's own redis").kill();
    let r = eventually(WITHIN, || {
        let r = readyz(&gate);
        r.json().get("store").is_some().then_some(r)
    });
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"status": "ready",
               "store": "unreachable (allowed: every metered route is fail_open)"})
    );
    // And the route does serve without the store.
    assert_eq!(gate.get("/api/markets", &[]).status, 200);
}
