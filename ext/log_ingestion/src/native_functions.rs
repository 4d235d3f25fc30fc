//! The module functions of `LogIngestion::Native`: conversions without an engine.
//!
//! Owns what Ruby may ask of the converters when no engine runs: test mode records
//! `entry_json` (exactly the JSON delivery would send, built by `entry`), and
//! `LogIngestion::ParameterFilter` cuts a self-containing Hash with `encode_metadata`,
//! and a client with no engine reports `idle_stats`.
//! It never starts threads or touches the network. The test hook `panic_for_testing`
//! exists only in builds with the cargo feature `test-hooks` (`rake compile:test`),
//! never in the gems.

use log_ingestion_engine::Stats;
use magnus::{Error, RHash, Ruby, Value};

use crate::boundary::{gem_error, guard};
use crate::entry;
use crate::metadata::MetadataConverter;
use crate::native_engine::stats_hash;

/// `LogIngestion::Native.encode_metadata(value)`: the JSON the binding would send as
/// the metadata of a log call with `value`.
pub fn encode_metadata(ruby: &Ruby, value: Value) -> Result<String, Error> {
    guard(|| Ok(MetadataConverter::new(ruby).metadata(value)?.into_string()))
}

/// `LogIngestion::Native.entry_json(entry_hash, service)`: the JSON of the entry that
/// `send_log(entry_hash)` (or a log call, given `level`, `message` and `metadata`)
/// would send with `service` configured -- defaults, conversion and cuts included.
pub fn entry_json(ruby: &Ruby, entry: RHash, service: String) -> Result<String, Error> {
    guard(|| {
        let entry = entry::from_hash(ruby, &service, entry)?;
        let json = entry
            .encode()
            .map_err(|e| gem_error(format!("log_ingestion: {e}")))?;
        String::from_utf8(json).map_err(|e| gem_error(format!("log_ingestion: {e}")))
    })
}

/// `LogIngestion::Native.idle_stats`: the stats of an engine that has done nothing
/// (every key of `#stats`, zero), for a client with no engine running.
pub fn idle_stats(ruby: &Ruby) -> Result<RHash, Error> {
    guard(|| stats_hash(ruby, &Stats::default()))
}

/// `LogIngestion::Native.panic_for_testing(message)`: panics, so the specs can prove
/// a Rust panic reaches Ruby as `LogIngestion::Error` and the process lives on.
#[cfg(feature = "test-hooks")]
pub fn panic_for_testing(message: String) -> Result<(), Error> {
    guard(|| panic!("{message}"))
}
