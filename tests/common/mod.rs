//! Test harness: real processes on real loopback sockets. A sample origin and a
//! tollgate started from a shipped profile with its `TOLLGATE_*` variables.
#![allow(dead_code, clippy::expect_used)]

use serde_json::Value;

/// Runs each named `fn(Backend)` as two tests: `memory::name` and `redis::name`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Memory)
            })*
        }
        mod redis {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Redis)
            })*
        }
    };
}
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until `addr` accepts connections.
pub fn wait_port(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} did not start listening within {timeout:?}");
}

/// A child process killed when dropped.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(name: &str) -> (PathBuf, std::fs::File) {
    let dir = std::env::temp_dir().join("tollgate-tests");
    std::fs::create_dir_all(&dir).expect("log dir");
    let path = dir.join(format!("{name}-{}-{}.log", std::process::id(), free_port()));
    let file = std::fs::File::create(&path).expect("log file");
    (path, file)
}

/// The bundled sample origin.
pub struct Origin {
    _proc: Proc,
    pub addr: String,
}

/// Starts the sample origin on a free port.
pub fn start_origin() -> Origin {
    start_origin_with(&[])
}

/// Starts the sample origin with extra arguments (e.g. `--tls-cert`).
pub fn start_origin_with(extra: &[&str]) -> Origin {
    let addr = format!("127.0.0.1:{}", free_port());
    let (log, file) = log_file("origin");
    let child = Command::new(bin())
        .args(["sample-origin", "--listen", &addr])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn origin");
    wait_port(&addr, Duration::from_secs(10));
    Origin {
        _proc: Proc { child, log },
        addr,
    }
}

/// The short-lived token secret every test gateway signs with.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";

/// The admin token every test gateway uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The siteverify secret every test gateway gets (`TOLLGATE_TURNSTILE_SECRET`):
/// a profile with trials refuses to start without one. Tests that issue trials
/// point `TOLLGATE_TURNSTILE_URL` at [`start_siteverify`] with this secret.
pub const TURNSTILE_SECRET: &str = "test-turnstile-secret";

/// Which store a gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store.
    Memory,
    /// A redis-server of its own, started by the harness.
    Redis,
}

/// A real redis-server on a free loopback port, killed when dropped.
pub struct RedisServer {
    proc: Option<Proc>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a non-persistent server.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let mut args = vec!["--port".to_string(), port.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn_new(port, args)
    }

    /// Starts a server whose arguments set the listening port themselves
    /// (`port` is where the harness waits, e.g. a `--tls-port`).
    pub fn start_on(port: u16, args: &[&str]) -> Self {
        Self::spawn_new(port, args.iter().map(|s| s.to_string()).collect())
    }

    fn spawn_new(port: u16, extra: Vec<String>) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tollgate-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = Self {
            proc: None,
            port,
            dir,
            extra,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let (log, file) = log_file("redis");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/deps.sh test)");
        self.proc = Some(Proc { child, log });
        wait_port(&format!("127.0.0.1:{}", self.port), Duration::from_secs(10));
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Runs redis-cli against this server and returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Calls of one command from `INFO commandstats`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let info = self.cli(&["INFO", "commandstats"]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// How to start a gateway.
pub struct GateOpts {
    pub profile: String,
    pub origin: String,
    pub trusted_proxies: String,
    pub env: Vec<(String, String)>,
    pub backend: Backend,
    pub redis_url: Option<String>,
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
}

/// A running tollgate.
pub struct Gate {
    proc: Proc,
    pub redis: Option<RedisServer>,
    pub url: String,
    pub admin_url: String,
    pub metrics_url: String,
    pub client: reqwest::blocking::Client,
}

/// Starts tollgate with a profile from `conf/` (or a path).
pub fn start_gate(opts: GateOpts) -> Gate {
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
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
    let (log, file) = log_file("tollgate");
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("TOLLGATE_LISTEN", &listen)
        .env("TOLLGATE_ADMIN_LISTEN", &admin)
        .env("TOLLGATE_METRICS_LISTEN", &metrics)
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOLLGATE_ORIGIN", &opts.origin)
        .env("TOLLGATE_TRUSTED_PROXIES", &opts.trusted_proxies)
        .env("TOLLGATE_REDIS_URL", &redis_url)
        // A generous Redis deadline: on a loaded test machine a call can take
        // longer than a production deadline (50ms) allows, and a 503 is not
        // what these tests measure. Outage tests set a short one.
        .env("TOLLGATE_REDIS_TIMEOUT", "2s")
        .env("TOLLGATE_JWT_SECRET", JWT_SECRET)
        .env("TOLLGATE_TURNSTILE_SECRET", TURNSTILE_SECRET)
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn tollgate");
    let proc = Proc { child, log };
    wait_port(&admin, Duration::from_secs(20));
    wait_port(&listen, Duration::from_secs(20));
    Gate {
        proc,
        redis: own_redis,
        url: format!("http://{listen}"),
        admin_url: format!("http://{admin}"),
        metrics_url: format!("http://{metrics}"),
        client: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
    }
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header, lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether the origin produced this response (the sample origin marks its own).
    pub fn reached_origin(&self) -> bool {
        self.headers.contains_key("x-origin-server")
    }
}

fn reduce(r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = r.text().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

impl Gate {
    /// The log file of this tollgate.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proc.log).unwrap_or_default()
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
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(request).expect("write");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if let Some(text) = complete_response(&out) {
                        return text;
                    }
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Where an HTTP/1 message's body starts, once its head and its
/// content-length body have fully arrived.
fn body_start(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let head_end = text.find("\r\n\r\n")?;
    let len = text[..head_end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (bytes.len() >= head_end + 4 + len).then_some(head_end + 4)
}

/// The whole response text once it is complete.
fn complete_response(bytes: &[u8]) -> Option<String> {
    body_start(bytes).map(|_| String::from_utf8_lossy(bytes).into_owned())
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A stub siteverify server: answers success only for `good` with the right secret.
pub struct Siteverify {
    pub url: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts a Turnstile-shaped siteverify stub on a free port (a thread, real socket).
pub fn start_siteverify(secret: &'static str, good: &'static str) -> Siteverify {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
    let url = format!("http://{}/siteverify", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen2.clone();
            std::thread::spawn(move || serve_siteverify(stream, secret, good, &seen));
        }
    });
    Siteverify { url, seen }
}

fn serve_siteverify(
    mut s: TcpStream,
    secret: &str,
    good: &str,
    seen: &std::sync::Mutex<Vec<String>>,
) {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body = loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(start) = body_start(&buf) {
            break String::from_utf8_lossy(&buf[start..]).into_owned();
        }
    };
    seen.lock().expect("lock").push(body.clone());
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ok = form.get("secret").map(String::as_str) == Some(secret)
        && form.get("response").map(String::as_str) == Some(good)
        && form.contains_key("remoteip");
    let answer = if ok {
        r#"{"success":true,"error-codes":[]}"#
    } else {
        r#"{"success":false,"error-codes":["invalid-input-response"]}"#
    };
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = s.write_all(resp.as_bytes());
}

/// A 3-master Redis Cluster on loopback, made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        // Each node needs its own cluster config file name.
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        eventually(Duration::from_secs(15), || {
            cluster
                .nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                .then_some(())
        });
        cluster
    }

    /// The seed list for `TOLLGATE_REDIS_URL`.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Calls of a command summed over the nodes.
    pub fn command_calls(&self, command: &str) -> u64 {
        self.nodes.iter().map(|n| n.command_calls(command)).sum()
    }

    /// Resets command statistics on every node.
    pub fn reset_stats(&self) {
        for n in &self.nodes {
            n.cli(&["CONFIG", "RESETSTAT"]);
        }
    }
}

/// The path of a test fixture profile.
pub fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Redis calls made by a gateway so far, by operation, from its own metrics.
pub fn redis_calls(gate: &Gate) -> std::collections::BTreeMap<String, u64> {
    gate.metrics()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tollgate_redis_duration_seconds_count{op=\"")?;
            let (op, n) = rest.split_once("\"} ")?;
            Some((op.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed (scripts/deps.sh test)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh CA (`ca.pem`) and a `localhost` certificate it signed (`leaf.pem`,
/// `leaf.key`), in a new directory.
pub fn certificates(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-tls-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tollgate test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    dir
}
