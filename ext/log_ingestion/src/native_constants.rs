//! The constants of `LogIngestion::Native`: the lists and limits Ruby reads from Rust.
//!
//! Owns handing Ruby the one definition of what both sides must agree on: the log
//! levels (`wire::Level`), the failure kinds `on_error` receives (the engine's
//! `ErrorKind`), and the converter's caps beside the server's default limits they fit
//! (`wire::limits`). Ruby and the specs read these instead of repeating them. Every
//! value is frozen; it never changes after the extension loads.

use log_ingestion_engine::ErrorKind;
use log_ingestion_wire::{limits, Level};
use magnus::value::ReprValue;
use magnus::{Error, Module, RModule, Ruby};

use crate::metadata::{MAX_COLLECTION_SIZE, MAX_DEPTH, MAX_STRING_BYTES, MAX_TOTAL_BYTES};
use crate::ruby_text::MAX_MESSAGE_BYTES;

/// Defines the constants on `native` (`LogIngestion::Native`).
pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    define_names(ruby, native, "LEVELS", Level::ALL.map(Level::as_str))?;
    define_names(
        ruby,
        native,
        "ERROR_KINDS",
        ErrorKind::ALL.map(ErrorKind::as_str),
    )?;
    for (name, value) in [
        ("MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES),
        ("MAX_METADATA_DEPTH", MAX_DEPTH),
        ("MAX_COLLECTION_SIZE", MAX_COLLECTION_SIZE),
        ("MAX_STRING_BYTES", MAX_STRING_BYTES),
        ("MAX_METADATA_TEXT_BYTES", MAX_TOTAL_BYTES),
        (
            "SERVER_DEFAULT_MAX_MESSAGE_BYTES",
            limits::DEFAULT_MAX_MESSAGE_BYTES,
        ),
        (
            "SERVER_DEFAULT_MAX_METADATA_BYTES",
            limits::DEFAULT_MAX_METADATA_BYTES,
        ),
        (
            "SERVER_DEFAULT_MAX_METADATA_DEPTH",
            limits::DEFAULT_MAX_METADATA_DEPTH,
        ),
    ] {
        native.const_set(name, value)?;
    }
    Ok(())
}

/// `native::NAME = names` as a frozen Array of frozen Strings.
fn define_names<const N: usize>(
    ruby: &Ruby,
    native: RModule,
    name: &str,
    names: [&str; N],
) -> Result<(), Error> {
    let array = ruby.ary_new_capa(N);
    for text in names {
        let text = ruby.str_new(text);
        text.freeze();
        array.push(text)?;
    }
    array.freeze();
    native.const_set(name, array)
}
