//! The log ingestion service: authenticated, rate-limited, durable ingestion of
//! structured logs into PostgreSQL or TimescaleDB, and the query API and log explorer
//! that read them back (`read`). `startup::Application` is the whole server; `main.rs`
//! only reads configuration and runs it.

pub mod alerts;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod errors;
pub mod ingest;
pub mod instance;
pub mod metrics;
pub mod read;
pub mod routes;
pub mod saved_searches;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;

#[cfg(test)]
mod layering;
