//! The real app in-process on 127.0.0.1:0 (`Application::build`, as `main` runs it) on
//! a fresh test database, the test settings it runs with, and requests against it.

use std::collections::HashMap;
use std::time::Duration;

use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::config::Settings;
use log_ingestion_server::startup::Application;
use log_ingestion_server::storage::StorageMode;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::AdminReader;
use crate::database::{drop_database, maintenance_url, test_storage, TestDatabase};
use crate::template::create_migrated_database;

pub const API_KEY: &str = "test-key-primary";
pub const OTHER_API_KEY: &str = "test-key-secondary";
/// The admin (read) key of [`spawn_full_app`].
pub const ADMIN_KEY: &str = "test-admin-key";

/// Settings for a test server on `database_url`, generous rate limits, port 0.
pub fn test_settings(database_url: &str) -> Settings {
    test_settings_with(database_url, &[])
}

/// The test settings with `extra` variables set as the environment would set them
/// (later pairs win).
pub fn test_settings_with(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database_url.to_owned()),
        (
            "LOG_INGESTION_API_KEYS",
            format!("{API_KEY},{OTHER_API_KEY}"),
        ),
        ("LOG_INGESTION_HOST", "127.0.0.1".to_owned()),
        ("LOG_INGESTION_PORT", "0".to_owned()),
        ("LOG_INGESTION_RATE_LIMIT_RPS", "100000".to_owned()),
        ("LOG_INGESTION_RATE_LIMIT_BURST", "100000".to_owned()),
        ("LOG_INGESTION_DATABASE_ACQUIRE_TIMEOUT", "2s".to_owned()),
        ("LOG_INGESTION_SHUTDOWN_DEADLINE", "10s".to_owned()),
        ("LOG_INGESTION_STORAGE", test_storage().to_string()),
        // The tests' alert receivers listen on this host.
        ("LOG_INGESTION_ALERT_BLOCKED_NETWORKS", "none".to_owned()),
    ]);
    for (name, value) in extra {
        vars.insert(name, (*value).to_owned());
    }
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings are valid")
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub database_name: String,
    pub database_url: String,
    /// Keeps the database until the app (and every other holder) is gone.
    pub database: TestDatabase,
    /// The storage mode the app runs in.
    pub storage_mode: StorageMode,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// The app on a fresh database with test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The app on a fresh database, with `configure` applied to the test settings. The
/// database holds the schema the app would create with those settings (a copy of a
/// template, `template`); `configure` sees the cluster's maintenance URL, not the
/// database's.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&maintenance_url());
    configure(&mut settings);
    let (database, url) = create_migrated_database(&settings.database).await;
    settings.database.url = url.clone();
    spawn_app_with_settings(database, url, settings).await
}

/// The app on a fresh database, its settings read with `vars` set in the environment
/// (the read tests use it; the ingest tests configure `Settings` directly).
pub async fn spawn_app_with_vars(vars: &[(&str, &str)]) -> TestApp {
    let settings = test_settings_with(&maintenance_url(), vars);
    let (database, url) = create_migrated_database(&settings.database).await;
    let settings = test_settings_with(&url, vars);
    spawn_app_with_settings(database, url, settings).await
}

/// The app on an existing database (migrations run again, as at every start).
pub async fn spawn_app_on(
    database: TestDatabase,
    database_url: String,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&database_url);
    configure(&mut settings);
    spawn_app_with_settings(database, database_url, settings).await
}

async fn spawn_app_with_settings(
    database: TestDatabase,
    database_url: String,
    settings: Settings,
) -> TestApp {
    let application = Application::build(settings)
        .await
        .expect("the application starts");
    let address = format!("http://{}", application.local_addr().unwrap());
    let storage_mode = application.storage_mode();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        application
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
    });
    let pool = PgPool::connect(&database_url).await.unwrap();
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        database_name: database.name().to_owned(),
        database_url,
        database,
        storage_mode,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// The app on a fresh database with [`ADMIN_KEY`] as its admin key: ingest and the
/// read side on one listener, as in production.
pub async fn spawn_full_app() -> TestApp {
    spawn_app_with(|settings| settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)]).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A POST with the primary API key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("X-API-Key", API_KEY)
    }

    pub async fn post_single(&self, log: Value) -> reqwest::Response {
        self.post("/api/v1/logs")
            .json(&json!({ "log": log }))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_batch(&self, logs: Vec<Value>) -> reqwest::Response {
        self.post("/api/v1/logs/batch")
            .json(&json!({ "logs": logs }))
            .send()
            .await
            .unwrap()
    }

    /// A POST of `body` exactly as given, as `content_type`.
    pub async fn post_body(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.post(path)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A POST of a JSON `body` already compressed with `content_encoding`.
    pub async fn post_encoded(
        &self,
        path: &str,
        content_encoding: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.post(path)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", content_encoding)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The text `/metrics` answers.
    pub async fn metrics_text(&self) -> String {
        crate::metrics::scrape(&self.client, &self.address)
            .await
            .expect("/metrics answers")
    }

    /// The value of the sample `name` on `/metrics` (labels included when it has them).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics_text().await;
        crate::metrics::sample(&text, name)
            .map(|value| value as u64)
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }

    /// The read API with the admin key ([`ADMIN_KEY`]).
    pub fn admin(&self) -> AdminReader<'_> {
        AdminReader::new(&self.client, self.address.clone(), ADMIN_KEY)
    }

    pub async fn row_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM logs")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn stored_messages(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT message FROM logs")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Stops the server, closes the pool and drops the database.
    pub async fn stop_and_drop_database(mut self) {
        self.stop().await;
        self.pool.close().await;
        drop_database(&self.database_name).await;
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(20), server)
                .await
                .expect("the server stops within its deadline")
                .expect("the server task did not panic");
        }
    }
}

/// A valid entry with `message`, timestamped now.
pub fn entry(message: &str) -> Value {
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "service": "test-service",
        "level": "INFO",
        "message": message,
        "metadata": {"request_id": "abc", "duration_ms": 12}
    })
}

/// Asserts that `response` has `status` and returns its JSON body.
pub async fn json_with_status(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}
