//! Assembles the Pingora server from a validated config: the proxy (with its
//! client-side layers from [`crate::edge`]), the admin API, the metrics
//! listener and the background services.

use crate::access_log::AccessLogWriter;
use crate::config::Config;
use crate::gatekeeper::Gatekeeper;
use crate::gateway::Proxy;
use crate::management::admin::AdminApi;
use crate::origin::{OriginError, OriginHealth, Origins};
use crate::store::memory::MemoryStore;
use crate::store::redis::{service::RedisService, RedisStore};
use crate::store::Store;
use crate::usage::{UsageFlusher, UsageRecorder};
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceHandle;
use std::sync::Arc;
use thiserror::Error;

/// Why the server could not be built.
#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot serve HTTPS: {0}")]
    Tls(String),
    #[error("access_log.path: {0}")]
    AccessLog(String),
}

/// The Pingora server settings from the config.
fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.server.threads,
        // Measured (benches/README.md): stealing costs CPU per request; a
        // pool smaller than the requests in flight costs far more.
        work_stealing: false,
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool,
        upgrade_sock: config.server.upgrade_sock.clone(),
        ca_file: config.server.upstream_ca_file.clone(),
        // After a graceful stop or upgrade is broadcast, Pingora waits
        // `grace_period_seconds` for in-flight requests, then shuts the
        // runtimes down, which drops whatever is still running: the drain
        // time is the grace period, and the shutdown timeout only bounds
        // blocking work.
        grace_period_seconds: Some(config.server.shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    }
}

/// The store, with the Redis connector service the proxy must wait for.
fn store(config: &Config, server: &mut Server) -> (Arc<dyn Store>, Option<ServiceHandle>) {
    match &config.store.redis {
        None => (Arc::new(MemoryStore::new()), None),
        Some(settings) => {
            let redis = Arc::new(RedisStore::new(settings.clone()));
            let connector = background_service("redis", RedisService(redis.clone()));
            (redis, Some(server.add_service(connector)))
        }
    }
}

/// Warnings about settings that are allowed but worth saying out loud.
fn warn_about(config: &Config) {
    if config.admin.as_ref().is_some_and(|a| a.token.is_none()) {
        log::warn!("admin.token is empty: every admin API call will be refused");
    }
    if config
        .trial
        .as_ref()
        .is_some_and(|t| t.verification.is_none())
    {
        log::warn!(
            "trial tokens are issued without human verification (trial.verification = \"off\")"
        );
    }
}

/// The admin API (with the origins' health for `/readyz`) and the
/// Prometheus listener, where configured.
fn add_operator_services(
    config: &Config,
    server: &mut Server,
    gatekeeper: Arc<Gatekeeper>,
    origins: OriginHealth,
) {
    if let Some(admin) = &config.admin {
        let mut svc = Service::new(
            "tollgate admin".to_string(),
            HttpServer::new_app(AdminApi {
                gatekeeper,
                origins,
            }),
        );
        svc.add_tcp(&admin.listen);
        server.add_service(svc);
    }
    if let Some(listen) = &config.metrics_listen {
        let mut svc = pingora_prometheus::prometheus_http_service();
        svc.add_tcp(listen);
        server.add_service(svc);
    }
}

/// Builds the server with every service: the proxy (after the store
/// connector, the health checks and the usage flusher), the admin API and
/// the metrics listener. With `upgrade`, the listening sockets are taken over
/// from the running process through `server.upgrade_sock` (it hands them over
/// on `SIGQUIT`) instead of being opened.
pub fn build(config: Config, upgrade: bool) -> Result<Server, AppError> {
    let config = Arc::new(config);
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf(&config));
    server.bootstrap();
    let (store, connector) = store(&config, &mut server);
    let mut dependencies: Vec<ServiceHandle> = connector.into_iter().collect();
    let (origins, health_services) = Origins::build(
        config.origins.values(),
        config.server.upstream_ca_file.as_deref(),
    )?;
    let origin_health = origins.health();
    let usage = Arc::new(UsageRecorder::new(config.store.usage_queue));
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| AppError::HttpClient(e.to_string()))?;
    warn_about(&config);
    // The access log's file is opened now, so that a bad path stops the start.
    let access_log = match &config.access_log {
        None => None,
        Some(settings) => {
            let (log, writer) = AccessLogWriter::open(settings).map_err(AppError::AccessLog)?;
            server.add_service(background_service("access log writer", writer));
            Some(log)
        }
    };
    let gatekeeper = Arc::new(Gatekeeper::new(config.clone(), store.clone()));
    // Register the metrics before the first request.
    let _ = crate::metrics::metrics();

    let edge = crate::edge::proxy_service(
        &server.configuration,
        &config.server,
        Proxy {
            gatekeeper: gatekeeper.clone(),
            origins,
            usage: usage.clone(),
            http,
            access_log,
        },
    )
    .map_err(AppError::Tls)?;
    if let Some(reloader) = edge.reloader {
        server.add_service(reloader);
    }
    for hc in health_services {
        dependencies.push(server.add_service(hc));
    }
    let flusher = UsageFlusher {
        recorder: usage,
        store,
        interval: config.store.usage_flush,
    };
    dependencies.push(server.add_service(background_service("usage flusher", flusher)));
    add_operator_services(&config, &mut server, gatekeeper, origin_health);
    let proxy_handle = server.add_service(edge.proxy);
    proxy_handle.add_dependencies(dependencies.iter());
    Ok(server)
}
