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
    /// Drops the database in a thread of its own, which the test does not wait for: a
    /// `DROP DATABASE` waits until every backend of the cluster has released the
    /// database's files (a `ProcSignalBarrier`), up to a minute on a cluster with
    /// TimescaleDB's launcher, and many such waits overlap where one after another
    /// would add up. The process waits at exit until each one is running in the server
    /// ([`finish_drops_at_exit`]).
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.0);
        register_at_exit();
        {
            // At most MAX_PENDING_DROPS connections wait on drops (the cluster's
            // connections are shared by every test process).
            let mut pending = lock(&PENDING_DROPS);
            while pending.len() >= MAX_PENDING_DROPS {
                pending = DROP_RETURNED
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            pending.push(name.clone());
        }
        std::thread::spawn(move || {
            if let Err(error) = drop_now(&name) {
                eprintln!("cannot drop the test database {name}: {error}");
            }
            lock(&PENDING_DROPS).retain(|pending| pending != &name);
            DROP_RETURNED.notify_all();
        });
    }
}

const MAX_PENDING_DROPS: usize = 16;
/// Names of the databases whose drop has not returned yet.
static PENDING_DROPS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static DROP_RETURNED: std::sync::Condvar = std::sync::Condvar::new();
/// Databases kept until the process exits (the templates).
static KEPT: std::sync::Mutex<Vec<TestDatabase>> = std::sync::Mutex::new(Vec::new());

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())
}

/// Drops `name` now, disconnecting whoever uses it (outside any runtime).
fn drop_now(name: &str) -> Result<(), String> {
    runtime()?.block_on(async {
        let mut connection = PgConnection::connect(&maintenance_url())
            .await
            .map_err(|error| error.to_string())?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut connection)
            .await
            .map_err(|error| error.to_string())?;
        Ok(())
    })
}

fn register_at_exit() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    }
    REGISTERED.call_once(|| {
        // SAFETY: registers a function without arguments that never unwinds past this
        // frame (it catches panics and reports errors on stderr).
        unsafe {
            atexit(finish_drops_at_exit);
        }
    });
}

/// At exit: drops the kept databases, then waits (10 s at most) until every drop still
/// pending is running in the server, which finishes it after this process is gone (a
/// statement runs to its end when its client leaves). What is left is dropped by the
/// next run's stale-database cleanup.
extern "C" fn finish_drops_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        drop(std::mem::take(&mut *lock(&KEPT)));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let Ok(runtime) = runtime() else { return };
        loop {
            let pending = lock(&PENDING_DROPS).clone();
            if pending.is_empty() {
                return;
            }
            let running: Vec<String> = runtime.block_on(async {
                let Ok(mut connection) = PgConnection::connect(&maintenance_url()).await else {
                    return Vec::new();
                };
                sqlx::query_scalar(
                    "SELECT query FROM pg_stat_activity \
                     WHERE state = 'active' AND query LIKE 'DROP DATABASE IF EXISTS %'",
                )
                .fetch_all(&mut connection)
                .await
                .unwrap_or_default()
            });
            if pending
                .iter()
                .all(|name| running.iter().any(|query| query.contains(name.as_str())))
            {
                return;
            }
            if std::time::Instant::now() >= deadline {
                eprintln!(
                    "test databases left for the stale-database cleanup: {}",
                    pending.join(", ")
                );
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}

/// A new test database's name (it carries its creation time, see [`drop_stale_databases`]).
pub(crate) fn new_name() -> String {
    format!("log_test_{}_{}", unix_now(), uuid::Uuid::new_v4().simple())
}

/// A fresh, empty database, dropped when the returned handle goes; returns it and its URL.
/// A test that lets the app create the schema with the test settings is quicker on
/// [`crate::create_migrated_database`].
pub async fn create_database() -> (TestDatabase, String) {
    let maintenance = maintenance_url();
    let name = new_name();
    let mut connection = PgConnection::connect(&maintenance)
        .await
        .expect("cannot connect to the test cluster");
    drop_stale_databases(&mut connection).await;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut connection)
        .await
        .expect("cannot create a test database");
    let _ = connection.close().await;
    register_database(name)
}

/// The handle and URL of the database `name`, just created: dropped when the handle goes.
pub(crate) fn register_database(name: String) -> (TestDatabase, String) {
    let mut url = Url::parse(&maintenance_url()).expect("DATABASE_URL is not a URL");
    url.set_path(&format!("/{name}"));
    (
        TestDatabase(std::sync::Arc::new(DatabaseName(name))),
        url.to_string(),
    )
}

/// Keeps `database` until the test process exits, then drops it (the template databases).
pub(crate) fn keep_until_exit(database: TestDatabase) {
    register_at_exit();
    lock(&KEPT).push(database);
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
