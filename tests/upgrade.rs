//! Binary upgrade under load: a second tollgate started with `run --upgrade`
//! takes over the listening sockets of the running one when it gets SIGQUIT;
//! the old one drains and exits. Not one request of a steady load fails or
//! finds its connection refused or reset, and keys, buckets and credits in
//! Redis carry on.

#![allow(clippy::expect_used)]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The status of one request on a new connection, or what went wrong (with
/// the whole response when it is not a 200).
fn one_request(port: u16, token: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /api/markets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    match text.get(9..12).and_then(|code| code.parse().ok()) {
        Some(200) => Ok(200),
        Some(_) => Err(text.into_owned()),
        None => Err(format!("no status line in {text:?}")),
    }
}

/// Requests one after the other on new connections from `workers` threads
/// until `stop`; every outcome that is not a 200.
fn steady_load(
    port: u16,
    token: String,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<thread::JoinHandle<usize>>, Arc<Mutex<Vec<String>>>) {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..workers)
        .map(|_| {
            let (token, stop, failures) = (token.clone(), stop.clone(), failures.clone());
            thread::spawn(move || {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) && sent < 20_000 {
                    sent += 1;
                    match one_request(port, &token) {
                        Ok(200) => {}
                        other => failures.lock().expect("lock").push(format!("{other:?}")),
                    }
                }
                sent
            })
        })
        .collect();
    (handles, failures)
}

#[test]
fn an_upgrade_under_load_refuses_and_fails_nothing() {
    let origin = start_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("upgrade.sock");
    // The load harness's profile (limits far above the load: every request
    // is admitted), with this test's own upgrade socket.
    let bench = std::fs::read_to_string(root().join("benches/load/bench.toml")).expect("profile");
    let profile = dir.path().join("upgrade.toml");
    let sock_line = format!(
        "threads = 2\nupgrade_sock = {:?}\n",
        sock.to_str().expect("utf-8 path")
    );
    assert!(
        bench.contains("threads = 2\n"),
        "bench.toml changed its [server] section"
    );
    std::fs::write(&profile, bench.replacen("threads = 2\n", &sock_line, 1))
        .expect("write profile");
    let mut old = start_gate(
        GateOpts::new(profile.to_str().expect("utf-8 path"), &origin.addr).backend(Backend::Redis),
    );
    old.create_account("acme", "bench");
    let (_, token) = old.create_key("acme", "load");
    let port = old
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert_eq!(one_request(port, &token), Ok(200));

    let stop = Arc::new(AtomicBool::new(false));
    let (load, failures) = steady_load(port, token.clone(), 4, stop.clone());
    let mut new = old.spawn_upgrade();
    // The new process listens on the upgrade socket for the old one's sockets.
    eventually(Duration::from_secs(10), || sock.exists().then_some(()));
    old.proc.signal(libc::SIGQUIT);
    let status = old.proc.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "the old process did not exit after draining"
    );
    // The new process alone serves now, on the same sockets.
    for _ in 0..20 {
        assert_eq!(one_request(port, &token), Ok(200), "after the upgrade");
    }
    stop.store(true, Ordering::Relaxed);
    let sent: usize = load
        .into_iter()
        .map(|h| h.join().expect("load thread"))
        .sum();
    let failures = failures.lock().expect("lock");
    eprintln!(
        "{sent} requests during the upgrade, {} failed",
        failures.len()
    );
    assert!(
        sent > 100,
        "only {sent} requests were sent during the upgrade"
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}\n--- old process:\n{}\n--- new process:\n{}",
        &failures[..failures.len().min(10)],
        old.proc.log_text(),
        new.log_text()
    );
    let log = new.log_text();
    assert!(!log.contains("panicked"), "{log}");
    new.stop();
}
