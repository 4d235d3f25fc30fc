//! OTLP/JSON decoding of an `ExportLogsServiceRequest` into the protobuf types
//! (`opentelemetry_proto`'s prost messages), so one mapping serves both encodings.
//! Its own serde types rather than the crate's `with-serde` derive, which refuses
//! what OTLP/JSON allows: `null` for any field (proto3 JSON reads it as the default),
//! and which cannot stop counting records at the request cap while parsing. It reads
//! lowerCamelCase keys (and the proto field names), ids as hex, 64-bit integers as
//! strings or numbers, enums as integers, and ignores unknown fields. It never
//! builds more log records than the cap plus one, never builds lists whose elements
//! take more memory than [`EXPANSION`] times the body (an element as short as `{}`
//! becomes a struct of ~100 bytes: lists are charged as they are read), and never
//! validates a record (an id of the wrong length is the mapping's refusal of that record).

use std::cell::Cell;
use std::fmt;

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// Why a JSON body is not a request.
#[derive(Debug, thiserror::Error)]
pub enum JsonRequestError {
    #[error("{0}")]
    Malformed(String),
    #[error("a request may hold at most {max} log records (got more)")]
    TooManyRecords { max: usize },
    #[error(
        "the request's lists (resources, scopes, records, attributes, values) hold more \
         elements than a body of its size may ({max_bytes} bytes of them)"
    )]
    TooManyElements { max_bytes: usize },
}

/// The memory the parsed lists may take, per byte of body (plus [`EXPANSION_FLOOR`]).
pub const EXPANSION: usize = 8;
const EXPANSION_FLOOR: usize = 1 << 20;

thread_local! {
    /// Records still allowed in the body being parsed on this thread.
    static RECORDS_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Bytes of list elements still allowed in the body being parsed on this thread.
    static ELEMENT_BYTES_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Charges one element of `T` against the body's budget; false once it is spent.
fn charge<T>() -> bool {
    ELEMENT_BYTES_LEFT.with(|left| {
        let cost = std::mem::size_of::<T>().max(1);
        match left.get().checked_sub(cost) {
            Some(rest) => {
                left.set(rest);
                true
            }
            None => {
                left.set(0);
                false
            }
        }
    })
}

/// Decodes an OTLP/JSON body holding at most `max_records` log records.
pub fn decode(
    body: &[u8],
    max_records: usize,
) -> Result<ExportLogsServiceRequest, JsonRequestError> {
    let max_bytes = body
        .len()
        .saturating_mul(EXPANSION)
        .saturating_add(EXPANSION_FLOOR);
    RECORDS_LEFT.with(|left| left.set(max_records));
    ELEMENT_BYTES_LEFT.with(|left| left.set(max_bytes));
    let parsed = serde_json::from_slice::<JsonRequest>(body);
    let exhausted = RECORDS_LEFT.with(|left| left.replace(usize::MAX)) == 0;
    let spent = ELEMENT_BYTES_LEFT.with(|left| left.replace(usize::MAX)) == 0;
    match parsed {
        Ok(request) => Ok(request.into_proto()),
        Err(_) if exhausted => Err(JsonRequestError::TooManyRecords { max: max_records }),
        Err(_) if spent => Err(JsonRequestError::TooManyElements { max_bytes }),
        Err(error) => Err(JsonRequestError::Malformed(error.to_string())),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonRequest {
    #[serde(alias = "resource_logs")]
    resource_logs: Option<Charged<JsonResourceLogs>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonResourceLogs {
    resource: Option<JsonResource>,
    #[serde(alias = "scope_logs")]
    scope_logs: Option<Charged<JsonScopeLogs>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonResource {
    attributes: Option<Charged<JsonKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JsonU64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonScopeLogs {
    scope: Option<JsonScope>,
    #[serde(alias = "log_records")]
    log_records: Option<CountedRecords>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonScope {
    name: Option<String>,
    version: Option<String>,
    attributes: Option<Charged<JsonKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JsonU64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonLogRecord {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<JsonU64>,
    #[serde(alias = "observed_time_unix_nano")]
    observed_time_unix_nano: Option<JsonU64>,
    #[serde(alias = "severity_number")]
    severity_number: Option<JsonU64>,
    #[serde(alias = "severity_text")]
    severity_text: Option<String>,
    body: Option<JsonAnyValue>,
    attributes: Option<Charged<JsonKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JsonU64>,
    flags: Option<JsonU64>,
    #[serde(alias = "trace_id")]
    trace_id: Option<String>,
    #[serde(alias = "span_id")]
    span_id: Option<String>,
    #[serde(alias = "event_name")]
    event_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonKeyValue {
    key: Option<String>,
    value: Option<JsonAnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JsonAnyValue {
    #[serde(alias = "string_value")]
    string_value: Option<String>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value")]
    int_value: Option<JsonI64>,
    #[serde(alias = "double_value")]
    double_value: Option<JsonF64>,
    #[serde(alias = "array_value")]
    array_value: Option<JsonValues<JsonAnyValue>>,
    #[serde(alias = "kvlist_value")]
    kvlist_value: Option<JsonValues<JsonKeyValue>>,
    #[serde(alias = "bytes_value")]
    bytes_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct JsonValues<T> {
    #[serde(default)]
    values: Option<Charged<T>>,
}

/// A 64-bit unsigned integer as a number or a decimal string.
#[derive(Default, Clone, Copy)]
struct JsonU64(u64);

/// A 64-bit signed integer as a number or a decimal string.
#[derive(Default, Clone, Copy)]
struct JsonI64(i64);

/// A double as a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
#[derive(Default, Clone, Copy)]
struct JsonF64(f64);

/// A record list that counts its records against the thread's budget while parsing.
#[derive(Default)]
struct CountedRecords(Vec<JsonLogRecord>);

/// A list whose elements are charged against the body's budget as they are read.
struct Charged<T>(Vec<T>);

impl<T> Default for Charged<T> {
    fn default() -> Self {
        Charged(Vec::new())
    }
}

impl<T> IntoIterator for Charged<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Charged<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Charged<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Charged<T>, A::Error> {
                let mut elements = Vec::new();
                while let Some(element) = seq.next_element::<T>()? {
                    if !charge::<T>() {
                        return Err(de::Error::custom("too many list elements"));
                    }
                    elements.push(element);
                }
                Ok(Charged(elements))
            }
        }
        deserializer.deserialize_seq(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for JsonU64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonU64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned integer or a string holding one")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonU64, E> {
                Ok(JsonU64(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonU64, E> {
                u64::try_from(value)
                    .map(JsonU64)
                    .map_err(|_| E::custom("a negative number where an unsigned one belongs"))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonU64, E> {
                if value.fract() == 0.0 && value >= 0.0 && value < u64::MAX as f64 {
                    Ok(JsonU64(value as u64))
                } else {
                    Err(E::custom("not an unsigned integer"))
                }
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<JsonU64, E> {
                value
                    .trim()
                    .parse()
                    .map(JsonU64)
                    .map_err(|_| E::custom("a string that is not an unsigned integer"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for JsonI64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonI64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string holding one")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonI64, E> {
                Ok(JsonI64(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonI64, E> {
                i64::try_from(value)
                    .map(JsonI64)
                    .map_err(|_| E::custom("an integer out of the 64-bit range"))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonI64, E> {
                if value.fract() == 0.0 && value.abs() < i64::MAX as f64 {
                    Ok(JsonI64(value as i64))
                } else {
                    Err(E::custom("not an integer"))
                }
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<JsonI64, E> {
                value
                    .trim()
                    .parse()
                    .map(JsonI64)
                    .map_err(|_| E::custom("a string that is not an integer"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonF64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonF64, E> {
                Ok(JsonF64(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonF64, E> {
                Ok(JsonF64(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonF64, E> {
                Ok(JsonF64(value as f64))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<JsonF64, E> {
                match value {
                    "NaN" => Ok(JsonF64(f64::NAN)),
                    "Infinity" => Ok(JsonF64(f64::INFINITY)),
                    "-Infinity" => Ok(JsonF64(f64::NEG_INFINITY)),
                    other => other
                        .trim()
                        .parse()
                        .map(JsonF64)
                        .map_err(|_| E::custom("a string that is not a number")),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for CountedRecords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CountedRecords;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of log records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CountedRecords, A::Error> {
                let mut records = Vec::new();
                loop {
                    let left = RECORDS_LEFT.with(Cell::get);
                    if left == 0 {
                        // One more element means one record too many.
                        if seq.next_element::<de::IgnoredAny>()?.is_some() {
                            return Err(de::Error::custom("too many log records"));
                        }
                        break;
                    }
                    match seq.next_element::<JsonLogRecord>()? {
                        Some(_) if !charge::<JsonLogRecord>() => {
                            return Err(de::Error::custom("too many list elements"));
                        }
                        Some(record) => {
                            RECORDS_LEFT.with(|cell| cell.set(left - 1));
                            records.push(record);
                        }
                        None => break,
                    }
                }
                Ok(CountedRecords(records))
            }
        }
        deserializer.deserialize_seq(V)
    }
}

impl JsonRequest {
    fn into_proto(self) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: self
                .resource_logs
                .unwrap_or_default()
                .into_iter()
                .map(JsonResourceLogs::into_proto)
                .collect(),
        }
    }
}

impl JsonResourceLogs {
    fn into_proto(self) -> ResourceLogs {
        ResourceLogs {
            resource: self.resource.map(|resource| Resource {
                attributes: key_values(resource.attributes),
                dropped_attributes_count: small(resource.dropped_attributes_count),
                entity_refs: Vec::new(),
            }),
            scope_logs: self
                .scope_logs
                .unwrap_or_default()
                .into_iter()
                .map(JsonScopeLogs::into_proto)
                .collect(),
            schema_url: self.schema_url.unwrap_or_default(),
        }
    }
}

impl JsonScopeLogs {
    fn into_proto(self) -> ScopeLogs {
        ScopeLogs {
            scope: self.scope.map(|scope| InstrumentationScope {
                name: scope.name.unwrap_or_default(),
                version: scope.version.unwrap_or_default(),
                attributes: key_values(scope.attributes),
                dropped_attributes_count: small(scope.dropped_attributes_count),
            }),
            log_records: self
                .log_records
                .unwrap_or_default()
                .0
                .into_iter()
                .map(JsonLogRecord::into_proto)
                .collect(),
            schema_url: self.schema_url.unwrap_or_default(),
        }
    }
}

impl JsonLogRecord {
    fn into_proto(self) -> LogRecord {
        LogRecord {
            time_unix_nano: self.time_unix_nano.unwrap_or_default().0,
            observed_time_unix_nano: self.observed_time_unix_nano.unwrap_or_default().0,
            severity_number: i32::try_from(self.severity_number.unwrap_or_default().0)
                .unwrap_or(i32::MAX),
            severity_text: self.severity_text.unwrap_or_default(),
            body: self.body.map(JsonAnyValue::into_proto),
            attributes: key_values(self.attributes),
            dropped_attributes_count: small(self.dropped_attributes_count),
            flags: small(self.flags),
            trace_id: hex_id(self.trace_id),
            span_id: hex_id(self.span_id),
            event_name: self.event_name.unwrap_or_default(),
        }
    }
}

impl JsonAnyValue {
    fn into_proto(self) -> AnyValue {
        let value = if let Some(text) = self.string_value {
            Some(any_value::Value::StringValue(text))
        } else if let Some(flag) = self.bool_value {
            Some(any_value::Value::BoolValue(flag))
        } else if let Some(JsonI64(number)) = self.int_value {
            Some(any_value::Value::IntValue(number))
        } else if let Some(JsonF64(number)) = self.double_value {
            Some(any_value::Value::DoubleValue(number))
        } else if let Some(array) = self.array_value {
            Some(any_value::Value::ArrayValue(ArrayValue {
                values: array
                    .values
                    .unwrap_or_default()
                    .into_iter()
                    .map(JsonAnyValue::into_proto)
                    .collect(),
            }))
        } else if let Some(list) = self.kvlist_value {
            Some(any_value::Value::KvlistValue(KeyValueList {
                values: key_values(list.values),
            }))
        } else {
            // Bytes that are not base64 are kept as the text that was sent.
            self.bytes_value.map(|text| {
                any_value::Value::BytesValue(
                    base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .unwrap_or_else(|_| text.into_bytes()),
                )
            })
        };
        AnyValue { value }
    }
}

fn key_values(values: Option<Charged<JsonKeyValue>>) -> Vec<KeyValue> {
    values
        .unwrap_or_default()
        .into_iter()
        .map(|pair| KeyValue {
            key: pair.key.unwrap_or_default(),
            value: pair.value.map(JsonAnyValue::into_proto),
            ..Default::default()
        })
        .collect()
}

fn small(value: Option<JsonU64>) -> u32 {
    u32::try_from(value.unwrap_or_default().0).unwrap_or(u32::MAX)
}

/// Hex text as bytes; text that is not hex becomes bytes of a length no id has, so the
/// mapping refuses that record (and only it).
fn hex_id(text: Option<String>) -> Vec<u8> {
    let Some(text) = text else {
        return Vec::new();
    };
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return vec![0; 1];
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => return vec![0; 1],
        }
    }
    out
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}
