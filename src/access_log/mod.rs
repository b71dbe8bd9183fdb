//! The access log: one JSON line per request, off the request path. The
//! `logging` hook formats a line ([`Entry`]) into a per-thread buffer and
//! appends it to a bounded in-memory queue; a background service
//! ([`AccessLogWriter`]) takes everything queued every [`FLUSH_EVERY`] and
//! writes it with a buffered writer, flushed each time the queue is emptied.
//! A full queue drops the line (counted in `tollgate_access_log_dropped_total`);
//! a request never waits for the disk.
//!
//! A line never holds a credential: the entry has no field for one, and the
//! caller is named by account, key id and key prefix only.

mod entry;
mod writer;

pub use entry::{Entry, Fields, Party};
pub use writer::AccessLogWriter;

use crate::metrics::metrics;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::time::Duration;

/// Lines queued at most; more are dropped until the writer takes them.
pub const QUEUE_LINES: usize = 16_384;

/// How often the writer takes the queue, writes it and flushes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// A kept queue buffer larger than this is given back after a write.
const KEEP_BUFFER: usize = 1 << 20;

thread_local! {
    /// The line being formatted, reused by every request on the thread.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Lines waiting for the writer.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    lines: usize,
}

/// The queue of formatted lines, and which requests are logged.
pub struct AccessLog {
    /// The share of sampled (admitted or forwarded) requests logged.
    sample: f64,
    pending: Mutex<Pending>,
    capacity: usize,
}

impl AccessLog {
    /// A queue of at most `capacity` lines, logging `sample` of the sampled requests.
    pub fn new(sample: f64, capacity: usize) -> Self {
        Self {
            sample,
            pending: Mutex::new(Pending::default()),
            capacity: capacity.max(1),
        }
    }

    /// Whether to log a request: always when `always` (refusals, errors),
    /// otherwise with probability `sample`.
    pub fn keeps(&self, always: bool) -> bool {
        always || self.sample >= 1.0 || (self.sample > 0.0 && rand::random::<f64>() < self.sample)
    }

    /// Formats `entry` as one JSON line and queues it; drops it when the
    /// queue is full.
    pub fn push(&self, entry: &Entry<'_>) {
        LINE.with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return;
            };
            line.clear();
            if serde_json::to_writer(&mut *line, entry).is_err() {
                return;
            }
            line.push(b'\n');
            self.push_line(&line);
        });
    }

    /// Queues one line (with its newline).
    fn push_line(&self, line: &[u8]) {
        let mut pending = self.pending.lock();
        if pending.lines >= self.capacity {
            drop(pending);
            metrics().access_log_dropped.inc();
            return;
        }
        pending.buf.extend_from_slice(line);
        pending.lines += 1;
    }

    /// Everything queued, and how many lines it holds; `spare` (emptied)
    /// becomes the new queue buffer.
    fn take(&self, mut spare: Vec<u8>) -> (Vec<u8>, usize) {
        spare.clear();
        let mut pending = self.pending.lock();
        let lines = std::mem::take(&mut pending.lines);
        (std::mem::replace(&mut pending.buf, spare), lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn lines_queue_until_full_then_drop() {
        let log = AccessLog::new(1.0, 2);
        let before = metrics().access_log_dropped.get();
        for i in 0..3 {
            let id = i.to_string();
            log.push(&Entry::new(Fields {
                request_id: &id,
                method: "GET",
                decision: "public",
                ..Fields::default()
            }));
        }
        assert!(metrics().access_log_dropped.get() > before);
        let (batch, lines) = log.take(Vec::new());
        assert_eq!(lines, 2);
        let text = String::from_utf8(batch).expect("utf-8");
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("one JSON object per line");
                v["request_id"].as_str().expect("id").to_string()
            })
            .collect();
        assert_eq!(ids, ["0", "1"]);
        // Taken: room again.
        let (_, lines) = log.take(Vec::new());
        assert_eq!(lines, 0);
    }

    #[test]
    fn sampling_keeps_refusals() {
        let none = AccessLog::new(0.0, 10);
        assert!(!(0..100).any(|_| none.keeps(false)));
        assert!(none.keeps(true));
        let all = AccessLog::new(1.0, 10);
        assert!((0..100).all(|_| all.keeps(false)));
        let half = AccessLog::new(0.5, 10);
        let kept = (0..2000).filter(|_| half.keeps(false)).count();
        assert!((700..1300).contains(&kept), "{kept}");
    }
}
