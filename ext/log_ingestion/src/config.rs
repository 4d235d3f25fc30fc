//! `config::settings`: the settings Hash from Ruby to an `EngineConfig`.
//!
//! Owns reading and type-checking each key of the Hash built by
//! `LogIngestion::Configuration#to_engine_hash`. Every key must be there (`spool_dir` may be
//! nil: no spool): the defaults
//! and the rules (ranges, messages) are `Configuration`'s alone (`DEFAULTS`,
//! `validate!`), so this module never fills a default nor re-checks a range. A missing
//! key or a wrong type raises `LogIngestion::ConfigurationError` naming the key; it never
//! starts anything.

use std::path::PathBuf;
use std::time::Duration;

use log_ingestion_engine::{DropPolicy, EngineConfig};
use magnus::{prelude::*, Error, RHash, Ruby, TryConvert, Value};

use crate::boundary::configuration_error;

/// The engine settings and the service name stamped on every entry.
pub struct Settings {
    pub engine: EngineConfig,
    pub service: String,
}

pub fn settings(ruby: &Ruby, hash: RHash) -> Result<Settings, Error> {
    let r = Reader { ruby, hash };
    let engine = EngineConfig {
        api_url: r.require("api_url")?,
        api_key: r.require("api_key")?,
        enable_batching: r.require("enable_batching")?,
        batch_size: r.require("batch_size")?,
        batch_interval: r.seconds("batch_interval")?,
        max_batch_bytes: r.require("max_batch_bytes")?,
        max_retries: r.require("max_retries")?,
        max_retry_elapsed: r.seconds("max_retry_elapsed")?,
        retry_delay: r.seconds("retry_delay")?,
        max_retry_delay: r.seconds("max_retry_delay")?,
        max_queue_bytes: r.require("max_queue_bytes")?,
        drop_policy: r
            .require::<String>("drop_policy")?
            .parse::<DropPolicy>()
            .map_err(|e| configuration_error(format!("log_ingestion: {e}")))?,
        gzip: r.require("gzip")?,
        open_timeout: r.seconds("open_timeout")?,
        read_timeout: r.seconds("read_timeout")?,
        user_agent: r.require("user_agent")?,
        // nil: no spool (the one setting whose absence means "off").
        spool_dir: r.optional::<String>("spool_dir")?.map(PathBuf::from),
        max_spool_bytes: r.require("max_spool_bytes")?,
    };
    Ok(Settings {
        engine,
        service: r.require("service")?,
    })
}

struct Reader<'r> {
    ruby: &'r Ruby,
    hash: RHash,
}

impl Reader<'_> {
    /// The key's value (String or Symbol key); nil counts as missing.
    fn value(&self, key: &str) -> Option<Value> {
        let by_string: Option<Value> = self.hash.get(key);
        by_string
            .or_else(|| self.hash.get(self.ruby.to_symbol(key)))
            .filter(|value| !value.is_nil())
    }

    /// The key's value converted to `T`, or a ConfigurationError naming the key.
    fn require<T: TryConvert>(&self, key: &str) -> Result<T, Error> {
        let value = self.value(key).ok_or_else(|| {
            configuration_error(format!("log_ingestion: the settings Hash has no {key}"))
        })?;
        T::try_convert(value).map_err(|e| {
            configuration_error(format!("log_ingestion: {key} has the wrong type ({e})"))
        })
    }

    /// The key's value converted to `T`, or None when it is nil or missing.
    fn optional<T: TryConvert>(&self, key: &str) -> Result<Option<T>, Error> {
        self.value(key)
            .map(|value| {
                T::try_convert(value).map_err(|e| {
                    configuration_error(format!("log_ingestion: {key} has the wrong type ({e})"))
                })
            })
            .transpose()
    }

    /// The key's number of seconds as a Duration.
    fn seconds(&self, key: &str) -> Result<Duration, Error> {
        let seconds: f64 = self.require(key)?;
        Duration::try_from_secs_f64(seconds).map_err(|_| {
            configuration_error(format!(
                "log_ingestion: {key} must be a number of seconds >= 0 (got {seconds})"
            ))
        })
    }
}
