//! Fleet tests: `bin/fleet` (a PostgreSQL primary, a streaming replica made with
//! `pg_basebackup -R`, three instances of the server binary under test with shared
//! rate limits, HAProxy in front), all on loopback, started by
//! `log_ingestion_test_support::fleet`. Another build of the server with
//! `LOG_INGESTION_TESTED_BIN`; the bigger variants with `LOG_INGESTION_LONG_TESTS=1`.
//! Needs `haproxy` (bin/setup) and, for the Ruby client, the gem's native extension
//! (`rake compile`). The fleet benchmark is `benches/fleet_throughput.rs`.

mod alerts;
mod ingest;
mod otlp;
mod rate_limits;
mod replica_conflicts;
mod replica_reads;
