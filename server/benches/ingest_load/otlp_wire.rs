//! The protocol an HTTP phase speaks, and the entries encoded as OTLP/HTTP bodies
//! (protobuf, and OTLP's JSON mapping) for the `otlp` phases.

use bytes::Bytes;
use log_ingestion_test_support::bench::{BenchError, Result};
use log_ingestion_wire::{WireEntry, BATCH_PATH};

/// The protocol a phase speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `POST /api/v1/logs/batch` with `{"logs": [...]}`.
    Json,
    /// `POST /v1/logs` with an OTLP `ExportLogsServiceRequest` in protobuf.
    OtlpProtobuf,
    /// The same request in OTLP/JSON.
    OtlpJson,
}

impl Wire {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Wire::Json => BATCH_PATH,
            Wire::OtlpProtobuf | Wire::OtlpJson => "/v1/logs",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Wire::Json | Wire::OtlpJson => "application/json",
            Wire::OtlpProtobuf => "application/x-protobuf",
        }
    }

    /// The phase's label in the table.
    pub(crate) fn label(self, batch_size: usize) -> String {
        match self {
            Wire::Json => format!("http b={batch_size}"),
            Wire::OtlpProtobuf => format!("otlp b={batch_size}"),
            Wire::OtlpJson => format!("otlpjson b={batch_size}"),
        }
    }
}

/// The same entries as OTLP bodies (`wire` says protobuf or JSON): one resource per
/// service in a batch, the severity number for the level, the metadata as typed
/// attributes.
pub(crate) fn encode_otlp_batches(
    entries: &[WireEntry],
    batch_size: usize,
    wire: Wire,
) -> Result<Vec<(usize, Bytes)>> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    let string = |text: &str| AnyValue {
        value: Some(any_value::Value::StringValue(text.to_owned())),
    };
    let any = |value: &serde_json::Value| AnyValue {
        value: Some(match value {
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => {
                any_value::Value::IntValue(n.as_i64().unwrap_or(i64::MAX))
            }
            serde_json::Value::Number(n) => {
                any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0))
            }
            serde_json::Value::String(text) => any_value::Value::StringValue(text.clone()),
            other => any_value::Value::StringValue(other.to_string()),
        }),
    };
    entries
        .chunks(batch_size)
        .map(|chunk| {
            let mut by_service: Vec<(String, Vec<LogRecord>)> = Vec::new();
            for entry in chunk {
                let nanos = chrono::DateTime::parse_from_rfc3339(&entry.timestamp)
                    .map_err(|error| BenchError::Setup(format!("timestamp: {error}")))?
                    .timestamp_nanos_opt()
                    .unwrap_or_default() as u64;
                let severity_number = match entry.level.as_str() {
                    "DEBUG" => 5,
                    "WARN" => 13,
                    "ERROR" => 17,
                    _ => 9,
                };
                let attributes = entry
                    .metadata
                    .as_ref()
                    .and_then(|metadata| metadata.as_object())
                    .map(|object| {
                        object
                            .iter()
                            .map(|(key, value)| KeyValue {
                                key: key.clone(),
                                value: Some(any(value)),
                                ..Default::default()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let record = LogRecord {
                    time_unix_nano: nanos,
                    severity_number,
                    body: Some(string(&entry.message)),
                    attributes,
                    ..Default::default()
                };
                match by_service
                    .iter_mut()
                    .find(|(service, _)| *service == entry.service)
                {
                    Some((_, records)) => records.push(record),
                    None => by_service.push((entry.service.clone(), vec![record])),
                }
            }
            let request = ExportLogsServiceRequest {
                resource_logs: by_service
                    .into_iter()
                    .map(|(service, log_records)| ResourceLogs {
                        resource: Some(Resource {
                            attributes: vec![KeyValue {
                                key: "service.name".into(),
                                value: Some(string(&service)),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        scope_logs: vec![ScopeLogs {
                            log_records,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            };
            let body = match wire {
                Wire::OtlpJson => serde_json::to_vec(&otlp_json(&request))?,
                _ => request.encode_to_vec(),
            };
            Ok((chunk.len(), Bytes::from(body)))
        })
        .collect()
}

/// A request in OTLP/JSON (lowerCamelCase keys, 64-bit integers as strings), for the
/// fields the bench's requests use.
fn otlp_json(
    request: &opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
) -> serde_json::Value {
    use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
    use serde_json::json;

    let attributes = |pairs: &[KeyValue]| -> Vec<serde_json::Value> {
        pairs
            .iter()
            .map(|pair| {
                let value = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
                    Some(any_value::Value::IntValue(n)) => json!({"intValue": n.to_string()}),
                    Some(any_value::Value::DoubleValue(n)) => json!({"doubleValue": n}),
                    Some(any_value::Value::StringValue(text)) => json!({"stringValue": text}),
                    _ => json!({}),
                };
                json!({"key": pair.key, "value": value})
            })
            .collect()
    };
    let resource_logs: Vec<serde_json::Value> = request
        .resource_logs
        .iter()
        .map(|resource_logs| {
            let scope_logs: Vec<serde_json::Value> = resource_logs
                .scope_logs
                .iter()
                .map(|scope_logs| {
                    let records: Vec<serde_json::Value> = scope_logs
                        .log_records
                        .iter()
                        .map(|record| {
                            let body = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                                Some(any_value::Value::StringValue(text)) => {
                                    json!({"stringValue": text})
                                }
                                _ => json!({}),
                            };
                            json!({
                                "timeUnixNano": record.time_unix_nano.to_string(),
                                "severityNumber": record.severity_number,
                                "body": body,
                                "attributes": attributes(&record.attributes),
                            })
                        })
                        .collect();
                    json!({"logRecords": records})
                })
                .collect();
            let resource = resource_logs
                .resource
                .as_ref()
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            json!({"resource": {"attributes": resource}, "scopeLogs": scope_logs})
        })
        .collect();
    json!({ "resourceLogs": resource_logs })
}
