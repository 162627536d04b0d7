//! Private Redis and PostgreSQL servers, run as child processes of a test, for fault tests that kill, pause
//! and restart them while the application serves — never the shared servers the suites are given. Each
//! server keeps its port (and PostgreSQL its data directory) across restarts, as a restarted service would.
//!
//! No process outlives its test: dropping a server kills it and every process it forked (panics unwind
//! through the drop too). Where util-linux's `setpriv` is installed, each server is also started with a
//! parent-death signal, so the kernel kills it even when the test process itself is killed without unwinding;
//! PostgreSQL's backends then exit by themselves, or, while frozen by a pause, are killed by a guard.

use std::fs::File;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a server may take to accept connections after it was started or restarted.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a starting server is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(25);

/// A port on 127.0.0.1 that nothing listens on at the moment.
pub fn vacant_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("find a free port").port()
}

/// The lowest port of the range where a server of ours is put.
const LOWEST_SERVER_PORT: u16 = 16_384;

/// A vacant port for a server that is killed and restarted on it: below the kernel's ephemeral range, because
/// while the server is down any outgoing connection on the machine may be given an ephemeral port as its own,
/// and the restart could not bind it back.
fn vacant_server_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&start| start > LOWEST_SERVER_PORT + 1_024)
        .unwrap_or(32_768);
    let span = u128::from(ephemeral_start - LOWEST_SERVER_PORT);
    for _ in 0..1_000 {
        let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span).expect("the span fits a port");
        let port = LOWEST_SERVER_PORT + offset;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no vacant port between {LOWEST_SERVER_PORT} and {ephemeral_start}")
}

/// Whether `setpriv --pdeathsig` is available to tie a child's life to the test's.
fn setpriv_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("setpriv")
            .arg("--help")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("--pdeathsig"))
    })
}

/// A command running `program`, killed by the kernel when the spawning thread ends if `setpriv` can arrange it.
fn server_command(program: &Path) -> Command {
    let mut command = if setpriv_available() {
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "KILL", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command.stdin(Stdio::null());
    command
}

/// Signals `child` and the processes it forked (PostgreSQL's backends, each a process group of its own, so
/// a group signal would miss them), and returns those. The parent is stopped first, so it cannot fork a
/// process the list misses.
fn signal_server(child: &Child, signal: Signal) -> Vec<Pid> {
    let parent = Pid::from_child(child);
    if signal != Signal::CONT {
        send(parent, Signal::STOP);
    }
    let children = children_of(child.id());
    for &pid in &children {
        send(pid, signal);
    }
    send(parent, signal);
    children
}

/// Sends `signal` to `pid`; a process already gone is not an error.
fn send(pid: Pid, signal: Signal) {
    match rustix::process::kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(error) => panic!("cannot signal process {pid:?}: {error}"),
    }
}

/// The processes whose parent is `parent`, as `/proc` lists them now.
fn children_of(parent: u32) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let ppid: u32 = status_fields(&entry.path())?.get(1)?.parse().ok()?;
            (ppid == parent).then_some(Pid::from_raw(pid)?)
        })
        .collect()
}

/// How long killed processes may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGKILLs `child` and its children, reaps `child`, and waits until the children have exited too: one forked
/// just before the kill may still hold the server's listening socket, and a restart on the same port could
/// not bind it until that process is gone.
fn kill_server(child: &mut Child) {
    let children = signal_server(child, Signal::KILL);
    let _ = child.wait();
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while children.iter().any(|&pid| is_running(pid)) {
        assert!(Instant::now() < deadline, "killed processes {children:?} did not exit within {EXIT_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` is a process that has not exited (neither gone nor a zombie, which holds no files).
fn is_running(pid: Pid) -> bool {
    let process = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
    status_fields(&process).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z" && state != "X"))
}

/// The fields of `/proc/<pid>/stat` after the command (`state ppid …`), for the process directory `process`;
/// `None` once the process is gone.
fn status_fields(process: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(process.join("stat")).ok()?;
    // `pid (command) state ppid …`; the command may hold spaces and parentheses, so read after the last `)`.
    Some(stat.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect())
}

/// While a server's forked processes are frozen, a shell that SIGKILLs them if the test process dies: the
/// parent-death signal reaches only the server itself, and a frozen process cannot notice its parent's death
/// and exit as PostgreSQL's backends otherwise do. `None` without `setpriv`.
fn frozen_children_guard(children: &[Pid]) -> Option<Child> {
    if !setpriv_available() || children.is_empty() {
        return None;
    }
    let pids: Vec<String> = children.iter().map(|pid| pid.as_raw_nonzero().to_string()).collect();
    let script = format!("trap 'kill -KILL {} 2>/dev/null; exit 0' TERM; while :; do sleep 1; done", pids.join(" "));
    Command::new("setpriv").args(["--pdeathsig", "TERM", "--", "sh", "-c", &script]).stdin(Stdio::null()).spawn().ok()
}

/// Ends a [`frozen_children_guard`] without letting it act.
fn dismiss(guard: &mut Option<Child>) {
    if let Some(mut guard) = guard.take() {
        let _ = guard.kill();
        let _ = guard.wait();
    }
}

/// How `child` ended, if it has.
fn exit_status(child: Option<&mut Child>) -> Option<std::process::ExitStatus> {
    child?.try_wait().ok().flatten()
}

/// A `redis-server` of the test's own on a port of its own, without persistence (a restart starts empty,
/// as a Redis that lost its memory would).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`; `None` when `redis-server` is not installed.
    pub async fn try_start() -> Option<Self> {
        let mut server = Self { port: vacant_server_port(), child: None };
        match server.spawn() {
            Ok(()) => {
                server.wait_until_ready().await;
                Some(server)
            }
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => panic!("cannot start redis-server: {error}"),
        }
    }

    /// [`try_start`](Self::try_start), panicking when `redis-server` is not installed: a fault test that was
    /// asked to run must not quietly test nothing.
    pub async fn start() -> Self {
        Self::try_start().await.expect("redis-server is not installed (apt-get install redis-server)")
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL, as a crash would; its port stays closed until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_server(&mut child);
        }
    }

    /// Freezes it with SIGSTOP: connections are accepted by the kernel but nothing answers, as with a hung
    /// server or a network partition.
    pub fn pause(&self) {
        self.signal(Signal::STOP);
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal(Signal::CONT);
    }

    /// Starts it again on the same port (killing it first if it still runs), empty, and waits until it
    /// answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().expect("restart redis-server");
        self.wait_until_ready().await;
    }

    fn signal(&self, signal: Signal) {
        // Redis is one process, which the parent-death signal reaches even while frozen: no guard needed.
        signal_server(self.child.as_ref().expect("redis-server is running"), signal);
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        // Looked up first: started through `setpriv`, a missing program would only show as an early exit.
        let program = on_path("redis-server").ok_or(ErrorKind::NotFound)?;
        let port = self.port.to_string();
        let child = server_command(&program)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.answers_ping().await {
                return;
            }
            if let Some(status) = exit_status(self.child.as_mut()) {
                panic!("redis-server on port {} exited during start-up ({status})", self.port);
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within {START_TIMEOUT:?}",
                self.port
            );
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// One `PING` over a fresh connection, bounded in time.
    async fn answers_ping(&self) -> bool {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            stream.write_all(b"PING\r\n").await.ok()?;
            let mut reply = [0_u8; 7];
            stream.read_exact(&mut reply).await.ok()?;
            Some(&reply == b"+PONG\r\n")
        };
        tokio::time::timeout(Duration::from_secs(1), exchange).await.ok().flatten().unwrap_or(false)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of the test's own: a fresh data directory (`initdb`) and a `postgres` serving it on
/// 127.0.0.1 at a port of its own, trusting every local connection as user `postgres`. PostgreSQL refuses to
/// run as root, so when the tests run as root the cluster belongs to, and runs as, the `postgres` account.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    binaries: PathBuf,
    /// uid and gid to run as; `None` runs as the test itself.
    owner: Option<(u32, u32)>,
    child: Option<Child>,
    /// While paused, see [`frozen_children_guard`].
    guard: Option<Child>,
    directory: TempDir,
}

impl PostgresServer {
    /// Creates a cluster, starts it and waits until it accepts connections; `None` when PostgreSQL's server
    /// programs are not installed.
    pub async fn try_start() -> Option<Self> {
        let binaries = postgres_binaries()?;
        let owner = if rustix::process::geteuid().is_root() {
            Some(account_ids("postgres").unwrap_or_else(|| {
                panic!("PostgreSQL refuses to run as root and there is no `postgres` account to run it as")
            }))
        } else {
            None
        };
        let directory = tempfile::tempdir().expect("create a directory for the cluster");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(directory.path(), Some(uid), Some(gid))
                .expect("give the cluster's directory away");
        }
        let mut server = Self { port: vacant_server_port(), binaries, owner, child: None, guard: None, directory };
        let initdb = server
            .command("initdb")
            .arg("-D")
            .arg(server.data_directory())
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
            .stdout(server.log_file())
            .stderr(server.log_file())
            .status()
            .expect("run initdb");
        assert!(initdb.success(), "initdb failed ({initdb}): {}", server.log_tail());
        server.spawn();
        server.wait_until_ready().await;
        Some(server)
    }

    /// [`try_start`](Self::try_start), panicking when PostgreSQL is not installed.
    pub async fn start() -> Self {
        Self::try_start().await.expect("PostgreSQL's server programs (initdb, postgres) are not installed")
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server and every backend with SIGKILL, as a crash would; the next start recovers from the
    /// write-ahead log.
    pub fn kill(&mut self) {
        dismiss(&mut self.guard);
        if let Some(mut child) = self.child.take() {
            kill_server(&mut child);
        }
    }

    /// Freezes the server and every backend with SIGSTOP: connections are accepted by the kernel but nothing
    /// answers, as with a hung server or a network partition.
    pub fn pause(&mut self) {
        let frozen = signal_server(self.child.as_ref().expect("postgres is running"), Signal::STOP);
        self.guard = frozen_children_guard(&frozen);
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self) {
        dismiss(&mut self.guard);
        signal_server(self.child.as_ref().expect("postgres is running"), Signal::CONT);
    }

    /// Starts it again on the same port and data directory (killing it first if it still runs), and waits
    /// until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_until_ready().await;
    }

    fn data_directory(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.directory.path().join("postgres.log")
    }

    /// The server's log, appended to by every run, for messages when start-up fails.
    fn log_file(&self) -> File {
        File::options().create(true).append(true).open(self.log_path()).expect("open the cluster's log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A command for one of PostgreSQL's programs, run as the cluster's owner, from its directory (the
    /// test's working directory may be closed to that account).
    fn command(&self, program: &str) -> Command {
        let mut command = server_command(&self.binaries.join(program));
        command.current_dir(self.directory.path());
        if let Some((uid, gid)) = self.owner {
            // Set before `setpriv` runs, which then sets the parent-death signal as that account: a change of
            // user afterwards would clear it.
            command.uid(uid).gid(gid);
        }
        command
    }

    fn spawn(&mut self) {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_directory())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.directory.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "shared_buffers=16MB"])
            .stdout(self.log_file())
            .stderr(self.log_file())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = self.url();
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), sqlx::PgConnection::connect(&url)).await;
            if let Ok(Ok(connection)) = attempt {
                let _ = connection.close().await;
                return;
            }
            if let Some(status) = exit_status(self.child.as_mut()) {
                panic!("postgres exited during start-up ({status}): {}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "postgres on port {} did not accept connections within {START_TIMEOUT:?}: {}",
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where `program` is on the `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|directory| directory.join(program)).find(|candidate| candidate.is_file())
}

/// The directory holding `initdb` and `postgres`: the `PATH`'s, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin` (where Debian keeps them off the `PATH`).
fn postgres_binaries() -> Option<PathBuf> {
    let on_path = on_path("initdb")
        .and_then(|initdb| Some(initdb.parent()?.to_path_buf()))
        .filter(|directory| directory.join("postgres").is_file());
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
            .filter(|(_, binaries)| binaries.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, binaries)| binaries)
    })
}

/// The uid and gid of account `name`, as `id` reports them (so any name service is consulted).
fn account_ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| {
        let output = Command::new("id").args([flag, name]).output().ok().filter(|output| output.status.success())?;
        String::from_utf8(output.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}
