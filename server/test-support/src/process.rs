//! The built server binary as a real child process on a database of its own: start it
//! with extra environment, wait until it listens, signal it, read its logs and its
//! memory. Used by the API tests (`tests/api/process.rs`), the hostile-client suite and
//! the fleet tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

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

pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// `127.0.0.1:PORT`.
    pub socket_address: String,
    pub lines: Arc<Mutex<Vec<String>>>,
    _cwd: tempfile::TempDir,
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
            _cwd: cwd,
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
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

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Everything the server logged so far, one line each.
    pub fn log_text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
