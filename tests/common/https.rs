//! A tollgate serving HTTPS as well as HTTP: `tests/fixtures/edge.toml` with
//! a private CA and two certificates, `a.test` (the default) and `b.test`,
//! and clients that trust only that CA and resolve both names to loopback.

use super::certs::{certificates, leaf_for};
use super::gate::{fixture, start_gate, Gate, GateOpts};
use super::origin::{start_origin, Origin};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The two server names the certificates are for.
pub const HOSTS: [&str; 2] = ["a.test", "b.test"];

/// A gateway with an HTTPS listener, its sample origin and its certificates.
pub struct HttpsGate {
    pub gate: Gate,
    pub origin: Origin,
    /// The HTTPS listener's port on 127.0.0.1.
    pub tls_port: u16,
    /// Holds `ca.pem`, `a.pem`/`a.key` and `b.pem`/`b.key`.
    pub dir: PathBuf,
}

/// Starts a gateway on `edge.toml` with HTTPS, and `extra` variables.
pub fn start_https_gate(extra: &[(&str, &str)]) -> HttpsGate {
    let dir = certificates("edge");
    for (file, host) in [("a", HOSTS[0]), ("b", HOSTS[1])] {
        leaf_for(&dir, file, host);
    }
    let origin = start_origin();
    let path = |f: &str| dir.join(f).display().to_string();
    let mut opts = GateOpts::new(&fixture("edge.toml"), &origin.addr)
        .listen("TOLLGATE_TLS_LISTEN")
        .env("TOLLGATE_TLS_CERT_A", &path("a.pem"))
        .env("TOLLGATE_TLS_KEY_A", &path("a.key"))
        .env("TOLLGATE_TLS_CERT_B", &path("b.pem"))
        .env("TOLLGATE_TLS_KEY_B", &path("b.key"));
    for (k, v) in extra {
        opts = opts.env(k, v);
    }
    let gate = start_gate(opts);
    let tls_port = gate.port("TOLLGATE_TLS_LISTEN");
    HttpsGate {
        gate,
        origin,
        tls_port,
        dir,
    }
}

impl HttpsGate {
    /// `https://{host}:{port}{path}`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls_port)
    }

    /// The CA file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client builder that trusts only the test CA, resolves both names to
    /// the HTTPS listener and records the server's certificate.
    pub fn client_builder(&self) -> reqwest::blocking::ClientBuilder {
        let ca = std::fs::read(self.ca()).expect("ca");
        let addr: SocketAddr = ([127, 0, 0, 1], self.tls_port).into();
        let mut builder = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca pem"))
            .tls_info(true)
            .timeout(Duration::from_secs(20));
        for host in HOSTS {
            builder = builder.resolve(host, addr);
        }
        builder
    }

    /// [`Self::client_builder`], built.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client_builder().build().expect("https client")
    }

    /// The DER of the certificate in `{file}.pem` (the leaf, first).
    pub fn der(&self, file: &str) -> Vec<u8> {
        der_of(&self.dir.join(format!("{file}.pem")))
    }
}

/// The DER of the first certificate in a PEM file.
pub fn der_of(path: &std::path::Path) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(path).expect("pem");
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// The certificate the server presented on a response's connection.
pub fn peer_certificate(resp: &reqwest::blocking::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("tls info with a peer certificate")
        .to_vec()
}
