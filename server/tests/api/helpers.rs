//! The test harness: a real PostgreSQL (DATABASE_URL, or the private cluster of
//! `bin/postgres-dev`), a fresh database per test, the real app on 127.0.0.1:0.
//! Each test database is set up in the storage mode `LOG_INGESTION_TEST_STORAGE` names
//! (`postgresql`, the default, or `timescaledb`): `rake test:rust` runs the suites once
//! per mode.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use log_ingestion_server::config::Settings;
use log_ingestion_server::startup::Application;
use log_ingestion_server::storage::{self, ConvertRows, StorageMode, StorageSetting};
use reqwest::Url;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const API_KEY: &str = "test-key-primary";
pub const OTHER_API_KEY: &str = "test-key-secondary";

/// The URL of a database we may create databases from.
pub fn maintenance_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return url;
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bin/postgres-dev");
        let output = Command::new(&script)
            .arg("start")
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
        assert!(
            output.status.success(),
            "bin/postgres-dev start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("DATABASE_URL="))
            .expect("bin/postgres-dev printed no DATABASE_URL")
            .trim()
            .to_owned()
    })
    .clone()
}

/// The storage mode the tests run in: `LOG_INGESTION_TEST_STORAGE`, plain PostgreSQL
/// when unset (never `auto`, so a run's mode never depends on the cluster's preload).
pub fn test_storage() -> StorageSetting {
    match std::env::var("LOG_INGESTION_TEST_STORAGE") {
        Err(_) => StorageSetting::Postgres,
        Ok(value) => {
            match value.parse() {
                Ok(StorageSetting::Auto) | Err(()) => {
                    panic!("LOG_INGESTION_TEST_STORAGE must be postgresql or timescaledb, not {value:?}")
                }
                Ok(setting) => setting,
            }
        }
    }
}

/// The mode a test database ends up in under [`test_storage`].
pub fn expected_mode() -> StorageMode {
    match test_storage() {
        StorageSetting::Timescale => StorageMode::Timescale,
        _ => StorageMode::Postgres,
    }
}

/// Applies the migrations to a test database in the mode of [`test_storage`].
pub async fn migrate_test_database(pool: &PgPool) -> StorageMode {
    storage::migrate(pool, test_storage(), ConvertRows::Refuse)
        .await
        .expect("migrations apply in the test storage mode")
}

/// Test databases older than this are dropped by the next test process that starts.
const STALE_AFTER_SECS: u64 = 3_600;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Drops test databases left by runs more than an hour ago (names carry their creation
/// time; names without one are from an older harness and dropped too), so the private
/// cluster does not grow without bound (hundreds of databases also slow autovacuum's
/// visits, which BRIN autosummarize waits for). Databases still in use are left alone.
async fn drop_stale_databases(connection: &mut PgConnection) {
    static CLEANED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if CLEANED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'log_test_%'")
            .fetch_all(&mut *connection)
            .await
            .unwrap_or_default();
    let cutoff = unix_now().saturating_sub(STALE_AFTER_SECS);
    for name in names {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|secs| secs.parse::<u64>().ok());
        // A name without a creation time is from an older harness: stale as well.
        if created.is_none_or(|created| created < cutoff) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(&mut *connection)
                .await;
        }
    }
}

/// A fresh, empty database; returns its name and URL.
pub async fn create_database() -> (String, String) {
    let maintenance = maintenance_url();
    let name = format!("log_test_{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
    let mut connection = PgConnection::connect(&maintenance)
        .await
        .expect("cannot connect to the test cluster");
    drop_stale_databases(&mut connection).await;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut connection)
        .await
        .expect("cannot create a test database");
    let mut url = Url::parse(&maintenance).expect("DATABASE_URL is not a URL");
    url.set_path(&format!("/{name}"));
    (name, url.to_string())
}

/// Drops a test database, disconnecting whoever uses it.
pub async fn drop_database(name: &str) {
    let mut connection = PgConnection::connect(&maintenance_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut connection)
        .await
        .unwrap();
}

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
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// The app on a fresh database with test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The app on a fresh database, with `configure` applied to the test settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (name, url) = create_database().await;
    spawn_app_on(name, url, configure).await
}

/// The app on a fresh database, its settings read with `vars` set in the environment
/// (the read tests use it; the ingest tests configure `Settings` directly).
#[allow(dead_code)]
pub async fn spawn_app_with_vars(vars: &[(&str, &str)]) -> TestApp {
    let (name, url) = create_database().await;
    let settings = test_settings_with(&url, vars);
    spawn_app_with_settings(name, url, settings).await
}

/// The app on an existing database (migrations run again, as at every start).
pub async fn spawn_app_on(
    database_name: String,
    database_url: String,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&database_url);
    configure(&mut settings);
    spawn_app_with_settings(database_name, database_url, settings).await
}

async fn spawn_app_with_settings(
    database_name: String,
    database_url: String,
    settings: Settings,
) -> TestApp {
    let application = Application::build(settings)
        .await
        .expect("the application starts");
    let address = format!("http://{}", application.local_addr().unwrap());
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
        database_name,
        database_url,
        shutdown: Some(shutdown),
        server: Some(server),
    }
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
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the unlabelled sample `name` on `/metrics` (a histogram's `_sum` is
    /// written as a float, `2.0`).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse::<f64>().ok())
            .map(|value| value as u64)
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
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

/// Polls `condition` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
