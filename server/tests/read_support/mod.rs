//! The read side's test harness: a fresh real database per test (the ingest tests'
//! helpers create it), the migrations applied, the read router served on 127.0.0.1:0,
//! and rows inserted with plain SQL so each test controls timestamps exactly.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use log_ingestion_server::storage::{self, StorageMode};
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::TcpListener;

#[path = "../api/helpers.rs"]
pub mod helpers;

// Not every read test binary uses every helper.
#[allow(unused_imports)]
pub use helpers::{
    create_database, drop_database, migrate_test_database, spawn_app_with_vars, wait_until, TestApp,
};

pub use log_ingestion_server::read;

pub const ADMIN_KEY: &str = "test-admin-key";
pub const INGEST_KEY: &str = "test-key-primary";

pub struct ReadApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub mode: StorageMode,
    pub context: read::ReadContext,
    pub database_name: String,
    server: tokio::task::JoinHandle<()>,
}

/// The read router alone, with default tail settings.
pub async fn spawn_read_app() -> ReadApp {
    spawn_read_app_with(read::TailSettings::default()).await
}

pub async fn spawn_read_app_with(tail: read::TailSettings) -> ReadApp {
    let (database_name, url) = create_database().await;
    let pool = PgPool::connect(&url)
        .await
        .expect("connect to the test database");
    let mode = migrate_test_database(&pool).await;
    let settings = helpers::test_settings(&url);
    let reads = read::ReadPool::connect_lazy(
        &url,
        &settings.database,
        &settings.read,
        std::sync::Arc::new(log_ingestion_server::metrics::Metrics::default()),
    )
    .expect("a read pool");
    let context = read::ReadContext::new(reads, mode, tail);
    let router: axum::Router = read::router(
        context.clone(),
        read::AdminKeys::parse(ADMIN_KEY).with_ingest_keys(settings.api_keys.clone()),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the read server runs");
    });
    ReadApp {
        address,
        client: reqwest::Client::new(),
        pool,
        mode,
        context,
        database_name,
        server,
    }
}

/// One row to insert.
#[derive(Clone, Debug)]
pub struct Row {
    pub timestamp: DateTime<Utc>,
    pub service: &'static str,
    pub level: &'static str,
    pub message: String,
    pub metadata: Value,
}

pub fn row(timestamp: &str, service: &'static str, level: &'static str, message: &str) -> Row {
    Row {
        timestamp: DateTime::parse_from_rfc3339(timestamp)
            .unwrap()
            .with_timezone(&Utc),
        service,
        level,
        message: message.to_owned(),
        metadata: serde_json::json!({}),
    }
}

impl Row {
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
}

impl ReadApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A GET with the admin key.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header("X-API-Key", ADMIN_KEY)
    }

    /// GET `path` with the admin key; the status and the JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Inserts rows in one statement; returns their ids in order.
    pub async fn insert(&self, rows: &[Row]) -> Vec<i64> {
        let mut ids = Vec::new();
        for row in rows {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO logs (timestamp, service, level, message, metadata) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(row.timestamp)
            .bind(row.service)
            .bind(row.level)
            .bind(&row.message)
            .bind(&row.metadata)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            ids.push(id);
        }
        ids
    }

    /// Materializes the rollups' continuous aggregates (TimescaleDB mode; nothing in
    /// plain mode), as their refresh policies would. A refresh the scheduler is running
    /// at that moment refuses this one: it is tried again until it succeeds (30 s at most).
    pub async fn materialize_rollups(&self) {
        if self.mode != StorageMode::Timescale {
            return;
        }
        for view in ["logs_per_minute", "logs_per_hour"] {
            let statement = format!("CALL refresh_continuous_aggregate('{view}', NULL, NULL)");
            let refreshed = wait_until(Duration::from_secs(30), || async {
                match sqlx::query(&statement).execute(&self.pool).await {
                    Ok(_) => true,
                    Err(e) if e.to_string().contains("concurrent refresh") => false,
                    Err(e) => panic!("refreshing {view}: {e}"),
                }
            })
            .await;
            assert!(refreshed, "{view} was never refreshed");
        }
    }

    pub async fn stop(self) {
        self.server.abort();
        self.pool.close().await;
        drop_database(&self.database_name).await;
    }
}

/// The messages of a `{"logs": [...]}` page, in order.
pub fn messages(page: &Value) -> Vec<String> {
    page["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logs in {page}"))
        .iter()
        .map(|log| log["message"].as_str().unwrap().to_owned())
        .collect()
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads Server-Sent Events from a streaming response, chunk by chunk.
pub struct SseReader {
    response: reqwest::Response,
    /// Bytes received and not yet parsed (an event may span chunks, and a chunk may
    /// end inside a multi-byte character).
    buffer: Vec<u8>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let bytes: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&bytes);
                let mut event = SseEvent {
                    event: "message".to_owned(),
                    id: None,
                    data: String::new(),
                };
                let mut has_field = false;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                        has_field = true;
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                        has_field = true;
                    } else if let Some(value) = line.strip_prefix("data:") {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event
                            .data
                            .push_str(value.strip_prefix(' ').unwrap_or(value));
                        has_field = true;
                    }
                }
                if has_field {
                    return Some(event);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                _ => return None,
            }
        }
    }

    /// The next event named `name`, skipping others, within `timeout`.
    pub async fn next_named(&mut self, name: &str, timeout: Duration) -> Option<SseEvent> {
        tokio::time::timeout(timeout, async {
            while let Some(event) = self.next().await {
                if event.event == name {
                    return Some(event);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

/// The ingest routers (probes, ingest, real group committer) and the read router on one
/// listener, built from the library's public pieces as `startup` will once it merges
/// the read router itself.
pub struct FullApp {
    pub address: String,
    pub client: reqwest::Client,
    database_name: String,
    server: tokio::task::JoinHandle<()>,
}

pub async fn spawn_full_app() -> FullApp {
    use std::sync::Arc;

    use log_ingestion_server::metrics::Metrics;
    use log_ingestion_server::rate_limit::ApiRateLimiter;
    use log_ingestion_server::state::AppState;
    use log_ingestion_server::storage::GroupCommitter;

    let (database_name, url) = create_database().await;
    let mut settings = helpers::test_settings(&url);
    settings.admin_api_keys = vec![log_ingestion_server::config::ApiKey::new(ADMIN_KEY)];
    let pool = storage::pool(&settings.database).expect("a pool");
    let mode = migrate_test_database(&pool).await;
    let metrics = Arc::new(Metrics::default());
    let (committer, _writer) =
        GroupCommitter::start(pool.clone(), settings.group_commit, Arc::clone(&metrics));
    let state = AppState {
        pool: pool.clone(),
        storage_mode: mode,
        limiter: Arc::new(ApiRateLimiter::new(
            settings.rate_limit,
            settings.api_keys.iter().count(),
        )),
        inflight: log_ingestion_server::inflight::InflightBudget::new(
            settings.max_inflight_bytes,
            settings.inflight_wait,
        ),
        settings: Arc::new(settings),
        committer,
        metrics,
        policy_jobs: Default::default(),
    };
    let router = log_ingestion_server::startup::build_router(state).expect("a router");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the server runs");
    });
    FullApp {
        address,
        client: reqwest::Client::new(),
        database_name,
        server,
    }
}

impl FullApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn stop(self) {
        self.server.abort();
        drop_database(&self.database_name).await;
    }
}
