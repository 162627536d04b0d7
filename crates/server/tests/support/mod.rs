//! The `dashtam` binary as an operator runs it, for the suites that test the binary: a command with a clean
//! environment, the `user` command, and `dashtam serve` running until SIGTERM with its log kept.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// `dashtam` in `dir`, with no `DASHTAM_*` variable inherited from the test's own environment.
pub fn dashtam(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dashtam"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DASHTAM_")) {
        command.env_remove(name);
    }
    command.current_dir(dir).env("DASHTAM_LOG__FILTER", "info");
    command
}

/// `dashtam user ARGS` in `dir`, with `stdin` (the password prompt's answer) on its standard input.
pub fn user_command(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = dashtam(dir)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// A running `dashtam serve`, killed if the test fails before stopping it.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `command` on a free port and waits (up to 30 s) for it to announce its address.
    pub fn start(command: &mut Command) -> Self {
        let mut child = command.env("DASHTAM_BIND", "127.0.0.1:0").stderr(Stdio::piped()).spawn().expect("spawn");
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, address) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let log = log.clone();
            move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !sent && let Some(rest) = line.split("listening on http://").nth(1) {
                        let address = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default();
                        sent = found.send(address.to_owned()).is_ok();
                    }
                    log.lock().expect("log lock").push(line);
                }
            }
        });
        let address = address.recv_timeout(Duration::from_secs(30)).expect("server announced its address");
        Self { child, address: address.parse().expect("a socket address"), log, reader: Some(reader) }
    }

    /// What it has written to standard error so far, one entry per line; after [`Server::terminate`], all
    /// of it.
    pub fn log(&self) -> ServerLog {
        ServerLog(self.log.clone())
    }

    /// Sends SIGTERM and waits (up to 15 s) for the process to exit and its log to end.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("send SIGTERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("log reader");
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A server's standard error, shared with the thread that reads it.
pub struct ServerLog(Arc<Mutex<Vec<String>>>);

impl ServerLog {
    /// Every line read so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("log lock").clone()
    }
}
