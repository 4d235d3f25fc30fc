//! The mapping of OTLP log records into the one entry model: resource `service.name`
//! (else `unknown_service`) -> service; `severity_number` (else `severity_text`) ->
//! level; `time_unix_nano`, else `observed_time_unix_nano`, else now -> timestamp;
//! the body (a string as it is, any other value as JSON) -> message; log attributes,
//! resource attributes, scope name and version, severity, trace and span ids ->
//! metadata, with `exception.type/message/stacktrace` as the `exception` details the
//! gem sends. Each entry then goes through the one validation every entry gets
//! (`LogEntry::parse`: sizes, timestamp window, metadata depth, sensitive keys). It
//! never touches storage or HTTP.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use log_ingestion_wire::WireEntry;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Map, Number, Value};

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
        let resource = attributes_object(&resource_attributes);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(|scope| {
                let mut object = Map::new();
                if !scope.name.is_empty() {
                    object.insert("name".to_owned(), Value::String(scope.name));
                }
                if !scope.version.is_empty() {
                    object.insert("version".to_owned(), Value::String(scope.version));
                }
                object
            });
            for record in scope_logs.log_records {
                let context = RecordContext {
                    service: &service,
                    resource: &resource,
                    scope: scope.as_ref(),
                };
                let entry = wire_entry(record, &context, now)
                    .and_then(|wire| LogEntry::parse(wire, limits, now));
                out.push(entry);
            }
        }
    }
    out
}

/// What a record takes from its resource and scope.
struct RecordContext<'a> {
    service: &'a str,
    resource: &'a Map<String, Value>,
    scope: Option<&'a Map<String, Value>>,
}

/// One record as the entry a client of the JSON API would have sent.
fn wire_entry(
    record: LogRecord,
    context: &RecordContext<'_>,
    now: DateTime<Utc>,
) -> Result<WireEntry, Vec<String>> {
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
            any_value_json(Some(value)).to_string()
        }
        _ if !record.event_name.is_empty() => record.event_name.clone(),
        _ => NO_BODY.to_owned(),
    };

    let mut metadata = Map::new();
    let mut exception = Map::new();
    for KeyValue { key, value, .. } in record.attributes {
        let value = any_value_json(value.and_then(|value| value.value));
        match key.as_str() {
            "exception.type" => {
                exception.insert("class".to_owned(), value);
            }
            "exception.message" => {
                exception.insert("message".to_owned(), value);
            }
            "exception.stacktrace" => {
                exception.insert("backtrace".to_owned(), backtrace(value));
            }
            _ => {
                metadata.insert(key, value);
            }
        }
    }
    if !exception.is_empty() {
        metadata.insert("exception".to_owned(), Value::Object(exception));
    }
    if !context.resource.is_empty() {
        metadata.insert(
            "resource".to_owned(),
            Value::Object(context.resource.clone()),
        );
    }
    let mut otel = Map::new();
    if record.severity_number != 0 {
        otel.insert(
            "severity_number".to_owned(),
            Value::from(record.severity_number),
        );
    }
    if !record.severity_text.is_empty() {
        otel.insert(
            "severity_text".to_owned(),
            Value::String(record.severity_text),
        );
    }
    if !record.event_name.is_empty() {
        otel.insert("event_name".to_owned(), Value::String(record.event_name));
    }
    if let Some(scope) = context.scope.filter(|scope| !scope.is_empty()) {
        otel.insert("scope".to_owned(), Value::Object(scope.clone()));
    }
    if !otel.is_empty() {
        metadata.insert("otel".to_owned(), Value::Object(otel));
    }
    if let Some(trace_id) = trace_id {
        metadata.insert("trace_id".to_owned(), Value::String(trace_id));
        metadata.insert("trace_flags".to_owned(), Value::from(record.flags & 0xff));
    }
    if let Some(span_id) = span_id {
        metadata.insert("span_id".to_owned(), Value::String(span_id));
    }

    Ok(WireEntry {
        timestamp,
        service: context.service.to_owned(),
        level: level.to_owned(),
        message,
        metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
    })
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

/// Attributes as one JSON object (a repeated key keeps its last value).
fn attributes_object(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|pair| {
            (
                pair.key.clone(),
                any_value_json(pair.value.clone().and_then(|value| value.value)),
            )
        })
        .collect()
}

/// An `AnyValue` as the JSON type it holds: bytes as base64, a double that JSON cannot
/// hold as its name, an unset value as `null`.
fn any_value_json(value: Option<any_value::Value>) -> Value {
    match value {
        None | Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::StringValue(text)) => Value::String(text),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(flag),
        Some(any_value::Value::IntValue(number)) => Value::from(number),
        Some(any_value::Value::DoubleValue(number)) => Number::from_f64(number)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(number.to_string())),
        Some(any_value::Value::BytesValue(bytes)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Some(any_value::Value::ArrayValue(array)) => Value::Array(
            array
                .values
                .into_iter()
                .map(|AnyValue { value }| any_value_json(value))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(list)) => Value::Object(
            list.values
                .into_iter()
                .map(|pair| (pair.key, any_value_json(pair.value.and_then(|v| v.value))))
                .collect(),
        ),
    }
}

/// `exception.stacktrace` as the gem's backtrace: its first lines.
fn backtrace(value: Value) -> Value {
    match value {
        Value::String(text) => Value::Array(
            text.lines()
                .map(str::trim_end)
                .filter(|line| !line.is_empty())
                .take(BACKTRACE_LINES)
                .map(|line| Value::String(line.to_owned()))
                .collect(),
        ),
        Value::Array(mut lines) => {
            lines.truncate(BACKTRACE_LINES);
            Value::Array(lines)
        }
        other => other,
    }
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
