//! What the benchmark programs under `server/benches/` share: their error type, and
//! the server binary run with its output in a log file -- `migrate` to completion, then
//! `serve` as a [`ServerProcess`] -- with the program's settings.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::database::workspace_root;
use crate::process::{tail, ServerProcess};

/// Why a benchmark run is broken (never a judgement of its figures).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("load task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub type Result<T> = std::result::Result<T, BenchError>;

/// Wraps an I/O error with what was being done.
pub fn io_context(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let context = context.into();
    move |source| BenchError::Io { context, source }
}

/// The server binary `bin` run from the repository's root with its output in
/// `log_path`, `RUST_LOG` from `BENCH_SERVER_LOG` (default `warn`), and the settings
/// given with [`LoggedServer::env`].
pub struct LoggedServer {
    bin: PathBuf,
    log_path: PathBuf,
    env: Vec<(String, String)>,
}

impl LoggedServer {
    pub fn new(bin: &Path, log_path: &Path) -> Self {
        LoggedServer {
            bin: bin.to_path_buf(),
            log_path: log_path.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// Sets `name` to `value` for every run (a later one wins).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    fn command(&self, log: &File) -> Result<Command> {
        let mut command = Command::new(&self.bin);
        command
            .current_dir(workspace_root())
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_context("server log"))?)
            .stderr(log.try_clone().map_err(io_context("server log"))?);
        Ok(command)
    }

    fn log_context(&self) -> String {
        self.log_path.display().to_string()
    }

    /// Runs `migrate` to completion (the log starts afresh).
    pub fn migrate(&self) -> Result<()> {
        let log = File::create(&self.log_path).map_err(io_context(self.log_context()))?;
        let status = self
            .command(&log)?
            .arg("migrate")
            .status()
            .map_err(io_context(format!(
                "running {} migrate",
                self.bin.display()
            )))?;
        if !status.success() {
            return Err(BenchError::Setup(format!(
                "{} migrate failed ({status}):\n{}",
                self.bin.display(),
                tail(&std::fs::read_to_string(&self.log_path).unwrap_or_default())
            )));
        }
        Ok(())
    }

    /// Starts `serve` (its log appended) and waits until `/health` answers 2xx.
    pub async fn serve(&self, startup: Duration) -> Result<ServerProcess> {
        let log = File::options()
            .append(true)
            .create(true)
            .open(&self.log_path)
            .map_err(io_context(self.log_context()))?;
        ServerProcess::start_logging_to(self.command(&log)?, &self.log_path, startup)
            .await
            .map_err(BenchError::Setup)
    }
}
