//! The engine's integration tests, one test binary (one link instead of one per file):
//! each module one area of the engine's behaviour against a real HTTP server (`support`).

mod support;

mod batching;
mod failures;
mod lifecycle;
mod outage;
mod spool;
mod unavailable;
