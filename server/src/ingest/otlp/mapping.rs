//! The mapping of OTLP log records into the one entry model: resource `service.name`
//! (else `unknown_service`) -> service; `severity_number` (else `severity_text`) ->
//! level; `time_unix_nano`, else `observed_time_unix_nano`, else now -> timestamp;
//! the body (a string as it is, any other value as JSON) -> message; log attributes,
//! resource attributes, scope name and version, severity, trace and span ids ->
//! metadata, with `exception.type/message/stacktrace` as the `exception` details the
//! gem sends. Each entry then goes through the one validation every entry gets
//! (`LogEntry::parse`: sizes, timestamp window, metadata depth, sensitive keys). It
//! never touches storage or HTTP.

use std::io::Write as _;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::value::RawValue;

use crate::config::EntryLimits;
use crate::domain::LogEntry;

/// OTLP's service name when a resource has none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// The message of a record without a body or event name.
pub const NO_BODY: &str = "(no body)";
/// Backtrace lines kept from `exception.stacktrace`, as many as the gem sends.
const BACKTRACE_LINES: usize = 10;
/// Trace ids are 16 bytes, span ids 8 (OTLP); empty means none.
const TRACE_ID_BYTES: usize = 16;
const SPAN_ID_BYTES: usize = 8;

/// Every record of `request` as a valid entry, or the problems that refuse it, in
/// the request's order.
pub fn entries(
    request: ExportLogsServiceRequest,
    limits: &EntryLimits,
    now: DateTime<Utc>,
) -> Vec<Result<LogEntry<'static>, Vec<String>>> {
    let mut out = Vec::new();
    for resource_logs in request.resource_logs {
        let resource_attributes = resource_logs
            .resource
            .map(|resource| resource.attributes)
            .unwrap_or_default();
        let service = service_name(&resource_attributes);
        // Written once per resource and scope, copied into each record's metadata.
        let resource = (!resource_attributes.is_empty()).then(|| {
            let mut text = Vec::new();
            write_attributes(&mut text, &resource_attributes);
            text
        });
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.and_then(|scope| {
                let mut object = JsonObject::new();
                if !scope.name.is_empty() {
                    write_string(object.key("name"), &scope.name);
                }
                if !scope.version.is_empty() {
                    write_string(object.key("version"), &scope.version);
                }
                object.finish_unless_empty()
            });
            let context = RecordContext {
                service: &service,
                resource: resource.as_deref(),
                scope: scope.as_deref(),
            };
            for record in scope_logs.log_records {
                out.push(entry(record, &context, limits, now));
            }
        }
    }
    out
}

/// What a record takes from its resource and scope: the service, and the resource's
/// attributes and the scope as JSON objects.
struct RecordContext<'a> {
    service: &'a str,
    resource: Option<&'a [u8]>,
    scope: Option<&'a [u8]>,
}

/// A JSON object written key by key.
struct JsonObject {
    out: Vec<u8>,
    empty: bool,
}

impl JsonObject {
    fn new() -> Self {
        JsonObject {
            out: b"{".to_vec(),
            empty: true,
        }
    }

    /// Writes `"key":` and returns the buffer for its value.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        write_string(&mut self.out, key);
        self.out.push(b':');
        &mut self.out
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }

    fn finish_unless_empty(self) -> Option<Vec<u8>> {
        (!self.empty).then(|| self.finish())
    }
}

/// One record as a validated entry, its metadata written as JSON text and read by the
/// same validation as every entry's.
fn entry(
    record: LogRecord,
    context: &RecordContext<'_>,
    limits: &EntryLimits,
    now: DateTime<Utc>,
) -> Result<LogEntry<'static>, Vec<String>> {
    let mut problems = Vec::new();
    let trace_id = id_hex(&record.trace_id, TRACE_ID_BYTES)
        .map_err(|problem| problems.push(format!("trace_id: {problem}")))
        .ok()
        .flatten();
    let span_id = id_hex(&record.span_id, SPAN_ID_BYTES)
        .map_err(|problem| problems.push(format!("span_id: {problem}")))
        .ok()
        .flatten();
    if !problems.is_empty() {
        return Err(problems);
    }
    let timestamp = timestamp(&record, now);
    let level = level(record.severity_number, &record.severity_text);
    let message = match record.body.and_then(|body| body.value) {
        Some(any_value::Value::StringValue(text)) if !text.is_empty() => text,
        Some(value) if !matches!(value, any_value::Value::StringValue(_)) => {
            let mut text = Vec::new();
            write_any(&mut text, Some(&value));
            String::from_utf8_lossy(&text).into_owned()
        }
        _ if !record.event_name.is_empty() => record.event_name.clone(),
        _ => NO_BODY.to_owned(),
    };

    let mut metadata = JsonObject::new();
    let mut exception: [Option<&any_value::Value>; 3] = [None; 3];
    let mut exception_set = false;
    for KeyValue { key, value, .. } in &record.attributes {
        let value = value.as_ref().and_then(|value| value.value.as_ref());
        let slot = match key.as_str() {
            "exception.type" => 0,
            "exception.message" => 1,
            "exception.stacktrace" => 2,
            _ => {
                write_any(metadata.key(key), value);
                continue;
            }
        };
        exception[slot] = value;
        exception_set = true;
    }
    if exception_set {
        let mut details = JsonObject::new();
        for (slot, name) in ["class", "message", "backtrace"].into_iter().enumerate() {
            let value = exception[slot];
            match (slot, value) {
                (2, Some(any_value::Value::StringValue(text))) => {
                    write_backtrace(details.key(name), text)
                }
                (_, Some(value)) => write_any(details.key(name), Some(value)),
                (_, None) => {}
            }
        }
        metadata
            .key("exception")
            .extend_from_slice(&details.finish());
    }
    if let Some(resource) = context.resource {
        metadata.key("resource").extend_from_slice(resource);
    }
    let mut otel = JsonObject::new();
    if record.severity_number != 0 {
        let _ = write!(otel.key("severity_number"), "{}", record.severity_number);
    }
    if !record.severity_text.is_empty() {
        write_string(otel.key("severity_text"), &record.severity_text);
    }
    if !record.event_name.is_empty() {
        write_string(otel.key("event_name"), &record.event_name);
    }
    if let Some(scope) = context.scope {
        otel.key("scope").extend_from_slice(scope);
    }
    if let Some(otel) = otel.finish_unless_empty() {
        metadata.key("otel").extend_from_slice(&otel);
    }
    if let Some(trace_id) = &trace_id {
        write_string(metadata.key("trace_id"), trace_id);
        let _ = write!(metadata.key("trace_flags"), "{}", record.flags & 0xff);
    }
    if let Some(span_id) = &span_id {
        write_string(metadata.key("span_id"), span_id);
    }
    let metadata = metadata
        .finish_unless_empty()
        .map(|text| {
            // The writer's own JSON: valid UTF-8, since every string went through serde_json.
            String::from_utf8(text)
                .ok()
                .and_then(|text| RawValue::from_string(text).ok())
                .ok_or_else(|| vec!["metadata: could not be written as JSON".to_owned()])
        })
        .transpose()?;
    LogEntry::from_decoded(
        &timestamp,
        context.service.to_owned(),
        level,
        message,
        metadata.as_deref(),
        limits,
        now,
    )
}

/// The resource's `service.name`, or OTLP's fallback.
fn service_name(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .find(|pair| pair.key == "service.name")
        .and_then(|pair| match pair.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(name) if !name.trim().is_empty() => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned())
}

/// The level for an OTLP severity: by number (1-8 DEBUG, TRACE included; 9-12 INFO;
/// 13-16 WARN; 17-20 ERROR; 21-24 FATAL), else by text, else INFO.
pub fn level(number: i32, text: &str) -> &'static str {
    match number {
        1..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => {
            let word = text
                .trim()
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_ascii_uppercase();
            match word.as_str() {
                "TRACE" | "DEBUG" => "DEBUG",
                "WARN" => "WARN",
                "WARNING" => "WARNING",
                "ERROR" => "ERROR",
                "FATAL" => "FATAL",
                "CRITICAL" => "CRITICAL",
                _ => "INFO",
            }
        }
    }
}

/// `time_unix_nano`, else `observed_time_unix_nano`, else `now`, as RFC 3339.
fn timestamp(record: &LogRecord, now: DateTime<Utc>) -> String {
    let nanos = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&nanos| nanos != 0);
    let time = nanos
        .and_then(|nanos| {
            let secs = i64::try_from(nanos / 1_000_000_000).ok()?;
            DateTime::from_timestamp(secs, (nanos % 1_000_000_000) as u32)
        })
        .unwrap_or(now);
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// An id as lowercase hex; empty or all zeros is no id (OTLP's "unset").
fn id_hex(bytes: &[u8], length: usize) -> Result<Option<String>, String> {
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
    Ok(Some(
        bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
    ))
}

/// Attributes as one JSON object (a repeated key is written twice; the stored `jsonb`
/// keeps the last).
fn write_attributes(out: &mut Vec<u8>, attributes: &[KeyValue]) {
    let mut object = JsonObject::new();
    for pair in attributes {
        write_any(
            object.key(&pair.key),
            pair.value.as_ref().and_then(|value| value.value.as_ref()),
        );
    }
    out.extend_from_slice(&object.finish());
}

/// `text` as a JSON string.
fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// An `AnyValue` as the JSON type it holds: bytes as base64, a double that JSON cannot
/// hold as its name, an unset value as `null`.
fn write_any(out: &mut Vec<u8>, value: Option<&any_value::Value>) {
    match value {
        None | Some(any_value::Value::StringValueStrindex(_)) => out.extend_from_slice(b"null"),
        Some(any_value::Value::StringValue(text)) => write_string(out, text),
        Some(any_value::Value::BoolValue(flag)) => {
            out.extend_from_slice(if *flag { b"true" } else { b"false" })
        }
        Some(any_value::Value::IntValue(number)) => {
            let _ = write!(out, "{number}");
        }
        Some(any_value::Value::DoubleValue(number)) if number.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, number);
        }
        Some(any_value::Value::DoubleValue(number)) => write_string(out, &number.to_string()),
        Some(any_value::Value::BytesValue(bytes)) => write_string(
            out,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
        Some(any_value::Value::ArrayValue(array)) => {
            out.push(b'[');
            for (index, item) in array.values.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_any(out, item.value.as_ref());
            }
            out.push(b']');
        }
        Some(any_value::Value::KvlistValue(list)) => write_attributes(out, &list.values),
    }
}

/// `exception.stacktrace` as the gem's backtrace: its first lines.
fn write_backtrace(out: &mut Vec<u8>, text: &str) {
    out.push(b'[');
    let lines = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .take(BACKTRACE_LINES);
    for (index, line) in lines.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, line);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_numbers_map_to_levels_and_text_is_the_fallback() {
        let by_number: Vec<&str> = (1..=24).map(|number| level(number, "")).collect();
        assert_eq!(&by_number[..8], ["DEBUG"; 8]);
        assert_eq!(&by_number[8..12], ["INFO"; 4]);
        assert_eq!(&by_number[12..16], ["WARN"; 4]);
        assert_eq!(&by_number[16..20], ["ERROR"; 4]);
        assert_eq!(&by_number[20..24], ["FATAL"; 4]);
        assert_eq!(level(0, "warning"), "WARNING");
        assert_eq!(level(0, "Trace2"), "DEBUG");
        assert_eq!(level(0, "something"), "INFO");
        assert_eq!(level(0, ""), "INFO");
        assert_eq!(level(9, "ERROR"), "INFO");
    }

    #[test]
    fn ids_are_hex_of_their_length_and_zeros_are_none() {
        assert_eq!(id_hex(&[], 8).unwrap(), None);
        assert_eq!(id_hex(&[0; 8], 8).unwrap(), None);
        assert_eq!(
            id_hex(&[0xab, 1, 2, 3, 4, 5, 6, 0xff], 8)
                .unwrap()
                .as_deref(),
            Some("ab010203040506ff")
        );
        assert!(id_hex(&[1, 2, 3], 8).is_err());
    }
}
