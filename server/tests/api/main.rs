//! Integration tests: the real server over real HTTP against a real PostgreSQL, one
//! fresh database per test.

mod auth;
mod batch;
mod concurrency;
mod encoding;
mod health;
mod helpers;
mod idempotency;
mod inflight;
mod metrics_exposition;
mod process;
mod rate_limit;
mod server_process;
mod single;
mod storage;
