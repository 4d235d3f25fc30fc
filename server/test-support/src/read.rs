//! The read side's own harness: the read router alone on 127.0.0.1:0 over a fresh,
//! migrated test database, with rows inserted by plain SQL so each test controls
//! timestamps exactly. (Ingest and reads together: [`crate::spawn_full_app`].)

use chrono::{DateTime, Utc};
use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::read;
use log_ingestion_server::storage::StorageMode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::app::{test_settings, ADMIN_KEY, API_KEY};
use crate::database::{drop_database, migrate_test_database, TestDatabase};
use crate::template::{create_migrated_database, create_seeded_database};

/// An ingestion key of the test settings, which the read side refuses with 403.
pub const INGEST_KEY: &str = API_KEY;

pub struct ReadApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub mode: StorageMode,
    pub context: read::ReadContext,
    pub database_name: String,
    server: tokio::task::JoinHandle<()>,
    _database: TestDatabase,
}

/// The read router alone, with default tail settings.
pub async fn spawn_read_app() -> ReadApp {
    spawn_read_app_with(read::TailSettings::default()).await
}

pub async fn spawn_read_app_with(tail: read::TailSettings) -> ReadApp {
    let (database, url) =
        create_migrated_database(&test_settings(&crate::maintenance_url()).database).await;
    spawn_read_app_on(database, url, tail, |context| context).await
}

/// A read app whose context `configure` sets up (e.g. `ReadContext::with_export_stall`).
pub async fn spawn_read_app_configured(
    configure: impl FnOnce(read::ReadContext) -> read::ReadContext,
) -> ReadApp {
    let (database, url) =
        create_migrated_database(&test_settings(&crate::maintenance_url()).database).await;
    spawn_read_app_on(database, url, read::TailSettings::default(), configure).await
}

/// The read router, default tail settings, on a copy of the data set `seed` made once
/// per test process under `key` (`create_seeded_database`): `seed` gets a read app on a
/// fresh migrated database, fills it, and hands it back.
pub async fn spawn_read_app_seeded<F, Fut>(key: &str, seed: F) -> ReadApp
where
    F: FnOnce(ReadApp) -> Fut,
    Fut: std::future::Future<Output = ReadApp>,
{
    let (database, url) = create_seeded_database(key, |database, url| async move {
        let app = seed(
            spawn_read_app_on(database, url, read::TailSettings::default(), |context| {
                context
            })
            .await,
        )
        .await;
        app.server.abort();
        app.pool.close().await;
    })
    .await;
    spawn_read_app_on(database, url, read::TailSettings::default(), |context| {
        context
    })
    .await
}

async fn spawn_read_app_on(
    database: TestDatabase,
    url: String,
    tail: read::TailSettings,
    configure: impl FnOnce(read::ReadContext) -> read::ReadContext,
) -> ReadApp {
    let database_name = database.name().to_owned();
    let pool = PgPool::connect(&url)
        .await
        .expect("connect to the test database");
    let mode = migrate_test_database(&pool).await;
    if mode == StorageMode::Timescale {
        pause_policy_jobs(&pool).await;
    }
    let settings = test_settings(&url);
    let reads = read::ReadPool::connect_lazy(
        &url,
        &settings.database,
        &settings.read,
        std::sync::Arc::new(log_ingestion_server::metrics::Metrics::default()),
    )
    .expect("a read pool");
    let context = configure(read::ReadContext::new(reads, mode, tail));
    let router: axum::Router = read::router(
        context.clone(),
        read::AdminKeys::new(vec![ApiKey::new(ADMIN_KEY)])
            .with_ingest_keys(settings.api_keys.clone()),
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
        _database: database,
    }
}

/// Unschedules the database's TimescaleDB policy jobs (compression, retention, the
/// rollups' refreshes), so the tests of a read app decide when data is compressed or
/// materialized (`materialize_rollups`). A refresh the scheduler ran while a test was
/// inserting rows below its window would leave them to the next refresh -- real-time
/// aggregation does not count them meanwhile -- and a compression run would drop the
/// chunks' indexes under an EXPLAIN test: both made tests fail now and then.
async fn pause_policy_jobs(pool: &PgPool) {
    let paused = sqlx::query(
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs \
         WHERE hypertable_name IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("pause the policy jobs");
    assert!(
        paused.len() >= 3,
        "compression and both rollups' refreshes: {}",
        paused.len()
    );
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

    /// Inserts rows, one statement each; returns their ids in order.
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
            let refreshed = crate::wait_until(std::time::Duration::from_secs(30), || async {
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

/// Every node of an `EXPLAIN (FORMAT JSON)` plan, depth first.
pub fn plan_nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            all.extend(plan_nodes(child));
        }
    }
    all
}

/// A read query's parameters as owned pairs (what the `explain_*_query` functions take).
pub fn query_pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
