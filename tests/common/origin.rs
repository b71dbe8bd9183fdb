//! What tollgate talks to besides Redis: the bundled sample origin (plain or
//! TLS, a child process) and a Turnstile-shaped siteverify stub (a thread on a
//! socket of its own).

use super::http::body_start;
use super::ports::{free_port, listen_loopback};
use super::processes::{bin, start_listening, Logs, Proc};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bundled sample origin.
pub struct Origin {
    _proc: Proc,
    pub addr: String,
}

/// Starts the sample origin on a port of its own.
pub fn start_origin() -> Origin {
    start_origin_with(&[])
}

/// Starts the sample origin with extra arguments (e.g. `--tls-cert`).
pub fn start_origin_with(extra: &[&str]) -> Origin {
    let (proc, addr) = start_listening("sample origin", Duration::from_secs(10), || {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin());
        cmd.args(["sample-origin", "--listen", &addr]).args(extra);
        (
            Proc::spawn("origin", &mut cmd, Logs::Stderr),
            vec![port],
            addr,
        )
    });
    Origin { _proc: proc, addr }
}

/// Starts the sample origin on a given loopback port (one from
/// [`super::ports::free_port`] that a gateway was pointed at before), e.g. to
/// bring back a server that was down.
pub fn start_origin_on(port: u16) -> Origin {
    let addr = format!("127.0.0.1:{port}");
    let (proc, addr) = start_listening("sample origin", Duration::from_secs(10), || {
        let mut cmd = Command::new(bin());
        cmd.args(["sample-origin", "--listen", &addr]);
        (
            Proc::spawn("origin", &mut cmd, Logs::Stderr),
            vec![port],
            addr.clone(),
        )
    });
    Origin { _proc: proc, addr }
}

/// A stub siteverify server: answers success only for `good` with the right secret.
pub struct Siteverify {
    pub url: String,
    pub seen: Arc<Mutex<Vec<String>>>,
}

/// Starts a Turnstile-shaped siteverify stub on a port of its own (a thread,
/// real socket; the listener is bound before this returns).
pub fn start_siteverify(secret: &'static str, good: &'static str) -> Siteverify {
    let listener = listen_loopback();
    let url = format!("http://{}/siteverify", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen2.clone();
            std::thread::spawn(move || serve_siteverify(stream, secret, good, &seen));
        }
    });
    Siteverify { url, seen }
}

fn serve_siteverify(mut s: TcpStream, secret: &str, good: &str, seen: &Mutex<Vec<String>>) {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body = loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(start) = body_start(&buf) {
            break String::from_utf8_lossy(&buf[start..]).into_owned();
        }
    };
    seen.lock().expect("lock").push(body.clone());
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ok = form.get("secret").map(String::as_str) == Some(secret)
        && form.get("response").map(String::as_str) == Some(good)
        && form.contains_key("remoteip");
    let answer = if ok {
        r#"{"success":true,"error-codes":[]}"#
    } else {
        r#"{"success":false,"error-codes":["invalid-input-response"]}"#
    };
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = s.write_all(resp.as_bytes());
}
