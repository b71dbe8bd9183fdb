//! The Prometheus series, registered once in the default registry that
//! `pingora-prometheus` serves on the metrics listener. Every name starts with
//! `tollgate_`.

pub mod per_thread;

use pingora_prometheus::prometheus::{
    self, exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts,
};
use std::sync::LazyLock;

/// Every series tollgate exports.
pub struct Metrics {
    /// Requests by route, status and decision.
    pub requests: IntCounterVec,
    /// Requests tollgate refused itself, by reason.
    pub rejections: IntCounterVec,
    /// Time from request to response, by route.
    pub request_duration: HistogramVec,
    /// Time from sending upstream to the origin's response header, by origin.
    pub upstream_duration: HistogramVec,
    /// Failed upstream connections or exchanges, by origin.
    pub upstream_errors: IntCounterVec,
    /// Usage records dropped because the queue was full.
    pub usage_dropped: IntCounter,
    /// Usage records waiting to be written.
    pub usage_queued: IntGauge,
    /// Failed usage writes (batches).
    pub usage_write_errors: IntCounter,
    /// Store operations that failed, by operation.
    pub store_errors: IntCounterVec,
    /// Stored records that did not parse, by record (`key record`, `account`, …).
    pub store_corrupt_records: IntCounterVec,
    /// Keys issued, by kind (`standard`, `trial`).
    pub keys_issued: IntCounterVec,
    /// Redis call latency, by operation.
    pub redis_duration: HistogramVec,
    /// Redis call failures, by operation and kind (`error`, `timeout`, `breaker_open`).
    pub redis_errors: IntCounterVec,
    /// 1 while the Redis circuit breaker is open.
    pub redis_breaker_open: IntGauge,
    /// Admissions per script call (coalesced admissions).
    pub redis_admit_batch: Histogram,
    /// Decisions made while the store was unreachable, by route and outcome.
    pub degraded_decisions: IntCounterVec,
    /// Short-lived token events: `created`, `revoked`, `exhausted`.
    pub short_lived_tokens: IntCounterVec,
    /// Access log lines dropped: the queue was full, or the write failed.
    pub access_log_dropped: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Registers a collector with the default registry (the one
/// `pingora-prometheus` serves) and returns it.
#[allow(clippy::expect_used)]
fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    prometheus::default_registry()
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

/// A labelled counter, registered.
#[allow(clippy::expect_used)]
fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
}

/// A labelled latency histogram (50 µs to ~26 s), registered.
#[allow(clippy::expect_used)]
fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = exponential_buckets(0.00005, 2.0, 20).expect("valid buckets");
    register(
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid histogram"),
    )
}

/// Admissions per script call: 1, 2, 4, … 128.
#[allow(clippy::expect_used)]
fn batch_histogram() -> Histogram {
    let buckets = exponential_buckets(1.0, 2.0, 8).expect("valid buckets");
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_redis_admit_batch_size",
                "Admissions sent to Redis in one script call",
            )
            .buckets(buckets),
        )
        .expect("valid histogram"),
    )
}

/// The unlabelled series: usage queue counters and the breaker gauge.
#[allow(clippy::expect_used)]
fn scalars() -> (IntCounter, IntGauge, IntCounter, IntGauge) {
    let usage_dropped = register(
        IntCounter::new(
            "tollgate_usage_dropped_total",
            "Usage records dropped because the queue was full",
        )
        .expect("valid counter"),
    );
    let usage_queued = register(
        IntGauge::new(
            "tollgate_usage_queued",
            "Usage records waiting to be written",
        )
        .expect("valid gauge"),
    );
    let usage_write_errors = register(
        IntCounter::new(
            "tollgate_usage_write_errors_total",
            "Usage batches that could not be written",
        )
        .expect("valid counter"),
    );
    let redis_breaker_open = register(
        IntGauge::new(
            "tollgate_redis_breaker_open",
            "1 while the Redis circuit breaker is open",
        )
        .expect("valid gauge"),
    );
    (
        usage_dropped,
        usage_queued,
        usage_write_errors,
        redis_breaker_open,
    )
}

impl Metrics {
    // Names and label sets are constants checked by the unit test below, so the
    // only failure left is a second registration, which LazyLock rules out.
    #[allow(clippy::expect_used)]
    fn register() -> Self {
        let (usage_dropped, usage_queued, usage_write_errors, redis_breaker_open) = scalars();
        Self {
            requests: counter(
                "tollgate_requests_total",
                "Requests by route, status and decision",
                &["route", "status", "decision"],
            ),
            rejections: counter(
                "tollgate_rejections_total",
                "Requests refused by tollgate, by reason",
                &["reason"],
            ),
            request_duration: histogram(
                "tollgate_request_duration_seconds",
                "Time from request to response",
                &["route"],
            ),
            upstream_duration: histogram(
                "tollgate_upstream_duration_seconds",
                "Time from sending a request upstream to its response header",
                &["origin"],
            ),
            upstream_errors: counter(
                "tollgate_upstream_errors_total",
                "Failed upstream connections or exchanges",
                &["origin"],
            ),
            usage_dropped,
            usage_queued,
            usage_write_errors,
            store_errors: counter(
                "tollgate_store_errors_total",
                "Store operations that failed",
                &["op"],
            ),
            store_corrupt_records: counter(
                "tollgate_store_corrupt_records_total",
                "Stored records that did not parse",
                &["record"],
            ),
            keys_issued: counter("tollgate_keys_issued_total", "Keys issued", &["kind"]),
            redis_duration: histogram(
                "tollgate_redis_duration_seconds",
                "Redis call latency",
                &["op"],
            ),
            redis_errors: counter(
                "tollgate_redis_errors_total",
                "Redis call failures",
                &["op", "kind"],
            ),
            redis_breaker_open,
            redis_admit_batch: batch_histogram(),
            degraded_decisions: counter(
                "tollgate_degraded_decisions_total",
                "Decisions made while the store was unreachable",
                &["route", "outcome"],
            ),
            short_lived_tokens: counter(
                "tollgate_short_lived_tokens_total",
                "Short-lived token events",
                &["event"],
            ),
            access_log_dropped: register(
                IntCounter::new(
                    "tollgate_access_log_dropped_total",
                    "Access log lines dropped because the queue was full or the write failed",
                )
                .expect("valid counter"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        metrics().rejections.with_label_values(&["test"]).inc();
        let families = prometheus::gather();
        assert!(families
            .iter()
            .any(|f| f.name() == "tollgate_rejections_total"));
        assert!(families.iter().all(|f| f.name().starts_with("tollgate_")));
    }
}
