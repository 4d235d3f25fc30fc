//! The hostile-client suite: the real server binary (a process of its own, so a crash
//! or an abort fails the test instead of the test runner), real PostgreSQL with a fresh
//! database per test, and one test per attack shape. Each runs its attack while a
//! well-behaved client keeps ingesting and then checks what `harness` lists: the
//! process is alive, the good client's p99 and deadline held, every acknowledged entry
//! is stored, peak RSS stayed bounded, and the attack got a clear 4xx/503 or a closed
//! connection rather than a hang. Bigger variants run with `LOG_INGESTION_LONG_TESTS=1`.

mod bodies;
mod connections;
mod harness;
mod otlp;
mod queries;
mod sign_in;
