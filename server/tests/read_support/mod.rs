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
mod helpers;

pub use helpers::{create_database, drop_database};

// Until `pub mod read;` is in lib.rs the read module is compiled into the tests from
// its source; its `crate::auth`, `crate::config`, `crate::error` and `crate::storage`
// paths resolve through the `use log_ingestion_server::{...}` each read test file
// declares at its root.
#[path = "../../src/read/mod.rs"]
#[allow(unused_imports)]
pub mod read;

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
    storage::migrate(&pool).await.expect("migrations apply");
    let mode = storage::detect_mode(&pool).await.expect("storage mode");
    let context = read::ReadContext::new(pool.clone(), mode, tail);
    let router: axum::Router = read::router(context.clone(), read::AdminKeys::parse(ADMIN_KEY));
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
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
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
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
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
