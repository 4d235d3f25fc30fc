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
//! and reported, and the loop restarts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use log_ingestion_wire::BatchResponse;
use tokio::time::Instant;

use crate::config::EngineConfig;
use crate::outage::Outage;
use crate::pause::SendPause;
use crate::queue::{Batch, BatchQueue};
use crate::reports::{ErrorKind, ErrorReport, ErrorReports};
use crate::retry::{
    cause_of_status, classify_status, parse_retry_after, GiveUp, RetryCause, RetryPolicy,
    RetryState, Verdict, MAX_RETRY_AFTER,
};
use crate::spool::Claims;
use crate::stats::Counters;
use crate::transport::{Attempt, Endpoint, FailureKind, PreparedRequest, Transport};

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

/// Runs the delivery loop until it is stopped; restarts it after a panic, counting the
/// batch that was in flight as lost.
pub(crate) async fn supervise(shared: Arc<EngineState>) {
    loop {
        let run = tokio::spawn(delivery_loop(Arc::clone(&shared)));
        match run.await {
            Ok(()) => return,
            Err(error) if error.is_panic() => {
                let lost = shared.queue.in_flight_len();
                Counters::add(&shared.counters.dropped_internal, lost);
                Counters::add(&shared.counters.failed_batches, 1);
                let message = format!(
                    "log delivery panicked ({}); {lost} entries lost, delivery restarted",
                    panic_message(error.into_panic())
                );
                shared.report(ErrorKind::Internal, message, lost);
                shared.queue.finish_batch();
            }
            Err(_) => return,
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

async fn delivery_loop(shared: Arc<EngineState>) {
    let interval = shared.config.batch_interval;
    let mut tick = Instant::now() + interval;
    loop {
        shared.report_queue_drops();
        let ready = shared.queue.readiness();
        if ready.stopping {
            return;
        }
        let now = Instant::now();
        let due = now >= tick;
        if ready.len > 0 && (ready.full || ready.urgent || due) {
            if let Some(batch) = shared.queue.take_batch() {
                deliver_batch(&shared, batch).await;
                shared.queue.finish_batch();
            }
            if due {
                tick = Instant::now() + interval;
            }
            continue;
        }
        if due {
            tick = now + interval;
        }
        tokio::select! {
            _ = shared.queue.work().notified() => {}
            _ = tokio::time::sleep_until(tick) => {}
        }
    }
}

async fn deliver_batch(shared: &EngineState, batch: Batch) {
    #[cfg(test)]
    if PANIC_ON_NEXT_BATCH.swap(false, Ordering::SeqCst) {
        panic!("injected delivery panic");
    }
    if shared.refused_at_exit() {
        shared.leave_at_exit(LeftBatch::Unsent(batch.entries), None);
        return;
    }
    let count = batch.entries.len() as u64;
    let prepared = if shared.config.enable_batching {
        PreparedRequest::batch(&batch.entries, shared.config.gzip)
    } else {
        match batch.entries.first() {
            Some(entry) => PreparedRequest::single(entry, shared.config.gzip),
            None => return,
        }
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            shared.record_failure(
                count,
                Failure {
                    kind: ErrorKind::Internal,
                    status: None,
                    message: format!("could not build the request body: {error}"),
                    attempts: 0,
                },
            );
            return;
        }
    };
    drop(batch);
    *shared.in_flight() = Some(prepared.clone());
    let result = send_with_retries(shared, &prepared, Retries::ByPolicy).await;
    *shared.in_flight() = None;
    match result {
        Ok(answer) => {
            shared.record_answer(&prepared, &answer);
        }
        // Refused while shutting down: kept for the spool, counted and reported by shutdown.
        Err(failure) if failure.kind == ErrorKind::Shutdown => {
            let why = format!("{} refused the connection", shared.config.base_url());
            shared.leave_at_exit(LeftBatch::Sent(prepared), Some(why));
        }
        Err(failure) => shared.record_failure(count, failure),
    }
}

/// Whether a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retries {
    /// As the retry policy says (every batch; `send_now`).
    ByPolicy,
    /// Never: one attempt, its failure is the answer (`send_once`, a reachability check).
    Never,
}

/// Sends `request` until it is answered 2xx, refused for good, or the retry policy
/// gives it up (by count for failures that may be its own, by `max_retry_elapsed` for
/// all) -- or after its first attempt with `Retries::Never`. The body and idempotency
/// key are the same on every attempt; each attempt first waits out a 429 pause,
/// whoever's request caused it.
pub(crate) async fn send_with_retries(
    shared: &EngineState,
    request: &PreparedRequest,
    retries: Retries,
) -> Result<Answer, Failure> {
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut failed_retries = 0u32;
    loop {
        shared.pause.wait().await;
        attempts += 1;
        let attempt = shared.transport.send(request).await;
        let failed = match judge(shared, request, attempt, attempts) {
            Judged::Done(result) => return result,
            Judged::Retryable(failed) => failed,
        };
        // A 429 is the server asking for a pause, not an outage; a failure while
        // shutting down belongs to shutdown's own report, a single attempt's to its caller.
        if failed.status != Some(429) && !shared.is_shutting_down() && retries != Retries::Never {
            shared.delivery_failing(&failed.message);
        }
        if retries == Retries::Never {
            return Err(failed.not_retried(attempts));
        }
        if failed.cause == RetryCause::Failed {
            failed_retries += 1;
        }
        let retry = RetryState {
            retry: attempts,
            failed_retries,
            elapsed: started.elapsed(),
        };
        let delay = shared.policy.delay_before_retry(
            retry,
            failed.cause,
            failed.retry_after,
            rand::random(),
        );
        if failed.status == Some(429) {
            shared.pause_after_429(delay.ok(), failed.retry_after);
        }
        let refused = failed.is_refused();
        if refused && shared.is_shutting_down() {
            return Err(failed.given_up_at_shutdown(attempts));
        }
        match delay {
            Ok(delay) => {
                Counters::add(&shared.counters.retried, 1);
                shared.counters.set_last_error(failed.message.clone());
                tracing::debug!(attempts, ?delay, "{}; retrying", failed.message);
                shared.wait_before_retry(delay, refused).await;
            }
            Err(give_up) => {
                return Err(failed.given_up(give_up, attempts, started, shared.policy.max_elapsed))
            }
        }
    }
}

/// What one attempt came to: an end (a 2xx, or a refusal retrying cannot help), or a
/// failure the retry policy decides about.
enum Judged {
    Done(Result<Answer, Failure>),
    Retryable(FailedAttempt),
}

/// Judges one attempt by its HTTP status (or its transport failure). A 2xx also ends
/// a 429 pause and re-arms the 401/403 report.
fn judge(
    shared: &EngineState,
    request: &PreparedRequest,
    attempt: Attempt,
    attempts: u32,
) -> Judged {
    let (status, retry_after, body) = match attempt {
        Attempt::Answered {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
        Attempt::Failed { kind, message } => {
            return Judged::Retryable(FailedAttempt {
                status: None,
                cause: match kind {
                    FailureKind::Connect => RetryCause::Unavailable,
                    FailureKind::Timeout | FailureKind::Other => RetryCause::Failed,
                },
                retry_after: None,
                message: format!("{} sending to {}: {message}", kind.as_str(), path(request)),
            })
        }
    };
    let kind = match classify_status(status) {
        Verdict::Delivered => {
            shared.delivery_succeeded();
            shared.resume_sending();
            shared.unauthorized_reported.store(false, Ordering::Relaxed);
            return Judged::Done(Ok(Answer {
                status,
                body,
                attempts,
            }));
        }
        Verdict::Retryable => {
            return Judged::Retryable(FailedAttempt {
                status: Some(status),
                cause: cause_of_status(status),
                retry_after: retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
                message: describe_answer(request, status, &body),
            })
        }
        Verdict::Unauthorized => ErrorKind::Unauthorized,
        Verdict::Invalid => ErrorKind::Invalid,
    };
    Judged::Done(Err(Failure {
        kind,
        status: Some(status),
        message: describe_answer(request, status, &body),
        attempts,
    }))
}

/// One attempt that may be retried: what the retry policy and the reports need of it.
struct FailedAttempt {
    status: Option<u16>,
    cause: RetryCause,
    retry_after: Option<Duration>,
    message: String,
}

impl FailedAttempt {
    /// No answer and unavailable: the connection was refused.
    fn is_refused(&self) -> bool {
        self.status.is_none() && self.cause == RetryCause::Unavailable
    }

    fn not_retried(self, attempts: u32) -> Failure {
        Failure {
            kind: ErrorKind::RetriesExhausted,
            status: self.status,
            message: format!("{} (one attempt, not retried)", self.message),
            attempts,
        }
    }

    fn given_up_at_shutdown(self, attempts: u32) -> Failure {
        Failure {
            kind: ErrorKind::Shutdown,
            status: self.status,
            message: format!(
                "{} (the service refused the connection while the process was shutting down: \
                 given up at once instead of waiting out the shutdown timeout)",
                self.message
            ),
            attempts,
        }
    }

    fn given_up(
        self,
        give_up: GiveUp,
        attempts: u32,
        started: Instant,
        max_elapsed: Duration,
    ) -> Failure {
        let message = match give_up {
            GiveUp::Retries => self.message,
            GiveUp::Elapsed => format!(
                "{} (retried for {:.1}s; max_retry_elapsed is {max_elapsed:?})",
                self.message,
                started.elapsed().as_secs_f64(),
            ),
        };
        Failure {
            kind: ErrorKind::RetriesExhausted,
            status: self.status,
            message,
            attempts,
        }
    }
}

fn path(request: &PreparedRequest) -> &'static str {
    match request.endpoint {
        Endpoint::Batch => log_ingestion_wire::BATCH_PATH,
        Endpoint::Single => log_ingestion_wire::SINGLE_PATH,
    }
}

fn describe_answer(request: &PreparedRequest, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(300).collect();
    format!("HTTP {status} from {}: {}", path(request), text.trim())
}

impl EngineState {
    /// `shutdown` has begun: batches retrying a refused connection stop waiting.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.shutdown_begun.notify_waiters();
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn in_flight(&self) -> MutexGuard<'_, Option<PreparedRequest>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn left_at_exit(&self) -> MutexGuard<'_, LeftAtExit> {
        self.left_at_exit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the service refused a batch while shutting down.
    fn refused_at_exit(&self) -> bool {
        self.is_shutting_down() && self.left_at_exit().refused.is_some()
    }

    fn leave_at_exit(&self, batch: LeftBatch, refused: Option<String>) {
        let mut left = self.left_at_exit();
        left.batches.push(batch);
        if left.refused.is_none() {
            left.refused = refused;
        }
    }

    /// Returns once `shutdown` has begun (at once if it has).
    async fn wait_for_shutdown(&self) {
        let notified = self.shutdown_begun.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_shutting_down() {
            return;
        }
        notified.await;
    }

    /// Sleeps `delay` before the next attempt. A refused connection's wait is cut short
    /// by shutdown: one more attempt, then `send_with_retries` gives up if it is refused again.
    async fn wait_before_retry(&self, delay: Duration, refused: bool) {
        if refused {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.wait_for_shutdown() => {}
            }
        } else {
            tokio::time::sleep(delay).await;
        }
    }

    /// A 429 answered: every sender waits out the retry's delay (or the server's
    /// `Retry-After`, capped), even when this request is given up.
    fn pause_after_429(&self, delay: Option<Duration>, retry_after: Option<Duration>) {
        if let Some(pause) = delay.or(retry_after.map(|wait| wait.min(MAX_RETRY_AFTER))) {
            self.pause_sending(pause);
        }
    }

    /// A 429 asked for a pause: no sender sends before it ends; `Stats` shows until when.
    fn pause_sending(&self, pause: Duration) {
        self.pause.pause_for(pause);
        self.counters
            .set_rate_limited_until(SystemTime::now().checked_add(pause));
    }

    /// An attempt failed in a way that may last (no answer, a 5xx): the first since the
    /// last success reports that delivery is failing, with the error.
    fn delivery_failing(&self, error: &str) {
        let waiting = self.queue.pending_len();
        if let Some(message) = self.outage.failed(&self.counters, error, waiting) {
            self.notify(ErrorKind::Outage, message);
        }
    }

    /// A 2xx: `last_success_at`, and the end of an outage is reported with its counts.
    fn delivery_succeeded(&self) {
        self.counters.set_last_success();
        let waiting = self.queue.pending_len();
        if let Some(message) = self.outage.succeeded(&self.counters, waiting) {
            self.notify(ErrorKind::Recovered, message);
        }
    }

    /// A report for `on_error` that loses no entry and is no error of its own
    /// (`last_error` keeps the failure that caused it).
    fn notify(&self, kind: ErrorKind, message: String) {
        self.reports.push(ErrorReport {
            kind,
            message,
            entries_lost: 0,
        });
    }

    /// A 2xx: the server takes requests again.
    fn resume_sending(&self) {
        self.pause.clear();
        self.counters.set_rate_limited_until(None);
    }

    /// Counts a 2xx answer, including entries the server rejected one by one; answers
    /// how many entries the server took.
    pub(crate) fn record_answer(&self, request: &PreparedRequest, answer: &Answer) -> u64 {
        let count = request.entries as u64;
        let rejected = match request.endpoint {
            Endpoint::Single => 0,
            Endpoint::Batch => match serde_json::from_slice::<BatchResponse>(&answer.body) {
                Ok(response) => {
                    let rejected = response
                        .rejected
                        .max(response.errors.len() as u64)
                        .min(count);
                    if rejected > 0 {
                        let examples: Vec<String> = response
                            .errors
                            .iter()
                            .take(3)
                            .map(|e| format!("entry {}: {}", e.index, e.error))
                            .collect();
                        self.report(
                            ErrorKind::Rejected,
                            format!(
                                "the server rejected {rejected} of {count} entries ({})",
                                examples.join("; ")
                            ),
                            rejected,
                        );
                    }
                    rejected
                }
                Err(error) => {
                    tracing::debug!(status = answer.status, %error, "unreadable batch answer; counting the batch as accepted");
                    0
                }
            },
        };
        Counters::add(&self.counters.rejected_by_server, rejected);
        Counters::add(&self.counters.sent, count - rejected);
        count - rejected
    }

    /// Counts and reports a batch that was given up.
    pub(crate) fn record_failure(&self, count: u64, failure: Failure) {
        Counters::add(&self.counters.failed_batches, 1);
        let counter = match failure.kind {
            ErrorKind::Unauthorized => &self.counters.dropped_unauthorized,
            ErrorKind::Invalid => &self.counters.dropped_invalid,
            ErrorKind::RetriesExhausted => &self.counters.dropped_retries_exhausted,
            ErrorKind::Shutdown => &self.counters.dropped_at_shutdown,
            _ => &self.counters.dropped_internal,
        };
        Counters::add(counter, count);
        let message = match failure.kind {
            ErrorKind::RetriesExhausted => format!(
                "{count} log entries dropped after {} attempts: {}",
                failure.attempts, failure.message
            ),
            _ => format!("{count} log entries dropped: {}", failure.message),
        };
        if failure.kind == ErrorKind::Unauthorized
            && self.unauthorized_reported.swap(true, Ordering::Relaxed)
        {
            self.counters.set_last_error(message);
            return;
        }
        self.report(failure.kind, message, count);
    }

    pub(crate) fn report(&self, kind: ErrorKind, message: String, entries_lost: u64) {
        self.counters.set_last_error(message.clone());
        self.reports.push(ErrorReport {
            kind,
            message,
            entries_lost,
        });
    }

    /// One report for all queue-full drops since the last one.
    pub(crate) fn report_queue_drops(&self) {
        let dropped = self.unreported_queue_full.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.report(
                ErrorKind::QueueFull,
                format!(
                    "{dropped} log entries dropped: the queue reached max_queue_bytes ({} bytes)",
                    self.config.max_queue_bytes
                ),
                dropped,
            );
        }
    }
}
