//! Origins: round-robin over several servers, and a server that fails its
//! health check stops receiving traffic.
#![allow(clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn servers_seen(gate: &Gate, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = gate.get("/api/markets", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        *seen
            .entry(r.header("x-origin-server").unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn requests_are_spread_round_robin() {
    let a = start_origin_with(&["--name", "a"]);
    let b = start_origin_with(&["--name", "b"]);
    let both = format!("{},{}", a.addr, b.addr);
    let gate = start_gate(GateOpts::new(&fixture("shared.toml"), &both));
    let seen = servers_seen(&gate, 20);
    assert_eq!(seen.get("a"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
}

#[test]
fn an_unhealthy_server_is_taken_out_of_rotation() {
    let profile = std::fs::read_to_string(fixture("shared.toml")).expect("fixture");
    let with_hc = profile.replace(
        "[origins.api]\nservers = [\"${TOLLGATE_ORIGIN}\"]\n",
        "[origins.api]\nservers = [\"${TOLLGATE_ORIGIN}\"]\n\n[origins.api.health_check]\nkind = \"http\"\npath = \"/api/health\"\ninterval = \"300ms\"\n",
    );
    assert_ne!(
        with_hc, profile,
        "the fixture's origin section moved; update this test"
    );
    let path = std::env::temp_dir().join(format!(
        "origins-hc-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, with_hc).expect("write");
    let a = start_origin_with(&["--name", "a"]);
    let b = start_origin_with(&["--name", "b"]);
    let both = format!("{},{}", a.addr, b.addr);
    let gate = start_gate(GateOpts::new(&path.display().to_string(), &both));
    assert_eq!(servers_seen(&gate, 10).len(), 2);
    drop(b);
    // Within a few health-check intervals every request goes to the live server.
    eventually(Duration::from_secs(5), || {
        let seen = servers_seen_lenient(&gate, 10);
        (seen.len() == 1 && seen.contains_key("a")).then_some(())
    });
    let seen = servers_seen(&gate, 10);
    assert_eq!(seen.get("a"), Some(&10), "{seen:?}");
}

/// Like `servers_seen`, but a 502 (the dead server before detection) counts as "502".
fn servers_seen_lenient(gate: &Gate, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = gate.get("/api/markets", &[]);
        let who = match r.status {
            200 => r.header("x-origin-server").unwrap_or("?").to_string(),
            s => s.to_string(),
        };
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}
