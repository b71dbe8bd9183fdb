//! The compiled internal model: what the rest of tollgate reads. Built from the
//! file schema by validation; every value here has been checked.

use crate::auth::client_ip::ClientIpPolicy;
use crate::auth::credential::CredentialPolicy;
use crate::auth::keys::KeyFormat;
use crate::cors::Cors;
use crate::metering::Plan;
use crate::reply::ErrorTemplate;
use crate::routing::RouteTable;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The whole validated config.
#[derive(Debug)]
pub struct Config {
    pub server: ServerSettings,
    /// `None`: no admin listener.
    pub admin: Option<AdminSettings>,
    /// `None`: no metrics listener.
    pub metrics_listen: Option<String>,
    pub store: StoreSettings,
    pub client_ip: ClientIpPolicy,
    pub credentials: CredentialPolicy,
    pub keys: KeyFormat,
    pub errors: ErrorTemplate,
    /// The plan of callers without a credential on `anonymous` routes.
    pub anonymous_plan: Option<Arc<Plan>>,
    pub plans: BTreeMap<String, Arc<Plan>>,
    pub origins: BTreeMap<String, OriginSettings>,
    pub routes: RouteTable,
    pub trial: Option<TrialSettings>,
    /// Keys whose plaintext is public, by plaintext.
    pub public_keys: HashMap<String, PublicKey>,
    pub self_service: Option<SelfServiceSettings>,
    pub query: QueryPolicy,
    pub short_lived: Option<ShortLivedSettings>,
    /// CORS outside the routes (each route carries its own).
    pub cors: CorsSettings,
    /// `None`: no access log.
    pub access_log: Option<AccessLogSettings>,
}

/// `[access_log]`, checked and on.
#[derive(Debug, Clone)]
pub struct AccessLogSettings {
    pub target: AccessLogTarget,
    /// The share of admitted and forwarded requests logged, 0.0 to 1.0.
    pub sample: f64,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    /// A file, created if missing and appended to.
    File(std::path::PathBuf),
}

/// CORS: the global policy and tollgate's own endpoints' (each route carries
/// its own in [`crate::routing::Route::cors`]).
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// `[cors]`: also what answers given before an endpoint is known (a 404,
    /// a malformed path) carry.
    pub global: Cors,
    /// The trial endpoint.
    pub trial: Cors,
    /// The short-lived token endpoints.
    pub short_lived: Cors,
    /// The self-service key endpoints.
    pub self_service: Cors,
    /// Whether any route or endpoint takes part in CORS: preflights are
    /// looked for only then.
    pub enabled: bool,
}

/// `[short_lived]`, checked.
#[derive(Debug, Clone)]
pub struct ShortLivedSettings {
    pub tokens_path: String,
    pub inspect_path: String,
    pub issuer: String,
    pub signing_kid: String,
    /// `(kid, secret)`; an empty secret means a random one per process.
    pub secrets: Vec<(String, String)>,
    pub min_expires_in: Duration,
    pub max_expires_in: Duration,
    pub default_expires_in: Duration,
    pub max_count: u32,
    pub default_request_limit: u64,
    pub max_request_limit: u64,
    /// The per-key creation limit, as a plan.
    pub creation: Arc<Plan>,
    /// The field each endpoint's response is wrapped in.
    pub fields: ResponseFields,
}

/// The field each short-lived token endpoint's response is wrapped in
/// (`{"<field>": ...}`).
#[derive(Debug, Clone)]
pub struct ResponseFields {
    /// `POST` (the minted tokens).
    pub create: String,
    /// `GET` (the key's tokens).
    pub list: String,
    /// Inspect (one token).
    pub inspect: String,
    /// `DELETE` (the revoked token's id).
    pub delete: String,
}

/// A key declared in config whose plaintext is public (a demo key).
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// Stable id derived from the plaintext's hash.
    pub id: uuid::Uuid,
    pub account: String,
    pub plan: Arc<Plan>,
    pub name: String,
}

/// Account-facing key management.
#[derive(Debug, Clone)]
pub struct SelfServiceSettings {
    pub path: String,
    /// `None`: responses are not wrapped.
    pub envelope: Option<String>,
    pub key_field: String,
}

/// The query parameters plan policies look at.
#[derive(Debug, Clone)]
pub struct QueryPolicy {
    pub limit_param: String,
    pub pagination_params: Vec<String>,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: Vec<String>,
    pub threads: usize,
    /// Idle origin connections kept for reuse; fewer than the requests in
    /// flight means new origin connections under load.
    pub upstream_keepalive_pool: usize,
    /// Where a new process started with `run --upgrade` receives the
    /// listening sockets of the running one.
    pub upgrade_sock: String,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    /// CAs trusted for TLS origins (instead of the system roots).
    pub upstream_ca_file: Option<String>,
    /// Timeouts and limits of client connections.
    pub clients: ClientLimits,
    /// `None`: no HTTPS listener.
    pub https: Option<HttpsSettings>,
    /// `None`: responses are never compressed.
    pub compression: Option<CompressionSettings>,
    /// How the process log is written (`server.log_format`).
    pub log_format: crate::logging::LogFormat,
}

/// How long clients may take, and how much one connection may carry.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// From the connection's start (or the end of the previous response plus
    /// `idle_timeout`) to the end of the request header.
    pub header_timeout: Duration,
    /// The longest wait for the next piece of a request body (HTTP/1.1).
    pub body_timeout: Duration,
    /// How long a connection waits, idle, for its next request.
    pub idle_timeout: Duration,
    /// Requests served on one HTTP/1.1 connection.
    pub max_requests_per_connection: u32,
}

/// `[server.tls]`, checked: at least one address and one certificate.
#[derive(Debug, Clone)]
pub struct HttpsSettings {
    pub listen: Vec<String>,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    /// Chosen by SNI; the first is the default.
    pub certificates: Vec<CertificateFiles>,
}

/// One certificate chain and its key, as files.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: String,
    pub key: String,
    /// Server names (lower case) it answers for; empty: the DNS names in the
    /// certificate, read each time it is loaded.
    pub names: Vec<String>,
}

/// `[server.compression]`, checked and enabled.
#[derive(Debug, Clone)]
pub struct CompressionSettings {
    /// 1 to 9, for every algorithm.
    pub level: u32,
    /// Bodies whose `Content-Length` is smaller are not compressed.
    pub min_size: usize,
    /// Lower-case media types, `type/subtype` or `type/*`.
    pub types: Vec<String>,
}

/// `[admin]`
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: String,
    /// `None`: every call is refused.
    pub token: Option<String>,
}

/// The Redis store's connection and resilience settings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// One URL, or Cluster seed URLs.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// PEM CAs for `rediss://` (instead of the system roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Deadline of one call on the request path.
    pub timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub auth_cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
}

/// `[store]`
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `None`: the embedded store.
    pub redis: Option<RedisSettings>,
    pub usage_queue: usize,
    pub usage_flush: Duration,
}

/// Health checking of an origin's servers.
#[derive(Debug, Clone)]
pub enum HealthCheck {
    Tcp { interval: Duration },
    Http { path: String, interval: Duration },
}

/// `[origins.NAME]`
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub name: String,
    pub servers: Vec<String>,
    pub tls: bool,
    pub sni: String,
    pub host_header: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check: Option<HealthCheck>,
}

/// Human verification for trial issuance.
#[derive(Debug, Clone)]
pub struct VerificationSettings {
    pub siteverify_url: String,
    pub secret: String,
    pub field: String,
    pub timeout: Duration,
}

/// `[trial]`
#[derive(Debug, Clone)]
pub struct TrialSettings {
    pub path: String,
    pub plan: Arc<Plan>,
    pub ttl: Duration,
    /// The per-IP issuance cap, as a plan; `None`: no cap. Only successful
    /// issuances take from it.
    pub issuance: Option<Arc<Plan>>,
    /// `None`: the profile says `verification = "off"` (a secret is required
    /// otherwise, so `Some` always has one).
    pub verification: Option<VerificationSettings>,
}
