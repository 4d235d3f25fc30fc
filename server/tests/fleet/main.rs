//! Fleet tests (issue 11): `bin/fleet` (a PostgreSQL primary, a streaming replica made
//! with `pg_basebackup -R`, three instances of the server binary under test with shared
//! rate limits, HAProxy in front), all on loopback. Run with the release binary by
//! `rake test:fleet` (`LOG_INGESTION_TESTED_BIN`); the bigger variants with
//! `LOG_INGESTION_LONG_TESTS=1`. Needs `haproxy` (bin/setup) and, for the Ruby client,
//! the gem's native extension (`rake compile`).

mod bench;
mod harness;
mod ingest;
mod otlp;
mod rate_limits;
mod replica_conflicts;
mod replica_reads;
