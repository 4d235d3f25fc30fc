//! What both benchmark programs (`ingest_load`, `read_load`) need to stand up their
//! PostgreSQL and the server: the workspace root, the private cluster of
//! `bin/postgres-dev`, a database URL pointed at another database, the server as a child
//! process, and a log's tail. Errors are plain text; each program wraps them in its own
//! error type.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use log_ingestion_wire::HEALTH_PATH;

/// How long a stopping server gets after SIGTERM before it is killed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// The repository's root (the server crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Starts (or finds running) the private cluster of `bin/postgres-dev`; its URL.
pub fn start_private_postgres() -> Result<String, String> {
    let script = workspace_root().join("bin/postgres-dev");
    let output = Command::new(&script)
        .arg("start")
        .output()
        .map_err(|error| format!("running {}: {error}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} start failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("DATABASE_URL=").map(str::to_owned))
        .ok_or_else(|| "bin/postgres-dev start printed no DATABASE_URL".to_owned())
}

/// The same server and credentials, another database: replaces the URL's path.
pub fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| format!("DATABASE_URL is not a URL: {url}"))?;
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// The last 30 lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The server binary running `serve` as a child process on a free loopback port;
/// stopped on drop (SIGTERM, then killed after [`SHUTDOWN_DEADLINE`]).
pub struct ServerProcess {
    pub child: Child,
    pub base_url: String,
    pub log_path: PathBuf,
}

impl ServerProcess {
    /// Runs `command serve` -- a command of the server binary whose output already goes
    /// to `log_path` -- on a free port, and waits until its health path answers 2xx, the
    /// process exits, or `startup` passes.
    pub async fn start(
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
            base_url: format!("http://127.0.0.1:{port}"),
            log_path: log_path.to_path_buf(),
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
                    tail(&self.log_path)
                ));
            }
            let healthy = client
                .get(format!("{}{HEALTH_PATH}", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server not healthy within {startup:?}:\n{}",
                    tail(&self.log_path)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("server did not stop within {SHUTDOWN_DEADLINE:?} of SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("binding a free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("reading the free port: {error}"))
}
