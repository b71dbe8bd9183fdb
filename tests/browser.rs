//! A real browser: headless Chromium (the Debian `chromium` package, which
//! `scripts/test.sh` installs) loads a page from another loopback origin,
//! whose script calls tollgate (`conf/mobula.toml`) with `fetch()` and a
//! short-lived token, as the Mobula document's frontend would. The test mints
//! the tokens itself (admin API, then the token endpoint with the static key)
//! and writes them into the page; the page mints nothing. It writes what it
//! read into the DOM, and the test reads the DOM back with `--dump-dom`.
//!
//! The page reads `X-Token-Requests-Remaining` until its first token's request
//! limit is used up (a 429 that says so, with no `Retry-After`: waiting never
//! helps), then calls with a second token until the key's bucket is empty (a
//! 429 with `Retry-After`), and reads both bodies. A second page, whose origin
//! the gateway does not allow, shows that the browser enforces CORS: its first
//! `fetch()` fails.
//!
//! Chromium must be installed (`CHROMIUM` names another binary); without it
//! the test fails, it is never skipped.
#![allow(clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DATA: &str = "/api/1/market/data?asset=bitcoin";

/// How long Chromium may take, in wall-clock time, before the test fails.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

/// Virtual time the page gets; it does not advance while a fetch is pending.
const VIRTUAL_TIME_MS: u32 = 60_000;

/// The page's script: every call's status and the headers a script may only
/// read when tollgate exposes them, written into `#result` as JSON.
const SCRIPT: &str = r#"
const cfg = JSON.parse(document.getElementById('cfg').textContent);
async function call(token) {
  const r = await fetch(cfg.api + cfg.path, { headers: { 'Authorization': 'Bearer ' + token } });
  const text = await r.text();
  return {
    status: r.status,
    tokenRemaining: r.headers.get('X-Token-Requests-Remaining'),
    rateRemaining: r.headers.get('X-RateLimit-Remaining'),
    retryAfter: r.headers.get('Retry-After'),
    body: r.status === 200 ? null : JSON.parse(text),
  };
}
(async () => {
  const out = { calls: [], exhausted: null, admittedUntilLimited: 0, rateLimited: null, error: null };
  try {
    for (let i = 0; i < 3; i++) out.calls.push(await call(cfg.tokenA));
    out.exhausted = await call(cfg.tokenA);
    let last = null;
    while (out.admittedUntilLimited < cfg.maxCalls) {
      last = await call(cfg.tokenB);
      if (last.status !== 200) break;
      out.admittedUntilLimited++;
    }
    out.rateLimited = last;
  } catch (e) {
    out.error = String(e);
  }
  document.getElementById('result').textContent = JSON.stringify(out);
})();
"#;

/// A page whose script calls `api` with two tokens.
fn page(config: &Value) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tollgate from a browser</title></head>\
         <body><pre id=\"result\">pending</pre>\
         <script type=\"application/json\" id=\"cfg\">{config}</script>\
         <script>{SCRIPT}</script></body></html>"
    )
}

/// Static pages on a loopback port of their own (one thread per connection;
/// every response closes its connection).
struct PageServer {
    origin: String,
}

impl PageServer {
    fn start(listener: TcpListener, pages: Vec<(String, String)>) -> Self {
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let pages = Arc::new(pages);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let pages = pages.clone();
                std::thread::spawn(move || serve_page(stream, &pages));
            }
        });
        Self { origin }
    }
}

fn serve_page(mut s: TcpStream, pages: &[(String, String)]) {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match pages.iter().find(|(path, _)| path == target) {
        Some((_, html)) => ("200 OK", html.as_str()),
        None => ("404 Not Found", "not found"),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
}

/// The Chromium binary: `CHROMIUM`, or `chromium` on the PATH.
fn chromium() -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    match found {
        Ok(out) if out.status.success() => bin,
        Ok(out) => panic!(
            "{bin} --version failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run {bin:?} ({e}): this test needs headless Chromium; \
             install it with `apt-get install -y chromium` (scripts/test.sh does, through scripts/deps.sh test)"
        ),
    }
}

/// Loads `url` in headless Chromium and returns the DOM once the page's
/// virtual-time budget has run out.
fn dump_dom(url: &str) -> String {
    let bin = chromium();
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + BROWSER_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "chromium did not finish within {BROWSER_DEADLINE:?}; stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().unwrap_or_default();
    let log = err.join().unwrap_or_default();
    assert!(status.success(), "chromium exited with {status}:\n{log}");
    assert!(!dom.is_empty(), "chromium printed no DOM:\n{log}");
    dom
}

/// What the page wrote into `#result`.
fn result_of(dom: &str) -> Value {
    let start = dom
        .find("<pre id=\"result\">")
        .map(|i| i + "<pre id=\"result\">".len())
        .unwrap_or_else(|| panic!("no #result in the DOM:\n{dom}"));
    let len = dom[start..]
        .find("</pre>")
        .unwrap_or_else(|| panic!("#result is not closed:\n{dom}"));
    let text = dom[start..start + len]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the page did not finish ({e}): #result is {text:?}"))
}

/// Mints a short-lived token with the static key, as the frontend's server would.
fn mint(gate: &Gate, key: &str, request_limit: u32) -> String {
    let body = json!({"requestLimit": request_limit.to_string()}).to_string();
    let r = gate.send(
        "POST",
        "/api/2/auth/tokens",
        &[("authorization", key)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["createApiTokens"][0]["token"]
        .as_str()
        .expect("token")
        .to_string()
}

#[test]
fn a_browser_page_on_another_origin_uses_a_short_lived_token() {
    let chromium_found = chromium();
    assert!(!chromium_found.is_empty());
    let origin = start_origin();
    let listener = listen_loopback();
    let page_origin = format!("http://{}", listener.local_addr().expect("addr"));
    // Only the page's origin is allowed; a second gateway allows another one.
    let gate = start_gate(
        GateOpts::new("mobula.toml", &origin.addr).env("TOLLGATE_CORS_ORIGINS", &page_origin),
    );
    let other = start_gate(
        GateOpts::new("mobula.toml", &origin.addr)
            .env("TOLLGATE_CORS_ORIGINS", "https://elsewhere.example.com"),
    );
    assert_ne!(page_origin, gate.url, "the page is on another origin");
    gate.create_account("acme", "startup");
    let key = gate.create_key("acme", "frontend-server").1;
    let token_a = mint(&gate, &key, 3);
    let token_b = mint(&gate, &key, 1000);
    let config = |api: &str| json!({"api": api, "path": DATA, "tokenA": token_a, "tokenB": token_b, "maxCalls": 1000});
    let server = PageServer::start(
        listener,
        vec![
            ("/".to_string(), page(&config(&gate.url))),
            ("/refused".to_string(), page(&config(&other.url))),
        ],
    );
    assert_eq!(server.origin, page_origin);

    let out = result_of(&dump_dom(&format!("{page_origin}/")));
    assert_eq!(out["error"], Value::Null, "{out:#}");
    // The token's request limit, read call by call through CORS.
    let calls = out["calls"].as_array().expect("calls");
    let statuses: Vec<&Value> = calls.iter().map(|c| &c["status"]).collect();
    assert_eq!(statuses, [200, 200, 200], "{out:#}");
    let remaining: Vec<&Value> = calls.iter().map(|c| &c["tokenRemaining"]).collect();
    assert_eq!(remaining, ["2", "1", "0"], "{out:#}");
    for c in calls {
        let left: u32 = c["rateRemaining"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("X-RateLimit-Remaining unreadable: {out:#}"));
        assert!(left < 300, "{out:#}");
    }
    // Used up: a 429 the page can read, without Retry-After (no wait helps).
    let exhausted = &out["exhausted"];
    assert_eq!(exhausted["status"], 429, "{out:#}");
    assert_eq!(exhausted["retryAfter"], Value::Null, "{out:#}");
    assert_eq!(exhausted["tokenRemaining"], "0", "{out:#}");
    assert_eq!(
        exhausted["body"],
        json!({"error": "this token's request limit (3 requests) is used up; create a new token", "code": "REQUEST_LIMIT_EXHAUSTED"}),
        "{out:#}"
    );
    // The second token shares the key's bucket (300/min): its 429 carries
    // Retry-After, which the page can read because tollgate exposes it.
    let admitted = out["admittedUntilLimited"].as_u64().expect("count");
    assert!((280..1000).contains(&admitted), "{out:#}");
    let limited = &out["rateLimited"];
    assert_eq!(limited["status"], 429, "{out:#}");
    assert_eq!(
        limited["retryAfter"], "1",
        "one 200 ms emission interval, rounded up: {out:#}"
    );
    assert_eq!(limited["rateRemaining"], "0", "{out:#}");
    assert_eq!(
        limited["body"],
        json!({"error": "rate limit exceeded (300/min)", "code": "RATE_LIMITED"}),
        "{out:#}"
    );

    // The same page against a gateway that does not allow its origin: the
    // browser refuses to hand the response to the script.
    let refused = result_of(&dump_dom(&format!("{page_origin}/refused")));
    assert_eq!(
        refused["error"], "TypeError: Failed to fetch",
        "{refused:#}"
    );
    assert_eq!(refused["calls"], json!([]), "{refused:#}");
}
