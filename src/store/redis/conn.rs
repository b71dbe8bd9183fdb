//! One handle over a single Redis node or a Redis Cluster, both of which
//! reconnect by themselves.

use crate::config::RedisSettings;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, TlsCertificates, Value};
use std::time::Duration;

/// A cheap-to-clone connection.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A client for one node, trusting the configured CAs for `rediss://`.
pub fn client(url: &str, s: &RedisSettings) -> RedisResult<redis::Client> {
    match &s.ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => redis::Client::open(url),
    }
}

impl Conn {
    /// Connects according to the settings.
    pub async fn connect(s: &RedisSettings) -> RedisResult<Self> {
        if s.cluster {
            let mut builder = ClusterClientBuilder::new(s.urls.clone())
                .connection_timeout(CONNECT_TIMEOUT)
                .retries(1);
            if let Some(pem) = &s.ca_pem {
                builder = builder.certs(TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                });
            }
            Ok(Conn::Cluster(
                builder.build()?.get_async_connection().await?,
            ))
        } else {
            let url = s.urls.first().cloned().unwrap_or_default();
            let client = client(&url, s)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            Ok(Conn::Single(
                client.get_connection_manager_with_config(config).await?,
            ))
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
