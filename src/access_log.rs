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

use crate::config::{AccessLogSettings, AccessLogTarget};
use crate::metrics::metrics;
use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Lines queued at most; more are dropped until the writer takes them.
pub const QUEUE_LINES: usize = 16_384;

/// How often the writer takes the queue, writes it and flushes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Longest path logged, in bytes.
pub const MAX_PATH: usize = 256;

/// Longest key prefix logged, in characters.
pub const MAX_KEY_PREFIX: usize = 12;

/// A kept queue buffer larger than this is given back after a write.
const KEEP_BUFFER: usize = 1 << 20;

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` characters.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Who called and what it cost; absent values are `null`.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Party<'a> {
    pub account: Option<&'a str>,
    pub key_id: Option<uuid::Uuid>,
    /// At most [`MAX_KEY_PREFIX`] characters in the line.
    pub key_prefix: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// Credits charged, for an admitted call.
    pub cost: Option<u64>,
    /// The balance sent in `X-Credits-Remaining`.
    pub credits_remaining: Option<i64>,
    /// Response body bytes sent to the client.
    pub bytes_sent: Option<usize>,
}

/// One request, as logged. Absent values are `null`.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When the request started: RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    /// The route's name, or the label of tollgate's own endpoint.
    pub route: Option<&'a str>,
    /// The canonical path (never the query), at most [`MAX_PATH`] bytes.
    pub path: Option<&'a str>,
    /// `None`: no response was written (the client went away).
    pub status: Option<u16>,
    /// `public`, `admitted`, `managed`, `preflight`, `rejected` or `pending`.
    pub decision: &'static str,
    /// The refusal's kind, for a rejected request (`rate_limited`, …).
    pub reason: Option<&'static str>,
    /// Who called, and what it cost.
    #[serde(flatten)]
    pub party: Party<'a>,
    pub duration_ms: f64,
    /// Time to the origin's response header, for a forwarded request.
    pub upstream_ms: Option<f64>,
}

/// What an [`Entry`] is made from, before cutting and formatting.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: Option<&'a str>,
    pub path: Option<&'a str>,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub party: Party<'a>,
    pub duration: Duration,
    pub upstream: Option<Duration>,
}

impl<'a> Entry<'a> {
    /// The entry for `f`: the path and key prefix cut, times in milliseconds.
    pub fn new(f: Fields<'a>) -> Self {
        let started = f.started.unwrap_or_else(chrono::Utc::now);
        Self {
            ts: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id: f.request_id,
            method: f.method,
            route: f.route,
            path: f.path.map(|p| truncate_bytes(p, MAX_PATH)),
            status: (f.status != 0).then_some(f.status),
            decision: f.decision,
            reason: f.reason,
            party: Party {
                key_prefix: f
                    .party
                    .key_prefix
                    .map(|p| truncate_chars(p, MAX_KEY_PREFIX)),
                ..f.party
            },
            duration_ms: millis(f.duration),
            upstream_ms: f.upstream.map(millis),
        }
    }
}

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

/// Where lines are written: a buffered file (appended to) or standard output.
type Sink = BufWriter<Box<dyn Write + Send>>;

/// Opens a target for writing: a file is created if missing and appended to.
fn open(target: &AccessLogTarget) -> std::io::Result<Sink> {
    let out: Box<dyn Write + Send> = match target {
        AccessLogTarget::Stdout => Box::new(std::io::stdout()),
        AccessLogTarget::File(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
            Box::new(options.open(path)?)
        }
    };
    Ok(BufWriter::with_capacity(64 * 1024, out))
}

/// The background service that writes queued lines.
pub struct AccessLogWriter {
    log: Arc<AccessLog>,
    sink: Arc<Mutex<Sink>>,
}

impl AccessLogWriter {
    /// The queue and its writer for `settings`; fails when the file cannot be opened.
    pub fn open(settings: &AccessLogSettings) -> Result<(Arc<AccessLog>, Self), String> {
        let sink = open(&settings.target).map_err(|e| match &settings.target {
            AccessLogTarget::File(path) => format!("cannot open {}: {e}", path.display()),
            AccessLogTarget::Stdout => format!("cannot write to stdout: {e}"),
        })?;
        let log = Arc::new(AccessLog::new(settings.sample, QUEUE_LINES));
        Ok((
            log.clone(),
            Self {
                log,
                sink: Arc::new(Mutex::new(sink)),
            },
        ))
    }

    /// Writes and flushes everything queued (on a blocking thread); returns
    /// a buffer for the next turn.
    async fn write_pending(&self, spare: Vec<u8>) -> Vec<u8> {
        let (batch, lines) = self.log.take(spare);
        if lines == 0 {
            return batch;
        }
        let sink = self.sink.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut sink = sink.lock();
            let result = sink.write_all(&batch).and_then(|()| sink.flush());
            (batch, result)
        })
        .await;
        match written {
            Ok((batch, Ok(()))) => reuse(batch),
            Ok((batch, Err(e))) => {
                metrics().access_log_dropped.inc_by(lines as u64);
                log::warn!("access log: {lines} lines not written: {e}");
                reuse(batch)
            }
            Err(e) => {
                metrics().access_log_dropped.inc_by(lines as u64);
                log::warn!("access log: {lines} lines not written: {e}");
                Vec::new()
            }
        }
    }
}

/// A written batch's buffer, kept for the next one unless it grew large.
fn reuse(mut batch: Vec<u8>) -> Vec<u8> {
    if batch.capacity() > KEEP_BUFFER {
        return Vec::new();
    }
    batch.clear();
    batch
}

#[async_trait]
impl BackgroundService for AccessLogWriter {
    /// Writes every [`FLUSH_EVERY`], and at once when shutdown starts. It
    /// keeps writing after that: requests still in flight finish during the
    /// grace period, and their lines come after the signal; the task ends
    /// when Pingora drops its runtime.
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut spare = Vec::new();
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = shutdown.changed(), if !stopping => stopping = true,
            }
            spare = self.write_pending(spare).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entry(f: Fields<'_>) -> Value {
        serde_json::to_value(Entry::new(f)).expect("json")
    }

    #[test]
    fn every_field_is_present_and_absent_ones_are_null() {
        let v = entry(Fields {
            request_id: "r1",
            method: "GET",
            decision: "pending",
            ..Fields::default()
        });
        let obj = v.as_object().expect("object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        for k in [
            "ts",
            "request_id",
            "method",
            "route",
            "path",
            "status",
            "decision",
            "reason",
            "account",
            "key_id",
            "key_prefix",
            "plan",
            "client_ip",
            "cost",
            "credits_remaining",
            "bytes_sent",
            "duration_ms",
            "upstream_ms",
        ] {
            assert!(keys.contains(&k), "{k} missing from {v}");
        }
        assert_eq!(obj.len(), 18);
        for k in [
            "route",
            "path",
            "status",
            "account",
            "key_id",
            "cost",
            "upstream_ms",
        ] {
            assert!(v[k].is_null(), "{k}: {v}");
        }
    }

    #[test]
    fn values_are_formatted_and_cut() {
        let started = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678912Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let long = format!("/api/{}", "é".repeat(200));
        let id = uuid::Uuid::from_u128(7);
        let v = entry(Fields {
            started: Some(started),
            request_id: "abc",
            method: "POST",
            route: Some("api"),
            path: Some(&long),
            status: 402,
            decision: "rejected",
            reason: Some("insufficient_credits"),
            party: Party {
                account: Some("acme"),
                key_id: Some(id),
                key_prefix: Some("tg_abcdefghijklmnop"),
                plan: Some("pro"),
                client_ip: Some("2001:db8::1".parse().expect("ip")),
                cost: None,
                credits_remaining: Some(0),
                bytes_sent: Some(120),
            },
            duration: Duration::from_micros(1234),
            upstream: Some(Duration::from_nanos(500_400)),
        });
        assert_eq!(v["ts"], "2025-01-02T03:04:05.678Z");
        assert_eq!(v["status"], 402);
        assert_eq!(v["reason"], "insufficient_credits");
        assert_eq!(v["key_id"], id.to_string());
        assert_eq!(v["key_prefix"], "tg_abcdefghi");
        assert_eq!(v["client_ip"], "2001:db8::1");
        assert_eq!(v["credits_remaining"], 0);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["upstream_ms"], 0.5);
        let path = v["path"].as_str().expect("path");
        assert!(
            path.len() <= MAX_PATH && path.len() >= MAX_PATH - 1,
            "{}",
            path.len()
        );
        assert!(long.starts_with(path));
    }

    #[test]
    fn cutting_respects_characters() {
        assert_eq!(truncate_bytes("héllo", 2), "h");
        assert_eq!(truncate_bytes("héllo", 3), "hé");
        assert_eq!(truncate_bytes("abc", 10), "abc");
        assert_eq!(truncate_chars("ééé", 2), "éé");
        assert_eq!(truncate_chars("ab", 12), "ab");
    }

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

    #[tokio::test]
    async fn the_writer_appends_to_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("access.log");
        std::fs::write(&path, "earlier\n").expect("seed");
        let settings = AccessLogSettings {
            target: AccessLogTarget::File(path.clone()),
            sample: 1.0,
        };
        let (log, writer) = AccessLogWriter::open(&settings).expect("open");
        log.push(&Entry::new(Fields {
            request_id: "x1",
            method: "GET",
            decision: "public",
            ..Fields::default()
        }));
        let spare = writer.write_pending(Vec::new()).await;
        assert!(spare.is_empty());
        let text = std::fs::read_to_string(&path).expect("read");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("earlier"));
        let v: Value = serde_json::from_str(lines.next().expect("line")).expect("json");
        assert_eq!(v["request_id"], "x1");
    }
}
