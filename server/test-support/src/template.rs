//! Migrated test databases made quickly: the first test of a process that needs a schema
//! for some settings migrates one database with them (the very steps `serve` runs on a
//! database without a schema), and every later one is a `CREATE DATABASE … TEMPLATE`
//! copy of it (a file copy: ~0.4 s instead of ~1.5 s, ~0.7 s instead of ~3 s in
//! TimescaleDB mode). Owns the templates: one per storage setting, declared keys and
//! trigram index, and one per seeded data set (`create_seeded_database`), per test process, dropped when the process exits (or, after a crash,
//! by the stale-database cleanup an hour later).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use log_ingestion_server::config::DatabaseSettings;
use log_ingestion_server::storage::{self, declared_keys, ConvertRows};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

use crate::database::{create_database, maintenance_url, register_database, TestDatabase};

/// The settings that decide what a fresh database's schema holds.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SchemaKey {
    storage: String,
    declared_keys: Vec<String>,
    message_trigram_index: bool,
}

type Templates = Mutex<HashMap<SchemaKey, Arc<OnceCell<String>>>>;

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(Default::default)
}

/// Whether tests may use templates: `LOG_INGESTION_TEST_TEMPLATES=0` makes every
/// database migrate on its own (to compare, or to rule the templates out).
fn enabled() -> bool {
    std::env::var("LOG_INGESTION_TEST_TEMPLATES").map_or(true, |value| value != "0")
}

/// A fresh database whose schema is what `serve` makes on an empty database with
/// `settings` (its storage mode, declared keys and trigram index), dropped when the
/// handle goes; its URL. `serve` on it finds the schema and only checks it.
pub async fn create_migrated_database(settings: &DatabaseSettings) -> (TestDatabase, String) {
    if !enabled() {
        return create_database().await;
    }
    let key = SchemaKey {
        storage: settings.storage.to_string(),
        declared_keys: settings.declared_keys.clone(),
        message_trigram_index: settings.message_trigram_index,
    };
    let cell = Arc::clone(
        templates()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_default(),
    );
    let template = cell
        .get_or_init(|| make_template(settings.clone()))
        .await
        .clone();
    copy_of(&template).await
}

/// A fresh copy of a database that `seed` filled once per test process (for `key`,
/// which names what it holds) on a database migrated with the test settings; dropped
/// when the handle goes; its URL. For data sets that many tests read and that take
/// long to make (e.g. 100,000 rows with their rollups materialized and analyzed):
/// `seed` gets the seed database (a handle to keep no longer than it runs) and its URL;
/// the connections it leaves open are ended.
pub async fn create_seeded_database<F, Fut>(key: &str, seed: F) -> (TestDatabase, String)
where
    F: FnOnce(TestDatabase, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !enabled() {
        let (database, url) = create_database().await;
        let settings = crate::app::test_settings(&url).database;
        migrate_like_serve(&settings).await;
        seed(database.clone(), url.clone()).await;
        return (database, url);
    }
    type Seeded = Mutex<HashMap<String, Arc<OnceCell<String>>>>;
    static SEEDED: OnceLock<Seeded> = OnceLock::new();
    let cell = Arc::clone(
        SEEDED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.to_owned())
            .or_default(),
    );
    let template = cell
        .get_or_init(|| async {
            let settings = crate::app::test_settings(&maintenance_url()).database;
            let (database, url) = create_migrated_database(&settings).await;
            seed(database.clone(), url).await;
            close_as_template(database).await
        })
        .await
        .clone();
    copy_of(&template).await
}

/// A new database copied from `template`.
async fn copy_of(template: &str) -> (TestDatabase, String) {
    let mut connection = PgConnection::connect(&maintenance_url())
        .await
        .expect("cannot connect to the test cluster");
    let name = crate::database::new_name();
    sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut connection)
    .await
    .unwrap_or_else(|error| panic!("cannot copy the template database {template}: {error}"));
    let _ = connection.close().await;
    register_database(name)
}

/// Migrates a new database as `serve` does an empty one, then closes it to connections
/// (TimescaleDB's scheduler included: a template must have none); its name. Kept until
/// the process exits.
async fn make_template(mut settings: DatabaseSettings) -> String {
    let (database, url) = create_database().await;
    settings.url = url;
    migrate_like_serve(&settings).await;
    close_as_template(database).await
}

/// What `serve` does to the empty database `settings.url`: the migrations in the
/// storage mode asked for, then the declared keys and the trigram index.
async fn migrate_like_serve(settings: &DatabaseSettings) {
    let pool = PgPool::connect(&settings.url)
        .await
        .expect("connect to the template database");
    storage::migrate(&pool, settings.storage, ConvertRows::Refuse)
        .await
        .expect("migrations apply to the template database");
    declared_keys::apply(&pool, settings, declared_keys::Undeclared::Keep)
        .await
        .expect("declared keys apply to the template database");
    pool.close().await;
}

/// Closes `database` to connections, ending its sessions (TimescaleDB's scheduler
/// included: a template must have none), and keeps it until the process exits; its name.
async fn close_as_template(database: TestDatabase) -> String {
    let name = database.name().to_owned();
    let mut connection = PgConnection::connect(&maintenance_url())
        .await
        .expect("cannot connect to the test cluster");
    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
    ))
    .execute(&mut connection)
    .await
    .expect("close the template database to connections");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut connection)
    .await
    .expect("end the template database's sessions");
    let _ = connection.close().await;
    crate::database::keep_until_exit(database);
    name
}
