//! The process logger: `env_logger` (`RUST_LOG`, default `info`) with
//! Pingora's own crates held at `info` whatever `RUST_LOG` asks for.
//!
//! Pingora's debug and trace logs print whole request headers, so
//! `RUST_LOG=debug` would write callers' `Authorization` and `x-api-key`
//! values to the log. tollgate's own logs show a key's prefix, never a key.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Crates whose logs never go below `info`.
const PINNED: &str = "pingora";

/// Whether a record from `target` at `level` may be written.
fn allowed(target: &str, level: Level) -> bool {
    level <= Level::Info || !target.starts_with(PINNED)
}

struct Pinned(env_logger::Logger);

impl Log for Pinned {
    fn enabled(&self, metadata: &Metadata) -> bool {
        allowed(metadata.target(), metadata.level()) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if allowed(record.target(), record.level()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Installs the logger; a second call is a no-op.
pub fn init() {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max: LevelFilter = logger.filter();
    if log::set_boxed_logger(Box::new(Pinned(logger))).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_is_held_at_info() {
        assert!(!allowed("pingora_proxy::proxy_h1", Level::Debug));
        assert!(!allowed(
            "pingora_core::protocols::http::v1::server",
            Level::Trace
        ));
        assert!(allowed("pingora_core::server", Level::Info));
        assert!(allowed("pingora_proxy", Level::Warn));
        assert!(allowed("tollgate::gateway", Level::Debug));
    }
}
