//! Ruby text and times as the gem sends them: a string's text as UTF-8, a message cut
//! to the server's default limit, a Time's timestamp text, and what stands for a value
//! whose own method fails.
//!
//! Owns the reading of Ruby strings and Times on the caller's thread, with the GVL held,
//! for both converters: the entry's fields (`entry`) and the metadata
//! (`metadata::MetadataConverter`). A `StandardError` raised by a value's own method
//! (`to_s`, `iso8601`, `getutc`, `encode`) stands for a placeholder; anything else
//! that stops it (a host's interrupt, see `own_failure`) is returned unchanged. It never
//! keeps a Ruby value after returning.

use chrono::DateTime;
use log_ingestion_wire::limits;
use magnus::encoding::EncodingCapable;
use magnus::error::ErrorType;
use magnus::value::ReprValue;
use magnus::{prelude::*, Error, RModule, RString, Ruby, Time, Value};

/// Longest message sent: the server's default limit.
pub const MAX_MESSAGE_BYTES: usize = limits::DEFAULT_MAX_MESSAGE_BYTES;
/// What ends a text that was cut.
pub const TRUNCATED_SUFFIX: &str = "...[truncated]";

/// The message to send: valid UTF-8, cut to `MAX_MESSAGE_BYTES` (suffix included).
pub fn message(ruby: &Ruby, message: RString) -> Result<String, Error> {
    with_message(ruby, message, str::to_owned)
}

/// `read` applied to the message to send (see `message`), borrowed from the Ruby
/// string when it is UTF-8 already and within `MAX_MESSAGE_BYTES`. `read` must not run
/// Ruby code.
pub fn with_message<T>(
    ruby: &Ruby,
    message: RString,
    read: impl FnOnce(&str) -> T,
) -> Result<T, Error> {
    with_utf8(ruby, message, |text| {
        if text.len() <= MAX_MESSAGE_BYTES {
            return read(text);
        }
        let kept = &text[..floor_char_boundary(text, MAX_MESSAGE_BYTES - TRUNCATED_SUFFIX.len())];
        read(&[kept, TRUNCATED_SUFFIX].concat())
    })
}

/// The string's text as UTF-8: bytes of UTF-8/US-ASCII/BINARY strings read as UTF-8
/// (invalid sequences replaced), other encodings transcoded by Ruby.
pub fn utf8(ruby: &Ruby, string: RString) -> Result<String, Error> {
    with_utf8(ruby, string, str::to_owned)
}

/// `read` applied to the string's text as UTF-8 (see `utf8`), borrowed from the Ruby
/// string when it is valid UTF-8 already. `read` must not run Ruby code. Transcoding
/// runs Ruby's `encode`: a host's interrupt there is returned, anything else falls back
/// to reading the bytes.
pub fn with_utf8<T>(
    ruby: &Ruby,
    string: RString,
    read: impl FnOnce(&str) -> T,
) -> Result<T, Error> {
    let encoding = string.enc_get();
    let pass_through = encoding == ruby.utf8_encindex()
        || encoding == ruby.usascii_encindex()
        || encoding == ruby.ascii8bit_encindex();
    if !pass_through {
        let converted: Result<RString, _> = string.funcall(
            "encode",
            (
                "UTF-8",
                magnus::kwargs!(ruby, "invalid" => ruby.to_symbol("replace"), "undef" => ruby.to_symbol("replace")),
            ),
        );
        match converted {
            Ok(converted) => return Ok(read_bytes(converted, read)),
            Err(error) => own_failure(ruby, error)?,
        }
    }
    Ok(read_bytes(string, read))
}

fn read_bytes<T>(string: RString, read: impl FnOnce(&str) -> T) -> T {
    // SAFETY: the bytes are read by `read`, which runs no Ruby code, so the string can
    // be neither changed nor collected meanwhile (it is on this stack, too).
    let bytes = unsafe { string.as_slice() };
    read(&String::from_utf8_lossy(bytes))
}

/// `iso8601` when the object answers it, else `to_s`, else (when they fail with a
/// `StandardError`) a placeholder naming its class. A host's interrupt is returned.
pub fn describe(ruby: &Ruby, value: Value) -> Result<String, Error> {
    let described: Option<Result<RString, Error>> = value.check_funcall("iso8601", ());
    let described = match described {
        Some(Ok(text)) => Ok(text),
        Some(Err(error)) => {
            own_failure(ruby, error)?;
            value.funcall::<_, _, RString>("to_s", ())
        }
        None => value.funcall::<_, _, RString>("to_s", ()),
    };
    match described {
        Ok(text) => utf8(ruby, text),
        Err(error) => {
            own_failure(ruby, error)?;
            Ok(format!("#<{}>", unsafe { value.classname() }))
        }
    }
}

/// Ok when `error` is the failure of a value's own method, which a placeholder stands
/// for: a `StandardError` that is not a host's timeout (the gem's one rule of those is
/// `LogIngestion::Failsafe.interrupt?`: Timeout's and rack-timeout's classes derive from
/// `RuntimeError`). Otherwise the error itself, to be handed back to Ruby unchanged: a
/// `throw` or `Thread#kill` (a jump, not an exception), `exit`, `Interrupt`, any
/// exception that is not a `StandardError`.
pub fn own_failure(ruby: &Ruby, error: Error) -> Result<(), Error> {
    if !error.is_kind_of(ruby.exception_standard_error()) {
        return Err(error);
    }
    let exception = match error.error_type() {
        // Made by magnus on the Rust side (e.g. a `to_s` that answered no String).
        ErrorType::Error(..) => return Ok(()),
        ErrorType::Exception(exception) => *exception,
        ErrorType::Jump(_) => return Err(error),
    };
    let interrupt: Result<bool, Error> = ruby
        .class_object()
        .const_get::<_, RModule>("LogIngestion")
        .and_then(|module| module.const_get::<_, RModule>("Failsafe"))
        .and_then(|failsafe| failsafe.funcall("interrupt?", (exception,)));
    // When the rule cannot be asked, the error is not taken for the value's own.
    match interrupt {
        Ok(false) => Ok(()),
        _ => Err(error),
    }
}

/// The timestamp text of a Time, or of a Time stand-in (ActiveSupport::TimeWithZone,
/// what Rails' `Time.current` returns) whose `getutc` answers a Time; None for anything
/// else. A host's interrupt inside `getutc` is returned.
pub fn time_text(ruby: &Ruby, value: Value) -> Result<Option<String>, Error> {
    if let Some(time) = Time::from_value(value) {
        return Ok(iso8601_utc(time));
    }
    time_like(ruby, value)
}

pub fn time_like(ruby: &Ruby, value: Value) -> Result<Option<String>, Error> {
    let utc: Option<Result<Value, Error>> = value.check_funcall("getutc", ());
    let utc = match utc {
        None => return Ok(None),
        Some(Ok(utc)) => utc,
        Some(Err(error)) => {
            own_failure(ruby, error)?;
            return Ok(None);
        }
    };
    Ok(Time::from_value(utc).and_then(iso8601_utc))
}

pub fn iso8601_utc(time: Time) -> Option<String> {
    let spec = time.timespec().ok()?;
    let nanos = u32::try_from(spec.tv_nsec).ok()?;
    let utc = DateTime::from_timestamp(spec.tv_sec, nanos)?;
    Some(log_ingestion_engine::timestamp(utc))
}

pub fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}
