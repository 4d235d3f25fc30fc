//! The exit sequence: deliver what is queued within the timeout, spool what is left for
//! the next process, hand back the spool files being recovered, stop the runtime.

use super::*;

/// What `shutdown` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Entries the server accepted while shutdown waited.
    pub delivered: u64,
    /// Entries lost: still queued or in flight when the timeout passed, or refused by
    /// a service that was down, and not spooled (counted in `dropped_at_shutdown`).
    pub undelivered: u64,
    /// Entries written to the spool for the next process (`spooled`).
    pub spooled: u64,
}

impl Engine {
    /// Refuses new entries, delivers what is queued within `timeout`, then stops the
    /// delivery threads. What the service did not take -- batches it refused while
    /// shutting down, the batch still retrying and the entries still queued when the
    /// timeout passed -- is written to the spool when `spool_dir` is set (`spooled`),
    /// else lost (`dropped_at_shutdown`); one report says which and why. Spool files
    /// being recovered are handed back for the next process. A second call returns an
    /// empty report.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(runtime) = runtime else {
            return ShutdownReport::default();
        };
        let sent_before = self.shared.counters.sent.load(Ordering::SeqCst);
        self.shared.begin_shutdown();
        self.shared.queue.close();
        let target = self.shared.queue.request_flush();
        let outcome = self
            .shared
            .queue
            .wait_settled(target, timeout, &Cancel::new());
        self.stopped.store(true, Ordering::SeqCst);
        self.shared.queue.stop();
        stop_runtime(runtime);
        self.shared.report_queue_drops();
        self.shared.claims.release_all();
        if outcome != FlushOutcome::Flushed {
            tracing::debug!(?outcome, ?timeout, "shutdown did not deliver everything");
        }
        let (spooled, undelivered) = self.spool_what_is_left(timeout);
        self.shared.reports.close();
        let sent_after = self.shared.counters.sent.load(Ordering::SeqCst);
        ShutdownReport {
            delivered: sent_after - sent_before,
            undelivered,
            spooled,
        }
    }

    /// After the delivery threads stopped: spools (or counts as lost) every entry not
    /// delivered, with one report; answers (spooled, lost).
    fn spool_what_is_left(&self, timeout: Duration) -> (u64, u64) {
        let shared = &self.shared;
        let left = std::mem::take(&mut *shared.left_at_exit());
        let in_flight = shared.in_flight().take();
        let (queued, in_flight_len) = shared.queue.drain_undelivered();
        let mut batches = Vec::new();
        let mut lost = 0;
        for batch in left.batches {
            match batch {
                LeftBatch::Sent(prepared) => batches.push(prepared),
                LeftBatch::Unsent(entries) => batches.extend(self.prepare(&entries, &mut lost)),
            }
        }
        match in_flight {
            Some(prepared) => batches.push(prepared),
            // Taken out of the queue but stopped before it was sent: gone with the task.
            None => lost += in_flight_len,
        }
        batches.extend(self.prepare(&queued, &mut lost));
        let total = batches.iter().map(|b| b.entries as u64).sum::<u64>() + lost;
        if total == 0 {
            return (0, 0);
        }
        let why = match left.refused {
            Some(refused) => format!("the service was unreachable at exit ({refused})"),
            None => format!(
                "the service did not take everything within shutdown_timeout ({:.1}s)",
                timeout.as_secs_f64()
            ),
        };
        let config = &shared.config;
        let (spooled, message) = match &config.spool_dir {
            None => (0, format!("{why}; no spool_dir is set")),
            Some(dir) => {
                let written = spool::write(dir, config.max_spool_bytes, &batches);
                let message = match (&written.path, &written.error) {
                    (_, Some(error)) => format!("{why}; {error}"),
                    (Some(path), None) if written.over_bound_entries == 0 => format!(
                        "{why}: {} entries spooled to {} for the next process to deliver",
                        written.spooled_entries,
                        path.display()
                    ),
                    (Some(path), None) => format!(
                        "{why}: {} entries spooled to {}; the rest did not fit max_spool_bytes ({} bytes)",
                        written.spooled_entries,
                        path.display(),
                        config.max_spool_bytes
                    ),
                    (None, None) => format!(
                        "{why}; the spool in {} is full (max_spool_bytes {} bytes)",
                        dir.display(),
                        config.max_spool_bytes
                    ),
                };
                (written.spooled_entries, message)
            }
        };
        let lost = total - spooled;
        Counters::add(&shared.counters.spooled, spooled);
        Counters::add(&shared.counters.dropped_at_shutdown, lost);
        shared.report(ErrorKind::Shutdown, message, lost);
        (spooled, lost)
    }

    /// Never-sent entries as requests the way delivery would have sent them (batches
    /// within `batch_size` and `max_batch_bytes`, or one by one), each with a new key.
    /// Entries whose request cannot be built are added to `lost`.
    fn prepare(&self, entries: &[Vec<u8>], lost: &mut u64) -> Vec<PreparedRequest> {
        let config = &self.shared.config;
        let mut requests = Vec::new();
        let mut push = |request: std::io::Result<PreparedRequest>, count: usize| match request {
            Ok(request) => requests.push(request),
            Err(_) => *lost += count as u64,
        };
        if !config.enable_batching {
            for entry in entries {
                push(PreparedRequest::single(entry, config.gzip), 1);
            }
            return requests;
        }
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = BATCH_ENVELOPE_BYTES;
            while end < entries.len() && end - start < config.batch_size {
                let add = entries[end].len() + usize::from(end > start);
                if end > start && bytes + add > config.max_batch_bytes {
                    break;
                }
                bytes += add;
                end += 1;
            }
            push(
                PreparedRequest::batch(&entries[start..end], config.gzip),
                end - start,
            );
            start = end;
        }
        requests
    }

    /// Whether `shutdown` has begun (it takes the runtime first).
    pub(super) fn shutting_down(&self) -> bool {
        self.runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none()
    }
}

/// Stops the runtime, waiting briefly for its threads unless we are inside an async
/// context (where blocking is not allowed).
pub(super) fn stop_runtime(runtime: Runtime) {
    if Handle::try_current().is_ok() {
        runtime.shutdown_background();
    } else {
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}
