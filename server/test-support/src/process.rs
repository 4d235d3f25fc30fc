//! The built server binary as a real child process, for tests and benchmarks alike:
//! started either with the tests' environment on a database of its own (its log kept in
//! memory, its address read from its "listening" line) or from a benchmark's own
//! command (its log in a file, ready once `/health` answers); then signalled, stopped,
//! and asked for its memory and CPU (`proc_stats`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use log_ingestion_wire::HEALTH_PATH;
use serde_json::Value;

use crate::proc_stats;

/// How long a server stopped with [`ServerProcess::stop`] gets after SIGTERM before it
/// is killed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// The binary under test: `LOG_INGESTION_TESTED_BIN` when set (to try an older build),
/// else the one cargo built for the running test binary. (Not `LOG_INGESTION_SERVER_BIN`,
/// which the Ruby specs read: exported for them, it must not swap the binary these tests
/// build.)
pub fn binary() -> String {
    std::env::var("LOG_INGESTION_TESTED_BIN").unwrap_or_else(|_| built_binary())
}

/// Where cargo puts the server binary it builds for an integration test (the path
/// `CARGO_BIN_EXE_log-ingestion-server` names there, which a library cannot read): the
/// profile directory, one level above the test executable in `deps/`.
fn built_binary() -> String {
    let test_executable = std::env::current_exe().expect("the test executable's path");
    let path = test_executable
        .parent()
        .and_then(std::path::Path::parent)
        .map(|profile| profile.join("log-ingestion-server"))
        .expect("a test executable under target/<profile>/deps");
    assert!(
        path.is_file(),
        "no server binary at {} (cargo builds it for integration tests)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// What dropping a [`ServerProcess`] does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnDrop {
    /// Kill at once: a test is over, nothing is measured any more.
    Kill,
    /// SIGTERM, then kill after [`SHUTDOWN_DEADLINE`]: [`ServerProcess::stop`].
    Stop,
}

pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// `127.0.0.1:PORT`.
    pub socket_address: String,
    /// What the server logged on stderr, one line each (empty when its log goes to
    /// [`ServerProcess::log_path`]).
    pub lines: Arc<Mutex<Vec<String>>>,
    /// The file the server logs to, when started by [`ServerProcess::start_logging_to`].
    pub log_path: Option<PathBuf>,
    on_drop: OnDrop,
    _cwd: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts the binary on `database_url` with `api_key` and generous rate limits, and
    /// waits until it listens.
    pub fn start(database_url: &str, api_key: &str) -> Self {
        Self::start_with(database_url, api_key, &[])
    }

    /// Like [`ServerProcess::start`], with `extra` variables set after the defaults.
    pub fn start_with(database_url: &str, api_key: &str, extra: &[(&str, String)]) -> Self {
        let cwd = tempfile::tempdir().unwrap();
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .current_dir(cwd.path())
            .env("DATABASE_URL", database_url)
            .env("LOG_INGESTION_API_KEYS", api_key)
            .env("LOG_INGESTION_HOST", "127.0.0.1")
            .env("LOG_INGESTION_PORT", "0")
            .env("LOG_INGESTION_RATE_LIMIT_RPS", "100000")
            .env("LOG_INGESTION_RATE_LIMIT_BURST", "100000")
            .env("LOG_INGESTION_SHUTDOWN_DEADLINE", "15s")
            .env("LOG_INGESTION_LOG_FORMAT", "json")
            // The storage mode of this test pass (helpers::test_storage), postgresql by default.
            .env(
                "LOG_INGESTION_STORAGE",
                std::env::var("LOG_INGESTION_TEST_STORAGE")
                    .unwrap_or_else(|_| "postgresql".to_owned()),
            )
            .env("RUST_LOG", "info");
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if event["fields"]["message"] == "listening" {
                        let _ = address_tx.send(
                            event["fields"]["address"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        );
                    }
                }
                collected.lock().unwrap().push(line);
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server never listened: {:?}", lines.lock().unwrap()));
        ServerProcess {
            child,
            address: format!("http://{address}"),
            socket_address: address,
            lines,
            log_path: None,
            on_drop: OnDrop::Kill,
            _cwd: Some(cwd),
        }
    }

    /// Runs `command serve` -- a command of the server binary whose output already goes
    /// to `log_path` -- on a free loopback port, and waits until its health path
    /// answers 2xx, the process exits, or `startup` passes. Dropped, it is stopped
    /// gracefully ([`ServerProcess::stop`]).
    pub async fn start_logging_to(
        mut command: Command,
        log_path: &Path,
        startup: Duration,
    ) -> Result<Self, String> {
        let port = free_port()?;
        let child = command
            .arg("serve")
            .env("LOG_INGESTION_HOST", "127.0.0.1")
            .env("LOG_INGESTION_PORT", port.to_string())
            .spawn()
            .map_err(|error| format!("starting the server: {error}"))?;
        let mut server = ServerProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
            socket_address: format!("127.0.0.1:{port}"),
            lines: Arc::default(),
            log_path: Some(log_path.to_path_buf()),
            on_drop: OnDrop::Stop,
            _cwd: None,
        };
        server.await_healthy(startup).await?;
        Ok(server)
    }

    async fn await_healthy(&mut self, startup: Duration) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + startup;
        loop {
            let exited = self
                .child
                .try_wait()
                .map_err(|error| format!("server status: {error}"))?;
            if let Some(status) = exited {
                return Err(format!(
                    "server exited at start ({status}):\n{}",
                    self.log_tail()
                ));
            }
            let healthy = client
                .get(format!("{}{HEALTH_PATH}", self.address))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server not healthy within {startup:?}:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then a kill when it has not exited within [`SHUTDOWN_DEADLINE`].
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        if self.wait_for_exit(SHUTDOWN_DEADLINE).is_none() {
            eprintln!("server did not stop within {SHUTDOWN_DEADLINE:?} of SIGTERM; killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Sends signal `name` (`TERM`, `HUP`, ...); panics when `kill` fails.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB (0 when unknown).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_stats::peak_rss_kib(self.pid()).unwrap_or(0)
    }

    /// Resets the peak-RSS mark so the next reading covers what follows; false when
    /// the kernel refuses (then readings are cumulative).
    pub fn reset_peak_rss(&self) -> bool {
        proc_stats::reset_peak_rss(self.pid())
    }

    /// CPU seconds the process used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        proc_stats::cpu_seconds(self.pid())
    }

    /// Everything the server logged so far, one line each.
    pub fn log_text(&self) -> String {
        match &self.log_path {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => self.lines.lock().unwrap().join("\n"),
        }
    }

    /// The last 30 lines of [`ServerProcess::log_text`].
    pub fn log_tail(&self) -> String {
        tail(&self.log_text())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        match self.on_drop {
            OnDrop::Stop => self.stop(),
            OnDrop::Kill => {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// The last 30 lines of `text`.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A loopback port free right now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("binding a free port: {error}"))
}
