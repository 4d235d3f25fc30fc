//! `ErrorReports`: delivery failures waiting for Ruby's `on_error`.
//!
//! Owns a bounded FIFO of `ErrorReport`s that delivery threads push and the binding's
//! reporter thread pops with `next`. It never calls back into Ruby and never blocks a
//! delivery thread (push is a short lock; when full the oldest report gives way).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::Cancel;
use crate::monitor::Monitor;

/// Most reports kept waiting; beyond it the oldest are discarded (and counted in the next report's message).
pub const MAX_PENDING_REPORTS: usize = 256;

/// What kind of failure a report describes: the one vocabulary of failures, from the
/// engine to the binding's `send_log` answers, Ruby's `on_error` kinds and `stats`.
/// Each kind that loses entries counts them in one `Stats` field (`stats_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A batch was given up by the retry policy: `max_retries` retries of failures that may
    /// be its own (timeouts, 408, 500, other 5xx), or `max_retry_elapsed` of any retries.
    RetriesExhausted,
    /// The server answered 401 or 403 (reported on the first occurrence only).
    Unauthorized,
    /// The server refused the request as a whole: another 4xx (400, 413, 415...) or a 3xx.
    /// Entries refused before sending (too large, unencodable) are only counted, never reported.
    Invalid,
    /// A 2xx answer rejected some entries one by one.
    Rejected,
    /// Entries were dropped because the queue was full.
    QueueFull,
    /// A delivery task panicked, or the gem itself failed; its entries are lost.
    Internal,
    /// Entries were lost to shutdown: still queued when its timeout passed, refused by a
    /// service that is down while shutting down, or sent (`send_now`) after it.
    Shutdown,
    /// `send_now` only: no answer within the caller's timeout (nothing counted).
    TimedOut,
    /// `send_now` only: the caller's wait was interrupted (nothing counted).
    Cancelled,
    /// Delivery started failing (connection refused, a timeout, a 5xx): once per
    /// outage, not per batch; its entries stay queued and retried (nothing lost by it).
    Outage,
    /// Delivery recovered after an `Outage`: how long it lasted and what it cost.
    Recovered,
}

impl ErrorKind {
    /// Every kind, in the order docs/gem.md's table lists them.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::RetriesExhausted,
        ErrorKind::Unauthorized,
        ErrorKind::Invalid,
        ErrorKind::Rejected,
        ErrorKind::QueueFull,
        ErrorKind::Internal,
        ErrorKind::Shutdown,
        ErrorKind::TimedOut,
        ErrorKind::Cancelled,
        ErrorKind::Outage,
        ErrorKind::Recovered,
    ];

    /// Snake-case name, e.g. `"retries_exhausted"`: the `kind` Ruby's `on_error` receives.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RetriesExhausted => "retries_exhausted",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Rejected => "rejected",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Internal => "internal",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::TimedOut => "timed_out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Outage => "outage",
            ErrorKind::Recovered => "recovered",
        }
    }

    /// The `Stats` field that counts the entries this kind of failure loses (None for
    /// `send_now`'s own outcomes, which the caller sees in its answer, and for an
    /// outage's two reports, which lose nothing themselves).
    pub const fn stats_field(self) -> Option<&'static str> {
        match self {
            ErrorKind::RetriesExhausted => Some("dropped_retries_exhausted"),
            ErrorKind::Unauthorized => Some("dropped_unauthorized"),
            ErrorKind::Invalid => Some("dropped_invalid"),
            ErrorKind::Rejected => Some("rejected_by_server"),
            ErrorKind::QueueFull => Some("dropped_queue_full"),
            ErrorKind::Internal => Some("dropped_internal"),
            ErrorKind::Shutdown => Some("dropped_at_shutdown"),
            ErrorKind::TimedOut
            | ErrorKind::Cancelled
            | ErrorKind::Outage
            | ErrorKind::Recovered => None,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure to tell the application about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    pub message: String,
    /// Entries this failure lost (0 when it lost none).
    pub entries_lost: u64,
}

#[derive(Default)]
struct Pending {
    reports: VecDeque<ErrorReport>,
    discarded: u64,
    closed: bool,
}

/// The bounded queue of reports.
#[derive(Default)]
pub(crate) struct ErrorReports {
    monitor: Arc<Monitor<Pending>>,
}

impl ErrorReports {
    /// Queues `report` for `on_error` (it does not touch `Stats`).
    pub fn push(&self, report: ErrorReport) {
        tracing::warn!(kind = %report.kind, entries_lost = report.entries_lost, "{}", report.message);
        let mut pending = self.monitor.lock();
        if pending.reports.len() >= MAX_PENDING_REPORTS {
            pending.reports.pop_front();
            pending.discarded += 1;
        }
        pending.reports.push_back(report);
        drop(pending);
        self.monitor.notify_all();
    }

    /// No more reports will come once the queue is empty: `next` stops waiting.
    pub fn close(&self) {
        self.monitor.lock().closed = true;
        self.monitor.notify_all();
    }

    /// The oldest report, waiting up to `timeout` (or until cancelled or closed).
    pub fn next(&self, timeout: Duration, cancel: &Cancel) -> Option<ErrorReport> {
        let next = self.monitor.wait_for(timeout, cancel, |pending| {
            if let Some(mut report) = pending.reports.pop_front() {
                if pending.discarded > 0 {
                    report.message = format!(
                        "{} ({} earlier reports were discarded)",
                        report.message, pending.discarded
                    );
                    pending.discarded = 0;
                }
                return Some(Some(report));
            }
            // Closed: no report will come.
            pending.closed.then_some(None)
        });
        next.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n: u64) -> ErrorReport {
        ErrorReport {
            kind: ErrorKind::Invalid,
            message: format!("r{n}"),
            entries_lost: n,
        }
    }

    #[test]
    fn reports_come_out_in_order() {
        let reports = ErrorReports::default();
        reports.push(report(1));
        reports.push(report(2));
        let cancel = Cancel::new();
        assert_eq!(reports.next(Duration::ZERO, &cancel), Some(report(1)));
        assert_eq!(reports.next(Duration::ZERO, &cancel), Some(report(2)));
        assert_eq!(reports.next(Duration::from_millis(1), &cancel), None);
    }

    #[test]
    fn beyond_the_bound_the_oldest_report_gives_way_and_is_mentioned() {
        let reports = ErrorReports::default();
        for n in 0..(MAX_PENDING_REPORTS as u64 + 1) {
            reports.push(report(n));
        }
        let first = reports.next(Duration::ZERO, &Cancel::new()).unwrap();
        assert_eq!(first.entries_lost, 1);
        assert!(first.message.contains("1 earlier reports were discarded"));
    }

    #[test]
    fn a_cancelled_wait_returns_none() {
        let reports = std::sync::Arc::new(ErrorReports::default());
        let cancel = Cancel::new();
        let waiter = {
            let reports = std::sync::Arc::clone(&reports);
            let cancel = cancel.clone();
            std::thread::spawn(move || reports.next(Duration::from_secs(60), &cancel))
        };
        cancel.cancel();
        assert_eq!(waiter.join().unwrap(), None);
    }

    #[test]
    fn a_closed_queue_stops_waiting() {
        let reports = ErrorReports::default();
        reports.close();
        assert_eq!(reports.next(Duration::from_secs(60), &Cancel::new()), None);
    }
}
