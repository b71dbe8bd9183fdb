//! `[server.tls]`: HTTPS listen addresses and certificates. Each certificate
//! is loaded here as it will be at start, so a missing file, a key that does
//! not match, or a certificate without names is reported with its key.

use super::{socket_addr, split_list, Issues};
use crate::config::certificates::{load, CertificateError};
use crate::config::model::{CertificateFiles, HttpsSettings};
use crate::config::schema::{TlsCertificateSection, TlsSection};

/// Whether a configured server name is a DNS name or a one-label wildcard.
fn valid_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        })
}

/// One `[[server.tls.certificates]]` entry.
fn certificate(is: &mut Issues, at: &str, c: &TlsCertificateSection) -> Option<CertificateFiles> {
    let (cert, key) = (c.cert.trim(), c.key.trim());
    if cert.is_empty() {
        is.add(format!("{at}.cert"), "is empty");
    }
    if key.is_empty() {
        is.add(format!("{at}.key"), "is empty");
    }
    let mut names = Vec::new();
    for (i, name) in c.names.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        if valid_name(&name) {
            names.push(name);
        } else {
            is.add(
                format!("{at}.names[{i}]"),
                format!("{name:?} is not a DNS name or *.domain"),
            );
        }
    }
    if cert.is_empty() || key.is_empty() {
        return None;
    }
    let files = CertificateFiles {
        cert: cert.to_string(),
        key: key.to_string(),
        names,
    };
    match load(&files) {
        Ok(_) => Some(files),
        Err(CertificateError::Cert(m)) => {
            is.add(format!("{at}.cert"), m);
            None
        }
        Err(CertificateError::Key(m)) => {
            is.add(format!("{at}.key"), m);
            None
        }
    }
}

/// `[server.tls]`: `None` when it has no listen address (and no certificate).
pub(super) fn compile_tls(is: &mut Issues, t: &TlsSection) -> Option<HttpsSettings> {
    let listen = split_list(&t.listen);
    let configured = t
        .certificates
        .iter()
        .any(|c| !c.cert.trim().is_empty() || !c.key.trim().is_empty());
    if listen.is_empty() {
        if configured {
            is.add(
                "server.tls.listen",
                "certificates are configured but there is no address to serve them on",
            );
        }
        return None;
    }
    for l in &listen {
        socket_addr(is, "server.tls.listen", l);
    }
    if t.certificates.is_empty() {
        is.add(
            "server.tls.certificates",
            "needs at least one certificate (the first is the default)",
        );
    }
    let reload_interval = is.duration("server.tls.reload_interval", &t.reload_interval);
    let certificates: Vec<CertificateFiles> = t
        .certificates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| certificate(is, &format!("server.tls.certificates[{i}]"), c))
        .collect();
    Some(HttpsSettings {
        listen,
        reload_interval,
        certificates,
    })
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_are_dns_names_or_one_wildcard() {
        assert!(valid_name("api.example.com"));
        assert!(valid_name("*.example.com"));
        assert!(valid_name("localhost"));
        assert!(!valid_name("*.*.example.com"));
        assert!(!valid_name("api..example.com"));
        assert!(!valid_name("exa mple.com"));
        assert!(!valid_name(""));
    }
}
