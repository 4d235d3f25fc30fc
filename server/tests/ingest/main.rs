//! The write side and the server around it: the real server over real HTTP against a
//! real PostgreSQL, one fresh database per test. Ingest itself (`single`, `batch`,
//! `encoding`, `auth`, `rate_limit`, `idempotency`, `inflight`, `concurrency`,
//! `declared_keys`, `storage`), alert delivery to real receivers (`alert_delivery`),
//! the decode/validate fuzz target (`fuzz_decode_validate`), and the serving process
//! (`startup`, `health`, `metrics_exposition`, `instance_id`, `process`). Run one part
//! with a filter:
//! `cargo test -p log_ingestion_server --test ingest batch::`.

mod alert_delivery;
mod auth;
mod batch;
mod concurrency;
mod declared_keys;
mod encoding;
mod error_occurrences;
mod errors;
mod fuzz_decode_validate;
mod health;
mod idempotency;
mod inflight;
mod instance_id;
mod metrics_exposition;
mod otlp;
mod process;
mod rate_limit;
mod single;
mod startup;
mod storage;
