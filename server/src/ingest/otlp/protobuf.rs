//! OTLP/protobuf decoding of an `ExportLogsServiceRequest` with `prost`. The log
//! records are counted on the wire first (a walk over the message's length-delimited
//! fields, allocating nothing), so a body with more records than the request cap is
//! refused before a record is built. It never validates a record.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

/// Why a protobuf body is not a request.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufRequestError {
    #[error("not a valid ExportLogsServiceRequest: {0}")]
    Malformed(String),
    #[error("a request may hold at most {max} log records (got {got})")]
    TooManyRecords { max: usize, got: usize },
}

/// `ExportLogsServiceRequest.resource_logs`, `ResourceLogs.scope_logs` and
/// `ScopeLogs.log_records`: the path to the records.
const RESOURCE_LOGS: u64 = 1;
const SCOPE_LOGS: u64 = 2;
const LOG_RECORDS: u64 = 2;

/// Decodes a protobuf body holding at most `max_records` log records.
pub fn decode(
    body: &[u8],
    max_records: usize,
) -> Result<ExportLogsServiceRequest, ProtobufRequestError> {
    let got = count_records(body).map_err(ProtobufRequestError::Malformed)?;
    if got > max_records {
        return Err(ProtobufRequestError::TooManyRecords {
            max: max_records,
            got,
        });
    }
    ExportLogsServiceRequest::decode(body)
        .map_err(|error| ProtobufRequestError::Malformed(error.to_string()))
}

/// How many log records the message holds, from its wire form alone.
fn count_records(body: &[u8]) -> Result<usize, String> {
    let mut count = 0usize;
    for resource in fields_numbered(body, RESOURCE_LOGS)? {
        for scope in fields_numbered(resource, SCOPE_LOGS)? {
            count = count.saturating_add(fields_numbered(scope, LOG_RECORDS)?.len());
        }
    }
    Ok(count)
}

/// The length-delimited fields numbered `wanted` of one message; every other field is
/// skipped by its wire type.
fn fields_numbered(mut message: &[u8], wanted: u64) -> Result<Vec<&[u8]>, String> {
    let mut found = Vec::new();
    while !message.is_empty() {
        let key = varint(&mut message)?;
        let (number, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                varint(&mut message)?;
            }
            1 => message = skip(message, 8)?,
            2 => {
                let length = usize::try_from(varint(&mut message)?)
                    .map_err(|_| "a length out of range".to_owned())?;
                let (field, rest) = message
                    .split_at_checked(length)
                    .ok_or_else(|| "a field longer than the body".to_owned())?;
                if number == wanted {
                    found.push(field);
                }
                message = rest;
            }
            5 => message = skip(message, 4)?,
            other => return Err(format!("unsupported wire type {other}")),
        }
    }
    Ok(found)
}

fn skip(message: &[u8], bytes: usize) -> Result<&[u8], String> {
    message
        .get(bytes..)
        .ok_or_else(|| "a field longer than the body".to_owned())
}

fn varint(message: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (index, byte) in message.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            *message = &message[index + 1..];
            return Ok(value);
        }
    }
    Err("an invalid varint".to_owned())
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
        assert_eq!(decode(&request(&[3, 4]), 7).unwrap().resource_logs.len(), 1);
        assert!(matches!(
            decode(&request(&[3, 4]), 6),
            Err(ProtobufRequestError::TooManyRecords { max: 6, got: 7 })
        ));
    }

    #[test]
    fn a_truncated_body_is_malformed() {
        let body = request(&[2]);
        assert!(matches!(
            decode(&body[..body.len() - 3], 10),
            Err(ProtobufRequestError::Malformed(_))
        ));
    }
}
