//! Real Redis for tests: [`RedisServer`], a redis-server on a loopback port
//! of its own, and [`RedisCluster`], three of them joined as a 3-master
//! Cluster. Both are killed when dropped.

use super::ports::free_port;
use super::processes::{start_listening, unique_name, Logs, Proc};
use super::wait::eventually;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How long a redis-server gets to listen.
const REDIS_START: Duration = Duration::from_secs(10);

/// What [`RedisServer::start_on`] replaces with the port it picks.
const PORT: &str = "{port}";

/// A real redis-server on a loopback port of its own, killed when dropped.
pub struct RedisServer {
    proc: Option<Proc>,
    /// The port clients use.
    pub port: u16,
    /// Every port the server listens on (`port` first; a cluster node's bus too).
    ports: Vec<u16>,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a non-persistent server.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut args = vec!["--port", PORT];
        args.extend_from_slice(extra);
        Self::start_on(&args)
    }

    /// Starts a server whose arguments set the listening port themselves:
    /// `{port}` in them stands for the port the harness picks and waits on
    /// (e.g. `--port 0 --tls-port {port}`).
    pub fn start_on(args: &[&str]) -> Self {
        Self::start_ports(1, |ports| {
            args.iter()
                .map(|a| a.replace(PORT, &ports[0].to_string()))
                .collect()
        })
    }

    /// Starts a server on `count` fresh ports; `args` gets them, the first
    /// being the one clients use.
    fn start_ports(count: usize, args: impl Fn(&[u16]) -> Vec<String>) -> Self {
        let (proc, mut server) = start_listening("redis-server", REDIS_START, || {
            let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
            let dir = std::env::temp_dir().join(unique_name("tollgate-redis"));
            // A fresh directory: a stale `nodes.conf` would make another cluster.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("redis dir");
            let server = Self {
                proc: None,
                port: ports[0],
                ports: ports.clone(),
                dir,
                args: args(&ports),
            };
            (server.launch(), ports, server)
        });
        server.proc = Some(proc);
        server
    }

    fn launch(&self) -> Proc {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(&self.args);
        Proc::spawn("redis", &mut cmd, Logs::Stdout)
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts it again on the same ports and directory.
    pub fn restart(&mut self) {
        let mut proc = self.launch();
        if let Err(e) = proc.wait_listening(&self.ports, REDIS_START) {
            proc.stop();
            panic!(
                "redis-server restart on {:?}: {e}\n--- {}:\n{}",
                self.ports,
                proc.log.display(),
                proc.log_text()
            );
        }
        self.proc = Some(proc);
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

/// A 3-master Redis Cluster on loopback, made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them.
    pub fn start() -> Self {
        // Each node in a directory of its own (its `nodes.conf`), with its
        // cluster bus on a port of its own too rather than at port + 10000.
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_ports(2, |ports| {
                    let (port, bus) = (ports[0].to_string(), ports[1].to_string());
                    [
                        "--port",
                        &port,
                        "--cluster-port",
                        &bus,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(String::from)
                    .to_vec()
                })
            })
            .collect();
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
