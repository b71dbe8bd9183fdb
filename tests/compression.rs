#![allow(clippy::expect_used)]
//! Response compression (issue #10, item 5): a 2 KB+ JSON body from the
//! sample origin comes back gzip-, br- or zstd-encoded when the client accepts
//! it and decodes to the very bytes sent without compression; small bodies,
//! bodies the origin already encoded, other media types and `no-transform`
//! responses pass untouched.

#[macro_use]
mod common;
use common::*;

use std::io::{Read, Write};
use std::time::Duration;

/// A market-data body of about 2 KB (22 candles).
const KLINES: &str = "/api/klines?limit=22";

/// A JSON body the stub serves, big enough to be worth compressing.
fn stub_json() -> Vec<u8> {
    let rows: Vec<String> = (0..100)
        .map(|i| format!("{{\"id\":{i},\"price\":\"{}.5\"}}", 60_000 + i))
        .collect();
    format!("{{\"data\":[{}]}}", rows.join(",")).into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// What the stub answers for a path: content type, extra headers, body.
fn stub_reply(path: &str) -> (&'static str, &'static str, Vec<u8>) {
    match path {
        "/stub/precompressed" => (
            "application/json",
            "content-encoding: gzip\r\n",
            gzip(&stub_json()),
        ),
        "/stub/binary" => ("application/octet-stream", "", vec![7u8; 4096]),
        "/stub/no-transform" => (
            "application/json",
            "cache-control: no-transform\r\n",
            stub_json(),
        ),
        _ => (
            "application/json",
            "",
            b"{\"detail\":\"Not Found\"}".to_vec(),
        ),
    }
}

/// A stub origin on a thread: one response per connection, then close.
fn start_stub() -> String {
    let listener = listen_loopback();
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (ctype, extra, body) = stub_reply(&path);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    addr
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("gunzip");
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .expect("unbrotli");
        }
        "zstd" => out = zstd::decode_all(bytes).expect("unzstd"),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

/// GET through the proxy with an `Accept-Encoding`; returns the response's
/// `Content-Encoding`, `Vary` and raw body bytes (reqwest decodes nothing here).
fn fetch(
    gate: &Gate,
    path: &str,
    accept: Option<&str>,
) -> (Option<String>, Option<String>, Vec<u8>) {
    let mut req = gate.client.get(format!("{}{path}", gate.url));
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200, "{path}");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_string())
    };
    let (encoding, vary) = (header("content-encoding"), header("vary"));
    (encoding, vary, resp.bytes().expect("body").to_vec())
}

#[test]
fn json_is_compressed_with_the_accepted_coding_and_decodes_to_the_same_bytes() {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&fixture("edge.toml"), &origin.addr));
    let (encoding, _, plain) = fetch(&gate, KLINES, None);
    assert_eq!(encoding, None, "no Accept-Encoding, no compression");
    assert!(plain.len() >= 2000, "a 2 KB+ body: {}", plain.len());
    for (accept, expected) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0.5, zstd", "zstd"),
    ] {
        let (encoding, vary, body) = fetch(&gate, KLINES, Some(accept));
        assert_eq!(encoding.as_deref(), Some(expected), "{accept}");
        assert!(
            vary.is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{accept}: Vary names Accept-Encoding"
        );
        // Full-precision prices compress about 2.4 times.
        assert!(
            body.len() * 2 < plain.len(),
            "{accept}: {} of {}",
            body.len(),
            plain.len()
        );
        assert_eq!(decode(expected, &body), plain, "{accept}");
    }
    // Only identity accepted: nothing to do.
    let (encoding, _, body) = fetch(&gate, KLINES, Some("identity"));
    assert_eq!((encoding, body), (None, plain));
}

#[test]
fn small_encoded_binary_and_no_transform_bodies_pass_untouched() {
    let origin = start_origin();
    let stub = start_stub();
    let gate = start_gate(
        GateOpts::new(&fixture("edge.toml"), &origin.addr).env("TOLLGATE_STUB_ORIGIN", &stub),
    );
    // Below min_size (1 KB): as the origin sent it.
    let (encoding, _, body) = fetch(&gate, "/api/health", Some("gzip, br, zstd"));
    assert_eq!(encoding, None);
    assert_eq!(body, br#"{"status":"ok"}"#);
    // Already gzip: passed on whether the client asked for gzip or not.
    let sent = gzip(&stub_json());
    for accept in ["gzip", "br", "zstd, br"] {
        let (encoding, _, body) = fetch(&gate, "/stub/precompressed", Some(accept));
        assert_eq!(encoding.as_deref(), Some("gzip"), "{accept}");
        assert_eq!(body, sent, "{accept}: the origin's bytes, not re-encoded");
    }
    // A media type that is not listed, and a response that forbids transforms.
    let (encoding, _, body) = fetch(&gate, "/stub/binary", Some("gzip"));
    assert_eq!((encoding, body.len()), (None, 4096));
    let (encoding, _, body) = fetch(&gate, "/stub/no-transform", Some("gzip"));
    assert_eq!((encoding, body), (None, stub_json()));
}

#[test]
fn http2_responses_are_compressed_too() {
    let g = start_https_gate(&[]);
    let client = g.client();
    let plain = client
        .get(g.url("b.test", KLINES))
        .send()
        .expect("plain")
        .bytes()
        .expect("body");
    let resp = client
        .get(g.url("b.test", KLINES))
        .header("accept-encoding", "br")
        .send()
        .expect("br");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        resp.headers().get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"br"[..])
    );
    let body = resp.bytes().expect("body");
    assert_eq!(decode("br", &body), plain.to_vec());
}
