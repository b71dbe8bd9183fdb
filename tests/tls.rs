#![allow(clippy::expect_used)]
//! HTTPS for clients (issue #10, item 3), end to end with real tollgate
//! processes and a private CA made by the harness: the certificate is chosen
//! by SNI, a metered call over HTTPS is authenticated, charged and forwarded
//! like one over HTTP, a certificate replaced on disk is served without a
//! restart (a broken one is not), TLS below 1.2 is refused, and `check`
//! names a key that does not match its certificate.

#[macro_use]
mod common;
use common::*;

use std::process::Command;
use std::time::Duration;

/// GET over HTTPS; returns the status, the server's certificate and the response.
fn get(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>, reqwest::blocking::Response) {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("https request");
    (resp.status().as_u16(), peer_certificate(&resp), resp)
}

#[test]
fn each_name_gets_its_own_certificate_and_no_name_the_default() {
    let g = start_https_gate(&[]);
    let client = g.client();
    for (host, file) in [("a.test", "a"), ("b.test", "b")] {
        let (status, cert, _) = get(&client, &g.url(host, "/api/health"), &[]);
        assert_eq!(status, 200, "{host}");
        assert_eq!(cert, g.der(file), "{host} is served its own certificate");
    }
    // An address sends no SNI: the first certificate is the default.
    let anything = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .expect("client");
    let (status, cert, _) = get(
        &anything,
        &format!("https://127.0.0.1:{}/api/health", g.tls_port),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(cert, g.der("a"));
}

#[test]
fn a_metered_call_over_https_is_charged_and_forwarded_like_one_over_http() {
    let g = start_https_gate(&[]);
    g.gate.create_account("acme", "metered");
    let (_, key) = g.gate.create_key("acme", "web");
    let auth = format!("Bearer {key}");
    let client = g.client();
    let over_http = g.gate.get("/api/echo", &[("authorization", &auth)]);
    let (status, _, resp) = get(
        &client,
        &g.url("a.test", "/api/echo"),
        &[("authorization", &auth)],
    );
    assert_eq!((over_http.status, status), (200, 200));
    let headers = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_string())
    };
    // One bucket whatever the protocol: 40, then 39 left, then 38.
    assert_eq!(over_http.header("x-ratelimit-limit"), Some("40"));
    assert_eq!(over_http.header("x-ratelimit-remaining"), Some("39"));
    assert_eq!(headers(&resp, "x-ratelimit-limit").as_deref(), Some("40"));
    assert_eq!(
        headers(&resp, "x-ratelimit-remaining").as_deref(),
        Some("38")
    );
    assert!(headers(&resp, "ratelimit-policy").is_some());
    // What the origin saw: the same client IP and identity headers.
    let seen_https: serde_json::Value = resp.json().expect("echo");
    let seen_http = over_http.json();
    for name in [
        "x-forwarded-for",
        "x-tollgate-client-ip",
        "x-tollgate-account",
        "x-tollgate-key-id",
        "x-tollgate-plan",
    ] {
        assert_eq!(
            seen_https["headers"][name], seen_http["headers"][name],
            "{name}"
        );
        assert!(seen_http["headers"][name].is_string(), "{name} is set");
    }
    assert_eq!(seen_https["headers"]["x-forwarded-for"], "127.0.0.1");
    // The scheme the client used, which the origin cannot see otherwise.
    assert_eq!(seen_https["headers"]["x-forwarded-proto"], "https");
    assert_eq!(seen_http["headers"]["x-forwarded-proto"], "http");
    assert!(seen_https["headers"].get("authorization").is_none());
    // Without a key, HTTPS refuses like HTTP does.
    let (status, _, _) = get(&client, &g.url("b.test", "/api/echo"), &[]);
    assert_eq!(status, 401);
    // An anonymous route meters by client IP: one bucket for both protocols.
    let first = g.gate.get("/api/markets", &[]);
    let (_, _, second) = get(&client, &g.url("a.test", "/api/markets"), &[]);
    let left = |v: Option<&str>| v.expect("remaining").parse::<u64>().expect("number");
    assert_eq!(
        left(first.header("x-ratelimit-remaining")) - 1,
        left(headers(&second, "x-ratelimit-remaining").as_deref())
    );
}

#[test]
fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let g = start_https_gate(&[]);
    let before = g.der("a");
    // A new key and certificate for a.test, renamed over the old files.
    leaf_for(&g.dir, "a", "a.test");
    let after = g.der("a");
    assert_ne!(before, after);
    // New connections (no pooling) see the new certificate once it is picked up.
    let fresh = || {
        g.client_builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    };
    eventually(Duration::from_secs(15), || {
        let (status, cert, _) = get(&fresh(), &g.url("a.test", "/api/health"), &[]);
        (status == 200 && cert == after).then_some(())
    });
    // A broken file is not served: the certificate in service stays.
    std::fs::write(g.dir.join("a.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
    eventually(Duration::from_secs(15), || {
        g.gate
            .log()
            .contains("cannot reload the TLS certificate")
            .then_some(())
    });
    let (status, cert, _) = get(&fresh(), &g.url("a.test", "/api/health"), &[]);
    assert_eq!((status, cert), (200, after));
    // The other name was never touched.
    let (_, cert, _) = get(&fresh(), &g.url("b.test", "/api/health"), &[]);
    assert_eq!(cert, g.der("b"));
}

/// `openssl s_client` to the HTTPS listener with one protocol version.
fn s_client(port: u16, version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "a.test",
            version,
            // Let the client offer old versions at all (Debian's default
            // security level refuses them before anything is sent).
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed (scripts/deps.sh test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tls_below_1_2_is_refused_by_the_server() {
    let g = start_https_gate(&[]);
    for version in ["-tls1_2", "-tls1_3"] {
        let (ok, text) = s_client(g.tls_port, version);
        assert!(ok, "{version} is accepted: {text}");
        let protocol = if version == "-tls1_2" {
            "TLSv1.2"
        } else {
            "TLSv1.3"
        };
        assert!(text.contains(protocol), "{version}: {text}");
    }
    for version in ["-tls1_1", "-tls1"] {
        let (ok, text) = s_client(g.tls_port, version);
        assert!(!ok, "{version} is refused: {text}");
        // The client sent its hello and the server answered with an alert,
        // no certificate: the refusal is the server's.
        assert!(text.contains("alert"), "{version}: {text}");
        assert!(
            text.contains("no peer certificate available"),
            "{version}: {text}"
        );
    }
}

#[test]
fn check_names_a_key_that_is_not_the_certificates() {
    let dir = certificates("mismatch");
    let (a_pem, _) = leaf_for(&dir, "a", "a.test");
    let (_, b_key) = leaf_for(&dir, "b", "b.test");
    let env = |name: &str| -> Option<String> {
        match name {
            "TOLLGATE_LISTEN" => Some("127.0.0.1:8080".into()),
            "TOLLGATE_ADMIN_LISTEN" => Some("127.0.0.1:9090".into()),
            "TOLLGATE_METRICS_LISTEN" => Some("127.0.0.1:9091".into()),
            "TOLLGATE_ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
            "TOLLGATE_ORIGIN" => Some("127.0.0.1:8000".into()),
            "TOLLGATE_TLS_LISTEN" => Some("127.0.0.1:8443".into()),
            "TOLLGATE_TLS_CERT_A" | "TOLLGATE_TLS_CERT_B" => Some(a_pem.display().to_string()),
            "TOLLGATE_TLS_KEY_A" | "TOLLGATE_TLS_KEY_B" => Some(b_key.display().to_string()),
            _ => None,
        }
    };
    let report = tollgate::config::check(std::path::Path::new(&fixture("edge.toml")), &env)
        .expect_err("a key of another certificate is refused");
    for i in 0..2 {
        let line = format!(
            "server.tls.certificates[{i}].key: {:?} is not the key of the certificate in {:?}",
            b_key.display().to_string(),
            a_pem.display().to_string()
        );
        assert!(report.contains(&line), "{line}\n{report}");
    }
}
