//! Child processes: the binary under test, the repository root, log files,
//! [`Proc`] (killed when dropped), and [`start_listening`], which starts a child
//! until the listeners on its ports are its own.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A name no other call in this process gets: `{prefix}-{pid}-{n}`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A new log file under the temp dir's `tollgate-tests/`.
fn log_file(name: &str) -> (PathBuf, std::fs::File) {
    let dir = std::env::temp_dir().join("tollgate-tests");
    std::fs::create_dir_all(&dir).expect("log dir");
    let path = dir.join(format!("{}.log", unique_name(name)));
    let file = std::fs::File::create(&path).expect("log file");
    (path, file)
}

/// Which of a child's output streams goes to its log file (the other is dropped).
#[derive(Debug, Clone, Copy)]
pub enum Logs {
    Stdout,
    Stderr,
}

/// A child process killed when dropped.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a child is not serving on its ports.
#[derive(Debug)]
pub enum NotListening {
    /// It exited first.
    Exited(ExitStatus),
    /// Another process listens on this port (or nothing does, though it
    /// accepted a connection).
    Taken(u16),
    /// It is still running and not listening on these ports.
    TimedOut(Vec<u16>, Duration),
}

impl fmt::Display for NotListening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "exited before listening ({status})"),
            Self::Taken(port) => write!(f, "port {port} is not the child's own"),
            Self::TimedOut(ports, timeout) => {
                write!(f, "not listening on {ports:?} within {timeout:?}")
            }
        }
    }
}

impl Proc {
    /// Spawns `cmd` with one output stream in a new log file named after `name`.
    pub fn spawn(name: &str, cmd: &mut Command, logs: Logs) -> Self {
        let (log, file) = log_file(name);
        match logs {
            Logs::Stdout => cmd.stdout(file).stderr(Stdio::null()),
            Logs::Stderr => cmd.stdout(Stdio::null()).stderr(file),
        };
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        Self { child, log }
    }

    /// Kills the child (SIGKILL) and waits for it, so that its log is complete.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the child a signal (`libc::SIGQUIT`, `libc::SIGTERM`, …).
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Waits up to `timeout` for the child to exit; its status, if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the child has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the child itself listens on every one of `ports`: until
    /// each accepts connections, then checks once that every listener on
    /// them is the child's (a child whose port is taken may keep retrying the
    /// bind while another process answers there). Fails at once when the
    /// child exits.
    pub fn wait_listening(&mut self, ports: &[u16], timeout: Duration) -> Result<(), NotListening> {
        let deadline = Instant::now() + timeout;
        let mut waiting = ports.to_vec();
        while !waiting.is_empty() {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(NotListening::Exited(status));
            }
            waiting.retain(|&p| TcpStream::connect(("127.0.0.1", p)).is_err());
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(NotListening::TimedOut(waiting, timeout));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Listeners first, then the child's sockets: a socket listens only
        // once its descriptor exists, so a listener of the child's is always
        // among the sockets read after it.
        let listeners = listening_inodes();
        let own = socket_inodes(self.child.id());
        for &port in ports {
            let inodes = listeners.get(&port).map(Vec::as_slice).unwrap_or_default();
            if inodes.is_empty() || inodes.iter().any(|i| !own.contains(i)) {
                return Err(NotListening::Taken(port));
            }
        }
        Ok(())
    }
}

/// The inodes of the listening TCP sockets (IPv4 and IPv6), by port.
fn listening_inodes() -> HashMap<u16, Vec<u64>> {
    let mut by_port: HashMap<u16, Vec<u64>> = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for (port, inode) in listeners_in(table) {
            by_port.entry(port).or_default().push(inode);
        }
    }
    by_port
}

/// The `(port, inode)` of each listening socket in a `/proc/net/tcp*` table.
/// The kernel lists listening sockets first and makes the table as it is
/// read, so reading in small pieces and stopping at the first other socket
/// spares it the walk over every connection (milliseconds, and a lot more
/// after a test has made thousands of them).
fn listeners_in(table: &str) -> Vec<(u16, u64)> {
    const LISTEN: &str = "0A";
    let Ok(mut file) = std::fs::File::open(table) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut pending = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut header = true;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) | Err(_) => return found,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if std::mem::take(&mut header) {
                continue;
            }
            let line = String::from_utf8_lossy(&line);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&LISTEN), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                return found;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Ok(inode)) = (port, inode.parse()) {
                found.push((port, inode));
            }
        }
    }
}

/// The inodes of the sockets process `pid` holds open.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// How many times a child is started on fresh ports before the harness gives up.
const START_ATTEMPTS: usize = 4;

/// Starts a child that listens on ports of its own. `spawn` picks fresh ports
/// (from [`super::ports::free_port`]), spawns the child and returns it with the
/// ports it must listen on and whatever the caller wants back. When another
/// process turns out to listen on one of the ports, or the child exits because
/// an address is in use, it is started again on new ports; any other failure
/// panics at once. Panics carry the child's log.
pub fn start_listening<T>(
    what: &str,
    timeout: Duration,
    mut spawn: impl FnMut() -> (Proc, Vec<u16>, T),
) -> (Proc, T) {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let (mut proc, ports, value) = spawn();
        let failure = match proc.wait_listening(&ports, timeout) {
            Ok(()) => return (proc, value),
            Err(e) => e,
        };
        proc.stop();
        let log = proc.log_text();
        let report = format!(
            "{what} on {ports:?}: {failure}\n--- {}:\n{log}",
            proc.log.display()
        );
        let retry = match failure {
            NotListening::Taken(_) => true,
            NotListening::Exited(_) => log.to_ascii_lowercase().contains("in use"),
            NotListening::TimedOut(..) => false,
        };
        failures.push(report);
        if !retry {
            break;
        }
    }
    panic!("{what} did not start:\n{}", failures.join("\n"));
}
