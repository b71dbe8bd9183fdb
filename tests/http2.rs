#![allow(clippy::expect_used)]
//! HTTP/2 for clients over TLS (issue #10, item 4): ALPN picks `h2`, each
//! stream is authenticated and metered like an HTTP/1.1 request, with the
//! same client IP, limits and headers; `curl --http2` sees it, and 100
//! concurrent streams on one connection against a bucket of 40 admit exactly 40.

#[macro_use]
mod common;
use common::*;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Barrier};

/// The bucket of the fixture's `metered` plan.
const BUCKET: usize = 40;

/// `curl` over HTTPS with `version` (`--http2` or `--http1.1`): the HTTP
/// version, status, lower-case headers and body.
fn curl(
    g: &HttpsGate,
    version: &str,
    path: &str,
    key: &str,
) -> (String, u16, BTreeMap<String, String>, String) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", version, "--cacert"])
        .arg(g.ca())
        .args([
            "--resolve",
            &format!("a.test:{}:127.0.0.1", g.tls_port),
            "-H",
            &format!("Authorization: Bearer {key}"),
            "-w",
            "\n%{http_version}",
            &g.url("a.test", path),
        ])
        .output()
        .expect("curl must be installed (scripts/deps.sh test)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let (body, http_version) = rest.rsplit_once('\n').expect("the version line");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (http_version.to_string(), status, headers, body.to_string())
}

#[test]
fn curl_over_http2_is_metered_and_forwarded_like_http1() {
    let g = start_https_gate(&[]);
    g.gate.create_account("acme", "metered");
    let (_, key) = g.gate.create_key("acme", "web");
    let (version, status, h2, body2) = curl(&g, "--http2", "/api/echo", &key);
    assert_eq!((version.as_str(), status), ("2", 200));
    assert_eq!(h2["x-ratelimit-limit"], "40");
    assert_eq!(h2["x-ratelimit-remaining"], "39");
    assert_eq!(h2["ratelimit-policy"], "\"metered\";q=40;w=3600");
    assert_eq!(
        h2["ratelimit"],
        format!("\"metered\";r=39;t={}", h2["x-ratelimit-reset"])
    );
    let (version, status, h1, body1) = curl(&g, "--http1.1", "/api/echo", &key);
    assert_eq!((version.as_str(), status), ("1.1", 200));
    assert_eq!(
        h1["x-ratelimit-remaining"], "38",
        "one bucket for both versions"
    );
    // What tollgate adds to the response is the same; so is what the origin saw.
    for name in ["x-ratelimit-limit", "ratelimit-policy", "x-origin-server"] {
        assert_eq!(h1[name], h2[name], "{name}");
    }
    let (seen1, seen2): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&body1).expect("echo"),
        serde_json::from_str(&body2).expect("echo"),
    );
    let forwarded = |v: &serde_json::Value| -> BTreeMap<String, String> {
        v["headers"]
            .as_object()
            .expect("headers")
            .iter()
            // Each request has an id of its own (checked below).
            .filter(|(k, _)| k.starts_with("x-") && *k != "x-request-id")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    assert_eq!(forwarded(&seen1), forwarded(&seen2));
    // The id the origin got is the one the client got back, on either version.
    assert_eq!(
        seen1["headers"]["x-request-id"],
        h1["x-request-id"].as_str()
    );
    assert_eq!(
        seen2["headers"]["x-request-id"],
        h2["x-request-id"].as_str()
    );
    assert_ne!(h1["x-request-id"], h2["x-request-id"]);
    assert_eq!(forwarded(&seen2)["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen2["headers"]["host"], format!("a.test:{}", g.tls_port));
    // An unknown key is refused on HTTP/2 as on HTTP/1.1.
    let (_, status, _, _) = curl(&g, "--http2", "/api/echo", "tg_nope");
    assert_eq!(status, 401);
}

/// Client-side sockets connected to `port` (on this machine's loopback).
fn connections_to(port: u16) -> usize {
    let established = "01";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| text.lines().skip(1).map(String::from).collect::<Vec<_>>())
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let remote_port = f
                .get(2)
                .and_then(|r| r.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            remote_port == Some(port) && f.get(3) == Some(&established)
        })
        .count()
}

#[test]
fn a_hundred_streams_on_one_connection_admit_exactly_the_bucket() {
    let g = start_https_gate(&[]);
    g.gate.create_account("acme", "metered");
    let (_, key) = g.gate.create_key("acme", "burst");
    let client = g
        .client_builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    // Open the connection on an unmetered route, so every stream below shares it.
    let warm = client
        .get(g.url("a.test", "/api/health"))
        .send()
        .expect("warm-up");
    assert_eq!(warm.version(), reqwest::Version::HTTP_2);
    let start = Arc::new(Barrier::new(100));
    let url = g.url("a.test", "/api/echo");
    let streams: Vec<_> = (0..100)
        .map(|_| {
            let (client, start, url, auth) = (
                client.clone(),
                start.clone(),
                url.clone(),
                format!("Bearer {key}"),
            );
            std::thread::spawn(move || {
                start.wait();
                let r = client
                    .get(&url)
                    .header("authorization", auth)
                    .send()
                    .expect("stream");
                let retry_after = r.headers().contains_key("retry-after");
                (r.version(), r.status().as_u16(), retry_after)
            })
        })
        .collect();
    let results: Vec<_> = streams
        .into_iter()
        .map(|t| t.join().expect("stream thread"))
        .collect();
    assert!(results
        .iter()
        .all(|(v, _, _)| *v == reqwest::Version::HTTP_2));
    let admitted = results.iter().filter(|(_, s, _)| *s == 200).count();
    let limited: Vec<_> = results.iter().filter(|(_, s, _)| *s == 429).collect();
    assert_eq!(
        admitted, BUCKET,
        "exactly the bucket is admitted: {results:?}"
    );
    assert_eq!(
        limited.len(),
        100 - BUCKET,
        "the rest is limited: {results:?}"
    );
    assert!(
        limited.iter().all(|(_, _, retry)| *retry),
        "every 429 says when to retry"
    );
    assert_eq!(
        connections_to(g.tls_port),
        1,
        "every stream used one connection"
    );
}
