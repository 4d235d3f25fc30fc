//! Integration tests: the real server over real HTTP against a real PostgreSQL, one
//! fresh database per test.

mod auth;
mod batch;
mod concurrency;
mod declared_keys;
mod encoding;
mod errors;
mod health;
mod idempotency;
mod inflight;
mod instance_id;
mod metrics_exposition;
mod process;
mod rate_limit;
mod single;
mod startup;
mod storage;
