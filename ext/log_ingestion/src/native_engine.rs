//! `NativeEngine`: the Ruby class `LogIngestion::Native::Engine`.
//!
//! Owns one `log_ingestion_engine::Engine` and forwards to it. On the caller's thread
//! it only converts Ruby values to owned Rust data (`entry`) and enqueues; the blocking calls (flush, send_log, shutdown, next_error) wait without
//! the GVL and are cancelled by Ruby's unblock function. It never keeps a Ruby object
//! after a call returns. An engine that reaches a forked child (where its threads do
//! not exist) refuses every call with `LogIngestion::Error` (`enqueue` answers nil
//! instead: the net under Ruby's `Process._fork` hook) and is leaked, never dropped.

use std::mem::ManuallyDrop;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log_ingestion_engine::{
    DeliveryError, Engine, EngineError, Entry, FlushOutcome, StatValue, Stats,
};
use magnus::{Error, IntoValue, RHash, RString, Ruby, Value};

use crate::boundary::{configuration_error, gem_error, guard};
use crate::config;
use crate::entry;
use crate::nogvl::blocking;
use crate::process_id;

#[magnus::wrap(class = "LogIngestion::Native::Engine", size)]
pub struct NativeEngine {
    engine: ManuallyDrop<Engine>,
    service: String,
    pid: u32,
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        if process_id::current() == self.pid {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.engine) };
        }
        // In a forked child the engine's threads and locks belong to the parent:
        // dropping it could join threads that do not exist or take a lock held
        // forever. It is leaked on purpose.
    }
}

impl NativeEngine {
    /// `Engine.new(settings_hash)`: converts the settings (`Configuration#to_engine_hash`,
    /// already validated by `Configuration#validate!`) and starts the engine's threads.
    pub fn new(ruby: &Ruby, settings: RHash) -> Result<NativeEngine, Error> {
        guard(|| {
            let settings = config::settings(ruby, settings)?;
            // Only a URL the engine cannot send to is refused here; the ranges are Ruby's.
            let engine = Engine::start(settings.engine).map_err(|e| match e {
                EngineError::Config(e) => configuration_error(format!("log_ingestion: {e}")),
                e => gem_error(format!("log_ingestion: cannot start the engine: {e}")),
            })?;
            Ok(NativeEngine {
                engine: ManuallyDrop::new(engine),
                service: settings.service,
                pid: process_id::current(),
            })
        })
    }

    /// `#enqueue(level, message, metadata)`: true when queued, false when dropped, nil
    /// (nothing converted, nothing touched) when the engine belongs to the process this
    /// one was forked from. The only call that answers a forked child instead of
    /// raising: Ruby's `Process._fork` hook (`LogIngestion::ForkHook`) drops a parent's
    /// delivery in a child before its first call, and this answer is the net for a fork
    /// the hook does not see (`Process.daemon`): `Client#log_canonical` then starts the
    /// child's own delivery.
    pub fn enqueue(
        ruby: &Ruby,
        rb_self: &Self,
        level: RString,
        message: RString,
        metadata: Value,
    ) -> Result<Option<bool>, Error> {
        guard(|| {
            let Some(engine) = rb_self.own_engine() else {
                return Ok(None);
            };
            let entry = entry::encoded_call(ruby, &rb_self.service, level, message, metadata)?;
            Ok(Some(engine.enqueue_encoded(entry).is_accepted()))
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

    /// `#send_log(entry_hash, timeout_seconds)`: `{"accepted", "status", "attempts"}` when
    /// the server took the entry, `{"error", "kind"}` when it was not delivered (never
    /// raises for that; `kind` is an `ErrorKind` name, as `on_error` receives it).
    pub fn send_log(
        ruby: &Ruby,
        rb_self: &Self,
        entry: RHash,
        timeout: f64,
    ) -> Result<RHash, Error> {
        rb_self.send_single(ruby, entry, timeout, Engine::send_now)
    }

    /// `#send_once(entry_hash, timeout_seconds)`: `#send_log` with one attempt and no
    /// retry (`Engine::send_once`): answers within the connect or read timeout.
    pub fn send_once(
        ruby: &Ruby,
        rb_self: &Self,
        entry: RHash,
        timeout: f64,
    ) -> Result<RHash, Error> {
        rb_self.send_single(ruby, entry, timeout, Engine::send_once)
    }

    fn send_single(
        &self,
        ruby: &Ruby,
        entry: RHash,
        timeout: f64,
        send: fn(
            &Engine,
            Entry,
            Duration,
            &log_ingestion_engine::Cancel,
        ) -> Result<log_ingestion_engine::SendOutcome, DeliveryError>,
    ) -> Result<RHash, Error> {
        guard(|| {
            let entry = entry::from_hash(ruby, &self.service, entry)?;
            let engine = self.engine()?;
            let sent = blocking(
                seconds(timeout),
                |remaining, cancel| send(engine, entry.clone(), remaining, cancel),
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
                    answer.aset("kind", error.kind().as_str())?;
                }
            }
            Ok(answer)
        })
    }

    /// `#shutdown(timeout_seconds)`: `{"delivered" => n, "undelivered" => n, "spooled" => n}`.
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
            answer.aset("spooled", report.spooled)?;
            Ok(answer)
        })
    }

    /// `#stats`: the engine's counters (String keys; rate_limited_until in epoch seconds).
    pub fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        guard(|| {
            let stats = rb_self.engine()?.stats();
            stats_hash(ruby, &stats)
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
    /// call there raises instead of touching it (`enqueue` answers nil: `own_engine`).
    fn engine(&self) -> Result<&Engine, Error> {
        self.own_engine().ok_or_else(|| {
            gem_error(format!(
                "log_ingestion: this engine belongs to process {}, not to this forked child ({}); \
                 start a new one (LogIngestionClient does so by itself)",
                self.pid,
                process_id::current()
            ))
        })
    }

    /// The engine when this is the process that started it, else None (see `engine`).
    fn own_engine(&self) -> Option<&Engine> {
        (process_id::current() == self.pid).then_some(&*self.engine)
    }
}

/// `stats` as the Hash Ruby sees (String keys, `Stats::fields`' names; times in epoch seconds).
pub fn stats_hash(ruby: &Ruby, stats: &Stats) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (name, value) in stats.fields() {
        let value = match value {
            StatValue::Count(n) => n.into_value_with(ruby),
            StatValue::Time(time) => time.map(epoch_seconds).into_value_with(ruby),
            StatValue::Text(text) => text.into_value_with(ruby),
        };
        hash.aset(name, value)?;
    }
    Ok(hash)
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
