//! Management: issuing keys (shared by every path that creates one), the public
//! trial endpoint, and the operator's admin API.

pub mod admin;
pub mod body;
pub mod keys;
pub mod self_service;
pub mod short_lived;
pub mod trial;

use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind};

/// A store failure in a management call: logged, counted, and answered 503.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    log::warn!("management store call failed: {e}");
    metrics()
        .store_errors
        .with_label_values(&["management"])
        .inc();
    ApiError::detail(
        ErrorKind::Unavailable,
        "temporarily unavailable; retry shortly",
    )
    .header("Retry-After", "1")
}
