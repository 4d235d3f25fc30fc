//! OTLP's values and log records as borrowed views, read either from `prost`'s decoded
//! messages (OTLP/JSON, and protobuf bodies that merge fields) or straight from a
//! checked protobuf body, so one mapping serves both without building the message
//! tree. A view of the wire reads its fields as it is walked; the body was checked
//! first (`protobuf::check`), so a `Malformed` here is a body the check missed. It
//! never decides how a value maps into an entry.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::wire::{Fields, Malformed, Reader, WireType, RECURSION_LIMIT};

/// An `AnyValue` that holds a value (an unset one, or a string table index, is `None`
/// where these are used).
#[derive(Debug, Clone, Copy)]
pub enum Any<'a> {
    String(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Items<'a>),
    Kvlist(Pairs<'a>),
}

/// An array's values.
#[derive(Debug, Clone, Copy)]
pub enum Items<'a> {
    Decoded(&'a [AnyValue]),
    Wire(Fields<'a>),
}

/// Key-value pairs: attributes, or a kvlist's members.
#[derive(Debug, Clone, Copy)]
pub enum Pairs<'a> {
    Decoded(&'a [KeyValue]),
    Wire(Fields<'a>),
}

/// A log record's fields that the mapping reads.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: &'a str,
    pub body: Option<Any<'a>>,
    pub attributes: Pairs<'a>,
    pub flags: u32,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub event_name: &'a str,
}

impl<'a> Any<'a> {
    pub fn decoded(value: Option<&'a AnyValue>) -> Option<Self> {
        Some(match value?.value.as_ref()? {
            any_value::Value::StringValue(text) => Any::String(text),
            any_value::Value::BoolValue(flag) => Any::Bool(*flag),
            any_value::Value::IntValue(number) => Any::Int(*number),
            any_value::Value::DoubleValue(number) => Any::Double(*number),
            any_value::Value::BytesValue(bytes) => Any::Bytes(bytes),
            any_value::Value::ArrayValue(array) => Any::Array(Items::Decoded(&array.values)),
            any_value::Value::KvlistValue(list) => Any::Kvlist(Pairs::Decoded(&list.values)),
            any_value::Value::StringValueStrindex(_) => return None,
        })
    }

    /// An `AnyValue` message: the oneof member written last.
    pub fn wire(message: &'a [u8]) -> Result<Option<Self>, Malformed> {
        let mut reader = Reader::new(message);
        let mut value = None;
        while let Some((number, wire_type)) = reader.key()? {
            value = match (number, wire_type) {
                (1, WireType::Len) => Some(Any::String(reader.string()?)),
                (2, WireType::Varint) => Some(Any::Bool(reader.varint()? != 0)),
                (3, WireType::Varint) => Some(Any::Int(reader.varint()? as i64)),
                (4, WireType::Fixed64) => Some(Any::Double(f64::from_bits(reader.fixed64()?))),
                (5, WireType::Len) => {
                    Some(Any::Array(Items::Wire(Fields::new(reader.bytes()?, 1))))
                }
                (6, WireType::Len) => {
                    Some(Any::Kvlist(Pairs::Wire(Fields::new(reader.bytes()?, 1))))
                }
                (7, WireType::Len) => Some(Any::Bytes(reader.bytes()?)),
                (8, WireType::Varint) => {
                    reader.varint()?;
                    None
                }
                _ => {
                    reader.skip(number, wire_type, RECURSION_LIMIT)?;
                    continue;
                }
            };
        }
        Ok(value)
    }
}

impl<'a> Items<'a> {
    pub fn for_each<E: From<Malformed>>(
        self,
        mut each: impl FnMut(Option<Any<'a>>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Items::Decoded(values) => values
                .iter()
                .try_for_each(|value| each(Any::decoded(Some(value)))),
            Items::Wire(fields) => fields
                .into_iter()
                .try_for_each(|field| each(Any::wire(field?)?)),
        }
    }
}

impl<'a> Pairs<'a> {
    pub fn is_empty(self) -> bool {
        match self {
            Pairs::Decoded(pairs) => pairs.is_empty(),
            Pairs::Wire(mut fields) => fields.next().is_none(),
        }
    }

    pub fn for_each<E: From<Malformed>>(
        self,
        mut each: impl FnMut(&'a str, Option<Any<'a>>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Pairs::Decoded(pairs) => pairs
                .iter()
                .try_for_each(|pair| each(&pair.key, Any::decoded(pair.value.as_ref()))),
            Pairs::Wire(fields) => fields.into_iter().try_for_each(|field| {
                let (key, value) = key_value(field?)?;
                each(key, value)
            }),
        }
    }

    /// Reads every pair as `for_each` does (checking their keys' and string values'
    /// text), writing nothing: for a walk that stopped before the last pair, since
    /// `protobuf::check` leaves these texts to the mapping.
    pub fn check_texts(self) -> Result<(), Malformed> {
        self.for_each(|_, _| Ok::<(), Malformed>(()))
    }

    /// The value of the first pair named `key`.
    pub fn find(self, wanted: &str) -> Result<Option<Option<Any<'a>>>, Malformed> {
        match self {
            Pairs::Decoded(pairs) => Ok(pairs
                .iter()
                .find(|pair| pair.key == wanted)
                .map(|pair| Any::decoded(pair.value.as_ref()))),
            Pairs::Wire(fields) => {
                for field in fields {
                    let (key, value) = key_value(field?)?;
                    if key == wanted {
                        return Ok(Some(value));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// A `KeyValue` message: its key and value.
fn key_value(message: &[u8]) -> Result<(&str, Option<Any<'_>>), Malformed> {
    let mut reader = Reader::new(message);
    let (mut key, mut value) = ("", None);
    while let Some((number, wire_type)) = reader.key()? {
        match (number, wire_type) {
            (1, WireType::Len) => key = reader.string()?,
            (2, WireType::Len) => value = Any::wire(reader.bytes()?)?,
            _ => reader.skip(number, wire_type, RECURSION_LIMIT)?,
        }
    }
    Ok((key, value))
}

impl<'a> Record<'a> {
    pub fn decoded(record: &'a LogRecord) -> Self {
        Record {
            time_unix_nano: record.time_unix_nano,
            observed_time_unix_nano: record.observed_time_unix_nano,
            severity_number: record.severity_number,
            severity_text: &record.severity_text,
            body: Any::decoded(record.body.as_ref()),
            attributes: Pairs::Decoded(&record.attributes),
            flags: record.flags,
            trace_id: &record.trace_id,
            span_id: &record.span_id,
            event_name: &record.event_name,
        }
    }

    /// A `LogRecord` message; a field written twice is the last one, as in `prost`.
    pub fn wire(message: &'a [u8]) -> Result<Self, Malformed> {
        let mut record = Record {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "",
            body: None,
            attributes: Pairs::Wire(Fields::new(message, 6)),
            flags: 0,
            trace_id: &[],
            span_id: &[],
            event_name: "",
        };
        let mut reader = Reader::new(message);
        while let Some((number, wire_type)) = reader.key()? {
            match (number, wire_type) {
                (1, WireType::Fixed64) => record.time_unix_nano = reader.fixed64()?,
                (11, WireType::Fixed64) => record.observed_time_unix_nano = reader.fixed64()?,
                (2, WireType::Varint) => record.severity_number = reader.varint()? as i32,
                (3, WireType::Len) => record.severity_text = reader.string()?,
                (5, WireType::Len) => record.body = Any::wire(reader.bytes()?)?,
                (8, WireType::Fixed32) => record.flags = reader.fixed32()?,
                (9, WireType::Len) => record.trace_id = reader.bytes()?,
                (10, WireType::Len) => record.span_id = reader.bytes()?,
                (12, WireType::Len) => record.event_name = reader.string()?,
                _ => reader.skip(number, wire_type, RECURSION_LIMIT)?,
            }
        }
        Ok(record)
    }
}
