//! The background service that connects to Redis inside Pingora's runtime,
//! signals ready (the proxy waits for it), then listens for invalidations.

use super::{RedisStore, INVALIDATE_CHANNEL};
use crate::auth::keys::KeyHash;
use crate::config::validate_redact as redact;
use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::Arc;
use std::time::Duration;

/// Connects, then keeps the invalidation subscription alive.
pub struct RedisService(pub Arc<RedisStore>);

impl RedisService {
    async fn connect(&self, shutdown: &mut ShutdownWatch) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.0.connect().await {
                Ok(()) => {
                    log::info!(
                        "connected to redis {}",
                        self.0
                            .settings
                            .urls
                            .iter()
                            .map(|u| redact(u))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    return true;
                }
                Err(e) => log::warn!("cannot connect to redis yet: {e}; retrying in {delay:?}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return false,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Subscribes on one node (PUBLISH reaches every node of a Cluster) and
    /// applies invalidations until the subscription drops.
    async fn listen(&self, url: &str, shutdown: &mut ShutdownWatch) -> Result<(), String> {
        let client = super::conn::client(url, &self.0.settings).map_err(|e| e.to_string())?;
        let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())?;
        pubsub
            .subscribe(INVALIDATE_CHANNEL)
            .await
            .map_err(|e| e.to_string())?;
        // Anything published while we were away is unknown: nothing cached is fresh.
        self.0.cache.expire_all();
        log::info!("listening for key invalidations");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(m) => {
                        let payload: String = m.get_payload().unwrap_or_default();
                        if payload == "*" {
                            self.0.cache.expire_all();
                        } else if let Some(h) = KeyHash::from_hex(&payload) {
                            self.0.cache.invalidate(&h);
                        }
                    }
                    None => return Err("subscription closed".into()),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl BackgroundService for RedisService {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        if !self.connect(&mut shutdown).await {
            return;
        }
        ready.notify_ready();
        let urls = self.0.settings.urls.clone();
        let mut i = 0usize;
        loop {
            let Some(url) = urls.get(i % urls.len().max(1)) else {
                return;
            };
            match self.listen(url, &mut shutdown).await {
                Ok(()) => return,
                Err(e) => log::warn!("invalidation channel lost ({e}); reconnecting"),
            }
            self.0.cache.expire_all();
            i += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
