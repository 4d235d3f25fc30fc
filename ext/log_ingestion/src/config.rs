//! `engine_config`: the settings Hash from Ruby to an `EngineConfig`.
//!
//! Owns reading and type-checking each key of the Hash built by
//! `LogIngestion::Configuration#to_engine_hash`. Bad values raise
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

pub fn settings(ruby: &Ruby, hash: RHash) -> Result<Settings, Error> {
    let mut config = EngineConfig::default();
    let reader = Reader { ruby, hash };
    if let Some(url) = reader.get::<String>("api_url")? {
        config.api_url = url;
    }
    if let Some(key) = reader.get::<String>("api_key")? {
        config.api_key = key;
    }
    if let Some(n) = reader.get::<usize>("batch_size")? {
        config.batch_size = n;
    }
    if let Some(d) = reader.seconds("batch_interval")? {
        config.batch_interval = d;
    }
    if let Some(n) = reader.get::<usize>("max_batch_bytes")? {
        config.max_batch_bytes = n;
    }
    if let Some(n) = reader.get::<u32>("max_retries")? {
        config.max_retries = n;
    }
    if let Some(d) = reader.seconds("max_retry_elapsed")? {
        config.max_retry_elapsed = d;
    }
    if let Some(d) = reader.seconds("retry_delay")? {
        config.retry_delay = d;
    }
    if let Some(d) = reader.seconds("max_retry_delay")? {
        config.max_retry_delay = d;
    }
    if let Some(n) = reader.get::<usize>("max_queue_bytes")? {
        config.max_queue_bytes = n;
    }
    if let Some(policy) = reader.get::<String>("drop_policy")? {
        config.drop_policy = policy
            .parse::<DropPolicy>()
            .map_err(|e| configuration_error(format!("log_ingestion: {e}")))?;
    }
    if let Some(gzip) = reader.get::<bool>("gzip")? {
        config.gzip = gzip;
    }
    if let Some(d) = reader.seconds("open_timeout")? {
        config.open_timeout = d;
    }
    if let Some(d) = reader.seconds("read_timeout")? {
        config.read_timeout = d;
    }
    if let Some(batching) = reader.get::<bool>("enable_batching")? {
        config.enable_batching = batching;
    }
    if let Some(agent) = reader.get::<String>("user_agent")? {
        config.user_agent = agent;
    }
    let service = reader
        .get::<String>("service")?
        .unwrap_or_else(|| "rails-app".to_owned());
    config
        .validate()
        .map_err(|e| configuration_error(format!("log_ingestion: {e}")))?;
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
