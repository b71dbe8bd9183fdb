//! Waiting for a condition: [`eventually`] polls one, [`wait_port`] waits for
//! any listener on an address (starting a child waits for its own listener:
//! see [`super::processes::start_listening`]).

use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until `addr` accepts connections, whoever listens there.
pub fn wait_port(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} did not start listening within {timeout:?}");
}
