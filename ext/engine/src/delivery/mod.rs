//! Delivery: the loop on the engine's native threads that turns queued entries into
//! requests, the retry loop around each request, and the bookkeeping of outcomes.
//!
//! Owns when a batch is sent (full, interval elapsed, flush, or one by one without
//! batching), the retry/backoff/`Retry-After` waits (the policy's, timed from the
//! batch's first attempt), and which counter and report each
//! outcome produces, how long a 429 pauses every sender (`send_now` included), and
//! what the service refused while shutting down (kept for `shutdown` to spool). One
//! batch is in flight at a time, which preserves order. It never runs on a caller's
//! thread and never calls into Ruby; a panic inside it is caught by `supervise`, counted
//! and reported, and the loop restarts.//!
//! One job a module: this one holds the state the threads and callers share;
//! `batches` is the loop and its supervision, `retries` one request's attempts and
//! their judgement, `outcomes` what each outcome does to counters, reports, the 429
//! pause and the exit spool.

mod batches;
mod outcomes;
mod retries;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use bytes::Bytes;

use crate::config::EngineConfig;
use crate::outage::Outage;
use crate::pause::SendPause;
use crate::queue::BatchQueue;
use crate::reports::{ErrorKind, ErrorReports};
use crate::retry::RetryPolicy;
use crate::spool::Claims;
use crate::stats::Counters;
use crate::transport::{PreparedRequest, Transport};

pub(crate) use batches::supervise;
pub(crate) use retries::{send_with_retries, Retries};

/// The state of one engine that its delivery threads and its callers share: settings,
/// queue, counters, reports, transport, retry policy, 429 pause and shutdown signal.
pub(crate) struct EngineState {
    pub config: EngineConfig,
    pub queue: BatchQueue,
    pub counters: Counters,
    pub reports: ErrorReports,
    pub transport: Transport,
    pub policy: RetryPolicy,
    /// Set by a 429: no request is sent before it ends.
    pub pause: SendPause,
    /// A 401/403 was reported and no success came since: further ones are only counted.
    pub unauthorized_reported: AtomicBool,
    /// Whether delivery is failing now: one report when it starts, one when it recovers.
    pub outage: Outage,
    /// Queue-full drops not yet reported (reported in bulk by the loop, never per entry).
    pub unreported_queue_full: AtomicU64,
    /// Set when `shutdown` begins; `shutdown_begun` wakes a batch waiting to retry a
    /// refused connection, so exit does not wait out `shutdown_timeout` for a service
    /// that is known to be down.
    pub shutting_down: AtomicBool,
    pub shutdown_begun: tokio::sync::Notify,
    /// The batch being sent until it is answered: what exit spools when it never was.
    pub in_flight: Mutex<Option<PreparedRequest>>,
    /// What the service could not take while shutting down, oldest first, for the spool.
    pub left_at_exit: Mutex<LeftAtExit>,
    /// Spool files this engine is recovering (handed back at shutdown).
    pub claims: Claims,
}

/// Batches refused while shutting down, and the entries queued behind them (never sent:
/// once the service refused one batch at exit, the rest are not tried).
#[derive(Debug, Default)]
pub(crate) struct LeftAtExit {
    pub batches: Vec<LeftBatch>,
    /// Why the service could not be reached, once a batch was refused.
    pub refused: Option<String>,
}

#[derive(Debug)]
pub(crate) enum LeftBatch {
    /// Prepared and sent at least once: spooled with its idempotency key.
    Sent(PreparedRequest),
    /// Never sent: prepared (with a new key) when spooled.
    Unsent(Vec<Vec<u8>>),
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub attempts: u32,
}

/// Why a request was given up.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
    pub attempts: u32,
}

#[cfg(test)]
pub(crate) static PANIC_ON_NEXT_BATCH: AtomicBool = AtomicBool::new(false);
