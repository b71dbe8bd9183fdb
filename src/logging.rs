//! The process logger: `env_logger` (`RUST_LOG`, default `info`) with
//! Pingora's own crates held at `info` whatever `RUST_LOG` asks for, writing
//! text lines or, with `server.log_format = "json"`, one JSON object a line.
//!
//! Pingora's debug and trace logs print whole request headers, so
//! `RUST_LOG=debug` would write callers' `Authorization` and `x-api-key`
//! values to the log. tollgate's own logs show a key's prefix, never a key.
//!
//! The logger is installed before the config is read ([`init`]); the format
//! is chosen once it is known ([`set_format`]), and applies to every record
//! from then on.

use chrono::{DateTime, SecondsFormat, Utc};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Crates whose logs never go below `info`.
const PINNED: &str = "pingora";

/// How log records are written (`server.log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `env_logger`'s text lines.
    #[default]
    Text,
    /// One JSON object a line: `ts` (RFC 3339, UTC, milliseconds), `level`,
    /// `target`, `msg`.
    Json,
}

/// Whether records are written as JSON (set by [`set_format`]).
static JSON: AtomicBool = AtomicBool::new(false);

/// Writes every record from now on in `format`.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Whether a record from `target` at `level` may be written.
fn allowed(target: &str, level: Level) -> bool {
    level <= Level::Info || !target.starts_with(PINNED)
}

/// One record as a JSON line (without the newline).
fn json_line(ts: DateTime<Utc>, level: Level, target: &str, msg: &str) -> String {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"ts\":{},\"level\":{},\"target\":{},\"msg\":{}}}",
        text(&ts.to_rfc3339_opts(SecondsFormat::Millis, true)),
        text(&level.as_str().to_ascii_lowercase()),
        text(target),
        text(msg),
    )
}

/// The same filter twice: one logger per format.
struct Pinned {
    text: env_logger::Logger,
    json: env_logger::Logger,
}

impl Pinned {
    fn current(&self) -> &env_logger::Logger {
        if JSON.load(Ordering::Relaxed) {
            &self.json
        } else {
            &self.text
        }
    }
}

impl Log for Pinned {
    fn enabled(&self, metadata: &Metadata) -> bool {
        allowed(metadata.target(), metadata.level()) && self.text.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if allowed(record.target(), record.level()) {
            self.current().log(record);
        }
    }

    fn flush(&self) {
        self.current().flush();
    }
}

/// `env_logger` configured from `RUST_LOG` (default `info`).
fn builder() -> env_logger::Builder {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
}

/// Installs the logger (text until [`set_format`] says otherwise); a second
/// call is a no-op.
pub fn init() {
    let text = builder().build();
    let json = builder()
        .format(|buf, record| {
            let line = json_line(
                Utc::now(),
                record.level(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(buf, "{line}")
        })
        .build();
    let max: LevelFilter = text.filter();
    if log::set_boxed_logger(Box::new(Pinned { text, json })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    #[test]
    fn a_json_record_is_one_line_with_its_fields() {
        let ts = Utc
            .timestamp_millis_opt(1_764_085_770_123)
            .single()
            .unwrap_or_default();
        let line = json_line(ts, Level::Warn, "tollgate::app", "two\nlines \"quoted\"");
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            line,
            r#"{"ts":"2025-11-25T15:49:30.123Z","level":"warn","target":"tollgate::app","msg":"two\nlines \"quoted\""}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(v["msg"], "two\nlines \"quoted\"");
    }
}
