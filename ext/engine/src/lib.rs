//! The gem's delivery engine: a bounded queue of log entries, batching, gzip, a retry
//! policy and HTTP delivery on its own native threads. Never touches Ruby.
//!
//! Public API: `Engine::start(EngineConfig) -> Result<Engine, EngineError>`,
//! `enqueue(Entry) -> Enqueued`, `enqueue_encoded(EncodedEntry) -> Enqueued` (an entry
//! written by `EntryWriter`), `flush(Duration, &Cancel) -> FlushOutcome`,
//! `send_now(Entry, Duration, &Cancel) -> Result<SendOutcome, DeliveryError>`,
//! `shutdown(Duration) -> ShutdownReport`, `stats() -> Stats`,
//! `next_error(Duration, &Cancel) -> Option<ErrorReport>`, `pid() -> u32`.
//! Failures have one vocabulary, `ErrorKind` (what Ruby's `on_error` receives as `kind`,
//! and which `Stats` field counts the entries each loses); `DeliveryError::kind` names
//! a `send_now` failure in it.
//!
//! Modules: `config` (EngineConfig, DropPolicy; values trusted, see its top comment),
//! `entry` (Entry and its JSON), `queue` (BatchQueue: byte bound, drop policy, flush
//! sequence numbers), `retry` (RetryPolicy, pure), `transport` (one reqwest Client,
//! bodies, gzip, one attempt), `pause` (SendPause: the 429 pause every sender waits
//! out), `delivery` (the loop, retries, outcome bookkeeping, panic supervision),
//! `reports` (ErrorReports for `on_error`), `stats` (atomic counters), `cancel` (Cancel
//! token), `monitor` (the one lock-and-wait rule of `flush` and `next_error`),
//! `spool` (the spool directory: file format, bound, claims), `recovery` (delivering
//! spool files left by earlier processes), `engine` (the public handle and shutdown).
//!
//! Design: one batch is in flight at a time, which preserves order within a process;
//! `enqueue` encodes on the caller's thread and takes a short `std::sync::Mutex` for
//! queue bookkeeping only. Fork: the engine records the pid it started in; a fork child
//! must `std::mem::forget` (never drop) the parent's engine and start its own.
//!
//! Behaviour a caller relies on:
//! - Entries too large for a batch, or that cannot be encoded, are counted as
//!   `dropped_invalid` at `enqueue` and not reported (the caller's `false` says so).
//! - `max_retries` counts retries after the first attempt for failures that may be the
//!   batch's own (timeouts, 408, 500, 5xx other than 502/503/504). An unavailable server
//!   (connection refused, 429, 502, 503, 504) is retried until `max_retry_elapsed`
//!   (the gem's default: 5 min) after the batch's first attempt; `Retry-After` is the earliest
//!   moment of the next attempt and the jittered backoff is added on top.
//! - 401/403 is reported once per outage: after a 2xx it would be reported again.
//! - `max_queue_bytes` bounds the encoded JSON bytes of queued entries (`bytes_queued`);
//!   per-entry bookkeeping (~32 bytes) is not counted.
//! - A 429 pauses every sender, `send_now` included (it waits the pause out within its
//!   own timeout), and the pause holds even when that 429 used up the batch's retries.
//! - Redirects are never followed (the API key must not travel elsewhere); a 3xx drops
//!   the batch as invalid.
//! - With `spool_dir` set, what the service cannot take at exit (it refuses the
//!   connection while shutting down, or `shutdown`'s timeout passes with batches still
//!   retrying or queued) is written to one spool file per process, within
//!   `max_spool_bytes` for the directory, and reported in one report; every engine
//!   started on the directory claims the files no live process holds and delivers them
//!   with their original idempotency keys, off the caller's thread.
//! - Cargo feature `tls` (default): https through rustls; without it https URLs are a
//!   `ConfigError::HttpsUnsupported`.

mod cancel;
mod config;
mod delivery;
mod engine;
mod entry;
mod monitor;
mod outage;
mod pause;
mod queue;
mod recovery;
mod reports;
mod retry;
mod spool;
mod stats;
mod transport;

pub use cancel::Cancel;
pub use config::{ConfigError, DropPolicy, EngineConfig};
pub use engine::{
    DeliveryError, DropReason, Engine, EngineError, Enqueued, SendOutcome, ShutdownReport,
};
pub use entry::{timestamp, timestamp_now, EncodedEntry, Entry, EntryWriter, MetadataJson};
pub use log_ingestion_wire::Level;
pub use queue::FlushOutcome;
pub use reports::{ErrorKind, ErrorReport, MAX_PENDING_REPORTS};
pub use retry::{
    cause_of_status, classify_status, parse_retry_after, GiveUp, RetryCause, RetryPolicy,
    RetryState, Verdict, MAX_RETRY_AFTER,
};
pub use spool::MAX_SKIPPED_FILES;
pub use stats::{StatValue, Stats};
pub use transport::{TransportError, GZIP_MIN_BYTES};
