#![allow(clippy::expect_used)]
//! Slow and idle clients (issue #10, item 6), against a real tollgate on
//! loopback: 1,000 connections sending one header byte a second do not delay
//! a normal client's metered call by more than 50 ms and are closed when the
//! header timeout passes; an idle connection is closed after the idle
//! timeout, a stalled body after the body timeout, and a connection serves
//! at most `max_requests_per_connection` requests. Every load is bounded in
//! count and time and stops by itself.

#[macro_use]
mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Slow connections opened at once.
const SLOW: usize = 1_000;

/// The header timeout the gateway runs with here.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// Raises this process's open-file limit (inherited by the tollgate it
/// starts) so that both ends of the slow connections fit.
fn raise_open_files(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The median time of `n` metered calls, each on a new connection.
fn median_call(gate: &Gate, key: &str, n: usize) -> Duration {
    let client = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = client
                .get(format!("{}/api/echo", gate.url))
                .bearer_auth(key)
                .send()
                .expect("metered call");
            assert_eq!(r.status(), 200);
            let _ = r.bytes();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// One slow client: its socket, when it connected, and when it saw the close.
struct Slow {
    socket: TcpStream,
    connected: Instant,
    closed: Option<Instant>,
}

/// Sends the next header byte to every open slow socket once a second and
/// records when each is closed, until all are or `give_up` passes.
fn trickle(mut slow: Vec<Slow>, give_up: Instant) -> Vec<Slow> {
    const HEADER: &[u8] =
        b"GET /api/echo HTTP/1.1\r\nHost: slow\r\nAuthorization: Bearer tg_x\r\n\r\n";
    let mut sent = 1;
    let mut next_byte = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 64];
    while Instant::now() < give_up && slow.iter().any(|s| s.closed.is_none()) {
        let now = Instant::now();
        let send = now >= next_byte && sent < HEADER.len();
        for s in slow.iter_mut().filter(|s| s.closed.is_none()) {
            match s.socket.read(&mut buf) {
                Ok(_) => s.closed = Some(now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if send {
                        let _ = s.socket.write(&HEADER[sent..sent + 1]);
                    }
                }
                Err(_) => s.closed = Some(now),
            }
        }
        if send {
            sent += 1;
            next_byte += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    slow
}

#[test]
fn a_thousand_slow_headers_do_not_delay_a_metered_call_and_are_cut_at_the_timeout() {
    raise_open_files(8_192);
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&fixture("edge.toml"), &origin.addr).env(
        "TOLLGATE_HEADER_TIMEOUT",
        &format!("{}s", HEADER_TIMEOUT.as_secs()),
    ));
    gate.create_account("acme", "metered");
    let (_, key) = gate.create_key("acme", "normal");
    let addr = gate.url.trim_start_matches("http://").to_string();
    let baseline = median_call(&gate, &key, 9);

    // 1,000 connections, each having sent the first byte of a request.
    let slow: Vec<Slow> = (0..SLOW)
        .map(|_| {
            let mut socket = TcpStream::connect(&addr).expect("slow connect");
            let connected = Instant::now();
            socket.write_all(b"G").expect("first byte");
            socket.set_nonblocking(true).expect("nonblocking");
            Slow {
                socket,
                connected,
                closed: None,
            }
        })
        .collect();
    let opened = Instant::now();
    let give_up = opened + HEADER_TIMEOUT + Duration::from_secs(15);
    let trickler = std::thread::spawn(move || trickle(slow, give_up));

    // While they are all connected and trickling: a normal client's calls.
    let loaded = median_call(&gate, &key, 9);
    let measured_within = opened.elapsed();
    let slow = trickler.join().expect("trickle thread");
    eprintln!("median metered call: {baseline:?} alone, {loaded:?} with {SLOW} slow clients");

    assert!(
        measured_within < HEADER_TIMEOUT,
        "the calls were measured while every slow client was connected ({measured_within:?})"
    );
    assert!(
        loaded <= baseline + Duration::from_millis(50),
        "median metered call: {loaded:?} with {SLOW} slow clients, {baseline:?} without"
    );
    let margin = Duration::from_secs(3);
    for (i, s) in slow.iter().enumerate() {
        let closed = s
            .closed
            .unwrap_or_else(|| panic!("slow client {i} was never closed"));
        let after = closed - s.connected;
        assert!(
            after + Duration::from_millis(100) >= HEADER_TIMEOUT
                && after <= HEADER_TIMEOUT + margin,
            "slow client {i} closed after {after:?} (header timeout {HEADER_TIMEOUT:?})"
        );
    }
    // The gateway still serves.
    assert_eq!(gate.get_with("/api/echo", &key).status, 200);
}

/// Reads until the peer closes or `limit` passes; how long that took, or `None`.
fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Reads one response with a `Content-Length` body; returns its head.
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("response bytes");
        assert!(
            n > 0,
            "closed before a whole response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text[..end].to_string();
            }
        }
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(&fixture("edge.toml"), &origin.addr).env("TOLLGATE_IDLE_TIMEOUT", "2s"),
    );
    let mut s = TcpStream::connect(gate.url.trim_start_matches("http://")).expect("connect");
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    let closed = until_closed(&mut s, Duration::from_secs(10)).expect("closed when idle");
    assert!(
        closed >= Duration::from_millis(1_900) && closed <= Duration::from_secs(6),
        "closed after {closed:?} (idle timeout 2s)"
    );
}

#[test]
fn a_slow_header_on_a_kept_alive_connection_is_cut_too() {
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(&fixture("edge.toml"), &origin.addr)
            .env("TOLLGATE_HEADER_TIMEOUT", "1s")
            .env("TOLLGATE_IDLE_TIMEOUT", "2s"),
    );
    let mut s = TcpStream::connect(gate.url.trim_start_matches("http://")).expect("connect");
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    // The next request, one byte every 400 ms: each read is well within the
    // idle timeout, the whole header never is. Idle + header = 3 s.
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    let closed = loop {
        assert!(start.elapsed() < Duration::from_secs(10), "never closed");
        if s.write_all(b"G").is_err() {
            break start.elapsed();
        }
        match s.read(&mut buf) {
            Ok(0) => break start.elapsed(),
            Ok(_) => panic!("answered a request that never ended"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break start.elapsed(),
        }
    };
    assert!(
        closed >= Duration::from_millis(2_900) && closed <= Duration::from_secs(7),
        "closed after {closed:?} (idle 2s + header 1s)"
    );
}

#[test]
fn a_stalled_body_is_cut_at_the_body_timeout() {
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new(&fixture("edge.toml"), &origin.addr).env("TOLLGATE_BODY_TIMEOUT", "1s"),
    );
    gate.create_account("acme", "metered");
    let (_, key) = gate.create_key("acme", "body");
    let mut s = TcpStream::connect(gate.url.trim_start_matches("http://")).expect("connect");
    let head = format!(
        "POST /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\ncontent-type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    s.write_all(head.as_bytes()).expect("request");
    // 5 of 100 bytes, then nothing: the connection ends soon after 1s.
    let closed =
        until_closed(&mut s, Duration::from_secs(20)).expect("closed when the body stalls");
    assert!(
        closed >= Duration::from_millis(900) && closed <= Duration::from_secs(8),
        "closed after {closed:?} (body timeout 1s)"
    );
}

#[test]
fn a_connection_serves_at_most_max_requests() {
    // edge.toml: max_requests_per_connection = 50.
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&fixture("edge.toml"), &origin.addr));
    let mut s = TcpStream::connect(gate.url.trim_start_matches("http://")).expect("connect");
    for i in 1..=50 {
        s.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("request");
        let head = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
        // The last response says so.
        let closes = head.to_ascii_lowercase().contains("connection: close");
        assert_eq!(closes, i == 50, "request {i}: {head}");
    }
    // The 50th was the last: the gateway closes, the 51st is never answered.
    let _ = s.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(until_closed(&mut s, Duration::from_secs(5)).is_some());
}
