//! A TLS origin: verified against the configured CA, with SNI; a certificate
//! that does not verify is a JSON 502, never a plaintext fallback.
#![allow(clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn tls_origin(dir: &Path) -> Origin {
    let cert = dir.join("leaf.pem").display().to_string();
    let key = dir.join("leaf.key").display().to_string();
    start_origin_with(&["--tls-cert", &cert, "--tls-key", &key])
}

#[test]
fn tls_origin_with_sni_verified_against_the_configured_ca() {
    let dir = certificates("ok");
    let origin = tls_origin(&dir);
    let ca = dir.join("ca.pem").display().to_string();
    let gate = start_gate(
        GateOpts::new(&fixture("tls_origin.toml"), &origin.addr)
            .env("TOLLGATE_TEST_CA", &ca)
            .env("TOLLGATE_TEST_SNI", "localhost"),
    );
    let r = gate.get("/api/markets", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.reached_origin());
    let echo = gate.get("/api/echo", &[]).json();
    assert_eq!(echo["headers"]["host"], "localhost");
}

#[test]
fn a_certificate_that_does_not_verify_is_a_json_502() {
    let dir = certificates("served");
    let origin = tls_origin(&dir);
    // Without the health check, so that the proxy's own verification is what fails.
    let profile = std::fs::read_to_string(fixture("tls_origin.toml")).expect("fixture");
    let cut = profile
        .find("[origins.secure.health_check]")
        .expect("health check section");
    let end = profile[cut..].find("[[routes]]").expect("routes") + cut;
    let no_hc = format!("{}{}", &profile[..cut], &profile[end..]);
    let path = std::env::temp_dir().join(format!(
        "tls-no-hc-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, no_hc).expect("write");
    let path = path.display().to_string();
    // Trust another CA: the origin's certificate does not verify.
    let other = certificates("other");
    let gate = start_gate(
        GateOpts::new(&path, &origin.addr)
            .env(
                "TOLLGATE_TEST_CA",
                &other.join("ca.pem").display().to_string(),
            )
            .env("TOLLGATE_TEST_SNI", "localhost"),
    );
    let r = gate.get("/api/markets", &[]);
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .contains("retry"));
    // The right CA but the wrong name (SNI) fails too.
    let gate = start_gate(
        GateOpts::new(&path, &origin.addr)
            .env(
                "TOLLGATE_TEST_CA",
                &dir.join("ca.pem").display().to_string(),
            )
            .env("TOLLGATE_TEST_SNI", "api.example.com"),
    );
    assert_eq!(gate.get("/api/markets", &[]).status, 502);
}

#[test]
fn an_unreadable_ca_file_is_a_config_error() {
    let out = Command::new(bin())
        .args(["check", "--config", &fixture("tls_origin.toml")])
        .env("TOLLGATE_LISTEN", "127.0.0.1:1")
        .env("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:2")
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOLLGATE_METRICS_LISTEN", "127.0.0.1:3")
        .env("TOLLGATE_ORIGIN", "127.0.0.1:4")
        .env("TOLLGATE_TEST_SNI", "localhost")
        .env("TOLLGATE_TEST_CA", "/nonexistent/ca.pem")
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.upstream_ca_file: cannot read \"/nonexistent/ca.pem\""),
        "{err}"
    );
}
