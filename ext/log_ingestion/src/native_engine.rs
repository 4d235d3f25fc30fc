//! `NativeEngine`: the Ruby class `LogIngestion::Native::Engine`.
//!
//! Owns one `log_ingestion_engine::Engine` and forwards to it. On the caller's thread
//! it only converts Ruby values to owned Rust data (`MetadataConverter`) and
//! enqueues; the blocking calls (flush, send_log, shutdown, next_error) wait without
//! the GVL and are cancelled by Ruby's unblock function. It never keeps a Ruby object
//! after a call returns. An engine that reaches a forked child (where its threads do
//! not exist) refuses every call with `LogIngestion::Error` and is leaked, never dropped.

use std::mem::ManuallyDrop;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log_ingestion_engine::{DeliveryError, Engine, Entry, FlushOutcome};
use log_ingestion_wire::Level;
use magnus::{prelude::*, Error, RHash, RString, Ruby, Value};

use crate::boundary::{argument_error, gem_error, guard};
use crate::config;
use crate::metadata::{self, MetadataConverter};
use crate::nogvl::blocking;

#[magnus::wrap(class = "LogIngestion::Native::Engine", size)]
pub struct NativeEngine {
    engine: ManuallyDrop<Engine>,
    service: String,
    pid: u32,
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.engine) };
        }
        // In a forked child the engine's threads and locks belong to the parent:
        // dropping it could join threads that do not exist or take a lock held
        // forever. It is leaked on purpose.
    }
}

impl NativeEngine {
    /// `Engine.new(settings_hash)`: validates the settings and starts the engine's threads.
    pub fn new(ruby: &Ruby, settings: RHash) -> Result<NativeEngine, Error> {
        guard(|| {
            let settings = config::settings(ruby, settings)?;
            let engine = Engine::start(settings.engine)
                .map_err(|e| gem_error(format!("log_ingestion: cannot start the engine: {e}")))?;
            Ok(NativeEngine {
                engine: ManuallyDrop::new(engine),
                service: settings.service,
                pid: std::process::id(),
            })
        })
    }

    /// `#enqueue(level, message, metadata)`: true when queued, false when dropped.
    pub fn enqueue(
        ruby: &Ruby,
        rb_self: &Self,
        level: RString,
        message: RString,
        metadata: Value,
    ) -> Result<bool, Error> {
        guard(|| {
            let timestamp = log_ingestion_engine::timestamp_now();
            let engine = rb_self.engine()?;
            let level = parse_level(ruby, level)?;
            let message = metadata::message(ruby, message);
            let metadata = MetadataConverter::new(ruby).metadata(metadata);
            let entry = Entry {
                timestamp,
                service: rb_self.service.clone(),
                level,
                message,
                metadata,
            };
            Ok(engine.enqueue(entry).is_accepted())
        })
    }

    /// `#flush(timeout_seconds)`: true when everything enqueued before it was handled.
    pub fn flush(rb_self: &Self, timeout: f64) -> Result<bool, Error> {
        guard(|| {
            let engine = rb_self.engine()?;
            let outcome = blocking(
                seconds(timeout),
                |remaining, cancel| engine.flush(remaining, cancel),
                |outcome| *outcome == FlushOutcome::Cancelled,
            )?;
            Ok(outcome == FlushOutcome::Flushed)
        })
    }

    /// `#send_log(entry_hash, timeout_seconds)`: `{"status", "attempts"}` when the server
    /// took the entry, `{"error", "kind"}` when it was not delivered (never raises for that).
    pub fn send_log(
        ruby: &Ruby,
        rb_self: &Self,
        entry: RHash,
        timeout: f64,
    ) -> Result<RHash, Error> {
        guard(|| {
            let entry = rb_self.entry_from_hash(ruby, entry)?;
            let engine = rb_self.engine()?;
            let sent = blocking(
                seconds(timeout),
                |remaining, cancel| engine.send_now(entry.clone(), remaining, cancel),
                |sent| matches!(sent, Err(DeliveryError::Cancelled)),
            )?;
            let answer = ruby.hash_new();
            match sent {
                Ok(outcome) => {
                    answer.aset("accepted", 1)?;
                    answer.aset("status", outcome.status)?;
                    answer.aset("attempts", outcome.attempts)?;
                }
                Err(error) => {
                    answer.aset("error", error.to_string())?;
                    answer.aset("kind", delivery_error_kind(&error))?;
                }
            }
            Ok(answer)
        })
    }

    /// `#shutdown(timeout_seconds)`: `{"delivered" => n, "undelivered" => n}`.
    pub fn shutdown(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<RHash, Error> {
        guard(|| {
            let engine = rb_self.engine()?;
            // Shutdown is bounded by its own timeout and not cancellable: it runs once.
            let report = blocking(
                seconds(timeout),
                |remaining, _| engine.shutdown(remaining),
                |_| false,
            )?;
            let answer = ruby.hash_new();
            answer.aset("delivered", report.delivered)?;
            answer.aset("undelivered", report.undelivered)?;
            Ok(answer)
        })
    }

    /// `#stats`: the engine's counters (String keys; rate_limited_until in epoch seconds).
    pub fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        guard(|| {
            let stats = rb_self.engine()?.stats();
            let hash = ruby.hash_new();
            hash.aset("enqueued", stats.enqueued)?;
            hash.aset("sent", stats.sent)?;
            hash.aset("dropped_queue_full", stats.dropped_queue_full)?;
            hash.aset("dropped_retries_exhausted", stats.dropped_retries_exhausted)?;
            hash.aset("dropped_unauthorized", stats.dropped_unauthorized)?;
            hash.aset("dropped_invalid", stats.dropped_invalid)?;
            hash.aset("dropped_internal", stats.dropped_internal)?;
            hash.aset("dropped_at_shutdown", stats.dropped_at_shutdown)?;
            hash.aset("retried", stats.retried)?;
            hash.aset("rejected_by_server", stats.rejected_by_server)?;
            hash.aset("failed_batches", stats.failed_batches)?;
            hash.aset("bytes_queued", stats.bytes_queued)?;
            hash.aset("batches_in_flight", stats.batches_in_flight)?;
            hash.aset(
                "rate_limited_until",
                stats.rate_limited_until.map(epoch_seconds),
            )?;
            hash.aset("last_error", stats.last_error)?;
            Ok(hash)
        })
    }

    /// `#next_error(timeout_seconds)`: the next delivery failure as
    /// `{"kind", "message", "entries_lost"}`, or nil when none came in time.
    pub fn next_error(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<Option<RHash>, Error> {
        guard(|| {
            let engine = rb_self.engine()?;
            // A `None` cannot tell "cancelled" from "nothing came": a wait cut short
            // by an interrupt that did not raise just ends early.
            let report = blocking(
                seconds(timeout),
                |remaining, cancel| engine.next_error(remaining, cancel),
                |_| false,
            )?;
            match report {
                None => Ok(None),
                Some(report) => {
                    let hash = ruby.hash_new();
                    hash.aset("kind", report.kind.as_str())?;
                    hash.aset("message", report.message)?;
                    hash.aset("entries_lost", report.entries_lost)?;
                    Ok(Some(hash))
                }
            }
        })
    }

    /// `#pid`: the process that started this engine.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The engine, when this is the process that started it. In a forked child its
    /// threads do not exist and a lock may be held forever by one of them, so every
    /// call there raises instead of touching it.
    fn engine(&self) -> Result<&Engine, Error> {
        let current = std::process::id();
        if current == self.pid {
            Ok(&self.engine)
        } else {
            Err(gem_error(format!(
                "log_ingestion: this engine belongs to process {}, not to this forked child ({current}); \
                 start a new one (LogIngestionClient does so by itself)",
                self.pid
            )))
        }
    }

    fn entry_from_hash(&self, ruby: &Ruby, hash: RHash) -> Result<Entry, Error> {
        let field = |name: &str| -> Option<Value> {
            let by_symbol: Option<Value> = hash.get(ruby.to_symbol(name));
            by_symbol
                .or_else(|| hash.get(name))
                .filter(|value| !value.is_nil())
        };
        let text = |name: &str| -> Result<Option<RString>, Error> {
            match field(name) {
                None => Ok(None),
                Some(value) => value.funcall::<_, _, RString>("to_s", ()).map(Some),
            }
        };
        let level = match text("level")? {
            Some(level) => parse_level(ruby, level)?,
            None => Level::Info,
        };
        let timestamp = match text("timestamp")? {
            Some(timestamp) => metadata::utf8(ruby, timestamp),
            None => log_ingestion_engine::timestamp_now(),
        };
        let service = match text("service")? {
            Some(service) => metadata::utf8(ruby, service),
            None => self.service.clone(),
        };
        let message = match text("message")? {
            Some(message) => metadata::message(ruby, message),
            None => String::new(),
        };
        let metadata = MetadataConverter::new(ruby)
            .metadata(field("metadata").unwrap_or_else(|| ruby.qnil().as_value()));
        Ok(Entry {
            timestamp,
            service,
            level,
            message,
            metadata,
        })
    }
}

fn delivery_error_kind(error: &DeliveryError) -> &'static str {
    match error {
        DeliveryError::Encode(_) => "invalid",
        DeliveryError::Stopped => "stopped",
        DeliveryError::TimedOut => "timed_out",
        DeliveryError::Cancelled => "cancelled",
        DeliveryError::RetriesExhausted { .. } => "retries_exhausted",
        DeliveryError::Unauthorized { .. } => "unauthorized",
        DeliveryError::Rejected { .. } => "invalid",
        DeliveryError::Internal(_) => "internal",
    }
}

fn parse_level(ruby: &Ruby, level: RString) -> Result<Level, Error> {
    metadata::utf8(ruby, level)
        .parse::<Level>()
        .map_err(|e| argument_error(ruby, format!("log_ingestion: {e}")))
}

/// Seconds from Ruby to a Duration: negative or NaN -> zero, huge -> a day.
fn seconds(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds.min(86_400.0)).unwrap_or(Duration::ZERO)
}

fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `LogIngestion::Native.encode_metadata(value)`: the JSON the binding would send as
/// the metadata of a log call with `value` (for diagnostics and the conversion specs).
pub fn encode_metadata(ruby: &Ruby, value: Value) -> Result<String, Error> {
    guard(|| {
        let map = MetadataConverter::new(ruby).metadata(value);
        serde_json::to_string(&map).map_err(|e| gem_error(format!("log_ingestion: {e}")))
    })
}

/// `LogIngestion::Native.encode_message(string)`: the message the binding would send.
pub fn encode_message(ruby: &Ruby, message: RString) -> Result<String, Error> {
    guard(|| Ok(metadata::message(ruby, message)))
}

/// `LogIngestion::Native.panic_for_testing(message)`: panics, so the specs can prove
/// a Rust panic reaches Ruby as `LogIngestion::Error` and the process lives on.
pub fn panic_for_testing(message: String) -> Result<(), Error> {
    guard(|| panic!("{message}"))
}
