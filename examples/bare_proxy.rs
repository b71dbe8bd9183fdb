//! The floor under tollgate: a Pingora proxy with no tollgate logic at all.
//!
//! It forwards every request to one origin, with the server settings and the
//! allocator tollgate uses (`threads`, no work stealing, mimalloc), so that the load harness
//! (`benches/load/run.sh`) can tell Pingora's own cost per request from what
//! tollgate adds to it.
//!
//! ```sh
//! cargo run --release --example bare_proxy -- 127.0.0.1:8081 127.0.0.1:9000 1
//! ```
//! Arguments: listen address, origin address, worker threads (default 1).
//!
//! For measuring Pingora's own settings, these variables change the server
//! configuration: `BARE_WORK_STEALING=1`, `BARE_LISTENER_TASKS=N`
//! (`listener_tasks_per_fd`), `BARE_POOL=N` (`upstream_keepalive_pool_size`)
//! and `BARE_ALT_TIMER=1` (`runtime_enable_alt_timer`).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Forwards everything to `origin`.
struct Bare {
    origin: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

/// Listen address, origin and threads from the command line.
fn arguments() -> Result<(String, SocketAddr, usize), String> {
    let mut args = std::env::args().skip(1);
    let usage = || "usage: bare_proxy LISTEN ORIGIN [THREADS]".to_string();
    let listen = args.next().ok_or_else(usage)?;
    let origin = args.next().ok_or_else(usage)?;
    let origin = origin
        .parse()
        .map_err(|e| format!("ORIGIN {origin}: {e}"))?;
    let threads = match args.next() {
        Some(t) => t.parse().map_err(|e| format!("THREADS {t}: {e}"))?,
        None => 1,
    };
    Ok((listen, origin, threads))
}

/// A numeric setting from the environment, if set.
fn setting(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let (listen, origin, threads) = match arguments() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let defaults = ServerConf::default();
    let conf = ServerConf {
        threads,
        work_stealing: setting("BARE_WORK_STEALING").is_some_and(|v| v == 1),
        listener_tasks_per_fd: setting("BARE_LISTENER_TASKS").unwrap_or(1),
        upstream_keepalive_pool_size: setting("BARE_POOL")
            .unwrap_or(defaults.upstream_keepalive_pool_size),
        runtime_enable_alt_timer: setting("BARE_ALT_TIMER").is_some_and(|v| v == 1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..defaults
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { origin });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
