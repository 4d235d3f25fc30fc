//! `Engine`: the public handle that starts the delivery threads and forwards callers'
//! requests (enqueue, flush, send_now, shutdown, stats, error reports) to them.
//!
//! Owns the tokio runtime (one worker thread, named `log-ingestion`), the process id
//! it was started in, and the shutdown sequence (spooling what is left, handing back
//! spool files it was recovering). It never blocks `enqueue` on I/O and
//! never touches Ruby. After `fork` the child must `std::mem::forget` the parent's
//! engine (its threads do not exist in the child) and start a new one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::cancel::Cancel;
use crate::config::{ConfigError, EngineConfig};
use crate::delivery::{self, Answer, EngineState, Failure, LeftAtExit, LeftBatch, Retries};
use crate::entry::{EncodedEntry, Entry};
use crate::pause::SendPause;
use crate::queue::{BatchQueue, FlushOutcome, Pushed, BATCH_ENVELOPE_BYTES};
use crate::recovery;
use crate::reports::{ErrorKind, ErrorReport, ErrorReports};
use crate::retry::RetryPolicy;
use crate::spool::{self, Claims};
use crate::stats::{Counters, Stats};
use crate::transport::{PreparedRequest, Transport, TransportError};

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("could not start the delivery threads: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Why `enqueue` dropped an entry (each reason is counted in `Stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `max_queue_bytes` reached and the policy is `newest` (`dropped_queue_full`).
    QueueFull,
    /// The entry alone exceeds `max_batch_bytes` or `max_queue_bytes` (`dropped_invalid`).
    TooLarge,
    /// The engine is shut down (`dropped_at_shutdown`).
    Stopped,
    /// The entry could not be encoded as JSON (`dropped_invalid`).
    Unencodable,
}

/// What `enqueue` did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Accepted,
    Dropped(DropReason),
}

impl Enqueued {
    pub fn is_accepted(self) -> bool {
        self == Enqueued::Accepted
    }
}

/// A successful `send_now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// The 2xx status the server answered.
    pub status: u16,
    /// Attempts made (1 when the first one succeeded).
    pub attempts: u32,
}

/// Why `send_now` did not deliver its entry. Each variant is one `ErrorKind` (`kind`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The entry could not be encoded (`status` None), or the server refused it (a 4xx
    /// other than 401/403/408/429, or a 3xx).
    #[error("the entry is invalid: {message}")]
    Invalid {
        status: Option<u16>,
        message: String,
    },
    #[error("the engine is shut down")]
    Shutdown,
    #[error("the send did not finish within its timeout")]
    TimedOut,
    #[error("the send was cancelled")]
    Cancelled,
    #[error("gave up after {attempts} attempts: {message}")]
    RetriesExhausted { attempts: u32, message: String },
    #[error("the server refused the API key: {message}")]
    Unauthorized { status: u16, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl DeliveryError {
    /// The failure's name in the one vocabulary (what `on_error` receives as `kind`).
    pub const fn kind(&self) -> ErrorKind {
        match self {
            DeliveryError::Invalid { .. } => ErrorKind::Invalid,
            DeliveryError::Shutdown => ErrorKind::Shutdown,
            DeliveryError::TimedOut => ErrorKind::TimedOut,
            DeliveryError::Cancelled => ErrorKind::Cancelled,
            DeliveryError::RetriesExhausted { .. } => ErrorKind::RetriesExhausted,
            DeliveryError::Unauthorized { .. } => ErrorKind::Unauthorized,
            DeliveryError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn from_failure(failure: Failure) -> DeliveryError {
        match failure.kind {
            ErrorKind::Unauthorized => DeliveryError::Unauthorized {
                status: failure.status.unwrap_or(0),
                message: failure.message,
            },
            ErrorKind::Invalid => DeliveryError::Invalid {
                status: failure.status,
                message: failure.message,
            },
            ErrorKind::RetriesExhausted => DeliveryError::RetriesExhausted {
                attempts: failure.attempts,
                message: failure.message,
            },
            ErrorKind::Shutdown => DeliveryError::Shutdown,
            _ => DeliveryError::Internal(failure.message),
        }
    }
}

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

/// The delivery engine. `Send + Sync`; every method takes `&self`.
pub struct Engine {
    shared: Arc<EngineState>,
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
    stopped: AtomicBool,
    pid: u32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("api_url", &self.shared.config.api_url)
            .field("pid", &self.pid)
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish()
    }
}

impl Engine {
    /// Starts the delivery thread and returns the handle. `config`'s values are trusted
    /// (see [`EngineConfig`]); only a URL the engine cannot send to is refused here.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        config.check_api_url()?;
        let transport = Transport::new(&config)?;
        // Without batching every entry is its own request: batches of one.
        let batch_size = if config.enable_batching {
            config.batch_size
        } else {
            1
        };
        let queue = BatchQueue::new(
            config.max_queue_bytes,
            config.drop_policy,
            batch_size,
            config.max_batch_bytes,
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("log-ingestion")
            .enable_all()
            .build()?;
        let shared = Arc::new(EngineState {
            policy: RetryPolicy::from_config(&config),
            pause: SendPause::default(),
            config,
            queue,
            counters: Counters::default(),
            reports: ErrorReports::default(),
            transport,
            unauthorized_reported: AtomicBool::new(false),
            outage: Default::default(),
            unreported_queue_full: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            shutdown_begun: tokio::sync::Notify::new(),
            in_flight: Mutex::new(None),
            left_at_exit: Mutex::new(LeftAtExit::default()),
            claims: Claims::default(),
        });
        let handle = runtime.handle().clone();
        handle.spawn(delivery::supervise(Arc::clone(&shared)));
        if shared.config.spool_dir.is_some() {
            handle.spawn(recovery::recover(Arc::clone(&shared)));
        }
        Ok(Engine {
            shared,
            handle,
            runtime: Mutex::new(Some(runtime)),
            stopped: AtomicBool::new(false),
            pid: std::process::id(),
        })
    }

    /// Queues `entry` for delivery. Encodes it on the calling thread, then takes the
    /// queue's lock only for bookkeeping: it never waits on the network.
    pub fn enqueue(&self, entry: Entry) -> Enqueued {
        match entry.encode() {
            Ok(json) => self.enqueue_encoded(EncodedEntry::from_encoded(json)),
            Err(_) => {
                Counters::add(&self.shared.counters.dropped_invalid, 1);
                Enqueued::Dropped(DropReason::Unencodable)
            }
        }
    }

    /// Queues an entry already encoded on the calling thread (`EntryWriter`: the gem's
    /// log calls write their entry's JSON in one buffer, with no `Entry` in between).
    /// Same bounds, drops and counters as `enqueue`.
    pub fn enqueue_encoded(&self, entry: EncodedEntry) -> Enqueued {
        let counters = &self.shared.counters;
        match self.shared.queue.push(entry.into_bytes()) {
            Pushed::Accepted { evicted } => {
                Counters::add(&counters.enqueued, 1);
                if evicted > 0 {
                    Counters::add(&counters.dropped_queue_full, evicted);
                    Counters::add(&self.shared.unreported_queue_full, evicted);
                }
                Enqueued::Accepted
            }
            Pushed::Full => {
                Counters::add(&counters.dropped_queue_full, 1);
                Counters::add(&self.shared.unreported_queue_full, 1);
                Enqueued::Dropped(DropReason::QueueFull)
            }
            Pushed::TooLarge => {
                Counters::add(&counters.dropped_invalid, 1);
                Enqueued::Dropped(DropReason::TooLarge)
            }
            Pushed::Closed => {
                Counters::add(&counters.dropped_at_shutdown, 1);
                Enqueued::Dropped(DropReason::Stopped)
            }
        }
    }

    /// Blocks until every entry enqueued before the call is delivered or has failed,
    /// `timeout` passes, or `cancel` is tripped from another thread. Queued entries
    /// are sent at once rather than at the next interval.
    pub fn flush(&self, timeout: Duration, cancel: &Cancel) -> FlushOutcome {
        let target = self.shared.queue.request_flush();
        self.shared.queue.wait_settled(target, timeout, cancel)
    }

    /// Sends one entry to `POST /api/v1/logs` now, bypassing the queue, with the retry
    /// policy; blocks the calling thread until it is answered, `timeout` passes or
    /// `cancel` trips. While a 429 pause is in force (`Stats::rate_limited_until`) it
    /// waits for the pause to end before sending, within that same timeout. Counts
    /// `sent` and `retried`; a failure is returned, not reported.
    pub fn send_now(
        &self,
        entry: Entry,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<SendOutcome, DeliveryError> {
        self.send_single(entry, timeout, cancel, Retries::ByPolicy)
    }

    /// `send_now` with one attempt and no retry: a refused connection answers at once, an
    /// unreachable host within `open_timeout`, a silent server within `read_timeout`
    /// (a reachability check such as `rails logs:test`). A retryable failure is
    /// `DeliveryError::RetriesExhausted` with one attempt.
    pub fn send_once(
        &self,
        entry: Entry,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<SendOutcome, DeliveryError> {
        self.send_single(entry, timeout, cancel, Retries::Never)
    }

    fn send_single(
        &self,
        entry: Entry,
        timeout: Duration,
        cancel: &Cancel,
        retries: Retries,
    ) -> Result<SendOutcome, DeliveryError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(DeliveryError::Shutdown);
        }
        let json = entry.encode().map_err(|e| DeliveryError::Invalid {
            status: None,
            message: e.to_string(),
        })?;
        let request = PreparedRequest::single(&json, self.shared.config.gzip)
            .map_err(|e| DeliveryError::Internal(e.to_string()))?;
        let (message, work) = self.run_send_now(request, retries, timeout, cancel);
        if matches!(
            message,
            SendNowMessage::Cancelled | SendNowMessage::TimedOut
        ) {
            work.abort();
        }
        self.settle_send_now(message)
    }

    /// Runs one `send_with_retries` on the engine's runtime and waits for what ends
    /// the wait first: its answer, the task ending without one, `cancel`, or `timeout`.
    fn run_send_now(
        &self,
        request: PreparedRequest,
        retries: Retries,
        timeout: Duration,
        cancel: &Cancel,
    ) -> (SendNowMessage, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel::<SendNowMessage>();
        let shared = Arc::clone(&self.shared);
        let reply = SendNowReply(Some(sender.clone()));
        let work = self.handle.spawn(async move {
            let result = delivery::send_with_retries(&shared, &request, retries).await;
            reply.answer(result);
        });
        let _hook = cancel.on_cancel(move || {
            let _ = sender.send(SendNowMessage::Cancelled);
        });
        if cancel.is_cancelled() {
            return (SendNowMessage::Cancelled, work);
        }
        let message = receiver
            .recv_timeout(timeout)
            .unwrap_or(SendNowMessage::TimedOut);
        (message, work)
    }

    /// Counts a `send_now` and turns what ended its wait into its result.
    fn settle_send_now(&self, message: SendNowMessage) -> Result<SendOutcome, DeliveryError> {
        match message {
            SendNowMessage::Answered(Ok(answer)) => {
                Counters::add(&self.shared.counters.sent, 1);
                Ok(SendOutcome {
                    status: answer.status,
                    attempts: answer.attempts,
                })
            }
            SendNowMessage::Answered(Err(failure)) => {
                // `stats().last_error` tells the truth about a failed send_now too
                // (`rails logs:test` prints it).
                self.shared.counters.set_last_error(failure.message.clone());
                Err(DeliveryError::from_failure(failure))
            }
            SendNowMessage::Ended if self.shutting_down() => Err(DeliveryError::Shutdown),
            SendNowMessage::Ended => Err(DeliveryError::Internal(
                "send_now's task ended without an answer (it panicked)".to_owned(),
            )),
            SendNowMessage::Cancelled => Err(DeliveryError::Cancelled),
            SendNowMessage::TimedOut => Err(DeliveryError::TimedOut),
        }
    }

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
    fn shutting_down(&self) -> bool {
        self.runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let (bytes_queued, batches_in_flight) = self.shared.queue.gauges();
        self.shared
            .counters
            .snapshot(bytes_queued, batches_in_flight)
    }

    /// The oldest failure waiting for `on_error`, waiting up to `timeout`; `None` on
    /// timeout, on cancel, or once the engine is shut down and no report is left.
    pub fn next_error(&self, timeout: Duration, cancel: &Cancel) -> Option<ErrorReport> {
        self.shared.reports.next(timeout, cancel)
    }

    /// The id of the process that started this engine.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Engine {
    /// Stops the threads without waiting for delivery (call `shutdown` first to deliver).
    /// Never blocks. Do not drop a parent's engine in a fork child: `std::mem::forget` it.
    fn drop(&mut self) {
        let runtime = self
            .runtime
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(runtime) = runtime {
            self.shared.queue.stop();
            runtime.shutdown_background();
            self.shared.claims.release_all();
            self.shared.reports.close();
        }
    }
}

/// What ends a `send_now` wait.
enum SendNowMessage {
    Answered(Result<Answer, Failure>),
    /// The send task was dropped unfinished: it panicked, or shutdown stopped the runtime.
    Ended,
    Cancelled,
    TimedOut,
}

/// Carries a `send_now` task's result to the waiting caller. If the task ends without
/// answering (a panic, or the runtime dropping it at shutdown) it says so as it is
/// dropped, so the caller never waits out its timeout for nothing.
struct SendNowReply(Option<mpsc::Sender<SendNowMessage>>);

impl SendNowReply {
    fn answer(mut self, result: Result<Answer, Failure>) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(SendNowMessage::Answered(result));
        }
    }
}

impl Drop for SendNowReply {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(SendNowMessage::Ended);
        }
    }
}

/// Stops the runtime, waiting briefly for its threads unless we are inside an async
/// context (where blocking is not allowed).
fn stop_runtime(runtime: Runtime) {
    if Handle::try_current().is_ok() {
        runtime.shutdown_background();
    } else {
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::PANIC_ON_NEXT_BATCH;
    use log_ingestion_wire::Level;

    fn unreachable_config() -> EngineConfig {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        EngineConfig {
            api_url: format!("http://127.0.0.1:{port}"),
            api_key: "key".into(),
            batch_size: 512,
            batch_interval: Duration::from_secs(600),
            max_batch_bytes: 1024 * 1024,
            max_retries: 0,
            // A refused connection is retried until this: keep it short.
            max_retry_elapsed: Duration::from_millis(200),
            retry_delay: Duration::from_millis(1),
            max_retry_delay: Duration::from_millis(5),
            max_queue_bytes: 16 * 1024 * 1024,
            drop_policy: crate::DropPolicy::Newest,
            gzip: false,
            open_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            enable_batching: true,
            user_agent: "log_ingestion_engine-tests".into(),
            spool_dir: None,
            max_spool_bytes: 0,
        }
    }

    fn entry() -> Entry {
        Entry::now("svc", Level::Info, "m", serde_json::Map::new())
    }

    #[test]
    fn the_engine_and_its_cancel_token_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Engine>();
        shareable::<Cancel>();
    }

    #[test]
    fn a_panic_in_delivery_is_counted_reported_and_delivery_goes_on() {
        let engine = Engine::start(unreachable_config()).unwrap();
        PANIC_ON_NEXT_BATCH.store(true, Ordering::SeqCst);
        engine.enqueue(entry());
        engine.enqueue(entry());
        let long = Duration::from_secs(10);
        assert_eq!(engine.flush(long, &Cancel::new()), FlushOutcome::Flushed);
        let stats = engine.stats();
        assert_eq!((stats.dropped_internal, stats.failed_batches), (2, 1));
        let report = engine.next_error(long, &Cancel::new()).unwrap();
        assert_eq!(report.kind, ErrorKind::Internal);
        assert!(report.message.contains("injected delivery panic"));

        // The loop was restarted: the next batch is attempted (and given up on, port closed).
        engine.enqueue(entry());
        assert_eq!(engine.flush(long, &Cancel::new()), FlushOutcome::Flushed);
        assert_eq!(engine.stats().dropped_retries_exhausted, 1);
    }
}
