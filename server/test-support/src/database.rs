//! Test databases: a real PostgreSQL (`DATABASE_URL`, or the private cluster of
//! `bin/postgres-dev`), a fresh database per test, set up in the storage mode
//! `LOG_INGESTION_TEST_STORAGE` names (`postgresql`, the default, or `timescaledb`:
//! `rake test:rust` runs the suites once per mode). Databases left by runs over an hour
//! old are dropped, so the cluster does not grow without bound.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use log_ingestion_server::storage::{self, ConvertRows, StorageMode, StorageSetting};
use reqwest::Url;
use sqlx::{Connection, PgConnection, PgPool};

/// The URL of a database we may create databases from.
pub fn maintenance_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("DATABASE_URL")
            .or_else(|_| start_private_postgres())
            .unwrap_or_else(|error| panic!("{error}"))
    })
    .clone()
}

/// The repository's root (two levels above this crate), as a path without `..` (the
/// fleet tests size socket paths by it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.join("../.."), PathBuf::from)
}

/// Starts (or finds running) the private cluster of `bin/postgres-dev`; its URL.
pub fn start_private_postgres() -> Result<String, String> {
    let script = workspace_root().join("bin/postgres-dev");
    let output = Command::new(&script)
        .arg("start")
        .output()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "bin/postgres-dev start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("DATABASE_URL="))
        .map(|url| url.trim().to_owned())
        .ok_or_else(|| "bin/postgres-dev printed no DATABASE_URL".to_owned())
}

/// The same server and credentials as `url`, database `database`.
pub fn with_database(url: &str, database: &str) -> Result<String, String> {
    let mut parsed = Url::parse(url).map_err(|error| format!("DATABASE_URL {url:?}: {error}"))?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
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

/// A test database, dropped (with whoever is still connected) when the last clone of
/// this handle goes, so a suite leaves no database behind; a crashed run's are dropped
/// by [`drop_stale_databases`] an hour later.
#[derive(Clone, Debug)]
pub struct TestDatabase(std::sync::Arc<DatabaseName>);

#[derive(Debug)]
struct DatabaseName(String);

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.0 .0
    }
}

impl Drop for DatabaseName {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.0);
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of
        // its own with a runtime of its own does the dropping.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&maintenance_url())
                    .await
                    .map_err(|error| error.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut connection)
                    .await
                    .map_err(|error| format!("{name}: {error}"))?;
                Ok(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("cannot drop the test database {error}");
        }
    }
}

/// A fresh, empty database, dropped when the returned handle goes; returns it and its URL.
pub async fn create_database() -> (TestDatabase, String) {
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
    (
        TestDatabase(std::sync::Arc::new(DatabaseName(name))),
        url.to_string(),
    )
}

/// Drops a test database, disconnecting whoever uses it.
pub async fn drop_database(name: &str) {
    let mut connection = PgConnection::connect(&maintenance_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut connection)
        .await
        .unwrap();
}

/// Makes the `step`th DDL command run in the database of `pool` from now on (counted
/// from 1 by an event trigger on `ddl_command_start`) fail, as a cancel, a timeout or
/// a full disk would fail it there; `None` removes the failure. A step of a
/// transaction that fails takes the whole transaction with it, as a real failure would.
/// Needs a superuser (event triggers), which the test clusters' users are.
pub async fn fail_ddl_at_step(pool: &PgPool, step: Option<i64>) {
    let Some(step) = step else {
        sqlx::query("DROP EVENT TRIGGER IF EXISTS test_fail_ddl")
            .execute(pool)
            .await
            .unwrap();
        return;
    };
    sqlx::raw_sql(
        "DROP EVENT TRIGGER IF EXISTS test_fail_ddl; \
         CREATE TABLE IF NOT EXISTS test_fail_ddl_at (step bigint NOT NULL); \
         CREATE SEQUENCE IF NOT EXISTS test_ddl_steps; \
         CREATE OR REPLACE FUNCTION test_fail_ddl() RETURNS event_trigger \
         LANGUAGE plpgsql AS $$ \
         BEGIN \
             IF nextval('public.test_ddl_steps') = (SELECT max(step) FROM public.test_fail_ddl_at) THEN \
                 RAISE EXCEPTION 'injected failure at DDL step % (%)', \
                     currval('public.test_ddl_steps'), tg_tag; \
             END IF; \
         END $$; \
         CREATE EVENT TRIGGER test_fail_ddl ON ddl_command_start \
             EXECUTE FUNCTION test_fail_ddl();",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM test_fail_ddl_at")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO test_fail_ddl_at VALUES ($1)")
        .bind(step)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("SELECT setval('test_ddl_steps', 1, false)")
        .execute(pool)
        .await
        .unwrap();
}

/// How many DDL commands ran since the last [`fail_ddl_at_step`] (the failing one
/// included).
pub async fn ddl_steps_run(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM test_ddl_steps",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}
