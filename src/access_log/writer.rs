//! The background service that writes the queued lines to the access log's
//! file or standard output, with a buffered writer flushed each time the
//! queue is emptied.

use super::{AccessLog, FLUSH_EVERY, KEEP_BUFFER, QUEUE_LINES};
use crate::config::{AccessLogSettings, AccessLogTarget};
use crate::metrics::metrics;
use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::io::{BufWriter, Write};
use std::sync::Arc;

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
    use crate::access_log::{Entry, Fields};
    use serde_json::Value;

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
