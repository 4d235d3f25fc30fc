//! The server's support crate for integration tests and benchmarks, shared by every
//! test binary under `server/tests/` and every program under `server/benches/` as a
//! library (so each uses what it needs, with no `#[path]` includes and no
//! `allow(dead_code)`). Real parts only: a real PostgreSQL (`database`), the real app
//! in-process (`app`) or the built binary as a child process (`process`), the fleet of
//! `bin/fleet` (`fleet`), the read side's fixtures (`read`, `sse`), reading as an admin
//! (`admin`), and the figures: latency percentiles (`latency`), `/proc` (`proc_stats`)
//! and `/metrics` (`metrics`); a recording HTTP receiver of alert notifications
//! (`recording_receiver`). It never mocks the server or the database.

pub mod admin;
pub mod app;
pub mod bench;
pub mod database;
pub mod fleet;
pub mod latency;
pub mod metrics;
pub mod proc_stats;
pub mod process;
pub mod read;
pub mod recording_receiver;
pub mod sse;
pub mod template;

use std::time::Duration;

pub use admin::{page_messages, AdminReader};
pub use app::{
    entry, json_with_status, spawn_app, spawn_app_on, spawn_app_with, spawn_app_with_vars,
    spawn_full_app, test_settings, test_settings_with, TestApp, ADMIN_KEY, API_KEY, OTHER_API_KEY,
};
pub use database::{
    create_database, ddl_steps_run, drop_database, expected_mode, fail_ddl_at_step,
    maintenance_url, migrate_test_database, start_private_postgres, test_storage, with_database,
    workspace_root, TestDatabase,
};
pub use latency::Latencies;
pub use process::{binary, ServerProcess};
pub use read::{
    messages, plan_nodes, query_pairs, row, spawn_read_app, spawn_read_app_configured,
    spawn_read_app_seeded, spawn_read_app_with, ReadApp, Row, INGEST_KEY,
};
pub use sse::{SseEvent, SseReader};
pub use template::{create_migrated_database, create_seeded_database};

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

/// Whether the bigger variants of the long suites run (`LOG_INGESTION_LONG_TESTS=1`).
pub fn long_tests() -> bool {
    std::env::var("LOG_INGESTION_LONG_TESTS").is_ok_and(|value| value == "1")
}
