//! `Engine`: the public handle that starts the delivery threads and forwards callers'
//! requests (enqueue, flush, send_now, shutdown, stats, error reports) to them.
//!
//! Owns the tokio runtime (one worker thread, named `log-ingestion`), the process id
//! it was started in, and the shutdown sequence (spooling what is left, handing back
//! spool files it was recovering). It never blocks `enqueue` on I/O and
//! never touches Ruby. After `fork` the child must `std::mem::forget` the parent's
//! engine (its threads do not exist in the child) and start a new one.//!
//! One job a module: this one starts the engine and takes entries; `send_now` sends one
//! entry past the queue and waits for its answer; `shutdown` is the exit sequence.

mod send_now;
mod shutdown;

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

pub use send_now::{DeliveryError, SendOutcome};
pub use shutdown::ShutdownReport;

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
