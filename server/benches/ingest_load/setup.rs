//! The run's database and server: a fresh database in a real PostgreSQL, dropped at the
//! end, and the release server (`log_ingestion_test_support::bench::LoggedServer`) with
//! the benchmark's settings, its log in a file.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use log_ingestion_test_support::{start_private_postgres, with_database, ServerProcess};
use log_ingestion_wire::HEALTH_PATH;
use sqlx::{Connection, PgConnection};

use log_ingestion_test_support::bench::{BenchError, LoggedServer, Result};

use crate::config::BenchConfig;
use crate::API_KEY;

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

/// The server binary with the benchmark's settings on `database_url`, its log in
/// `log_path`.
pub(crate) fn server(config: &BenchConfig, database_url: &str, log_path: &Path) -> LoggedServer {
    LoggedServer::new(&config.server_bin, log_path)
        .env("DATABASE_URL", database_url)
        .env("LOG_INGESTION_STORAGE", &config.storage)
        .env("LOG_INGESTION_API_KEYS", API_KEY)
        .env("LOG_INGESTION_RATE_LIMIT_RPS", "10000000")
        .env("LOG_INGESTION_RATE_LIMIT_BURST", "10000000")
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
