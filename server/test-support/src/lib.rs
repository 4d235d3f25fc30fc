//! The server's integration-test harness, shared by every test binary under
//! `server/tests/` as a library (so each uses what it needs, with no `#[path]` includes
//! and no `allow(dead_code)`). Real parts only: a real PostgreSQL (`database`), the real
//! app in-process (`app`) or the built binary as a child process (`process`), and the
//! read side's fixtures (`read`, `sse`). It never mocks the server or the database.

pub mod app;
pub mod database;
pub mod process;
pub mod read;
pub mod sse;

use std::time::Duration;

pub use app::{
    entry, json_with_status, spawn_app, spawn_app_on, spawn_app_with, spawn_app_with_vars,
    spawn_full_app, test_settings, test_settings_with, TestApp, ADMIN_KEY, API_KEY, OTHER_API_KEY,
};
pub use database::{
    create_database, ddl_steps_run, drop_database, expected_mode, fail_ddl_at_step,
    maintenance_url, migrate_test_database, test_storage, TestDatabase,
};
pub use process::{binary, ServerProcess};
pub use read::{
    messages, plan_nodes, query_pairs, row, spawn_read_app, spawn_read_app_with, ReadApp, Row,
    INGEST_KEY,
};
pub use sse::{SseEvent, SseReader};

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
