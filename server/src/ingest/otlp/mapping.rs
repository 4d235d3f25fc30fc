//! The mapping of one OTLP log record into the one entry model: resource
//! `service.name` (else `unknown_service`) -> service; `severity_number` (else
//! `severity_text`) -> level; `time_unix_nano`, else `observed_time_unix_nano`, else
//! now -> timestamp; the body (a string as it is, any other value as JSON) -> message;
//! everything else -> metadata (`metadata`). A record is mapped straight into the
//! validated form, in one pass: the entry is checked by `LogEntry::from_decoded` (the
//! timestamp window, service, message) with its text borrowed from the record's view
//! (`view`: the body or `prost`'s messages). A resource's attributes and a scope are
//! written once and put into each record's metadata. It never touches storage or HTTP.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use log_ingestion_wire::Level;

use super::metadata::{self, Halt, Shared};
use super::sensitive_keys::SensitiveKeys;
use super::view::{Any, Pairs, Record};
use super::wire::Malformed;
use crate::config::EntryLimits;
use crate::domain::{LogEntry, MetadataFragment, MetadataWriter};

/// OTLP's service name when a resource has none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// The message of a record without a body or event name.
pub const NO_BODY: &str = "(no body)";
/// Trace ids are 16 bytes, span ids 8 (OTLP); empty means none.
const TRACE_ID_BYTES: usize = 16;
const SPAN_ID_BYTES: usize = 8;
/// The depth of the top metadata object, and of the `otel` object in it: the
/// containers the resource and scope fragments are written for.
const TOP_DEPTH: usize = 1;
const OTEL_DEPTH: usize = 2;
/// Bytes reserved for a record's metadata besides the resource's.
const METADATA_CAPACITY: usize = 256;

/// A record mapped: the valid entry (its text borrowed from the request), or the
/// problems that refuse it.
pub type Mapped<'a> = Result<LogEntry<'a>, Vec<String>>;

/// Maps one request's records under the limits, with one reference time.
pub struct Mapper<'l> {
    limits: &'l EntryLimits,
    now: DateTime<Utc>,
    keys: SensitiveKeys,
}

/// What a resource gives its records: the service, and its attributes written ahead.
pub struct ResourceContext<'a> {
    pub service: &'a str,
    pub attributes: Option<MetadataFragment>,
}

impl<'l> Mapper<'l> {
    pub fn new(limits: &'l EntryLimits, now: DateTime<Utc>) -> Self {
        Mapper {
            limits,
            now,
            keys: SensitiveKeys::default(),
        }
    }

    /// A resource's service and attributes.
    pub fn resource<'a>(&self, attributes: Pairs<'a>) -> Result<ResourceContext<'a>, Malformed> {
        let service = match attributes.find("service.name")? {
            Some(Some(Any::String(name))) if !name.trim().is_empty() => name,
            _ => UNKNOWN_SERVICE,
        };
        let attributes = if attributes.is_empty() {
            None
        } else {
            let mut writer = MetadataWriter::fragment_in(self.limits, TOP_DEPTH, 0);
            match metadata::write_attributes(&mut writer, attributes) {
                Ok(()) => {}
                // Stopped before the last pair: the rest's texts are checked all the same.
                Err(Halt::TooDeep) => attributes.check_texts()?,
                Err(Halt::Malformed(error)) => return Err(error),
            }
            Some(writer.into_fragment())
        };
        Ok(ResourceContext {
            service,
            attributes,
        })
    }

    /// A scope's name and version, when it has either.
    pub fn scope(&self, name: &str, version: &str) -> Option<MetadataFragment> {
        if name.is_empty() && version.is_empty() {
            return None;
        }
        let mut writer = MetadataWriter::fragment_in(self.limits, OTEL_DEPTH, 0);
        let _ = metadata::write_scope(&mut writer, name, version);
        Some(writer.into_fragment())
    }

    /// One record as a validated entry. A record refused before its attributes were all
    /// read has their texts checked all the same (`protobuf::check` leaves them to the
    /// mapping).
    pub fn entry<'a>(
        &self,
        record: &Record<'a>,
        resource: &ResourceContext<'a>,
        scope: Option<&MetadataFragment>,
    ) -> Result<Mapped<'a>, Malformed> {
        let mut attributes_read = false;
        let mapped = self.map_entry(record, resource, scope, &mut attributes_read)?;
        if !attributes_read {
            record.attributes.check_texts()?;
        }
        Ok(mapped)
    }

    fn map_entry<'a>(
        &self,
        record: &Record<'a>,
        resource: &ResourceContext<'a>,
        scope: Option<&MetadataFragment>,
        attributes_read: &mut bool,
    ) -> Result<Mapped<'a>, Malformed> {
        let limits = self.limits;
        let mut problems = Vec::new();
        let mut trace_id = [0u8; 2 * TRACE_ID_BYTES];
        let trace_id = id_hex(record.trace_id, &mut trace_id)
            .map_err(|problem| problems.push(format!("trace_id: {problem}")))
            .ok()
            .flatten();
        let mut span_id = [0u8; 2 * SPAN_ID_BYTES];
        let span_id = id_hex(record.span_id, &mut span_id)
            .map_err(|problem| problems.push(format!("span_id: {problem}")))
            .ok()
            .flatten();
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let message = match record.body {
            Some(Any::String(text)) if !text.is_empty() => Cow::Borrowed(text),
            Some(value) if !matches!(value, Any::String(_)) => {
                match metadata::body_json(value, limits)? {
                    Ok(json) => Cow::Owned(json),
                    Err(problem) => return Ok(Err(vec![problem])),
                }
            }
            _ if !record.event_name.is_empty() => Cow::Borrowed(record.event_name),
            _ => Cow::Borrowed(NO_BODY),
        };
        let shared = Shared {
            resource: resource.attributes.as_ref(),
            scope,
            keys: &self.keys,
        };
        let mut writer = MetadataWriter::new(
            limits,
            METADATA_CAPACITY + shared.resource.map_or(0, MetadataFragment::len),
        );
        match metadata::write_record(&mut writer, record, &shared, trace_id, span_id) {
            Ok(()) => *attributes_read = true,
            Err(Halt::TooDeep) => {}
            Err(Halt::Malformed(error)) => return Err(error),
        }
        Ok(LogEntry::from_decoded(
            timestamp(record, self.now),
            resource.service,
            level(record.severity_number, record.severity_text),
            message,
            writer.finish(),
            limits,
            self.now,
        ))
    }
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
fn timestamp(record: &Record<'_>, now: DateTime<Utc>) -> DateTime<Utc> {
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

#[cfg(test)]
mod tests {
    use super::super::records;
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
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
        let limits = EntryLimits::default();
        let mapper = Mapper::new(&limits, Utc::now());
        let mut out = Vec::new();
        let walked = records::for_each_decoded(&request, mapper, |entry| {
            out.push(
                entry
                    .map(|entry| {
                        let metadata = entry.metadata().map_or("", |m| m.as_json());
                        format!("{}|{}", entry.message(), metadata)
                    })
                    .map_err(|problems| problems.join("; ")),
            )
        });
        assert_eq!(walked, Ok(()));
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
        // The second record's keys are judged by the answers remembered for the first.
        let results = mapped(
            vec![record.clone(), record],
            vec![secret("service.name"), secret("api_key")],
        );
        assert_eq!(results.len(), 2);
        for row in &results {
            let row = row.as_ref().unwrap();
            // Once, as the resource's service name (which is not a secret's key).
            assert_eq!(row.matches("s3cret").count(), 1, "{row}");
            assert!(row.contains(r#""service.name":"s3cret""#), "{row}");
            assert_eq!(row.matches("[FILTERED]").count(), 4, "{row}");
        }
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
