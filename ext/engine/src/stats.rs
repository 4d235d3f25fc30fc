//! `Counters` (the engine's live atomics) and `Stats` (a snapshot of them).
//!
//! Owns every number the engine reports. Updates are lock-free atomics except
//! `last_error` and its time (one short `Mutex`). It never decides anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A snapshot of the engine's counters. Entry counts unless the name says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries accepted by `enqueue`.
    pub enqueued: u64,
    /// Entries the server accepted (batch, single and `send_now`).
    pub sent: u64,
    /// Entries dropped because the queue was full (either drop policy).
    pub dropped_queue_full: u64,
    /// Entries of batches given up by the retry policy (`max_retries` or `max_retry_elapsed`).
    pub dropped_retries_exhausted: u64,
    /// Entries of batches answered 401/403.
    pub dropped_unauthorized: u64,
    /// Entries answered 400/413/415/other 4xx, and entries too large for any batch.
    pub dropped_invalid: u64,
    /// Requests sent again after a retryable failure.
    pub retried: u64,
    /// Entries of a 2xx batch that the server rejected one by one (never resent).
    pub rejected_by_server: u64,
    /// Batches that ended without delivery (any reason above, or a delivery panic).
    pub failed_batches: u64,
    /// Bytes of encoded JSON waiting in the queue.
    pub bytes_queued: u64,
    /// Batches being sent right now (0 or 1: one batch is in flight at a time).
    pub batches_in_flight: u64,
    /// Sending is paused until then because the server answered 429.
    pub rate_limited_until: Option<SystemTime>,
    /// The last delivery failure, for humans: kept after delivery recovered (compare
    /// `last_error_at` with `last_success_at`).
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_at: Option<SystemTime>,
    /// When the server last accepted a request (batch, single or `send_now`).
    pub last_success_at: Option<SystemTime>,
    /// Entries lost to a panic inside delivery (the binding adds the gem's own failures).
    pub dropped_internal: u64,
    /// Entries enqueued after shutdown, still queued when it ended, or refused by a
    /// service that was down while shutting down, and not written to the spool.
    pub dropped_at_shutdown: u64,
    /// Entries the service could not take at exit, written to the spool for the next process.
    pub spooled: u64,
    /// Entries read back from the spool (written by an earlier process) that the server accepted.
    pub recovered: u64,
    /// Spool files skipped because they could not be read (corrupt, truncated, foreign,
    /// written by a newer version, or too large); moved aside, never delivered.
    pub spool_skipped: u64,
}

/// One `Stats` value, as the binding hands it to Ruby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatValue<'a> {
    Count(u64),
    Time(Option<SystemTime>),
    Text(Option<&'a str>),
}

impl Stats {
    /// Every field under its public name (the keys of Ruby's `LogIngestionClient.stats`,
    /// in docs/gem.md's order): the one list of the stats keys.
    pub fn fields(&self) -> [(&'static str, StatValue<'_>); 20] {
        use StatValue::{Count, Text, Time};
        [
            ("enqueued", Count(self.enqueued)),
            ("sent", Count(self.sent)),
            ("dropped_queue_full", Count(self.dropped_queue_full)),
            (
                "dropped_retries_exhausted",
                Count(self.dropped_retries_exhausted),
            ),
            ("dropped_unauthorized", Count(self.dropped_unauthorized)),
            ("dropped_invalid", Count(self.dropped_invalid)),
            ("dropped_internal", Count(self.dropped_internal)),
            ("dropped_at_shutdown", Count(self.dropped_at_shutdown)),
            ("spooled", Count(self.spooled)),
            ("recovered", Count(self.recovered)),
            ("spool_skipped", Count(self.spool_skipped)),
            ("retried", Count(self.retried)),
            ("rejected_by_server", Count(self.rejected_by_server)),
            ("failed_batches", Count(self.failed_batches)),
            ("bytes_queued", Count(self.bytes_queued)),
            ("batches_in_flight", Count(self.batches_in_flight)),
            ("rate_limited_until", Time(self.rate_limited_until)),
            ("last_error", Text(self.last_error.as_deref())),
            ("last_error_at", Time(self.last_error_at)),
            ("last_success_at", Time(self.last_success_at)),
        ]
    }
}

/// The live counters behind `Stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub enqueued: AtomicU64,
    pub sent: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_retries_exhausted: AtomicU64,
    pub dropped_unauthorized: AtomicU64,
    pub dropped_invalid: AtomicU64,
    pub retried: AtomicU64,
    pub rejected_by_server: AtomicU64,
    pub failed_batches: AtomicU64,
    pub dropped_internal: AtomicU64,
    pub dropped_at_shutdown: AtomicU64,
    pub spooled: AtomicU64,
    pub recovered: AtomicU64,
    pub spool_skipped: AtomicU64,
    /// Milliseconds since the Unix epoch; 0 means not rate limited.
    rate_limited_until_ms: AtomicU64,
    /// Milliseconds since the Unix epoch; 0 means never.
    last_success_at_ms: AtomicU64,
    last_error: Mutex<Option<(String, SystemTime)>>,
}

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
        .unwrap_or(0)
}

fn from_epoch_ms(ms: u64) -> Option<SystemTime> {
    (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_rate_limited_until(&self, until: Option<SystemTime>) {
        let ms = until.map(epoch_ms).unwrap_or(0);
        self.rate_limited_until_ms.store(ms, Ordering::Relaxed);
    }

    /// A delivery failure now (`last_error`, `last_error_at`).
    pub fn set_last_error(&self, message: impl Into<String>) {
        let mut slot = self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some((message.into(), SystemTime::now()));
    }

    /// The server accepted a request now (`last_success_at`).
    pub fn set_last_success(&self) {
        self.last_success_at_ms
            .store(epoch_ms(SystemTime::now()), Ordering::Relaxed);
    }

    /// Entries dropped for any reason so far (every `dropped_*` counter).
    pub fn dropped_total(&self) -> u64 {
        [
            &self.dropped_queue_full,
            &self.dropped_retries_exhausted,
            &self.dropped_unauthorized,
            &self.dropped_invalid,
            &self.dropped_internal,
            &self.dropped_at_shutdown,
        ]
        .iter()
        .map(|counter| counter.load(Ordering::Relaxed))
        .fold(0, u64::saturating_add)
    }

    pub fn snapshot(&self, bytes_queued: u64, batches_in_flight: u64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rate_limited_until = from_epoch_ms(get(&self.rate_limited_until_ms))
            .filter(|until| *until > SystemTime::now());
        let (last_error, last_error_at) = self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .unzip();
        Stats {
            enqueued: get(&self.enqueued),
            sent: get(&self.sent),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_retries_exhausted: get(&self.dropped_retries_exhausted),
            dropped_unauthorized: get(&self.dropped_unauthorized),
            dropped_invalid: get(&self.dropped_invalid),
            retried: get(&self.retried),
            rejected_by_server: get(&self.rejected_by_server),
            failed_batches: get(&self.failed_batches),
            bytes_queued,
            batches_in_flight,
            rate_limited_until,
            last_error,
            last_error_at,
            last_success_at: from_epoch_ms(get(&self.last_success_at_ms)),
            dropped_internal: get(&self.dropped_internal),
            dropped_at_shutdown: get(&self.dropped_at_shutdown),
            spooled: get(&self.spooled),
            recovered: get(&self.recovered),
            spool_skipped: get(&self.spool_skipped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_in_the_past_reads_as_none() {
        let counters = Counters::default();
        counters.set_rate_limited_until(Some(SystemTime::now() - Duration::from_secs(5)));
        assert_eq!(counters.snapshot(0, 0).rate_limited_until, None);
        counters.set_rate_limited_until(Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(counters.snapshot(0, 0).rate_limited_until.is_some());
        counters.set_rate_limited_until(None);
        assert_eq!(counters.snapshot(0, 0).rate_limited_until, None);
    }

    #[test]
    fn every_error_kind_that_loses_entries_names_a_stats_field() {
        let stats = Stats::default();
        let names: Vec<&str> = stats.fields().iter().map(|(name, _)| *name).collect();
        for kind in crate::reports::ErrorKind::ALL {
            if let Some(field) = kind.stats_field() {
                assert!(
                    names.contains(&field),
                    "{kind}: {field} is not a stats field"
                );
            }
        }
    }

    #[test]
    fn snapshot_reads_counters_and_last_error() {
        let counters = Counters::default();
        Counters::add(&counters.sent, 3);
        counters.set_last_error("boom");
        let stats = counters.snapshot(10, 1);
        assert_eq!(stats.sent, 3);
        assert_eq!(stats.bytes_queued, 10);
        assert_eq!(stats.batches_in_flight, 1);
        assert_eq!(stats.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn last_error_carries_its_time_and_stays_after_a_success() {
        let counters = Counters::default();
        assert_eq!(counters.snapshot(0, 0).last_error_at, None);
        assert_eq!(counters.snapshot(0, 0).last_success_at, None);
        let before = SystemTime::now() - Duration::from_millis(1);
        counters.set_last_error("connection refused");
        counters.set_last_success();
        let stats = counters.snapshot(0, 0);
        assert_eq!(stats.last_error.as_deref(), Some("connection refused"));
        for at in [stats.last_error_at, stats.last_success_at] {
            let at = at.unwrap();
            assert!(at >= before && at <= SystemTime::now(), "{at:?}");
        }
    }
}
