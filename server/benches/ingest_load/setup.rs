//! The run's database and server: a fresh database in a real PostgreSQL, dropped at the
//! end, and the release server (`log_ingestion_test_support::ServerProcess`) with the
//! benchmark's settings, its log in a file.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use log_ingestion_test_support::process::tail;
use log_ingestion_test_support::{
    start_private_postgres, with_database, workspace_root, ServerProcess,
};
use log_ingestion_wire::HEALTH_PATH;
use sqlx::{Connection, PgConnection};

use crate::{io_context, BenchError, Result, API_KEY, STARTUP_DEADLINE};

/// A fresh database of its own in a real PostgreSQL, dropped at the end of the run.
pub(crate) struct BenchDatabase {
    pub(crate) admin_url: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl BenchDatabase {
    pub(crate) async fn create(configured_url: Option<&str>) -> Result<Self> {
        let admin_url = match configured_url {
            Some(url) => url.to_owned(),
            None => start_private_postgres().map_err(BenchError::Setup)?,
        };
        let name = format!(
            "bench_ingest_{}_{}",
            std::process::id(),
            Utc::now().timestamp()
        );
        let mut admin = PgConnection::connect(&admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = with_database(&admin_url, &name).map_err(BenchError::Setup)?;
        Ok(Self {
            admin_url,
            name,
            url,
        })
    }

    pub(crate) async fn drop_database(&self) -> Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}

/// Starts the server with the benchmark's settings, its log appended to `log_path`.
pub(crate) async fn start_server(
    bin: &Path,
    database_url: &str,
    storage: &str,
    log_path: &Path,
) -> Result<ServerProcess> {
    let log = File::options()
        .append(true)
        .create(true)
        .open(log_path)
        .map_err(io_context(format!("{}", log_path.display())))?;
    let command = server_command(bin, database_url, storage, &log)?;
    ServerProcess::start_logging_to(command, log_path, STARTUP_DEADLINE)
        .await
        .map_err(BenchError::Setup)
}

/// The server binary with the benchmark's settings, its output going to `log`.
fn server_command(bin: &Path, database_url: &str, storage: &str, log: &File) -> Result<Command> {
    let mut cmd = Command::new(bin);
    cmd.current_dir(workspace_root())
        .env("DATABASE_URL", database_url)
        .env("LOG_INGESTION_STORAGE", storage)
        .env("LOG_INGESTION_API_KEYS", API_KEY)
        .env("LOG_INGESTION_RATE_LIMIT_RPS", "10000000")
        .env("LOG_INGESTION_RATE_LIMIT_BURST", "10000000")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_context("server log"))?)
        .stderr(log.try_clone().map_err(io_context("server log"))?);
    Ok(cmd)
}

/// `migrate` in `storage` mode, its log in `log_path`.
pub(crate) fn migrate(
    bin: &Path,
    database_url: &str,
    storage: &str,
    log_path: &Path,
) -> Result<()> {
    let log = File::create(log_path).map_err(io_context(format!("{}", log_path.display())))?;
    let status = server_command(bin, database_url, storage, &log)?
        .arg("migrate")
        .status()
        .map_err(io_context(format!("running {} migrate", bin.display())))?;
    if !status.success() {
        return Err(BenchError::Setup(format!(
            "{} migrate failed ({status}):\n{}",
            bin.display(),
            tail(&std::fs::read_to_string(log_path).unwrap_or_default())
        )));
    }
    Ok(())
}

/// The storage mode the server reports on `/health`.
pub(crate) async fn storage_mode(server: &ServerProcess) -> Result<String> {
    let health: serde_json::Value = reqwest::Client::new()
        .get(format!("{}{HEALTH_PATH}", server.address))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| BenchError::Setup(format!("GET /health: {e}")))?
        .json()
        .await
        .map_err(|e| BenchError::Setup(format!("GET /health body: {e}")))?;
    Ok(health["storage"].as_str().unwrap_or("unknown").to_owned())
}
