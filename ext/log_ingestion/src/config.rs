//! `config::settings`: the settings Hash from Ruby to an `EngineConfig`.
//!
//! Owns reading and type-checking each key of the Hash built by
//! `LogIngestion::Configuration#to_engine_hash` (one row of `SETTINGS` per key); the
//! values' ranges are the engine's to check (`EngineConfig::validate`), and the
//! defaults are Ruby's (`Configuration::DEFAULTS`). Bad values raise
//! `LogIngestion::ConfigurationError` naming the key; it never starts anything.

use std::time::Duration;

use log_ingestion_engine::{DropPolicy, EngineConfig};
use magnus::{prelude::*, Error, RHash, Ruby, TryConvert, Value};

use crate::boundary::configuration_error;

/// The engine settings and the service name stamped on every entry.
pub struct Settings {
    pub engine: EngineConfig,
    pub service: String,
}

/// Reads one key of the Hash into the config; absent or nil keys keep the default.
type Apply = fn(&Reader, &str, &mut EngineConfig) -> Result<(), Error>;

/// Every engine setting the Hash may carry, by key.
const SETTINGS: &[(&str, Apply)] = &[
    ("api_url", |r, k, c| r.set(k, &mut c.api_url)),
    ("api_key", |r, k, c| r.set(k, &mut c.api_key)),
    ("enable_batching", |r, k, c| {
        r.set(k, &mut c.enable_batching)
    }),
    ("batch_size", |r, k, c| r.set(k, &mut c.batch_size)),
    ("batch_interval", |r, k, c| {
        r.set_seconds(k, &mut c.batch_interval)
    }),
    ("max_batch_bytes", |r, k, c| {
        r.set(k, &mut c.max_batch_bytes)
    }),
    ("max_retries", |r, k, c| r.set(k, &mut c.max_retries)),
    ("max_retry_elapsed", |r, k, c| {
        r.set_seconds(k, &mut c.max_retry_elapsed)
    }),
    ("retry_delay", |r, k, c| {
        r.set_seconds(k, &mut c.retry_delay)
    }),
    ("max_retry_delay", |r, k, c| {
        r.set_seconds(k, &mut c.max_retry_delay)
    }),
    ("max_queue_bytes", |r, k, c| {
        r.set(k, &mut c.max_queue_bytes)
    }),
    ("drop_policy", |r, k, c| {
        if let Some(policy) = r.get::<String>(k)? {
            c.drop_policy = policy
                .parse::<DropPolicy>()
                .map_err(|e| configuration_error(format!("log_ingestion: {e}")))?;
        }
        Ok(())
    }),
    ("gzip", |r, k, c| r.set(k, &mut c.gzip)),
    ("open_timeout", |r, k, c| {
        r.set_seconds(k, &mut c.open_timeout)
    }),
    ("read_timeout", |r, k, c| {
        r.set_seconds(k, &mut c.read_timeout)
    }),
    ("user_agent", |r, k, c| r.set(k, &mut c.user_agent)),
];

pub fn settings(ruby: &Ruby, hash: RHash) -> Result<Settings, Error> {
    let reader = Reader { ruby, hash };
    let mut config = EngineConfig::default();
    for (key, apply) in SETTINGS {
        apply(&reader, key, &mut config)?;
    }
    let service = reader
        .get::<String>("service")?
        .ok_or_else(|| configuration_error("log_ingestion: the settings Hash has no service"))?;
    Ok(Settings {
        engine: config,
        service,
    })
}

struct Reader<'r> {
    ruby: &'r Ruby,
    hash: RHash,
}

impl Reader<'_> {
    fn value(&self, key: &str) -> Option<Value> {
        let by_string: Option<Value> = self.hash.get(key);
        by_string
            .or_else(|| self.hash.get(self.ruby.to_symbol(key)))
            .filter(|value| !value.is_nil())
    }

    fn get<T: TryConvert>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.value(key) {
            None => Ok(None),
            Some(value) => T::try_convert(value).map(Some).map_err(|e| {
                configuration_error(format!("log_ingestion: {key} has the wrong type ({e})"))
            }),
        }
    }

    /// Sets `slot` to the key's value when it is present.
    fn set<T: TryConvert>(&self, key: &str, slot: &mut T) -> Result<(), Error> {
        if let Some(value) = self.get(key)? {
            *slot = value;
        }
        Ok(())
    }

    /// Sets `slot` to the key's seconds when it is present.
    fn set_seconds(&self, key: &str, slot: &mut Duration) -> Result<(), Error> {
        if let Some(value) = self.seconds(key)? {
            *slot = value;
        }
        Ok(())
    }

    fn seconds(&self, key: &str) -> Result<Option<Duration>, Error> {
        match self.get::<f64>(key)? {
            None => Ok(None),
            Some(seconds) => Duration::try_from_secs_f64(seconds).map(Some).map_err(|_| {
                configuration_error(format!(
                    "log_ingestion: {key} must be a number of seconds >= 0 (got {seconds})"
                ))
            }),
        }
    }
}
