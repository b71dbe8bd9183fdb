//! Store failures as clients see them, built in one place: an outage is a 503
//! with `Retry-After: 1`; a record that cannot be read is a 500, logged loudly
//! (retrying would not help, and `fail_open` must not treat it as an outage).

use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind};
use crate::store::StoreError;

/// The reply to a store call `op` that failed, counted by operation.
pub fn store_failure(op: &'static str, e: StoreError) -> ApiError {
    metrics().store_errors.with_label_values(&[op]).inc();
    if let StoreError::Corrupt { .. } = e {
        log::error!("store {op}: {e}");
        return ApiError::new(ErrorKind::Internal);
    }
    log::warn!("store {op} failed: {e}");
    ApiError::detail(
        ErrorKind::Unavailable,
        "temporarily unavailable; retry shortly",
    )
    .header("Retry-After", "1")
}

/// `.or_unavailable(op)` on a store result: [`store_failure`] for its error.
pub trait OrUnavailable<T> {
    /// Maps a store error to the client's reply, naming the operation.
    fn or_unavailable(self, op: &'static str) -> Result<T, ApiError>;
}

impl<T> OrUnavailable<T> for Result<T, StoreError> {
    fn or_unavailable(self, op: &'static str) -> Result<T, ApiError> {
        self.map_err(|e| store_failure(op, e))
    }
}

/// Counts a decision made while the store was unreachable.
pub(crate) fn degraded(route: &str, outcome: &str) {
    metrics()
        .degraded_decisions
        .with_label_values(&[route, outcome])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_a_503_and_a_corrupt_record_a_500() {
        let down = store_failure("admit", StoreError::Unavailable("timeout".into()));
        assert_eq!(down.kind, ErrorKind::Unavailable);
        assert!(down
            .headers
            .iter()
            .any(|(k, v)| k == "Retry-After" && v == "1"));
        let corrupt = Err::<(), _>(StoreError::Corrupt {
            what: "key record tg:kh:00".into(),
            detail: "expected value".into(),
        })
        .or_unavailable("resolve")
        .expect_err("corrupt");
        assert_eq!(corrupt.kind, ErrorKind::Internal);
        assert!(corrupt.headers.is_empty());
        assert!(StoreError::Unavailable(String::new()).is_outage());
        assert!(!StoreError::NotFound("x".into()).is_outage());
    }
}
