//! [`CertificateReloader`]: a background service that watches the certificate
//! files and swaps a certificate in when its files change. A file that cannot
//! be loaded leaves the certificate in service as it was, with an error logged.

use crate::config::certificates::{load, CertificateStore};
use crate::config::CertificateFiles;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What identifies a version of a file: inode, size and modification time
/// (a rename over it changes the inode, a rewrite the time).
type Stamp = Option<(u64, u64, SystemTime)>;

fn stamp(path: &str) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()?))
}

fn stamps(files: &CertificateFiles) -> (Stamp, Stamp) {
    (stamp(&files.cert), stamp(&files.key))
}

/// Polls the certificate files every `interval` and reloads the ones that changed.
pub struct CertificateReloader {
    pub store: Arc<CertificateStore>,
    pub files: Vec<CertificateFiles>,
    pub interval: Duration,
}

impl CertificateReloader {
    /// Reloads the certificate at `index`; keeps the one in service on failure.
    fn reload(&self, index: usize, files: &CertificateFiles) {
        match load(files) {
            Ok(certificate) => {
                log::info!(
                    "reloaded the TLS certificate {:?} (names: {})",
                    files.cert,
                    certificate.names.join(", ")
                );
                self.store.replace(index, certificate);
            }
            Err(e) => log::error!(
                "cannot reload the TLS certificate {:?}: {e}; the previous one stays in service",
                files.cert
            ),
        }
    }
}

#[async_trait]
impl BackgroundService for CertificateReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut seen: Vec<_> = self.files.iter().map(stamps).collect();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
            for (index, files) in self.files.iter().enumerate() {
                let now = stamps(files);
                if seen.get(index) != Some(&now) {
                    // A file may still be being written: a failed load is
                    // tried again when its stamp changes once more.
                    self.reload(index, files);
                    if let Some(slot) = seen.get_mut(index) {
                        *slot = now;
                    }
                }
            }
        }
    }
}
