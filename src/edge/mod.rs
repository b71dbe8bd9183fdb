//! The client side of the proxy: its listeners (plain HTTP, and HTTPS with
//! HTTP/2 by ALPN), server certificates chosen by SNI and reloaded from disk,
//! the timeouts that bound slow and idle clients, and response compression.
//!
//! [`proxy_service`] wraps the Pingora proxy in these layers; the request
//! pipeline itself (the `gateway`) is the same whatever the protocol.

pub mod compression;
pub mod connection;
pub mod reload;

use crate::config::certificates::{load, CertificateStore};
use crate::config::ServerSettings;
use compression::Compression;
use connection::{server_options, ClientConnections, RequestProgress, SessionLimits};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ALPN;
use pingora::proxy::{http_proxy, HttpProxy, ProxyHttp};
use pingora::server::configuration::ServerConf;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::services::listening::Service;
use reload::CertificateReloader;
use std::sync::Arc;

/// The proxy as Pingora serves it: the connection deadline around the
/// per-request limits around the proxy.
pub type ProxyApp<P> = ClientConnections<SessionLimits<HttpProxy<P>>>;

/// The proxy service and, with HTTPS, the service that reloads certificates.
pub struct EdgeServices<P> {
    pub proxy: Service<ProxyApp<P>>,
    pub reloader: Option<GenBackgroundService<CertificateReloader>>,
}

/// The certificate store for `[server.tls]`, loaded now.
fn certificate_store(
    https: &crate::config::HttpsSettings,
) -> Result<Arc<CertificateStore>, String> {
    let loaded = https
        .certificates
        .iter()
        .map(|files| load(files).map_err(|e| format!("server.tls: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    CertificateStore::new(loaded)
        .map(Arc::new)
        .ok_or_else(|| "server.tls.certificates: needs at least one certificate".to_string())
}

/// TLS settings of the HTTPS listeners: certificates from `store`, TLS 1.2
/// and 1.3 (Pingora's rustls listener offers no other), ALPN `h2` then
/// `http/1.1`.
fn tls_settings(store: Arc<CertificateStore>) -> Result<TlsSettings, String> {
    let mut settings = TlsSettings::intermediate("", "").map_err(|e| e.to_string())?;
    settings.set_cert_resolver(store);
    settings.set_alpn(ALPN::H2H1);
    Ok(settings)
}

/// Builds the proxy service with its listeners, limits and modules, and the
/// certificate reloader when HTTPS is configured. Fails when a certificate
/// cannot be loaded.
pub fn proxy_service<P>(
    conf: &Arc<ServerConf>,
    settings: &ServerSettings,
    proxy: P,
) -> Result<EdgeServices<P>, String>
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    let limits = &settings.clients;
    let options = server_options(limits);
    let mut http = http_proxy(conf, proxy);
    http.server_options = Some(options.clone());
    http.downstream_modules
        .add_module(RequestProgress::module());
    if let Some(compression) = &settings.compression {
        http.downstream_modules
            .add_module(Compression::module(compression.clone()));
    }
    let app = ClientConnections::new(SessionLimits::new(http, limits, options), limits.clone());
    let mut service = Service::new("tollgate proxy".to_string(), app);
    for addr in &settings.listen {
        service.add_tcp(addr);
    }
    let mut reloader = None;
    if let Some(https) = &settings.https {
        let store = certificate_store(https)?;
        for addr in &https.listen {
            service.add_tls_with_settings(addr, None, tls_settings(store.clone())?);
        }
        reloader = Some(background_service(
            "certificate reloader",
            CertificateReloader {
                store,
                files: https.certificates.clone(),
                interval: https.reload_interval,
            },
        ));
    }
    Ok(EdgeServices {
        proxy: service,
        reloader,
    })
}
