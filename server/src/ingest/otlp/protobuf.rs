//! Whether a protobuf body is an `ExportLogsServiceRequest`, decided on the wire
//! before any record is mapped: the log records are counted first (a walk over the
//! three outer levels), so a body with more records than the request cap is refused
//! before more work is spent; then every field of the message tree is checked as
//! `prost` would decode it (each known field's wire type, UTF-8 strings, lengths,
//! unknown fields and groups skipped, the recursion limit), allocating nothing; the
//! strings the mapping reads (and checks) in every record and resource it walks
//! (`Kind::MappedText`) are checked there, once. The
//! answer says whether the records can be read straight from the body, or whether the
//! body repeats a singular message field, which protobuf merges and only `prost`'s
//! decoding reproduces. It never maps a record.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

use super::wire::{Fields, Malformed, Reader, WireType, RECURSION_LIMIT};

/// Why a protobuf body is not a request.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufRequestError {
    #[error("not a valid ExportLogsServiceRequest: {0}")]
    Malformed(String),
    #[error("a request may hold at most {max} log records (got {got})")]
    TooManyRecords { max: usize, got: usize },
}

impl From<Malformed> for ProtobufRequestError {
    fn from(error: Malformed) -> Self {
        ProtobufRequestError::Malformed(error.to_string())
    }
}

/// How a checked body's records are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Straight from the body (`records::for_each_on_wire`).
    OnWire,
    /// Decoded by `prost` first: a singular message field repeats (protobuf merges the
    /// occurrences), which no encoder writes.
    Merged,
}

/// `ExportLogsServiceRequest.resource_logs`, `ResourceLogs.scope_logs` and
/// `ScopeLogs.log_records`: the path to the records.
pub const RESOURCE_LOGS: u32 = 1;
pub const SCOPE_LOGS: u32 = 2;
pub const LOG_RECORDS: u32 = 2;

/// Checks a body holding at most `max_records` log records.
pub fn check(body: &[u8], max_records: usize) -> Result<Reading, ProtobufRequestError> {
    let got = count_records(body)?;
    if got > max_records {
        return Err(ProtobufRequestError::TooManyRecords {
            max: max_records,
            got,
        });
    }
    let mut merged = false;
    check_message(body, &REQUEST, RECURSION_LIMIT, &mut merged)?;
    Ok(if merged {
        Reading::Merged
    } else {
        Reading::OnWire
    })
}

/// `prost`'s decoding, for a body that merges fields.
pub fn decode(body: &[u8]) -> Result<ExportLogsServiceRequest, ProtobufRequestError> {
    ExportLogsServiceRequest::decode(body)
        .map_err(|error| ProtobufRequestError::Malformed(error.to_string()))
}

/// How many log records the message holds, from its three outer levels alone.
fn count_records(body: &[u8]) -> Result<usize, Malformed> {
    let mut count = 0usize;
    for resource in Fields::new(body, RESOURCE_LOGS) {
        for scope in Fields::new(resource?, SCOPE_LOGS) {
            for record in Fields::new(scope?, LOG_RECORDS) {
                record?;
                count = count.saturating_add(1);
            }
        }
    }
    Ok(count)
}

/// What a known field holds.
#[derive(Clone, Copy)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    /// A string (or a repeated string): UTF-8.
    Text,
    /// A string the mapping reads (and checks as UTF-8) in every record it walks, every
    /// occurrence: only its length is checked here, so its text is checked once.
    MappedText,
    /// A singular message: a second occurrence is merged into the first.
    Message(&'static Schema),
    Repeated(&'static Schema),
}

/// A message's known fields; `oneof` when all of them are one `oneof` (`AnyValue`),
/// where a message occurrence merges only into the same member.
struct Schema {
    fields: &'static [(u32, Kind)],
    oneof: bool,
}

const fn schema(fields: &'static [(u32, Kind)]) -> Schema {
    Schema {
        fields,
        oneof: false,
    }
}

static REQUEST: Schema = schema(&[(RESOURCE_LOGS, Kind::Repeated(&RESOURCE_LOGS_MESSAGE))]);
static RESOURCE_LOGS_MESSAGE: Schema = schema(&[
    (1, Kind::Message(&RESOURCE)),
    (SCOPE_LOGS, Kind::Repeated(&SCOPE_LOGS_MESSAGE)),
    (3, Kind::Text),
]);
static RESOURCE: Schema = schema(&[
    (1, Kind::Repeated(&MAPPED_KEY_VALUE)),
    (2, Kind::Varint),
    (3, Kind::Repeated(&ENTITY_REF)),
]);
static ENTITY_REF: Schema = schema(&[
    (1, Kind::Text),
    (2, Kind::Text),
    (3, Kind::Text),
    (4, Kind::Text),
]);
static SCOPE_LOGS_MESSAGE: Schema = schema(&[
    (1, Kind::Message(&SCOPE)),
    (LOG_RECORDS, Kind::Repeated(&LOG_RECORD)),
    (3, Kind::Text),
]);
static SCOPE: Schema = schema(&[
    (1, Kind::Text),
    (2, Kind::Text),
    (3, Kind::Repeated(&KEY_VALUE)),
    (4, Kind::Varint),
]);
/// `records::for_each_on_wire` reads every record with `view::Record::wire`: its
/// severity text, event name and body value, each occurrence of them; the mapping
/// reads every attribute (`MAPPED_KEY_VALUE`).
static LOG_RECORD: Schema = schema(&[
    (1, Kind::Fixed64),
    (2, Kind::Varint),
    (3, Kind::MappedText),
    (5, Kind::Message(&MAPPED_VALUE)),
    (6, Kind::Repeated(&MAPPED_KEY_VALUE)),
    (7, Kind::Varint),
    (8, Kind::Fixed32),
    (9, Kind::Bytes),
    (10, Kind::Bytes),
    (11, Kind::Fixed64),
    (12, Kind::MappedText),
]);
static KEY_VALUE: Schema = schema(&[
    (1, Kind::Text),
    (2, Kind::Message(&ANY_VALUE)),
    (3, Kind::Varint),
]);
static ANY_VALUE: Schema = Schema {
    fields: &ANY_VALUE_FIELDS,
    oneof: true,
};
static ANY_VALUE_FIELDS: [(u32, Kind); 8] = any_value_fields(Kind::Text);
/// A record's or a resource's attribute: its key and value are read by
/// `view::Pairs::for_each` in every record and resource the mapping walks (which reads
/// them all, or checks them with `view::Pairs::check_texts` when it stops early).
static MAPPED_KEY_VALUE: Schema = schema(&[
    (1, Kind::MappedText),
    (2, Kind::Message(&MAPPED_VALUE)),
    (3, Kind::Varint),
]);
/// A record's body or an attribute's value: an `AnyValue` whose string
/// `view::Any::wire` reads (its arrays and kvlists are checked as any value's).
static MAPPED_VALUE: Schema = Schema {
    fields: &MAPPED_VALUE_FIELDS,
    oneof: true,
};
static MAPPED_VALUE_FIELDS: [(u32, Kind); 8] = any_value_fields(Kind::MappedText);

/// An `AnyValue`'s fields, its string read as `text`.
const fn any_value_fields(text: Kind) -> [(u32, Kind); 8] {
    [
        (1, text),
        (2, Kind::Varint),
        (3, Kind::Varint),
        (4, Kind::Fixed64),
        (5, Kind::Message(&ARRAY_VALUE)),
        (6, Kind::Message(&KEY_VALUE_LIST)),
        (7, Kind::Bytes),
        (8, Kind::Varint),
    ]
}
static ARRAY_VALUE: Schema = schema(&[(1, Kind::Repeated(&ANY_VALUE))]);
static KEY_VALUE_LIST: Schema = schema(&[(1, Kind::Repeated(&KEY_VALUE))]);

/// Checks one message's fields, read `depth_left` levels above the recursion limit;
/// sets `merged` when a singular message field repeats.
fn check_message(
    message: &[u8],
    schema: &Schema,
    depth_left: u32,
    merged: &mut bool,
) -> Result<(), Malformed> {
    let mut reader = Reader::new(message);
    // The singular message fields seen (by number), or the oneof member set last.
    let mut seen = 0u64;
    let mut last_member = 0u32;
    while let Some((number, wire_type)) = reader.key()? {
        let Some(&(_, kind)) = schema.fields.iter().find(|(known, _)| *known == number) else {
            reader.skip(number, wire_type, depth_left)?;
            continue;
        };
        let expected = match kind {
            Kind::Varint => WireType::Varint,
            Kind::Fixed64 => WireType::Fixed64,
            Kind::Fixed32 => WireType::Fixed32,
            _ => WireType::Len,
        };
        if wire_type != expected {
            return Err(Malformed("a field of the wrong wire type"));
        }
        match kind {
            Kind::Varint => drop(reader.varint()?),
            Kind::Fixed64 => drop(reader.fixed64()?),
            Kind::Fixed32 => drop(reader.fixed32()?),
            Kind::Bytes | Kind::MappedText => drop(reader.bytes()?),
            Kind::Text => drop(reader.string()?),
            Kind::Message(inner) | Kind::Repeated(inner) => {
                if depth_left == 0 {
                    return Err(Malformed("nested past the recursion limit"));
                }
                if let Kind::Message(_) = kind {
                    let repeats = if schema.oneof {
                        last_member == number
                    } else {
                        seen & (1 << number) != 0
                    };
                    *merged |= repeats;
                    seen |= 1 << number;
                }
                check_message(reader.bytes()?, inner, depth_left - 1, merged)?;
            }
        }
        last_member = number;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn request(scopes: &[usize]) -> Vec<u8> {
        let scope_logs = scopes
            .iter()
            .map(|&records| ScopeLogs {
                log_records: (0..records)
                    .map(|index| LogRecord {
                        severity_number: 9,
                        time_unix_nano: 1_700_000_000_000_000_000 + index as u64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs,
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn records_are_counted_on_the_wire() {
        assert_eq!(count_records(&request(&[3, 0, 4])).unwrap(), 7);
        assert_eq!(check(&request(&[3, 4]), 7).unwrap(), Reading::OnWire);
        assert!(matches!(
            check(&request(&[3, 4]), 6),
            Err(ProtobufRequestError::TooManyRecords { max: 6, got: 7 })
        ));
    }

    #[test]
    fn a_truncated_body_is_malformed() {
        let body = request(&[2]);
        assert!(matches!(
            check(&body[..body.len() - 3], 10),
            Err(ProtobufRequestError::Malformed(_))
        ));
    }

    #[test]
    fn a_repeated_singular_message_is_read_through_prost() {
        // ResourceLogs { resource {}, resource {} }.
        let body = [0x0a, 0x04, 0x0a, 0x00, 0x0a, 0x00];
        assert_eq!(check(&body, 10).unwrap(), Reading::Merged);
        assert!(decode(&body).is_ok());
    }
}
