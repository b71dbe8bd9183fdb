//! Usage recording off the request path: calls are queued in memory and a
//! background service writes them to the store in batches. A full queue drops
//! the oldest records (counted in `tollgate_usage_dropped_total`); it never
//! blocks a request.

use crate::metrics::metrics;
use crate::store::{Store, UsageEvent};
use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Largest batch written at once.
const BATCH: usize = 1000;

/// The bounded queue of calls to record.
pub struct UsageRecorder {
    queue: Mutex<VecDeque<UsageEvent>>,
    capacity: usize,
}

impl UsageRecorder {
    /// A queue holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// Queues a call, its path cut to [`crate::store::MAX_USAGE_PATH`] bytes;
    /// drops the oldest when full.
    pub fn push(&self, mut event: UsageEvent) {
        event.call.truncate_path();
        let mut q = self.queue.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            metrics().usage_dropped.inc();
        }
        q.push_back(event);
        metrics().usage_queued.set(q.len() as i64);
    }

    /// Takes up to `max` records, oldest first.
    pub fn drain(&self, max: usize) -> Vec<UsageEvent> {
        let mut q = self.queue.lock();
        let n = q.len().min(max);
        let batch = q.drain(..n).collect();
        metrics().usage_queued.set(q.len() as i64);
        batch
    }

    /// Records waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Whether nothing is waiting.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The background service that writes queued usage to the store.
pub struct UsageFlusher {
    pub recorder: Arc<UsageRecorder>,
    pub store: Arc<dyn Store>,
    pub interval: Duration,
}

impl UsageFlusher {
    async fn flush(&self) {
        loop {
            let batch = self.recorder.drain(BATCH);
            if batch.is_empty() {
                return;
            }
            let full = batch.len() == BATCH;
            if let Err(e) = self.store.record_usage(batch).await {
                metrics().usage_write_errors.inc();
                log::warn!("usage batch not written: {e}");
                return;
            }
            if !full {
                return;
            }
        }
    }
}

#[async_trait]
impl BackgroundService for UsageFlusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => self.flush().await,
                _ = shutdown.changed() => {
                    self.flush().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallRecord;
    use chrono::Utc;
    use uuid::Uuid;

    fn event(i: usize) -> UsageEvent {
        UsageEvent {
            key: Uuid::nil(),
            call: CallRecord {
                token: None,
                at: Utc::now(),
                method: "GET".into(),
                path: format!("/{i}"),
                status: 200,
                latency_ms: 0,
            },
        }
    }

    #[test]
    fn queued_paths_are_truncated() {
        let r = UsageRecorder::new(3);
        let mut e = event(0);
        e.call.path = format!("/api/{}", "ü".repeat(4096));
        r.push(e);
        let batch = r.drain(1);
        let path = &batch[0].call.path;
        assert!(path.len() <= crate::store::MAX_USAGE_PATH);
        assert!(path.len() >= crate::store::MAX_USAGE_PATH - 1);
        assert!(path.starts_with("/api/ü"));
    }

    #[test]
    fn full_queue_drops_oldest() {
        let r = UsageRecorder::new(3);
        let before = metrics().usage_dropped.get();
        for i in 0..5 {
            r.push(event(i));
        }
        assert_eq!(r.len(), 3);
        assert!(metrics().usage_dropped.get() >= before + 2);
        let batch = r.drain(10);
        assert_eq!(batch[0].call.path, "/2");
        assert!(r.is_empty());
    }
}
