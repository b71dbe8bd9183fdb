//! HTTP as tests see it: [`Resp`], a response reduced to status, headers and
//! body, and raw HTTP/1 exchanges over a socket with the message framing they
//! need.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header, lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether the origin produced this response (the sample origin marks its own).
    pub fn reached_origin(&self) -> bool {
        self.headers.contains_key("x-origin-server")
    }
}

/// Reads a reqwest response into a [`Resp`].
pub(super) fn reduce(r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    // A header sent several times (`Vary` from tollgate and the compression
    // module) reads as one comma-separated list, as HTTP defines it.
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in r.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| *v = format!("{v}, {value}"))
            .or_insert(value);
    }
    let body = r.text().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

/// Sends raw bytes to `addr` and returns the raw response head and body: the
/// first complete response, or whatever arrived before the peer closed or
/// went quiet for 5 s.
pub(super) fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(text) = complete_response(&out) {
                    return text;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where an HTTP/1 message's body starts, once its head and its
/// content-length body have fully arrived.
pub(super) fn body_start(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let head_end = text.find("\r\n\r\n")?;
    let len = text[..head_end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (bytes.len() >= head_end + 4 + len).then_some(head_end + 4)
}

/// The whole response text once it is complete.
fn complete_response(bytes: &[u8]) -> Option<String> {
    body_start(bytes).map(|_| String::from_utf8_lossy(bytes).into_owned())
}
