//! The file schema: what a TOML config file may contain, exactly as written.
//!
//! Every struct rejects unknown keys. Values are checked and turned into the
//! internal model in [`super::model`] by [`super::validate`].

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub client_ip: ClientIpSection,
    #[serde(default)]
    pub credentials: CredentialsSection,
    #[serde(default)]
    pub keys: KeysSection,
    #[serde(default)]
    pub errors: ErrorsSection,
    #[serde(default)]
    pub anonymous: Option<AnonymousSection>,
    #[serde(default)]
    pub plans: BTreeMap<String, PlanSection>,
    #[serde(default)]
    pub origins: BTreeMap<String, OriginSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub trial: Option<TrialSection>,
    #[serde(default)]
    pub self_service: Option<SelfServiceSection>,
    #[serde(default)]
    pub query: QuerySection,
    #[serde(default)]
    pub short_lived: Option<ShortLivedSection>,
    /// `[cors]`: the global CORS policy; absent: no CORS unless a route or
    /// endpoint has a table of its own.
    #[serde(default)]
    pub cors: Option<CorsSection>,
    /// `[access_log]`: one JSON line per request; absent: off.
    #[serde(default)]
    pub access_log: AccessLogSection,
}

/// `[access_log]`: one JSON line per request, written off the request path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSection {
    /// Empty: off. `-` or `stdout`: standard output. Otherwise a file, appended to.
    #[serde(default)]
    pub path: String,
    /// `json`, the only format.
    #[serde(default = "default_access_log_format")]
    pub format: String,
    /// The share of admitted and forwarded requests logged, 0.0 to 1.0;
    /// refusals and errors are always logged.
    #[serde(default = "default_access_log_sample")]
    pub sample: f64,
}

impl Default for AccessLogSection {
    fn default() -> Self {
        Self {
            path: String::new(),
            format: default_access_log_format(),
            sample: default_access_log_sample(),
        }
    }
}

fn default_access_log_format() -> String {
    "json".into()
}
fn default_access_log_sample() -> f64 {
    1.0
}

/// `[short_lived]`: JWTs minted from a static key, with an expiry and a request limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortLivedSection {
    /// `POST` creates, `GET` lists, `DELETE <path>/<id>` revokes.
    pub tokens_path: String,
    /// `GET <path>?token=<jwt>` inspects one token.
    pub inspect_path: String,
    /// The `iss` claim written and required.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The `kid` of the secret that signs new tokens.
    pub signing_kid: String,
    /// HS256 secrets by `kid`; older ones keep verifying during a rotation.
    pub secrets: Vec<JwtSecretSection>,
    #[serde(default = "default_min_expiry")]
    pub min_expires_in: String,
    #[serde(default = "default_max_expiry")]
    pub max_expires_in: String,
    #[serde(default = "default_expiry")]
    pub default_expires_in: String,
    #[serde(default = "default_max_count")]
    pub max_count: u32,
    #[serde(default = "default_request_limit")]
    pub default_request_limit: u64,
    #[serde(default = "default_max_request_limit")]
    pub max_request_limit: u64,
    /// Creation requests per static key per `creation_window`.
    #[serde(default = "default_creation_rate")]
    pub creation_rate: u32,
    #[serde(default = "default_window")]
    pub creation_window: String,
    /// Names of the response fields.
    #[serde(default)]
    pub fields: ShortLivedFields,
    /// CORS on the token endpoints; absent: `"inherit"`.
    #[serde(default)]
    pub cors: Option<CorsChoice>,
}

/// `[short_lived.secrets]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSecretSection {
    pub kid: String,
    /// At least 32 bytes. Empty (single instance only): a random secret per process.
    pub secret: String,
}

/// `[short_lived.fields]`: the response envelope of each endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortLivedFields {
    #[serde(default = "f_create")]
    pub create: String,
    #[serde(default = "f_list")]
    pub list: String,
    #[serde(default = "f_inspect")]
    pub inspect: String,
    #[serde(default = "f_delete")]
    pub delete: String,
}

impl Default for ShortLivedFields {
    fn default() -> Self {
        Self {
            create: f_create(),
            list: f_list(),
            inspect: f_inspect(),
            delete: f_delete(),
        }
    }
}

fn f_create() -> String {
    "createApiTokens".into()
}
fn f_list() -> String {
    "apiTokens".into()
}
fn f_inspect() -> String {
    "apiToken".into()
}
fn f_delete() -> String {
    "deleteApiToken".into()
}
fn default_issuer() -> String {
    "tollgate".into()
}
fn default_min_expiry() -> String {
    "60000ms".into()
}
fn default_max_expiry() -> String {
    "86400000ms".into()
}
fn default_expiry() -> String {
    "3600000ms".into()
}
fn default_max_count() -> u32 {
    25
}
fn default_request_limit() -> u64 {
    5000
}
fn default_max_request_limit() -> u64 {
    1_000_000
}
fn default_creation_rate() -> u32 {
    5
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Listen addresses; each entry may hold several, comma-separated.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Total size of the request line and headers; larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Largest body a management endpoint reads.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Seconds to drain connections on graceful shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace: String,
    /// PEM file of the CAs trusted for TLS origins; empty: the system roots.
    #[serde(default)]
    pub upstream_ca_file: String,
    /// Longest time a client may take to send a request's line and headers.
    #[serde(default = "default_header_timeout")]
    pub request_header_timeout: String,
    /// Longest wait for the next piece of a request body.
    #[serde(default = "default_body_timeout")]
    pub request_body_timeout: String,
    /// How long a connection may wait, idle, for its next request.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    /// Requests served on one HTTP/1.1 connection before it is closed.
    #[serde(default = "default_max_requests")]
    pub max_requests_per_connection: u32,
    /// Idle origin connections kept for reuse (per instance).
    #[serde(default = "default_upstream_pool")]
    pub upstream_keepalive_pool: usize,
    /// Unix socket through which `run --upgrade` takes over the listeners.
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    /// `[server.tls]`: HTTPS (and HTTP/2) listeners; absent: none.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// `[server.compression]`: response compression.
    #[serde(default)]
    pub compression: CompressionSection,
    /// How the process log is written: `text` or `json` (one object a line).
    #[serde(default = "default_log_format")]
    pub log_format: String,
}

fn default_log_format() -> String {
    "text".into()
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            threads: default_threads(),
            max_header_bytes: default_max_header_bytes(),
            max_body_bytes: default_max_body_bytes(),
            shutdown_grace: default_grace(),
            upstream_ca_file: String::new(),
            request_header_timeout: default_header_timeout(),
            request_body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_requests_per_connection: default_max_requests(),
            upstream_keepalive_pool: default_upstream_pool(),
            upgrade_sock: default_upgrade_sock(),
            tls: None,
            compression: CompressionSection::default(),
            log_format: default_log_format(),
        }
    }
}

fn default_header_timeout() -> String {
    "10s".into()
}
fn default_body_timeout() -> String {
    "30s".into()
}
fn default_idle_timeout() -> String {
    "60s".into()
}
fn default_max_requests() -> u32 {
    1000
}

/// `[server.tls]`: HTTPS listeners and their certificates.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// HTTPS listen addresses; each entry may hold several, comma-separated.
    /// Empty: no HTTPS listener (the certificates must then be empty too).
    #[serde(default)]
    pub listen: Vec<String>,
    /// How often the certificate files are checked for changes.
    #[serde(default = "default_tls_reload")]
    pub reload_interval: String,
    /// The certificates, chosen by SNI; the first is the default.
    #[serde(default)]
    pub certificates: Vec<TlsCertificateSection>,
}

fn default_tls_reload() -> String {
    "5s".into()
}

/// `[[server.tls.certificates]]`: one certificate chain and its key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificateSection {
    /// PEM file: the certificate, then its intermediates.
    pub cert: String,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Server names it answers for; empty: the DNS names in the certificate.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `[server.compression]`: compressing origin responses for clients that accept it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// 1 (fastest) to 9, for gzip, brotli and zstd alike.
    #[serde(default = "default_compression_level")]
    pub level: u32,
    /// Bodies with a smaller `Content-Length` are sent as they are.
    #[serde(default = "default_compression_min_size")]
    pub min_size: usize,
    /// Media types compressed: `type/subtype` or `type/*`.
    #[serde(default = "default_compression_types")]
    pub types: Vec<String>,
}

impl Default for CompressionSection {
    fn default() -> Self {
        Self {
            enabled: true,
            level: default_compression_level(),
            min_size: default_compression_min_size(),
            types: default_compression_types(),
        }
    }
}

fn default_compression_level() -> u32 {
    3
}
fn default_compression_min_size() -> usize {
    1024
}
fn default_compression_types() -> Vec<String> {
    [
        "application/json",
        "application/problem+json",
        "application/x-ndjson",
        "text/*",
    ]
    .map(String::from)
    .to_vec()
}

fn default_listen() -> Vec<String> {
    vec!["0.0.0.0:8080".into()]
}

fn default_upgrade_sock() -> String {
    "/tmp/tollgate_upgrade.sock".into()
}

fn default_upstream_pool() -> usize {
    256
}

fn default_threads() -> usize {
    2
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_grace() -> String {
    "5s".into()
}

/// `[admin]`: the operator API.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Empty: no admin listener.
    #[serde(default)]
    pub listen: String,
    /// Bearer token for the admin API. Empty: every admin call gets 401.
    #[serde(default)]
    pub token: String,
}

/// `[metrics]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Empty: no metrics listener.
    #[serde(default)]
    pub listen: String,
}

/// `[store]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Empty: the embedded in-process store. Several comma-separated URLs: Redis Cluster seeds.
    #[serde(default)]
    pub redis_url: String,
    /// Treat a single URL as a Redis Cluster seed.
    #[serde(default)]
    pub redis_cluster: bool,
    /// PEM CAs trusted for `rediss://` instead of the system roots.
    #[serde(default)]
    pub redis_ca_file: String,
    /// Deadline of one Redis call on the request path.
    #[serde(default)]
    pub redis_timeout: Option<String>,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default)]
    pub breaker_failures: Option<u32>,
    /// How long the breaker stays open before a probe.
    #[serde(default)]
    pub breaker_cooldown: Option<String>,
    /// How long a key record stays in the in-process cache (invalidations are pushed sooner).
    #[serde(default)]
    pub auth_cache_ttl: Option<String>,
    /// How long an unknown key stays negatively cached.
    #[serde(default)]
    pub negative_cache_ttl: Option<String>,
    /// Pending usage records kept before the oldest are dropped.
    #[serde(default)]
    pub usage_queue: Option<usize>,
    /// How often queued usage is written.
    #[serde(default)]
    pub usage_flush: Option<String>,
}

/// `[client_ip]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpSection {
    /// Header that carries the real client IP (e.g. `CF-Connecting-IP`). Empty: never read.
    #[serde(default)]
    pub header: String,
    /// CIDRs of proxies allowed to set that header; entries may be comma-separated.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// IPv6 callers are grouped by this prefix length.
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
}

impl Default for ClientIpSection {
    fn default() -> Self {
        Self {
            header: String::new(),
            trusted_proxies: Vec::new(),
            ipv6_prefix: default_v6_prefix(),
        }
    }
}

fn default_v6_prefix() -> u8 {
    64
}

/// `[credentials]`: where a credential may be sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSection {
    /// `Authorization: Bearer <token>`
    #[serde(default = "yes")]
    pub bearer: bool,
    /// `Authorization: <token>` with no scheme.
    #[serde(default)]
    pub raw_authorization: bool,
    /// `x-api-key: <token>`
    #[serde(default)]
    pub x_api_key: bool,
    /// Longest credential accepted; longer is a 401.
    #[serde(default = "default_max_token")]
    pub max_length: usize,
    /// Invalid credentials per client IP per minute before that client gets
    /// 429 without a store lookup; 0 disables.
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
}

fn default_failure_limit() -> u32 {
    0
}

impl Default for CredentialsSection {
    fn default() -> Self {
        Self {
            bearer: true,
            raw_authorization: false,
            x_api_key: false,
            max_length: default_max_token(),
            failure_limit: default_failure_limit(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max_token() -> usize {
    512
}

/// `[keys]`: the format of long-lived keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Random characters after the prefix.
    #[serde(default = "default_key_len")]
    pub random_length: usize,
    /// `base62` or `base64url`.
    #[serde(default = "default_alphabet")]
    pub alphabet: String,
    /// Characters of the key shown as `keyPrefix`.
    #[serde(default = "default_display")]
    pub display_prefix: usize,
    /// Keys whose plaintext is public (a demo key), declared here, not stored.
    #[serde(default)]
    pub public: Vec<PublicKeySection>,
}

/// `[[keys.public]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeySection {
    pub token: String,
    /// The account it authenticates as.
    pub account: String,
    pub plan: String,
    #[serde(default = "default_public_name")]
    pub name: String,
}

fn default_public_name() -> String {
    "public".into()
}

/// `[self_service]`: account-facing key management, authenticated by a valid key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfServiceSection {
    /// `POST` creates, `GET` lists, `DELETE <path>/<id>` revokes.
    pub path: String,
    /// Wrap responses in `{"<envelope>": ...}`; empty: no envelope.
    #[serde(default)]
    pub envelope: String,
    /// Name of the field carrying the new key's plaintext.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// CORS on this endpoint; absent: `"inherit"`.
    #[serde(default)]
    pub cors: Option<CorsChoice>,
}

fn default_key_field() -> String {
    "apiKey".into()
}

/// `[query]`: the parameters plan policies look at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySection {
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    #[serde(default = "default_pagination_params")]
    pub pagination_params: Vec<String>,
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            limit_param: default_limit_param(),
            pagination_params: default_pagination_params(),
        }
    }
}

fn default_limit_param() -> String {
    "limit".into()
}

fn default_pagination_params() -> Vec<String> {
    vec!["cursor".into(), "offset".into(), "page".into()]
}

impl Default for KeysSection {
    fn default() -> Self {
        Self {
            prefix: default_prefix(),
            random_length: default_key_len(),
            alphabet: default_alphabet(),
            display_prefix: default_display(),
            public: Vec::new(),
        }
    }
}

fn default_prefix() -> String {
    "tg_".into()
}
fn default_key_len() -> usize {
    43
}
fn default_alphabet() -> String {
    "base62".into()
}
fn default_display() -> usize {
    12
}

/// `[errors]`: the body of every response tollgate writes itself.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ErrorsSection {
    /// A JSON value (a TOML table); strings may hold `{code}`, `{message}`, `{status}`.
    #[serde(default)]
    pub template: Option<toml::Value>,
    /// Message text per error kind, overriding the built-in text.
    #[serde(default)]
    pub messages: BTreeMap<String, String>,
    /// How request bodies tollgate parses itself are refused when their shape is
    /// wrong; without it, like any other 400.
    #[serde(default)]
    pub validation: Option<ValidationSection>,
}

/// `[errors.validation]`: the answer to a request body of the wrong shape (bad
/// JSON, a missing or unknown field, a wrong type) on tollgate's own endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSection {
    /// HTTP status, 400 to 499.
    #[serde(default = "default_validation_status")]
    pub status: u16,
    /// The `{code}` of the body.
    #[serde(default = "default_validation_code")]
    pub code: String,
    /// The body (a table); a string that is exactly `{details}` becomes the list
    /// of problems. Default: `errors.template`.
    #[serde(default)]
    pub template: Option<toml::Value>,
    /// One problem (a table or a string): a string that is exactly `{loc}`
    /// becomes its location, `["body", "field", ...]`; strings may hold `{msg}`,
    /// `{type}` and `{field}`. Default: `{ loc = "{loc}", msg = "{msg}", type = "{type}" }`.
    #[serde(default)]
    pub item: Option<toml::Value>,
}

fn default_validation_status() -> u16 {
    400
}
fn default_validation_code() -> String {
    "BAD_REQUEST".into()
}

/// `[anonymous]`: callers without a credential on `anonymous` routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousSection {
    pub plan: String,
}

/// `[plans.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSection {
    /// Requests per window.
    pub rate: u32,
    #[serde(default = "default_window")]
    pub window: String,
    /// Bucket capacity; defaults to `rate` (a full window's quota).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Active (not revoked, not expired) keys an account may hold.
    #[serde(default)]
    pub max_active_keys: Option<u32>,
    /// A credit budget; without it, credits are not metered for this plan.
    #[serde(default)]
    pub credits: Option<CreditsSection>,
    /// Largest `limit` a request may ask for; above it is a 400 (never trimmed).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Whether pagination parameters are allowed.
    #[serde(default = "yes")]
    pub pagination: bool,
    /// Whether keys of this plan may manage keys over the API.
    #[serde(default = "yes")]
    pub key_management: bool,
    /// Whether keys of this plan may set `expiresAt` on keys they create.
    #[serde(default = "yes")]
    pub custom_expiry: bool,
    /// One bucket and one credit pool for every caller of the plan (a public demo key).
    #[serde(default)]
    pub shared: bool,
    /// Whether keys of this plan may mint short-lived tokens.
    #[serde(default)]
    pub short_lived_tokens: bool,
}

/// `[plans.NAME.credits]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsSection {
    /// Credits per refill period; with no period, the starting balance is set by the operator.
    pub budget: u64,
    /// The balance is reset to `budget` at the start of every period (aligned to the epoch).
    #[serde(default)]
    pub refill: Option<String>,
    /// `account` (each account its own balance) or `plan` (one pooled balance).
    #[serde(default = "default_pool")]
    pub pool: String,
}

fn default_pool() -> String {
    "account".into()
}

fn default_window() -> String {
    "1m".into()
}

/// `[origins.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSection {
    /// `host:port` entries; each may hold several, comma-separated.
    pub servers: Vec<String>,
    #[serde(default)]
    pub tls: bool,
    /// SNI and certificate name for TLS; defaults to the server's host.
    #[serde(default)]
    pub sni: String,
    /// Replaces the `Host` header sent upstream when set.
    #[serde(default)]
    pub host_header: String,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: String,
    #[serde(default)]
    pub health_check: Option<HealthCheckSection>,
}

fn default_connect_timeout() -> String {
    "2s".into()
}
fn default_read_timeout() -> String {
    "30s".into()
}

/// `[origins.NAME.health_check]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSection {
    /// `http` (GET `path`, expects 2xx) or `tcp` (connect only).
    #[serde(default = "default_hc_kind")]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default = "default_hc_interval")]
    pub interval: String,
}

fn default_hc_kind() -> String {
    "http".into()
}
fn default_hc_interval() -> String {
    "5s".into()
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub name: String,
    /// Path patterns: literal segments, `{name}` for one segment, a final `*` for the rest.
    pub paths: Vec<String>,
    /// Empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `public`, `anonymous` or `key`.
    pub access: String,
    pub origin: String,
    /// Credits a call costs (0 allowed).
    #[serde(default = "default_cost")]
    pub cost: u64,
    /// Plans allowed on this route; empty: every plan.
    #[serde(default)]
    pub plans: Vec<String>,
    /// `fail_closed` (503 while the store is unreachable) or `fail_open`
    /// (decide with a local limiter and cached key records).
    #[serde(default = "default_store_failure")]
    pub on_store_failure: String,
    /// Whether protocol upgrades (WebSocket) may pass on this route: each is
    /// admitted and charged as one call when it starts. Off: refused with 400.
    #[serde(default)]
    pub upgrade: bool,
    /// CORS on this route: `"inherit"` (absent), `"off"`, `"origin"` or a
    /// table overriding fields of `[cors]`.
    #[serde(default)]
    pub cors: Option<CorsChoice>,
}

fn default_cost() -> u64 {
    1
}

fn default_store_failure() -> String {
    "fail_closed".into()
}

/// `[trial]`: self-service trial tokens with no account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialSection {
    /// The POST endpoint that issues a trial token.
    pub path: String,
    /// The plan trial tokens are metered with.
    pub plan: String,
    #[serde(default = "default_trial_ttl")]
    pub ttl: String,
    /// Trial keys issued per client IP per `issue_window`; only successful
    /// issuances count. Absent: no cap.
    #[serde(default)]
    pub issue_rate: Option<u32>,
    /// The window of `issue_rate` (default `1h`); only with `issue_rate`.
    #[serde(default)]
    pub issue_window: Option<String>,
    /// Human verification: a `[trial.verification]` table, or `verification =
    /// "off"` to issue trial keys without it. Required: absent is an error.
    #[serde(default)]
    pub verification: Option<VerificationChoice>,
    /// CORS on this endpoint; absent: `"inherit"`.
    #[serde(default)]
    pub cors: Option<CorsChoice>,
}

fn default_trial_ttl() -> String {
    "7d".into()
}

/// `trial.verification`: the string `"off"`, or a `[trial.verification]` table.
/// TOML cannot hold both, so the two are exclusive by construction.
#[derive(Debug)]
pub enum VerificationChoice {
    /// `verification = "off"`: trial keys are issued without human verification.
    Off,
    /// `[trial.verification]`: every issuance is verified with the siteverify API.
    Siteverify(VerificationSection),
}

impl<'de> Deserialize<'de> for VerificationChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        struct Choice;

        impl<'de> Visitor<'de> for Choice {
            type Value = VerificationChoice;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the string \"off\" or a [trial.verification] table")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "off" {
                    Ok(VerificationChoice::Off)
                } else {
                    Err(E::custom(format!(
                        "{v:?} is not \"off\"; to verify trial requests, write a [trial.verification] table instead"
                    )))
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                VerificationSection::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(VerificationChoice::Siteverify)
            }
        }

        d.deserialize_any(Choice)
    }
}

/// `[trial.verification]`: human verification with a Turnstile-shaped siteverify API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationSection {
    pub siteverify_url: String,
    /// The siteverify secret; required (empty is a config error: write
    /// `verification = "off"` under `[trial]` to issue trial keys unverified).
    #[serde(default)]
    pub secret: String,
    /// JSON field of the request body that carries the widget's response token.
    #[serde(default = "default_verification_field")]
    pub field: String,
    #[serde(default = "default_verification_timeout")]
    pub timeout: String,
}

fn default_verification_field() -> String {
    "captchaToken".into()
}
fn default_verification_timeout() -> String {
    "5s".into()
}

/// `[cors]`, or a route's or endpoint's `cors` table: every field optional
/// (the global section's defaults are in [`crate::cors::CorsRules`]; a
/// route's table overrides the global section field by field).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    /// `["*"]`, exact origins (`https://app.example.com`) or wildcard
    /// subdomains (`https://*.example.com`); entries may be comma-separated.
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    /// `Access-Control-Allow-Methods`.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// `Access-Control-Allow-Headers`: request headers a preflight may announce.
    #[serde(default)]
    pub allow_headers: Option<Vec<String>>,
    /// `Access-Control-Expose-Headers`: response headers a script may read.
    #[serde(default)]
    pub expose_headers: Option<Vec<String>>,
    /// `Access-Control-Max-Age`, a duration (`"10m"`).
    #[serde(default)]
    pub max_age: Option<String>,
    /// `Access-Control-Allow-Credentials: true`; never with `origins = ["*"]`.
    #[serde(default)]
    pub credentials: Option<bool>,
}

/// A route's or endpoint's `cors`: `"inherit"`, `"off"`, `"origin"` (routes
/// only: CORS is the origin server's), or a table overriding `[cors]`.
#[derive(Debug)]
pub enum CorsChoice {
    /// The global `[cors]` (off without one).
    Inherit,
    /// No CORS here.
    Off,
    /// Left to the origin server.
    Origin,
    /// The global section with these fields replaced.
    Table(CorsSection),
}

impl<'de> Deserialize<'de> for CorsChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        struct Choice;

        impl<'de> Visitor<'de> for Choice {
            type Value = CorsChoice;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"inherit\", \"off\", \"origin\" or a table of [cors] fields")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "inherit" => Ok(CorsChoice::Inherit),
                    "off" => Ok(CorsChoice::Off),
                    "origin" => Ok(CorsChoice::Origin),
                    other => Err(E::custom(format!(
                        "{other:?} is not \"inherit\", \"off\" or \"origin\" (or a table of [cors] fields)"
                    ))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                CorsSection::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(CorsChoice::Table)
            }
        }

        d.deserialize_any(Choice)
    }
}
