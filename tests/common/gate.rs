//! A running tollgate: [`GateOpts`] (profile, origin, store, environment),
//! [`start_gate`], and the [`Gate`] helpers tests call it through (proxy,
//! admin API, metrics, raw bytes), with the secrets every test gateway shares.

use super::backend::Backend;
use super::http::{raw_exchange, reduce, Resp};
use super::ports::free_port;
use super::processes::{bin, root, start_listening, Logs, Proc};
use super::redis::RedisServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The short-lived token secret every test gateway signs with.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";

/// The admin token every test gateway uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The siteverify secret every test gateway gets (`TOLLGATE_TURNSTILE_SECRET`):
/// a profile with trials refuses to start without one. Tests that issue trials
/// point `TOLLGATE_TURNSTILE_URL` at [`super::origin::start_siteverify`] with
/// this secret.
pub const TURNSTILE_SECRET: &str = "test-turnstile-secret";

/// How long a tollgate gets to listen on its three ports (with Redis, the
/// proxy listens only once Redis is connected).
const GATE_START: Duration = Duration::from_secs(30);

/// The path of a test fixture profile.
pub fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// How to start a gateway.
pub struct GateOpts {
    pub profile: String,
    pub origin: String,
    pub trusted_proxies: String,
    pub env: Vec<(String, String)>,
    pub backend: Backend,
    pub redis_url: Option<String>,
    /// Variables that name more listeners, each set to a port of the gate's own.
    pub listeners: Vec<String>,
}

impl GateOpts {
    /// A shipped profile in front of `origin`.
    pub fn new(profile: &str, origin: &str) -> Self {
        Self {
            profile: profile.to_string(),
            origin: origin.to_string(),
            trusted_proxies: String::new(),
            env: Vec::new(),
            backend: Backend::Memory,
            redis_url: None,
            listeners: Vec::new(),
        }
    }

    /// Uses this store; `Redis` starts a redis-server of the gateway's own.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Uses an existing Redis (shared by several gateways).
    pub fn redis(mut self, url: &str) -> Self {
        self.backend = Backend::Redis;
        self.redis_url = Some(url.to_string());
        self
    }

    /// Trusts loopback peers to set the client-IP header.
    pub fn trust_loopback(mut self) -> Self {
        self.trusted_proxies = "127.0.0.1/32".into();
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// One more listener (e.g. `TOLLGATE_TLS_LISTEN`): the harness sets `var`
    /// to `127.0.0.1:PORT` on a port it picks, and [`start_gate`] returns once
    /// the gateway listens there itself too ([`Gate::port`] tells which).
    pub fn listen(mut self, var: &str) -> Self {
        self.listeners.push(var.to_string());
        self
    }
}

/// A running tollgate.
pub struct Gate {
    pub proc: Proc,
    /// The command line's config and environment, for [`Gate::spawn_upgrade`].
    launch: (PathBuf, Vec<(String, String)>),
    pub redis: Option<RedisServer>,
    pub url: String,
    pub admin_url: String,
    pub metrics_url: String,
    pub client: reqwest::blocking::Client,
    /// The ports of the listeners asked for with [`GateOpts::listen`], by variable.
    listeners: Vec<(String, u16)>,
}

/// The addresses a gateway listens on.
struct Listen {
    proxy: String,
    admin: String,
    metrics: String,
    more: Vec<(String, u16)>,
    env: Vec<(String, String)>,
}

/// `tollgate run --config CONFIG [--upgrade]` with exactly `env`.
fn gate_command(config: &Path, env: &[(String, String)], upgrade: bool) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--config"]).arg(config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Starts tollgate with a profile from `conf/` (or a path), once it listens
/// on its proxy, admin and metrics ports itself.
pub fn start_gate(opts: GateOpts) -> Gate {
    let config = if Path::new(&opts.profile).is_absolute() {
        PathBuf::from(&opts.profile)
    } else {
        root().join("conf").join(&opts.profile)
    };
    let (own_redis, redis_url) = match (opts.backend, &opts.redis_url) {
        (Backend::Memory, _) => (None, String::new()),
        (Backend::Redis, Some(url)) => (None, url.clone()),
        (Backend::Redis, None) => {
            let r = RedisServer::start();
            let url = r.url();
            (Some(r), url)
        }
    };
    let (proc, listen) = start_listening("tollgate", GATE_START, || {
        let ports: Vec<u16> = (0..3 + opts.listeners.len()).map(|_| free_port()).collect();
        let [proxy, admin, metrics] = [0, 1, 2].map(|i| format!("127.0.0.1:{}", ports[i]));
        let more: Vec<(String, u16)> = opts
            .listeners
            .iter()
            .cloned()
            .zip(ports[3..].iter().copied())
            .collect();
        let mut env: Vec<(String, String)> = [
            ("RUST_LOG", "info"),
            ("TOLLGATE_LISTEN", &proxy),
            ("TOLLGATE_ADMIN_LISTEN", &admin),
            ("TOLLGATE_METRICS_LISTEN", &metrics),
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("TOLLGATE_ORIGIN", &opts.origin),
            ("TOLLGATE_TRUSTED_PROXIES", &opts.trusted_proxies),
            ("TOLLGATE_REDIS_URL", &redis_url),
            // A generous Redis deadline: on a loaded test machine a call can take
            // longer than a production deadline (50ms) allows, and a 503 is not
            // what these tests measure. Outage tests set a short one.
            ("TOLLGATE_REDIS_TIMEOUT", "2s"),
            ("TOLLGATE_JWT_SECRET", JWT_SECRET),
            ("TOLLGATE_TURNSTILE_SECRET", TURNSTILE_SECRET),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        env.extend(
            more.iter()
                .map(|(var, port)| (var.clone(), format!("127.0.0.1:{port}"))),
        );
        env.extend(opts.env.iter().cloned());
        let proc = Proc::spawn(
            "tollgate",
            &mut gate_command(&config, &env, false),
            Logs::Stderr,
        );
        let listen = Listen {
            proxy,
            admin,
            metrics,
            more,
            env,
        };
        (proc, ports, listen)
    });
    Gate {
        proc,
        launch: (config, listen.env),
        redis: own_redis,
        url: format!("http://{}", listen.proxy),
        admin_url: format!("http://{}", listen.admin),
        metrics_url: format!("http://{}", listen.metrics),
        client: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        listeners: listen.more,
    }
}

impl Gate {
    /// Starts the same tollgate again with `run --upgrade`: it waits on
    /// `server.upgrade_sock` for this one's listening sockets (sent when this
    /// one gets SIGQUIT), so it is not waited for here.
    pub fn spawn_upgrade(&self) -> Proc {
        let (config, env) = &self.launch;
        Proc::spawn(
            "tollgate-upgrade",
            &mut gate_command(config, env, true),
            Logs::Stderr,
        )
    }

    /// The gateway's log once everything sent before has been logged: a
    /// refused credential form is logged at debug, so a log holding that
    /// line holds every line written before it (needs `RUST_LOG=debug` or
    /// finer).
    pub fn log_after_a_refused_credential(&self) -> String {
        let refused = self.get("/api/markets", &[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(refused.status, 401);
        super::wait::eventually(Duration::from_secs(5), || {
            let log = self.log();
            log.contains("credential refused").then_some(log)
        })
    }

    /// The port of a listener asked for with [`GateOpts::listen`].
    pub fn port(&self, var: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, port)| *port)
            .unwrap_or_else(|| panic!("no listener {var} was asked for"))
    }

    /// The log file of this tollgate.
    pub fn log(&self) -> String {
        self.proc.log_text()
    }

    /// Sends a request to the proxy with extra headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        reduce(req.send().expect("proxy request"))
    }

    /// GET through the proxy.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", path, headers, None)
    }

    /// GET with a bearer token.
    pub fn get_with(&self, path: &str, token: &str) -> Resp {
        self.get(path, &[("authorization", &format!("Bearer {token}"))])
    }

    /// Calls the admin API with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.admin_as(Some(ADMIN_TOKEN), method, path, body)
    }

    /// Calls the admin API with a given token.
    pub fn admin_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}{}", self.admin_url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        reduce(req.send().expect("admin request"))
    }

    /// Creates an account.
    pub fn create_account(&self, id: &str, plan: &str) {
        let r = self.admin(
            "POST",
            "/v1/accounts",
            Some(serde_json::json!({"id": id, "plan": plan})),
        );
        assert_eq!(r.status, 201, "create account: {}", r.body);
    }

    /// Creates a key; returns (id, token).
    pub fn create_key(&self, account: &str, name: &str) -> (String, String) {
        let r = self.admin(
            "POST",
            "/v1/keys",
            Some(serde_json::json!({"account": account, "name": name})),
        );
        assert_eq!(r.status, 201, "create key: {}", r.body);
        let v = r.json();
        (
            v["id"].as_str().expect("id").to_string(),
            v["token"].as_str().expect("token").to_string(),
        )
    }

    /// The metrics page.
    pub fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .expect("metrics")
            .text()
            .expect("metrics text")
    }

    /// Sends raw bytes to the proxy and returns the raw response head and body.
    pub fn raw(&self, request: &[u8]) -> String {
        raw_exchange(self.url.trim_start_matches("http://"), request)
    }
}

/// Redis calls made by a gateway so far, by operation, from its own metrics.
pub fn redis_calls(gate: &Gate) -> BTreeMap<String, u64> {
    gate.metrics()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tollgate_redis_duration_seconds_count{op=\"")?;
            let (op, n) = rest.split_once("\"} ")?;
            Some((op.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}
