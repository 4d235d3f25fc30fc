//! An OTLP record's metadata, written value by value by `domain::MetadataWriter` (the
//! writer, rules and caps of every entry's metadata: sensitive keys, depth, size):
//! log attributes as they are, `exception.type/message/stacktrace` as the `exception`
//! details the gem sends, the resource's attributes and the scope (written once per
//! resource and scope, and put into each record), severity, event name, trace and span
//! ids. Values keep their JSON types: bytes as base64, a double that JSON cannot hold
//! as its name, an unset value as `null`. It never decides an entry's other fields.

use base64::Engine;

use super::sensitive_keys::SensitiveKeys;
use super::view::{Any, Pairs, Record};
use super::wire::Malformed;
use crate::config::EntryLimits;
use crate::domain::{MetadataFragment, MetadataWriter, TooDeep};

/// Backtrace lines kept from `exception.stacktrace`, as many as the gem sends.
const BACKTRACE_LINES: usize = 10;

/// Why writing stopped: a container past the depth cap (the writer's `finish` refuses
/// the metadata), or a body the check let through that is not protobuf after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    TooDeep,
    Malformed(Malformed),
}

impl From<TooDeep> for Halt {
    fn from(_: TooDeep) -> Self {
        Halt::TooDeep
    }
}

impl From<Malformed> for Halt {
    fn from(error: Malformed) -> Self {
        Halt::Malformed(error)
    }
}

/// What a record takes from its resource and scope, written ahead, and the request's
/// answers about attribute keys.
pub struct Shared<'c> {
    pub resource: Option<&'c MetadataFragment>,
    pub scope: Option<&'c MetadataFragment>,
    pub keys: &'c SensitiveKeys,
}

/// The record's metadata into the open top object.
pub fn write_record(
    writer: &mut MetadataWriter,
    record: &Record<'_>,
    shared: &Shared<'_>,
    trace_id: Option<&str>,
    span_id: Option<&str>,
) -> Result<(), Halt> {
    let mut exception: [Option<Any<'_>>; 3] = [None; 3];
    let mut exception_set = false;
    record.attributes.for_each(|key, value| {
        let slot = match key {
            "exception.type" => 0,
            "exception.message" => 1,
            "exception.stacktrace" => 2,
            _ => {
                let key = writer.judged_key(key, shared.keys.is_sensitive(key));
                write_any(writer, value)?;
                writer.end_key(key);
                return Ok::<(), Halt>(());
            }
        };
        exception[slot] = value;
        exception_set = true;
        Ok(())
    })?;
    if exception_set {
        let key = writer.own_key("exception");
        write_object(writer, |writer| {
            for (slot, name) in ["class", "message", "backtrace"].into_iter().enumerate() {
                let Some(value) = exception[slot] else {
                    continue;
                };
                let key = writer.own_key(name);
                match (slot, value) {
                    (2, Any::String(text)) => write_backtrace(writer, text)?,
                    (_, value) => write_any(writer, Some(value))?,
                }
                writer.end_key(key);
            }
            Ok(())
        })?;
        writer.end_key(key);
    }
    if let Some(resource) = shared.resource {
        let key = writer.own_key("resource");
        writer.fragment(resource)?;
        writer.end_key(key);
    }
    let has_otel = record.severity_number != 0
        || !record.severity_text.is_empty()
        || !record.event_name.is_empty()
        || shared.scope.is_some();
    if has_otel {
        let key = writer.own_key("otel");
        write_object(writer, |writer| {
            if record.severity_number != 0 {
                let key = writer.own_key("severity_number");
                writer.i64(record.severity_number.into());
                writer.end_key(key);
            }
            for (name, text) in [
                ("severity_text", record.severity_text),
                ("event_name", record.event_name),
            ] {
                if !text.is_empty() {
                    let key = writer.own_key(name);
                    writer.string(text);
                    writer.end_key(key);
                }
            }
            if let Some(scope) = shared.scope {
                let key = writer.own_key("scope");
                writer.fragment(scope)?;
                writer.end_key(key);
            }
            Ok(())
        })?;
        writer.end_key(key);
    }
    if let Some(trace_id) = trace_id {
        let key = writer.own_key("trace_id");
        writer.string(trace_id);
        writer.end_key(key);
        let key = writer.own_key("trace_flags");
        writer.u64(u64::from(record.flags & 0xff));
        writer.end_key(key);
    }
    if let Some(span_id) = span_id {
        let key = writer.own_key("span_id");
        writer.string(span_id);
        writer.end_key(key);
    }
    Ok(())
}

/// A scope's name and version as an object, for the `otel` object of its records.
pub fn write_scope(writer: &mut MetadataWriter, name: &str, version: &str) -> Result<(), Halt> {
    write_object(writer, |writer| {
        for (key, value) in [("name", name), ("version", version)] {
            if !value.is_empty() {
                let key = writer.own_key(key);
                writer.string(value);
                writer.end_key(key);
            }
        }
        Ok(())
    })
}

/// An object one level down, its members written by `members`.
fn write_object(
    writer: &mut MetadataWriter,
    members: impl FnOnce(&mut MetadataWriter) -> Result<(), Halt>,
) -> Result<(), Halt> {
    writer.begin_object()?;
    members(writer)?;
    writer.end_object();
    Ok(())
}

/// A non-string body as JSON text, written as metadata values are: `Ok(Err(problem))`
/// when it is nested past the depth cap.
pub fn body_json(
    value: Any<'_>,
    limits: &EntryLimits,
) -> Result<Result<String, String>, Malformed> {
    let mut writer = MetadataWriter::fragment_in(limits, 0, 0);
    let written = write_any(&mut writer, Some(value));
    if let Err(Halt::Malformed(error)) = written {
        return Err(error);
    }
    Ok(writer
        .into_fragment()
        .into_json()
        .filter(|_| written.is_ok())
        .ok_or_else(|| {
            format!(
                "body: nested more than {} levels deep, at most {} allowed",
                limits.max_metadata_depth, limits.max_metadata_depth
            )
        }))
}

/// Attributes as one object (a repeated key is written twice; the stored `jsonb` keeps
/// the last).
pub fn write_attributes(writer: &mut MetadataWriter, attributes: Pairs<'_>) -> Result<(), Halt> {
    write_object(writer, |writer| {
        attributes.for_each(|key, value| {
            let key = writer.key(key);
            write_any(writer, value)?;
            writer.end_key(key);
            Ok(())
        })
    })
}

/// A value as the JSON type it holds.
fn write_any(writer: &mut MetadataWriter, value: Option<Any<'_>>) -> Result<(), Halt> {
    match value {
        None => writer.null(),
        Some(Any::String(text)) => writer.string(text),
        Some(Any::Bool(flag)) => writer.bool(flag),
        Some(Any::Int(number)) => writer.i64(number),
        Some(Any::Double(number)) if number.is_finite() => writer.f64(number),
        Some(Any::Double(number)) => writer.string(&number.to_string()),
        Some(Any::Bytes(bytes)) => {
            writer.string(&base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Some(Any::Array(items)) => {
            writer.begin_array()?;
            items.for_each(|item| write_any(writer, item))?;
            writer.end_array();
        }
        Some(Any::Kvlist(pairs)) => write_attributes(writer, pairs)?,
    }
    Ok(())
}

/// `exception.stacktrace` as the gem's backtrace: its first lines.
fn write_backtrace(writer: &mut MetadataWriter, text: &str) -> Result<(), Halt> {
    writer.begin_array()?;
    let lines = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .take(BACKTRACE_LINES);
    for line in lines {
        writer.string(line);
    }
    writer.end_array();
    Ok(())
}
