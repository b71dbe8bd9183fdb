//! `[server]`, `[admin]` and `[metrics]`: the listeners and their limits.

use super::compression::compile_compression;
use super::tls::compile_tls;
use super::{ca_pem, socket_addr, split_list, Issues};
use crate::config::duration::parse_duration;
use crate::config::model::{AdminSettings, ClientLimits, ServerSettings};
use crate::config::schema::{AdminSection, MetricsSection, ServerSection};
use crate::logging::LogFormat;
use std::time::Duration;

/// The slow- and idle-client limits of `[server]`.
fn client_limits(is: &mut Issues, s: &ServerSection) -> ClientLimits {
    let header_timeout = is.duration("server.request_header_timeout", &s.request_header_timeout);
    let body_timeout = is.duration("server.request_body_timeout", &s.request_body_timeout);
    let idle_timeout = is.duration("server.idle_timeout", &s.idle_timeout);
    if idle_timeout < Duration::from_secs(1) {
        is.add("server.idle_timeout", "must be at least 1s");
    }
    if s.max_requests_per_connection == 0 {
        is.add("server.max_requests_per_connection", "must be at least 1");
    }
    ClientLimits {
        header_timeout,
        body_timeout,
        idle_timeout,
        max_requests_per_connection: s.max_requests_per_connection,
    }
}

/// `[server]`: listen addresses, threads, size limits, shutdown grace,
/// upstream CAs, client limits, HTTPS and compression.
pub(super) fn compile_server(is: &mut Issues, s: &ServerSection) -> ServerSettings {
    let listen = split_list(&s.listen);
    if listen.is_empty() {
        is.add("server.listen", "needs at least one address");
    }
    for l in &listen {
        socket_addr(is, "server.listen", l);
    }
    if !(1..=256).contains(&s.threads) {
        is.add("server.threads", "must be between 1 and 256");
    }
    if s.max_header_bytes < 1024 {
        is.add("server.max_header_bytes", "must be at least 1024");
    }
    if s.max_body_bytes < 1024 {
        is.add("server.max_body_bytes", "must be at least 1024");
    }
    if !(1..=65536).contains(&s.upstream_keepalive_pool) {
        is.add(
            "server.upstream_keepalive_pool",
            "must be between 1 and 65536",
        );
    }
    // A Unix socket path: absolute, and within sun_path's 108 bytes.
    if !s.upgrade_sock.starts_with('/') || s.upgrade_sock.len() > 100 {
        is.add(
            "server.upgrade_sock",
            "must be an absolute path of at most 100 bytes",
        );
    }
    ServerSettings {
        listen,
        threads: s.threads,
        upstream_keepalive_pool: s.upstream_keepalive_pool,
        upgrade_sock: s.upgrade_sock.clone(),
        max_header_bytes: s.max_header_bytes,
        max_body_bytes: s.max_body_bytes,
        shutdown_grace: parse_duration(&s.shutdown_grace).unwrap_or_else(|e| {
            is.add("server.shutdown_grace", e);
            Duration::from_secs(5)
        }),
        upstream_ca_file: match s.upstream_ca_file.trim() {
            "" => None,
            path => {
                ca_pem(is, "server.upstream_ca_file", path);
                Some(path.to_string())
            }
        },
        clients: client_limits(is, s),
        https: s.tls.as_ref().and_then(|t| compile_tls(is, t)),
        compression: compile_compression(is, &s.compression),
        log_format: compile_log_format(is, &s.log_format),
    }
}

/// `server.log_format`: `text` or `json`.
fn compile_log_format(is: &mut Issues, text: &str) -> LogFormat {
    match text.trim() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            is.add(
                "server.log_format",
                format!("{other:?} is not text or json"),
            );
            LogFormat::Text
        }
    }
}

/// `[admin]`: `None` when no listener is configured.
pub(super) fn compile_admin(is: &mut Issues, a: &AdminSection) -> Option<AdminSettings> {
    if a.listen.trim().is_empty() {
        return None;
    }
    socket_addr(is, "admin.listen", a.listen.trim());
    let token = a.token.trim().to_string();
    if !token.is_empty() && token.len() < 16 {
        is.add("admin.token", "must be at least 16 characters");
    }
    Some(AdminSettings {
        listen: a.listen.trim().to_string(),
        token: (!token.is_empty()).then_some(token),
    })
}

/// `[metrics]`: the listen address, `None` when empty.
pub(super) fn compile_metrics(is: &mut Issues, m: &MetricsSection) -> Option<String> {
    match m.listen.trim() {
        "" => None,
        l => {
            socket_addr(is, "metrics.listen", l);
            Some(l.to_string())
        }
    }
}
