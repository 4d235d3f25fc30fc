//! Ruby arguments to one engine `Entry`: the one place where a log call's and
//! `send_log`'s fields are converted and their defaults filled.
//!
//! Owns those defaults (timestamp: now; service: the configured one; level: INFO;
//! message: empty; metadata: `{}`) and reading the fields of a `send_log` Hash (Symbol
//! or String keys). Both the engine (`LogIngestion::Native::Engine`) and test mode
//! (`LogIngestion::Native.entry_json`) build entries here, so what test mode records
//! is what delivery sends. It never enqueues, sends or keeps a Ruby value.

use log_ingestion_engine::{timestamp_now, EncodedEntry, Entry, EntryWriter};
use log_ingestion_wire::Level;
use magnus::{prelude::*, Error, RHash, RString, Ruby, Value};

use crate::boundary::{argument_error, gem_error};
use crate::metadata::{self, MetadataConverter};
use crate::ruby_text;

/// The encoded entry of a log call (stamped now, with the configured service), written
/// in one buffer: the fields, then the converter's metadata straight after them. It is
/// byte for byte what `Entry::encode` gives for the same fields (`EntryWriter` is the
/// one layout; test mode's `entry_json` goes through `from_hash` and `Entry::encode`),
/// without an owned `Entry` in between: a copy of the service, the message and the
/// metadata, and an allocation each, saved on every log call.
pub fn encoded_call(
    ruby: &Ruby,
    service: &str,
    level: RString,
    message: RString,
    metadata: Value,
) -> Result<EncodedEntry, Error> {
    let level = parse_level(ruby, level)?;
    // Stamped, and the message written (copied, escaped), before the metadata is
    // converted: its conversion may run Ruby code (`to_s`), which must not see the
    // message borrowed.
    let mut writer = ruby_text::with_message(ruby, message, |message| {
        EntryWriter::stamped_now(service, level, message, metadata::JSON_CAPACITY_GUESS)
    })?
    // Writing JSON to a Vec cannot fail; kept as an error rather than a panic.
    .map_err(|e| gem_error(format!("log_ingestion: cannot encode the entry: {e}")))?;
    // A host's interrupt in a value's `to_s` returns here: the writer (the entry's one
    // buffer) is dropped, nothing was enqueued or counted.
    MetadataConverter::new(ruby).write_metadata(metadata, writer.metadata_buffer())?;
    Ok(writer.finish())
}

/// The entry of a `send_log` Hash (`:timestamp`, `:service`, `:level`, `:message`,
/// `:metadata`, each optional; a Time timestamp is written in the entry format).
pub fn from_hash(ruby: &Ruby, service: &str, hash: RHash) -> Result<Entry, Error> {
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
    let timestamp = match field("timestamp") {
        None => timestamp_now(),
        Some(value) => match ruby_text::time_text(ruby, value)? {
            Some(time) => time,
            None => ruby_text::utf8(ruby, value.funcall::<_, _, RString>("to_s", ())?)?,
        },
    };
    let service = match text("service")? {
        Some(service) => ruby_text::utf8(ruby, service)?,
        None => service.to_owned(),
    };
    let message = match text("message")? {
        Some(message) => ruby_text::message(ruby, message)?,
        None => String::new(),
    };
    let metadata = MetadataConverter::new(ruby)
        .metadata(field("metadata").unwrap_or_else(|| ruby.qnil().as_value()))?;
    Ok(Entry {
        timestamp,
        service,
        level,
        message,
        metadata,
    })
}

/// The level named by `level` (any case), or `ArgumentError`.
fn parse_level(ruby: &Ruby, level: RString) -> Result<Level, Error> {
    // The client passes its frozen canonical names: read the bytes in place (no copy)
    // and keep the converting path for everything else, error message included.
    // SAFETY: the bytes are read before any Ruby code can run.
    if let Some(level) = std::str::from_utf8(unsafe { level.as_slice() })
        .ok()
        .and_then(|name| name.parse::<Level>().ok())
    {
        return Ok(level);
    }
    ruby_text::utf8(ruby, level)?
        .parse::<Level>()
        .map_err(|e| argument_error(ruby, format!("log_ingestion: {e}")))
}
