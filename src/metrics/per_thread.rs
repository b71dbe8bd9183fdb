//! Per-thread handles of the per-request series. Looking a labelled series up
//! in its `MetricVec` hashes every label value and takes the vector's lock on
//! every request; here each thread resolves a (route, status, decision) or an
//! origin once and keeps the handle, so a request only finds it in a small
//! map of its own. The series are the registry's: the counts are the same.

use super::metrics;
use pingora_prometheus::prometheus::{Histogram, IntCounter};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// One route's handles on this thread.
#[derive(Default)]
struct RouteSeries {
    duration: Option<Histogram>,
    /// `tollgate_requests_total` by (status, decision).
    requests: Vec<(u16, &'static str, IntCounter)>,
}

thread_local! {
    static ROUTES: RefCell<HashMap<Box<str>, RouteSeries>> = RefCell::new(HashMap::new());
    static ORIGINS: RefCell<HashMap<Box<str>, Histogram>> = RefCell::new(HashMap::new());
}

/// Counts a finished request in `tollgate_requests_total` and observes its
/// duration in `tollgate_request_duration_seconds`.
pub fn request_done(route: &str, status: u16, decision: &'static str, elapsed: Duration) {
    ROUTES.with(|routes| {
        let mut routes = routes.borrow_mut();
        let series = match routes.get_mut(route) {
            Some(s) => s,
            None => routes.entry(route.into()).or_default(),
        };
        let m = metrics();
        series
            .duration
            .get_or_insert_with(|| m.request_duration.with_label_values(&[route]))
            .observe(elapsed.as_secs_f64());
        match series
            .requests
            .iter()
            .find(|(s, d, _)| *s == status && *d == decision)
        {
            Some((_, _, counter)) => counter.inc(),
            None => {
                let counter = m
                    .requests
                    .with_label_values(&[route, &status.to_string(), decision]);
                counter.inc();
                series.requests.push((status, decision, counter));
            }
        }
    });
}

/// Observes the time an origin took to answer with its response header.
pub fn upstream_answered(origin: &str, elapsed: Duration) {
    ORIGINS.with(|origins| {
        let mut origins = origins.borrow_mut();
        let histogram = match origins.get(origin) {
            Some(h) => h,
            None => origins
                .entry(origin.into())
                .or_insert_with(|| metrics().upstream_duration.with_label_values(&[origin])),
        };
        histogram.observe(elapsed.as_secs_f64());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_thread_handles_count_in_the_registry_series() {
        let m = metrics();
        let counter = m
            .requests
            .with_label_values(&["per-thread-test", "200", "public"]);
        let before = counter.get();
        let histogram = m.request_duration.with_label_values(&["per-thread-test"]);
        let observed = histogram.get_sample_count();
        for _ in 0..3 {
            request_done("per-thread-test", 200, "public", Duration::from_millis(1));
        }
        request_done("per-thread-test", 429, "rejected", Duration::from_millis(1));
        let other_thread = std::thread::spawn(|| {
            request_done("per-thread-test", 200, "public", Duration::from_millis(1));
        });
        assert!(other_thread.join().is_ok());
        assert_eq!(counter.get(), before + 4);
        assert_eq!(histogram.get_sample_count(), observed + 5);
        let refused = m
            .requests
            .with_label_values(&["per-thread-test", "429", "rejected"]);
        assert!(refused.get() >= 1);

        let upstream = m
            .upstream_duration
            .with_label_values(&["per-thread-origin"]);
        let seen = upstream.get_sample_count();
        upstream_answered("per-thread-origin", Duration::from_millis(2));
        upstream_answered("per-thread-origin", Duration::from_millis(2));
        assert_eq!(upstream.get_sample_count(), seen + 2);
    }
}
