//! Loopback ports for the children a test starts, from one allocator per test
//! binary.
//!
//! Binding port 0 and releasing it races: the kernel hands ports out of its
//! ephemeral range, where it may give the same one to another test (or to an
//! outgoing connection) before the child binds it, and a child that finds its
//! port taken may keep retrying while a test talks to the process that holds
//! it. So ports come from below the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), where the kernel never picks
//! one by itself; the walk starts at an offset derived from the pid, so that
//! test binaries running at the same time start far apart; no port is handed
//! out twice in a process; and a port something already listens on is skipped.
//! [`super::processes::start_listening`] then checks the listener is the
//! child's own and starts again on new ports if it is not.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The lowest port handed out when the ephemeral range leaves room below it.
const LOWEST: u32 = 20_000;

/// The fewest ports the allocator accepts to work with.
const MIN_SPAN: u32 = 2_048;

/// The process-wide port allocator.
struct Ports {
    /// The first port of the range.
    low: u32,
    /// How many ports the range holds.
    span: u32,
    /// Where the next candidate is, as an offset into the range.
    cursor: u32,
    /// Every port considered so far (handed out or found busy).
    seen: HashSet<u16>,
}

impl Ports {
    fn new() -> Self {
        let (low, span) = range();
        // Spread by the pid (Fibonacci hashing) so that concurrent binaries,
        // whose pids are usually close, start far apart.
        let mixed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let cursor = (mixed % u64::from(span)) as u32;
        Self {
            low,
            span,
            cursor,
            seen: HashSet::new(),
        }
    }

    /// The next port never considered before in this process.
    fn candidate(&mut self) -> u16 {
        while self.seen.len() < self.span as usize {
            let port = (self.low + self.cursor) as u16;
            self.cursor = (self.cursor + 1) % self.span;
            if self.seen.insert(port) {
                return port;
            }
        }
        panic!("all {} test ports from {} are used up", self.span, self.low);
    }
}

/// The range to hand ports out of: `(first port, count)`, below the kernel's
/// ephemeral range, or above it when there is more room there.
fn range() -> (u32, u32) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u32>().ok());
    let (start, end) = match (bounds.next(), bounds.next()) {
        (Some(start), Some(end)) => (start, end),
        _ => (32_768, 60_999),
    };
    let low = if start >= LOWEST + MIN_SPAN {
        LOWEST
    } else {
        1_024
    };
    let below = (low, start.saturating_sub(low));
    let above = (end + 1, 65_536u32.saturating_sub(end + 1));
    let (low, span) = if below.1 >= above.1 { below } else { above };
    assert!(
        span >= MIN_SPAN,
        "no room for test ports outside the ephemeral range {start}-{end}"
    );
    (low, span)
}

fn ports() -> std::sync::MutexGuard<'static, Ports> {
    static PORTS: OnceLock<Mutex<Ports>> = OnceLock::new();
    PORTS
        .get_or_init(|| Mutex::new(Ports::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A listener on a loopback port of the harness's own, held by the caller
/// (e.g. a stub server on a thread): no other test gets this port.
pub fn listen_loopback() -> TcpListener {
    let mut ports = ports();
    loop {
        let port = ports.candidate();
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener;
        }
    }
}

/// A loopback port for a child to listen on: nothing listened there a moment
/// ago, and no other test in this process gets it. Start the child with
/// [`super::processes::start_listening`], which checks the listener is the
/// child's own.
pub fn free_port() -> u16 {
    listen_loopback().local_addr().expect("addr").port()
}
