//! Server certificates: loading a chain and its key from PEM files, the names
//! each one answers for, and [`CertificateStore`], the SNI resolver the HTTPS
//! listeners ask during every handshake.

use crate::config::CertificateFiles;
use parking_lot::RwLock;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    install_default_crypto_provider, CertificateDer, CertificateError as TlsCertError, ClientHello,
    CryptoProvider, PrivateKeyDer, ResolvesServerCert, RusTlsError,
};
use std::fmt;
use std::sync::Arc;
use x509_parser::pem::Pem;

/// A certificate chain with its key, ready for handshakes.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    /// Lower-case server names, exact (`api.example.com`) or wildcard (`*.example.com`).
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

/// Which of the two files a certificate could not be loaded from, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateError {
    /// The certificate file (`cert`).
    Cert(String),
    /// The key file (`key`), or the key does not match the certificate.
    Key(String),
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cert(m) | Self::Key(m) => f.write_str(m),
        }
    }
}

/// The PEM blocks of a file, as `(label, DER)`.
fn pem_blocks(path: &str, text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    Pem::iter_from_buffer(text)
        .map(|block| {
            block
                .map(|p| (p.label, p.contents))
                .map_err(|e| format!("{path:?} is not valid PEM: {e}"))
        })
        .collect()
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))
}

/// The DNS names a certificate is for: its subject alternative names, or its
/// common name when it has none.
fn names_in(path: &str, der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("{path:?}: the first certificate cannot be parsed: {e}"))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    if names.is_empty() {
        return Err(format!(
            "{path:?} names no DNS name; list the names it is for in `names`"
        ));
    }
    Ok(names)
}

/// The certificate chain of a PEM file, leaf first.
fn chain(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let blocks = pem_blocks(path, &read(path)?)?;
    let chain: Vec<CertificateDer<'static>> = blocks
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if chain.is_empty() {
        return Err(format!("{path:?} holds no PEM certificate"));
    }
    Ok(chain)
}

/// The private key of a PEM file.
fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let blocks = pem_blocks(path, &read(path)?)?;
    if blocks.iter().any(|(l, _)| l == "ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{path:?} holds an encrypted key; tollgate needs it unencrypted"
        ));
    }
    let der = blocks
        .into_iter()
        .find(|(l, _)| {
            matches!(
                l.as_str(),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
            )
        })
        .map(|(_, der)| der)
        .ok_or_else(|| format!("{path:?} holds no PEM private key"))?;
    PrivateKeyDer::try_from(der).map_err(|e| format!("{path:?}: {e}"))
}

/// Loads a certificate chain and its key, and checks they belong together.
pub fn load(files: &CertificateFiles) -> Result<LoadedCertificate, CertificateError> {
    let chain = chain(&files.cert).map_err(CertificateError::Cert)?;
    let names = if files.names.is_empty() {
        names_in(&files.cert, &chain[0]).map_err(CertificateError::Cert)?
    } else {
        files.names.clone()
    };
    let key = private_key(&files.key).map_err(CertificateError::Key)?;
    install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| CertificateError::Key("no TLS crypto provider is installed".into()))?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        RusTlsError::InconsistentKeys(_) => CertificateError::Key(format!(
            "{:?} is not the key of the certificate in {:?}",
            files.key, files.cert
        )),
        RusTlsError::InvalidCertificate(TlsCertError::BadEncoding) => CertificateError::Cert(
            format!("{:?}: the certificate is not valid DER", files.cert),
        ),
        other => CertificateError::Key(format!("{:?}: {other}", files.key)),
    })?;
    Ok(LoadedCertificate {
        names,
        key: Arc::new(key),
    })
}

/// Whether `pattern` (an exact name or `*.suffix`) covers the lower-case `name`.
fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

/// The certificates of the HTTPS listeners, chosen by SNI: an exact name
/// first, then a wildcard, then the first certificate (also for clients that
/// send no name). Entries are replaced one at a time when their files change.
#[derive(Debug)]
pub struct CertificateStore {
    entries: RwLock<Vec<LoadedCertificate>>,
}

impl CertificateStore {
    /// A store of these certificates, in configuration order; `None` when empty.
    pub fn new(entries: Vec<LoadedCertificate>) -> Option<Self> {
        (!entries.is_empty()).then(|| Self {
            entries: RwLock::new(entries),
        })
    }

    /// Replaces the certificate at `index` (its position in the configuration).
    pub fn replace(&self, index: usize, certificate: LoadedCertificate) {
        if let Some(slot) = self.entries.write().get_mut(index) {
            *slot = certificate;
        }
    }

    /// The certificate served for a server name (`None`: no SNI).
    pub fn select(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let entries = self.entries.read();
        let name = server_name.map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        let chosen = name.as_deref().and_then(|name| {
            let exact = entries.iter().find(|c| c.names.iter().any(|p| p == name));
            exact.or_else(|| {
                entries
                    .iter()
                    .find(|c| c.names.iter().any(|p| covers(p, name)))
            })
        });
        chosen.or_else(|| entries.first()).map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("*.example.com", "api.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(covers("api.example.com", "api.example.com"));
        assert!(!covers("api.example.com", "www.example.com"));
    }
}
