//! The mapping of OTLP log records into the one entry model: resource `service.name`
//! (else `unknown_service`) -> service; `severity_number` (else `severity_text`) ->
//! level; `time_unix_nano`, else `observed_time_unix_nano`, else now -> timestamp;
//! the body (a string as it is, any other value as JSON) -> message; log attributes,
//! resource attributes, scope name and version, severity, trace and span ids ->
//! metadata, with `exception.type/message/stacktrace` as the `exception` details the
//! gem sends. Records are mapped straight into the validated form, in one pass: the
//! metadata is written value by value by `domain::MetadataWriter` (the writer, rules
//! and caps of every entry's metadata: sensitive keys, depth, size) and the entry
//! checked by `LogEntry::from_decoded` (the timestamp window, service, message), with
//! text borrowed from the decoded request. A non-string body is written by the same
//! writer (so a structured body is filtered and its depth capped too). A resource's
//! attributes and a scope are written once and put into each record's metadata. It
//! never touches storage or HTTP.

use std::borrow::Cow;

use base64::Engine;
use chrono::{DateTime, Utc};
use log_ingestion_wire::Level;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::config::EntryLimits;
use crate::domain::{LogEntry, MetadataFragment, MetadataWriter, TooDeep};

/// OTLP's service name when a resource has none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// The message of a record without a body or event name.
pub const NO_BODY: &str = "(no body)";
/// Backtrace lines kept from `exception.stacktrace`, as many as the gem sends.
const BACKTRACE_LINES: usize = 10;
/// Trace ids are 16 bytes, span ids 8 (OTLP); empty means none.
const TRACE_ID_BYTES: usize = 16;
const SPAN_ID_BYTES: usize = 8;
/// The depth of the top metadata object, and of the `otel` object in it: the
/// containers the resource and scope fragments are written for.
const TOP_DEPTH: usize = 1;
const OTEL_DEPTH: usize = 2;
/// Bytes reserved for a record's metadata besides the resource's.
const METADATA_CAPACITY: usize = 256;

/// Maps every record of `request`, in the request's order, handing `each` the valid
/// entry (its text borrowed from the request) or the problems that refuse it.
pub fn for_each_entry<'r>(
    request: &'r ExportLogsServiceRequest,
    limits: &EntryLimits,
    now: DateTime<Utc>,
    mut each: impl FnMut(Result<LogEntry<'r>, Vec<String>>),
) {
    for resource_logs in &request.resource_logs {
        let resource_attributes = resource_logs
            .resource
            .as_ref()
            .map(|resource| resource.attributes.as_slice())
            .unwrap_or_default();
        let service = service_name(resource_attributes);
        let resource = (!resource_attributes.is_empty()).then(|| {
            let mut writer = MetadataWriter::fragment_in(limits, TOP_DEPTH, 0);
            let _ = write_attributes(&mut writer, resource_attributes);
            writer.into_fragment()
        });
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs
                .scope
                .as_ref()
                .filter(|scope| !scope.name.is_empty() || !scope.version.is_empty())
                .map(|scope| {
                    let mut writer = MetadataWriter::fragment_in(limits, OTEL_DEPTH, 0);
                    let _ = write_object(&mut writer, |writer| {
                        for (name, value) in [("name", &scope.name), ("version", &scope.version)] {
                            if !value.is_empty() {
                                let key = writer.key(name);
                                writer.string(value);
                                writer.end_key(key);
                            }
                        }
                        Ok(())
                    });
                    writer.into_fragment()
                });
            let context = RecordContext {
                service,
                resource: resource.as_ref(),
                scope: scope.as_ref(),
            };
            for record in &scope_logs.log_records {
                each(entry(record, &context, limits, now));
            }
        }
    }
}

/// What a record takes from its resource and scope: the service, and the resource's
/// attributes and the scope written ahead.
struct RecordContext<'r, 'c> {
    service: &'r str,
    resource: Option<&'c MetadataFragment>,
    scope: Option<&'c MetadataFragment>,
}

/// One record as a validated entry.
fn entry<'r>(
    record: &'r LogRecord,
    context: &RecordContext<'r, '_>,
    limits: &EntryLimits,
    now: DateTime<Utc>,
) -> Result<LogEntry<'r>, Vec<String>> {
    let mut problems = Vec::new();
    let mut trace_id = [0u8; 2 * TRACE_ID_BYTES];
    let trace_id = id_hex(&record.trace_id, &mut trace_id)
        .map_err(|problem| problems.push(format!("trace_id: {problem}")))
        .ok()
        .flatten();
    let mut span_id = [0u8; 2 * SPAN_ID_BYTES];
    let span_id = id_hex(&record.span_id, &mut span_id)
        .map_err(|problem| problems.push(format!("span_id: {problem}")))
        .ok()
        .flatten();
    if !problems.is_empty() {
        return Err(problems);
    }
    let message = match record.body.as_ref().and_then(|body| body.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) if !text.is_empty() => {
            Cow::Borrowed(text.as_str())
        }
        Some(value) if !matches!(value, any_value::Value::StringValue(_)) => {
            Cow::Owned(body_json(value, limits).map_err(|problem| vec![problem])?)
        }
        _ if !record.event_name.is_empty() => Cow::Borrowed(record.event_name.as_str()),
        _ => Cow::Borrowed(NO_BODY),
    };
    let mut writer = MetadataWriter::new(
        limits,
        METADATA_CAPACITY + context.resource.map_or(0, MetadataFragment::len),
    );
    let _ = write_metadata(&mut writer, record, context, trace_id, span_id);
    LogEntry::from_decoded(
        timestamp(record, now),
        context.service,
        level(record.severity_number, &record.severity_text),
        message,
        writer.finish(),
        limits,
        now,
    )
}

/// The record's metadata into the open top object; stops at a container past the depth
/// cap (the writer's `finish` refuses it).
fn write_metadata(
    writer: &mut MetadataWriter,
    record: &LogRecord,
    context: &RecordContext<'_, '_>,
    trace_id: Option<&str>,
    span_id: Option<&str>,
) -> Result<(), TooDeep> {
    let mut exception: [Option<&any_value::Value>; 3] = [None; 3];
    let mut exception_set = false;
    for KeyValue { key, value, .. } in &record.attributes {
        let value = value.as_ref().and_then(|value| value.value.as_ref());
        let slot = match key.as_str() {
            "exception.type" => 0,
            "exception.message" => 1,
            "exception.stacktrace" => 2,
            _ => {
                let key = writer.key(key);
                write_any(writer, value)?;
                writer.end_key(key);
                continue;
            }
        };
        exception[slot] = value;
        exception_set = true;
    }
    if exception_set {
        let key = writer.key("exception");
        write_object(writer, |writer| {
            for (slot, name) in ["class", "message", "backtrace"].into_iter().enumerate() {
                let Some(value) = exception[slot] else {
                    continue;
                };
                let key = writer.key(name);
                match (slot, value) {
                    (2, any_value::Value::StringValue(text)) => write_backtrace(writer, text)?,
                    (_, value) => write_any(writer, Some(value))?,
                }
                writer.end_key(key);
            }
            Ok(())
        })?;
        writer.end_key(key);
    }
    if let Some(resource) = context.resource {
        let key = writer.key("resource");
        writer.fragment(resource)?;
        writer.end_key(key);
    }
    let has_otel = record.severity_number != 0
        || !record.severity_text.is_empty()
        || !record.event_name.is_empty()
        || context.scope.is_some();
    if has_otel {
        let key = writer.key("otel");
        write_object(writer, |writer| {
            if record.severity_number != 0 {
                let key = writer.key("severity_number");
                writer.i64(record.severity_number.into());
                writer.end_key(key);
            }
            for (name, text) in [
                ("severity_text", &record.severity_text),
                ("event_name", &record.event_name),
            ] {
                if !text.is_empty() {
                    let key = writer.key(name);
                    writer.string(text);
                    writer.end_key(key);
                }
            }
            if let Some(scope) = context.scope {
                let key = writer.key("scope");
                writer.fragment(scope)?;
                writer.end_key(key);
            }
            Ok(())
        })?;
        writer.end_key(key);
    }
    if let Some(trace_id) = trace_id {
        let key = writer.key("trace_id");
        writer.string(trace_id);
        writer.end_key(key);
        let key = writer.key("trace_flags");
        writer.u64(u64::from(record.flags & 0xff));
        writer.end_key(key);
    }
    if let Some(span_id) = span_id {
        let key = writer.key("span_id");
        writer.string(span_id);
        writer.end_key(key);
    }
    Ok(())
}

/// An object one level down, its members written by `members`.
fn write_object(
    writer: &mut MetadataWriter,
    members: impl FnOnce(&mut MetadataWriter) -> Result<(), TooDeep>,
) -> Result<(), TooDeep> {
    writer.begin_object()?;
    members(writer)?;
    writer.end_object();
    Ok(())
}

/// A non-string body as JSON text, written as metadata values are.
fn body_json(value: &any_value::Value, limits: &EntryLimits) -> Result<String, String> {
    let mut writer = MetadataWriter::fragment_in(limits, 0, 0);
    let written = write_any(&mut writer, Some(value));
    writer
        .into_fragment()
        .into_json()
        .filter(|_| written.is_ok())
        .ok_or_else(|| {
            format!(
                "body: nested more than {} levels deep, at most {} allowed",
                limits.max_metadata_depth, limits.max_metadata_depth
            )
        })
}

/// The resource's `service.name`, or OTLP's fallback.
fn service_name(attributes: &[KeyValue]) -> &str {
    attributes
        .iter()
        .find(|pair| pair.key == "service.name")
        .and_then(|pair| match pair.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(name) if !name.trim().is_empty() => Some(name.as_str()),
            _ => None,
        })
        .unwrap_or(UNKNOWN_SERVICE)
}

/// The level for an OTLP severity: by number (1-8 DEBUG, TRACE included; 9-12 INFO;
/// 13-16 WARN; 17-20 ERROR; 21-24 FATAL), else by text, else INFO.
pub fn level(number: i32, text: &str) -> Level {
    match number {
        1..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => {
            let word = text.trim().trim_end_matches(|c: char| c.is_ascii_digit());
            let is = |name: &str| word.eq_ignore_ascii_case(name);
            if is("TRACE") || is("DEBUG") {
                Level::Debug
            } else if is("WARN") {
                Level::Warn
            } else if is("WARNING") {
                Level::Warning
            } else if is("ERROR") {
                Level::Error
            } else if is("FATAL") {
                Level::Fatal
            } else if is("CRITICAL") {
                Level::Critical
            } else {
                Level::Info
            }
        }
    }
}

/// `time_unix_nano`, else `observed_time_unix_nano`, else `now`.
fn timestamp(record: &LogRecord, now: DateTime<Utc>) -> DateTime<Utc> {
    [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&nanos| nanos != 0)
        .and_then(|nanos| {
            let secs = i64::try_from(nanos / 1_000_000_000).ok()?;
            DateTime::from_timestamp(secs, (nanos % 1_000_000_000) as u32)
        })
        .unwrap_or(now)
}

/// An id as lowercase hex written into `out` (twice its length); empty or all zeros is
/// no id (OTLP's "unset").
fn id_hex<'o>(bytes: &[u8], out: &'o mut [u8]) -> Result<Option<&'o str>, String> {
    let length = out.len() / 2;
    if bytes.is_empty() || bytes.iter().all(|&byte| byte == 0) && bytes.len() == length {
        return Ok(None);
    }
    if bytes.len() != length {
        return Err(format!(
            "must be {length} bytes ({} hex digits), got {} bytes",
            length * 2,
            bytes.len()
        ));
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    Ok(std::str::from_utf8(out).ok())
}

/// Attributes as one object (a repeated key is written twice; the stored `jsonb` keeps
/// the last).
fn write_attributes(writer: &mut MetadataWriter, attributes: &[KeyValue]) -> Result<(), TooDeep> {
    write_object(writer, |writer| {
        for pair in attributes {
            let key = writer.key(&pair.key);
            write_any(
                writer,
                pair.value.as_ref().and_then(|value| value.value.as_ref()),
            )?;
            writer.end_key(key);
        }
        Ok(())
    })
}

/// An `AnyValue` as the JSON type it holds: bytes as base64, a double that JSON cannot
/// hold as its name, an unset value as `null`.
fn write_any(writer: &mut MetadataWriter, value: Option<&any_value::Value>) -> Result<(), TooDeep> {
    match value {
        None | Some(any_value::Value::StringValueStrindex(_)) => writer.null(),
        Some(any_value::Value::StringValue(text)) => writer.string(text),
        Some(any_value::Value::BoolValue(flag)) => writer.bool(*flag),
        Some(any_value::Value::IntValue(number)) => writer.i64(*number),
        Some(any_value::Value::DoubleValue(number)) if number.is_finite() => writer.f64(*number),
        Some(any_value::Value::DoubleValue(number)) => writer.string(&number.to_string()),
        Some(any_value::Value::BytesValue(bytes)) => {
            writer.string(&base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Some(any_value::Value::ArrayValue(array)) => {
            writer.begin_array()?;
            for item in &array.values {
                write_any(writer, item.value.as_ref())?;
            }
            writer.end_array();
        }
        Some(any_value::Value::KvlistValue(list)) => write_attributes(writer, &list.values)?,
    }
    Ok(())
}

/// `exception.stacktrace` as the gem's backtrace: its first lines.
fn write_backtrace(writer: &mut MetadataWriter, text: &str) -> Result<(), TooDeep> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    /// A kvlist nested `levels` deep around a string.
    fn nested(levels: usize) -> any_value::Value {
        let mut value = any_value::Value::StringValue("leaf".into());
        for _ in 0..levels {
            value = any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..Default::default()
                }],
            });
        }
        value
    }

    fn mapped(records: Vec<LogRecord>, resource: Vec<KeyValue>) -> Vec<Result<String, String>> {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let now = Utc::now();
        let mut out = Vec::new();
        for_each_entry(&request, &EntryLimits::default(), now, |entry| {
            out.push(
                entry
                    .map(|entry| {
                        let metadata = entry.metadata().map_or("", |m| m.as_json());
                        format!("{}|{}", entry.message(), metadata)
                    })
                    .map_err(|problems| problems.join("; ")),
            )
        });
        out
    }

    #[test]
    fn attributes_and_bodies_nested_past_the_cap_refuse_their_record_only() {
        let depth = EntryLimits::default().max_metadata_depth;
        let record = |attribute: Option<any_value::Value>, body: any_value::Value| LogRecord {
            body: Some(AnyValue { value: Some(body) }),
            attributes: attribute
                .map(|value| KeyValue {
                    key: "a".into(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let text = |t: &str| any_value::Value::StringValue(t.into());
        let results = mapped(
            vec![
                // The top object is one level, the attribute's kvlists the rest.
                record(Some(nested(depth - 1)), text("fits")),
                record(Some(nested(depth)), text("too deep")),
                record(None, nested(depth)),
                record(None, nested(depth + 1)),
            ],
            vec![],
        );
        assert!(
            results[0]
                .as_ref()
                .is_ok_and(|row| row.starts_with("fits|")),
            "{results:?}"
        );
        assert!(
            results[1]
                .as_ref()
                .is_err_and(|problem| problem.starts_with("metadata: nested more than")),
            "{results:?}"
        );
        assert!(results[2].is_ok(), "{results:?}");
        assert!(
            results[3]
                .as_ref()
                .is_err_and(|problem| problem.starts_with("body: nested more than")),
            "{results:?}"
        );
    }

    #[test]
    fn secrets_are_filtered_in_attributes_resources_and_bodies() {
        let secret = |key: &str| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("s3cret".into())),
            }),
            ..Default::default()
        };
        let record = LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![secret("password")],
                })),
            }),
            attributes: vec![
                secret("db.password"),
                secret("http.request.header.authorization"),
            ],
            ..Default::default()
        };
        let results = mapped(
            vec![record],
            vec![secret("service.name"), secret("api_key")],
        );
        let row = results[0].as_ref().unwrap();
        // Once, as the resource's service name (which is not a secret's key).
        assert_eq!(row.matches("s3cret").count(), 1, "{row}");
        assert!(row.contains(r#""service.name":"s3cret""#), "{row}");
        assert_eq!(row.matches("[FILTERED]").count(), 4, "{row}");
    }

    #[test]
    fn severity_numbers_map_to_levels_and_text_is_the_fallback() {
        let by_number: Vec<&str> = (1..=24).map(|number| level(number, "").as_str()).collect();
        assert_eq!(&by_number[..8], ["DEBUG"; 8]);
        assert_eq!(&by_number[8..12], ["INFO"; 4]);
        assert_eq!(&by_number[12..16], ["WARN"; 4]);
        assert_eq!(&by_number[16..20], ["ERROR"; 4]);
        assert_eq!(&by_number[20..24], ["FATAL"; 4]);
        assert_eq!(level(0, "warning").as_str(), "WARNING");
        assert_eq!(level(0, "Trace2").as_str(), "DEBUG");
        assert_eq!(level(0, "something").as_str(), "INFO");
        assert_eq!(level(0, "").as_str(), "INFO");
        assert_eq!(level(9, "ERROR").as_str(), "INFO");
    }

    #[test]
    fn ids_are_hex_of_their_length_and_zeros_are_none() {
        let mut out = [0u8; 16];
        assert_eq!(id_hex(&[], &mut out).unwrap(), None);
        assert_eq!(id_hex(&[0; 8], &mut out).unwrap(), None);
        assert_eq!(
            id_hex(&[0xab, 1, 2, 3, 4, 5, 6, 0xff], &mut out).unwrap(),
            Some("ab010203040506ff")
        );
        assert!(id_hex(&[1, 2, 3], &mut out).is_err());
    }
}
