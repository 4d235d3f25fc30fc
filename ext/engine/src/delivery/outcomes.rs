//! What each outcome does: counters, error reports (outage and recovery once each), the
//! 429 pause, and the batches kept for the exit spool.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::{Duration, SystemTime};

use log_ingestion_wire::BatchResponse;

use super::{Answer, EngineState, Failure, LeftAtExit, LeftBatch};
use crate::reports::{ErrorKind, ErrorReport};
use crate::retry::MAX_RETRY_AFTER;
use crate::stats::Counters;
use crate::transport::{Endpoint, PreparedRequest};

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
    pub(super) fn refused_at_exit(&self) -> bool {
        self.is_shutting_down() && self.left_at_exit().refused.is_some()
    }

    pub(super) fn leave_at_exit(&self, batch: LeftBatch, refused: Option<String>) {
        let mut left = self.left_at_exit();
        left.batches.push(batch);
        if left.refused.is_none() {
            left.refused = refused;
        }
    }

    /// Returns once `shutdown` has begun (at once if it has).
    pub(super) async fn wait_for_shutdown(&self) {
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
    pub(super) async fn wait_before_retry(&self, delay: Duration, refused: bool) {
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
    pub(super) fn pause_after_429(&self, delay: Option<Duration>, retry_after: Option<Duration>) {
        if let Some(pause) = delay.or(retry_after.map(|wait| wait.min(MAX_RETRY_AFTER))) {
            self.pause_sending(pause);
        }
    }

    /// A 429 asked for a pause: no sender sends before it ends; `Stats` shows until when.
    pub(super) fn pause_sending(&self, pause: Duration) {
        self.pause.pause_for(pause);
        self.counters
            .set_rate_limited_until(SystemTime::now().checked_add(pause));
    }

    /// An attempt failed in a way that may last (no answer, a 5xx): the first since the
    /// last success reports that delivery is failing, with the error.
    pub(super) fn delivery_failing(&self, error: &str) {
        let waiting = self.queue.pending_len();
        if let Some(message) = self.outage.failed(&self.counters, error, waiting) {
            self.notify(ErrorKind::Outage, message);
        }
    }

    /// A 2xx: `last_success_at`, and the end of an outage is reported with its counts.
    pub(super) fn delivery_succeeded(&self) {
        self.counters.set_last_success();
        let waiting = self.queue.pending_len();
        if let Some(message) = self.outage.succeeded(&self.counters, waiting) {
            self.notify(ErrorKind::Recovered, message);
        }
    }

    /// A report for `on_error` that loses no entry and is no error of its own
    /// (`last_error` keeps the failure that caused it).
    pub(super) fn notify(&self, kind: ErrorKind, message: String) {
        self.reports.push(ErrorReport {
            kind,
            message,
            entries_lost: 0,
        });
    }

    /// A 2xx: the server takes requests again.
    pub(super) fn resume_sending(&self) {
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
