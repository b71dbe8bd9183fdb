//! Origins: named groups of upstream servers, round-robin load balanced and
//! health-checked by background services.

use crate::config::{HealthCheck, OriginSettings};
use pingora::connectors::http::Connector as HttpConnector;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;

/// Why origins could not be built.
#[derive(Debug, Error)]
pub enum OriginError {
    #[error("origin {origin}: cannot resolve servers: {source}")]
    Resolve {
        origin: String,
        source: std::io::Error,
    },
    #[error("origin {origin}: bad health check: {message}")]
    HealthCheck { origin: String, message: String },
}

/// One origin and its balancer.
pub struct Origin {
    pub settings: OriginSettings,
    lb: Arc<LoadBalancer<RoundRobin>>,
}

/// Every origin, by name.
#[derive(Default)]
pub struct Origins {
    map: HashMap<String, Origin>,
}

/// A health-check service to add to the server.
pub type HealthService = GenBackgroundService<LoadBalancer<RoundRobin>>;

/// A cheap, shareable view of every origin's server health (the balancers
/// the proxy picks from), for readiness: it never moves the round-robin.
#[derive(Clone, Default)]
pub struct OriginHealth {
    balancers: Vec<(String, Arc<LoadBalancer<RoundRobin>>)>,
}

impl OriginHealth {
    /// The origins, by name, that have no server the proxy may pick now:
    /// every server is failing its health check (origins without a health
    /// check count their servers as healthy).
    pub fn without_healthy_server(&self) -> Vec<&str> {
        self.balancers
            .iter()
            .filter(|(_, lb)| !has_healthy_server(lb))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Whether `lb` would pick a server: one is enabled and passes its health check.
fn has_healthy_server(lb: &LoadBalancer<RoundRobin>) -> bool {
    let backends = lb.backends();
    backends.get_backend().iter().any(|b| backends.ready(b))
}

impl Origins {
    /// Builds balancers and their health-check services.
    pub fn build<'a>(
        settings: impl IntoIterator<Item = &'a OriginSettings>,
        ca_file: Option<&str>,
    ) -> Result<(Self, Vec<HealthService>), OriginError> {
        // Health checks verify TLS origins against the same CAs as the proxy.
        let connector_options = || {
            let mut o = ConnectorOptions::new(1);
            o.ca_file = ca_file.map(String::from);
            Some(o)
        };
        let mut map = HashMap::new();
        let mut services = Vec::new();
        for s in settings {
            let mut lb =
                LoadBalancer::<RoundRobin>::try_from_iter(s.servers.iter().map(String::as_str))
                    .map_err(|source| OriginError::Resolve {
                        origin: s.name.clone(),
                        source,
                    })?;
            let lb = match &s.health_check {
                None => Arc::new(lb),
                Some(hc) => {
                    let interval = match hc {
                        HealthCheck::Tcp { interval } => {
                            let mut check = if s.tls {
                                TcpHealthCheck::new_tls(&s.sni)
                            } else {
                                TcpHealthCheck::new()
                            };
                            check.set_connector(TransportConnector::new(connector_options()));
                            lb.set_health_check(check);
                            *interval
                        }
                        HealthCheck::Http { path, interval } => {
                            let host = s.host_header.clone().unwrap_or_else(|| s.sni.clone());
                            let mut check = HttpHealthCheck::new(&host, s.tls);
                            check.req = RequestHeader::build("GET", path.as_bytes(), None)
                                .and_then(|mut r| {
                                    r.insert_header("Host", host.as_str())?;
                                    Ok(r)
                                })
                                .map_err(|e| OriginError::HealthCheck {
                                    origin: s.name.clone(),
                                    message: e.to_string(),
                                })?;
                            check.peer_template.sni = s.sni.clone();
                            check.set_connector(HttpConnector::new(connector_options()));
                            check.peer_template.options.connection_timeout =
                                Some(s.connect_timeout);
                            lb.set_health_check(Box::new(check));
                            *interval
                        }
                    };
                    lb.health_check_frequency = Some(interval);
                    let service = background_service(&format!("health check {}", s.name), lb);
                    let task = service.task();
                    services.push(service);
                    task
                }
            };
            map.insert(
                s.name.clone(),
                Origin {
                    settings: s.clone(),
                    lb,
                },
            );
        }
        Ok((Self { map }, services))
    }

    /// The health of every origin's servers, sorted by name, to share with
    /// the admin API's `/readyz`.
    pub fn health(&self) -> OriginHealth {
        let mut balancers: Vec<_> = self
            .map
            .iter()
            .map(|(name, o)| (name.clone(), o.lb.clone()))
            .collect();
        balancers.sort_by(|a, b| a.0.cmp(&b.0));
        OriginHealth { balancers }
    }

    /// The settings of an origin.
    pub fn settings(&self, name: &str) -> Option<&OriginSettings> {
        self.map.get(name).map(|o| &o.settings)
    }

    /// A healthy server of the origin, as a peer with the origin's timeouts and TLS.
    pub fn peer(&self, name: &str) -> Option<Box<HttpPeer>> {
        let origin = self.map.get(name)?;
        let backend = origin.lb.select(b"", 256)?;
        let addr = *backend.addr.as_inet()?;
        let s = &origin.settings;
        let mut peer = HttpPeer::new(addr, s.tls, s.sni.clone());
        peer.options.connection_timeout = Some(s.connect_timeout);
        peer.options.total_connection_timeout = Some(s.connect_timeout);
        peer.options.read_timeout = Some(s.read_timeout);
        Some(Box::new(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn origin(name: &str, servers: &[&str]) -> OriginSettings {
        OriginSettings {
            name: name.into(),
            servers: servers.iter().map(|s| s.to_string()).collect(),
            tls: false,
            sni: String::new(),
            host_header: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            health_check: None,
        }
    }

    #[test]
    fn an_origin_without_a_server_to_pick_is_named() {
        let settings = [
            origin("eu", &["127.0.0.1:1"]),
            origin("api", &["127.0.0.1:2", "127.0.0.1:3"]),
        ];
        let (origins, _) = Origins::build(&settings, None).unwrap_or_default();
        let health = origins.health();
        assert!(health.without_healthy_server().is_empty());
        // A server the balancer may not pick counts as unhealthy.
        let take_out = |name: &str, addr: &str| {
            let lb = &origins.map[name].lb;
            let backends = lb.backends();
            for b in backends.get_backend().iter() {
                if b.addr.to_string() == addr {
                    backends.set_enable(b, false);
                }
            }
        };
        take_out("api", "127.0.0.1:2");
        assert!(health.without_healthy_server().is_empty(), "one left");
        take_out("api", "127.0.0.1:3");
        take_out("eu", "127.0.0.1:1");
        assert_eq!(health.without_healthy_server(), ["api", "eu"]);
        assert!(origins.peer("api").is_none(), "and the proxy agrees");
    }
}
