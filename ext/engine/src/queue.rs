//! `BatchQueue`: the bounded FIFO of encoded entries between callers and delivery.
//!
//! Owns the entries waiting to be sent, the byte bound and drop policy, the sequence
//! numbers that let `flush` know when everything enqueued before it has settled, and
//! the batch in flight. Its lock is held only for queue bookkeeping: it never performs
//! I/O or encoding, and never waits while holding the lock (except `Condvar` waits,
//! which release it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cancel::Cancel;
use crate::config::DropPolicy;
use crate::monitor::{Monitor, WaitEnd};

/// Bytes of `{"logs":[` and `]}` around a batch's entries.
pub(crate) const BATCH_ENVELOPE_BYTES: usize = r#"{"logs":[]}"#.len();

/// Result of waiting for entries to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Everything enqueued before the call was delivered or has failed (and was counted).
    Flushed,
    /// The timeout passed first.
    TimedOut,
    /// The `Cancel` token was tripped first.
    Cancelled,
}

/// Why `push` refused or accepted an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; `evicted` older entries were dropped to make room (drop policy oldest).
    Accepted { evicted: u64 },
    /// The queue is full and the policy drops the newest.
    Full,
    /// The entry alone does not fit in a batch (or in the queue) and can never be sent.
    TooLarge,
    /// The queue is closed (shutdown).
    Closed,
}

/// Entries taken out of the queue to be sent together.
#[derive(Debug)]
pub(crate) struct Batch {
    pub entries: Vec<Vec<u8>>,
}

/// What the delivery loop needs to decide whether to send now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readiness {
    pub len: usize,
    /// A full batch (by count or bytes) is waiting.
    pub full: bool,
    /// A flush waits for entries still queued.
    pub urgent: bool,
    pub stopping: bool,
}

struct Queued {
    seq: u64,
    json: Vec<u8>,
}

struct State {
    entries: VecDeque<Queued>,
    bytes: usize,
    /// Sequence number of the next entry; entries are numbered from 1.
    next_seq: u64,
    /// First sequence number and size of the batch being sent.
    in_flight: Option<(u64, usize)>,
    /// A flush wants everything through this sequence number sent now.
    urgent_through: u64,
    closed: bool,
    stopping: bool,
}

impl State {
    /// Every entry with a sequence number at or below this one has settled.
    fn settled_through(&self) -> u64 {
        let oldest_pending = match self.in_flight {
            Some((first, _)) => Some(first),
            None => self.entries.front().map(|q| q.seq),
        };
        match oldest_pending {
            Some(seq) => seq - 1,
            None => self.next_seq - 1,
        }
    }
}

/// The queue. Cheap to share by reference; all methods take `&self`.
pub(crate) struct BatchQueue {
    monitor: Arc<Monitor<State>>,
    /// Wakes the delivery loop: a batch became full, a flush was requested, or stop.
    work: Arc<Notify>,
    max_queue_bytes: usize,
    drop_policy: DropPolicy,
    batch_size: usize,
    max_batch_bytes: usize,
}

impl BatchQueue {
    pub fn new(
        max_queue_bytes: usize,
        drop_policy: DropPolicy,
        batch_size: usize,
        max_batch_bytes: usize,
    ) -> BatchQueue {
        BatchQueue {
            monitor: Arc::new(Monitor::new(State {
                entries: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                in_flight: None,
                urgent_through: 0,
                closed: false,
                stopping: false,
            })),
            work: Arc::new(Notify::new()),
            max_queue_bytes,
            drop_policy,
            batch_size,
            max_batch_bytes,
        }
    }

    /// The notification the delivery loop waits on.
    pub fn work(&self) -> &Notify {
        &self.work
    }

    /// Queues one encoded entry within the byte bound.
    pub fn push(&self, json: Vec<u8>) -> Pushed {
        let size = json.len();
        if size + BATCH_ENVELOPE_BYTES > self.max_batch_bytes || size > self.max_queue_bytes {
            return Pushed::TooLarge;
        }
        let mut state = self.monitor.lock();
        if state.closed {
            return Pushed::Closed;
        }
        let mut evicted = 0;
        if state.bytes + size > self.max_queue_bytes {
            match self.drop_policy {
                DropPolicy::Newest => return Pushed::Full,
                DropPolicy::Oldest => {
                    while state.bytes + size > self.max_queue_bytes {
                        match state.entries.pop_front() {
                            Some(old) => {
                                state.bytes -= old.json.len();
                                evicted += 1;
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.bytes += size;
        state.entries.push_back(Queued { seq, json });
        let became_full = state.entries.len() == self.batch_size
            || (state.bytes >= self.max_batch_bytes && state.bytes - size < self.max_batch_bytes);
        drop(state);
        if evicted > 0 {
            // Evicting the oldest entries may have settled what a flush waits for.
            self.monitor.notify_all();
        }
        if became_full {
            self.work.notify_one();
        }
        Pushed::Accepted { evicted }
    }

    pub fn readiness(&self) -> Readiness {
        let state = self.monitor.lock();
        let len = state.entries.len();
        Readiness {
            len,
            full: len >= self.batch_size || state.bytes >= self.max_batch_bytes,
            urgent: state
                .entries
                .front()
                .is_some_and(|q| q.seq <= state.urgent_through),
            stopping: state.stopping,
        }
    }

    /// Takes up to `batch_size` entries whose batch body fits `max_batch_bytes`, and
    /// marks them in flight until `finish_batch`. `None` when the queue is empty.
    pub fn take_batch(&self) -> Option<Batch> {
        let mut state = self.monitor.lock();
        let first_seq = state.entries.front()?.seq;
        let mut entries = Vec::new();
        let mut body_bytes = BATCH_ENVELOPE_BYTES;
        while entries.len() < self.batch_size {
            let Some(next) = state.entries.front() else {
                break;
            };
            let separator = usize::from(!entries.is_empty());
            if !entries.is_empty()
                && body_bytes + separator + next.json.len() > self.max_batch_bytes
            {
                break;
            }
            body_bytes += separator + next.json.len();
            if let Some(queued) = state.entries.pop_front() {
                state.bytes -= queued.json.len();
                entries.push(queued.json);
            }
        }
        state.in_flight = Some((first_seq, entries.len()));
        Some(Batch { entries })
    }

    /// The batch in flight has settled (delivered, rejected or dropped, or lost to a
    /// delivery panic). Count it first: this wakes flushes.
    pub fn finish_batch(&self) {
        self.monitor.lock().in_flight = None;
        self.monitor.notify_all();
    }

    /// Entries of the batch in flight (0 when none is).
    pub fn in_flight_len(&self) -> u64 {
        self.monitor.lock().in_flight.map_or(0, |(_, n)| n as u64)
    }

    /// Entries queued or in flight.
    pub fn pending_len(&self) -> u64 {
        let state = self.monitor.lock();
        (state.entries.len() + state.in_flight.map_or(0, |(_, n)| n)) as u64
    }

    /// Asks for everything queued now to be sent without waiting for the interval;
    /// returns the sequence number a flush must wait for.
    pub fn request_flush(&self) -> u64 {
        let mut state = self.monitor.lock();
        let target = state.next_seq - 1;
        let pending = state.settled_through() < target;
        state.urgent_through = state.urgent_through.max(target);
        drop(state);
        if pending {
            self.work.notify_one();
        }
        target
    }

    /// Blocks until everything through `target` has settled, `timeout` passes, or `cancel` trips.
    pub fn wait_settled(&self, target: u64, timeout: Duration, cancel: &Cancel) -> FlushOutcome {
        let settled = self.monitor.wait_for(timeout, cancel, |state| {
            (state.settled_through() >= target).then_some(())
        });
        match settled {
            Ok(()) => FlushOutcome::Flushed,
            Err(WaitEnd::Cancelled) => FlushOutcome::Cancelled,
            Err(WaitEnd::TimedOut) => FlushOutcome::TimedOut,
        }
    }

    /// Refuses further entries (shutdown has begun).
    pub fn close(&self) {
        self.monitor.lock().closed = true;
    }

    /// Tells the delivery loop to end.
    pub fn stop(&self) {
        let mut state = self.monitor.lock();
        state.closed = true;
        state.stopping = true;
        drop(state);
        self.work.notify_one();
    }

    /// Empties the queue and forgets the batch in flight (delivery has stopped);
    /// answers the queued entries, oldest first, and the size of the batch that was in
    /// flight. This wakes every flush.
    pub fn drain_undelivered(&self) -> (Vec<Vec<u8>>, u64) {
        let mut state = self.monitor.lock();
        let in_flight = state.in_flight.take().map_or(0, |(_, n)| n as u64);
        let entries = state.entries.drain(..).map(|q| q.json).collect();
        state.bytes = 0;
        drop(state);
        self.monitor.notify_all();
        (entries, in_flight)
    }

    /// Bytes queued and batches in flight, for `Stats`.
    pub fn gauges(&self) -> (u64, u64) {
        let state = self.monitor.lock();
        (state.bytes as u64, u64::from(state.in_flight.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: usize) -> Vec<u8> {
        vec![b'x'; size]
    }

    fn queue(max_queue_bytes: usize, policy: DropPolicy) -> BatchQueue {
        BatchQueue::new(max_queue_bytes, policy, 3, 1024)
    }

    #[test]
    fn newest_policy_refuses_what_does_not_fit() {
        let q = queue(250, DropPolicy::Newest);
        assert_eq!(q.push(entry(100)), Pushed::Accepted { evicted: 0 });
        assert_eq!(q.push(entry(100)), Pushed::Accepted { evicted: 0 });
        assert_eq!(q.push(entry(100)), Pushed::Full);
        assert_eq!(q.gauges().0, 200);
    }

    #[test]
    fn oldest_policy_evicts_from_the_front() {
        let q = queue(250, DropPolicy::Oldest);
        q.push(vec![b'1'; 100]);
        q.push(vec![b'2'; 100]);
        assert_eq!(q.push(vec![b'3'; 100]), Pushed::Accepted { evicted: 1 });
        let batch = q.take_batch().unwrap();
        assert_eq!(batch.entries[0][0], b'2');
        assert_eq!(batch.entries[1][0], b'3');
    }

    #[test]
    fn an_entry_larger_than_a_batch_is_too_large() {
        let q = queue(1 << 20, DropPolicy::Newest);
        assert_eq!(q.push(entry(1024)), Pushed::TooLarge);
    }

    #[test]
    fn batches_stop_at_the_byte_cap() {
        let q = queue(1 << 20, DropPolicy::Newest);
        for _ in 0..3 {
            q.push(entry(400));
        }
        // 11 bytes of envelope + 400 + 1 + 400 fits 1024; a third would not.
        assert_eq!(q.take_batch().unwrap().entries.len(), 2);
        q.finish_batch();
        assert_eq!(q.take_batch().unwrap().entries.len(), 1);
    }

    #[test]
    fn batches_stop_at_the_entry_count() {
        let q = queue(1 << 20, DropPolicy::Newest);
        for _ in 0..5 {
            q.push(entry(10));
        }
        assert_eq!(q.take_batch().unwrap().entries.len(), 3);
    }

    #[test]
    fn a_flush_waits_for_the_batch_in_flight() {
        let q = queue(1 << 20, DropPolicy::Newest);
        q.push(entry(10));
        let target = q.request_flush();
        let _batch = q.take_batch().unwrap();
        let cancel = Cancel::new();
        assert_eq!(
            q.wait_settled(target, Duration::from_millis(1), &cancel),
            FlushOutcome::TimedOut
        );
        q.finish_batch();
        assert_eq!(
            q.wait_settled(target, Duration::from_millis(1), &cancel),
            FlushOutcome::Flushed
        );
    }

    #[test]
    fn a_flush_of_an_empty_queue_returns_at_once() {
        let q = queue(1 << 20, DropPolicy::Newest);
        let target = q.request_flush();
        assert_eq!(
            q.wait_settled(target, Duration::ZERO, &Cancel::new()),
            FlushOutcome::Flushed
        );
    }

    #[test]
    fn evicted_entries_count_as_settled() {
        let q = queue(150, DropPolicy::Oldest);
        q.push(entry(100));
        let target = q.request_flush();
        q.push(entry(100));
        assert_eq!(
            q.wait_settled(target, Duration::ZERO, &Cancel::new()),
            FlushOutcome::Flushed
        );
    }

    #[test]
    fn a_closed_queue_refuses_entries() {
        let q = queue(1 << 20, DropPolicy::Newest);
        q.close();
        assert_eq!(q.push(entry(10)), Pushed::Closed);
    }

    #[test]
    fn draining_counts_queued_and_in_flight_entries() {
        let q = queue(1 << 20, DropPolicy::Newest);
        for _ in 0..5 {
            q.push(entry(10));
        }
        let _batch = q.take_batch();
        assert_eq!(q.pending_len(), 5);
        let (queued, in_flight) = q.drain_undelivered();
        assert_eq!((queued.len(), in_flight), (2, 3));
        assert_eq!(q.pending_len(), 0);
        assert_eq!(q.gauges(), (0, 0));
    }

    #[test]
    fn the_loop_is_woken_when_a_batch_fills() {
        let q = queue(1 << 20, DropPolicy::Newest);
        for _ in 0..3 {
            q.push(entry(10));
        }
        assert!(q.readiness().full);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A permit was stored by the third push, so this returns at once.
        runtime.block_on(q.work().notified());
    }
}
