//! The walk over a request's log records, resource by resource and scope by scope, in
//! the request's order: over `prost`'s decoded messages, or straight over a checked
//! protobuf body (borrowing every string from it, building no message tree). Each
//! record is handed to the mapping with its resource and scope. It never decides how
//! a record maps.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::mapping::{Mapped, Mapper};
use super::protobuf::{LOG_RECORDS, RESOURCE_LOGS, SCOPE_LOGS};
use super::view::{Pairs, Record};
use super::wire::{Fields, Malformed, Reader, WireType, RECURSION_LIMIT};

/// `ResourceLogs.resource`, `Resource.attributes`, `ScopeLogs.scope`.
const RESOURCE: u32 = 1;
const RESOURCE_ATTRIBUTES: u32 = 1;
const SCOPE: u32 = 1;

/// Maps every record of a decoded request.
pub fn for_each_decoded<'a>(
    request: &'a ExportLogsServiceRequest,
    mapper: Mapper<'_>,
    mut each: impl FnMut(Mapped<'a>),
) -> Result<(), Malformed> {
    for resource_logs in &request.resource_logs {
        let attributes = resource_logs
            .resource
            .as_ref()
            .map(|resource| resource.attributes.as_slice())
            .unwrap_or_default();
        let resource = mapper.resource(Pairs::Decoded(attributes))?;
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs
                .scope
                .as_ref()
                .and_then(|scope| mapper.scope(&scope.name, &scope.version));
            for record in &scope_logs.log_records {
                each(mapper.entry(&Record::decoded(record), &resource, scope.as_ref())?);
            }
        }
    }
    Ok(())
}

/// Maps every record of a protobuf body that `protobuf::check` read as `OnWire`.
pub fn for_each_on_wire<'a>(
    body: &'a [u8],
    mapper: Mapper<'_>,
    mut each: impl FnMut(Mapped<'a>),
) -> Result<(), Malformed> {
    for resource_logs in Fields::new(body, RESOURCE_LOGS) {
        let resource_logs = resource_logs?;
        let attributes = match last_field(resource_logs, RESOURCE)? {
            Some(resource) => Fields::new(resource, RESOURCE_ATTRIBUTES),
            None => Fields::new(&[], RESOURCE_ATTRIBUTES),
        };
        let resource = mapper.resource(Pairs::Wire(attributes))?;
        for scope_logs in Fields::new(resource_logs, SCOPE_LOGS) {
            let scope_logs = scope_logs?;
            let scope = match last_field(scope_logs, SCOPE)? {
                Some(scope) => {
                    let (name, version) = scope_names(scope)?;
                    mapper.scope(name, version)
                }
                None => None,
            };
            for record in Fields::new(scope_logs, LOG_RECORDS) {
                let record = Record::wire(record?)?;
                each(mapper.entry(&record, &resource, scope.as_ref())?);
            }
        }
    }
    Ok(())
}

/// The last length-delimited field numbered `number` of a message (a singular field:
/// the check sent a body repeating one to `prost`).
fn last_field(message: &[u8], number: u32) -> Result<Option<&[u8]>, Malformed> {
    Fields::new(message, number).try_fold(None, |_, field| field.map(Some))
}

/// An `InstrumentationScope`'s name and version.
fn scope_names(message: &[u8]) -> Result<(&str, &str), Malformed> {
    let mut reader = Reader::new(message);
    let (mut name, mut version) = ("", "");
    while let Some((number, wire_type)) = reader.key()? {
        match (number, wire_type) {
            (1, WireType::Len) => name = reader.string()?,
            (2, WireType::Len) => version = reader.string()?,
            _ => reader.skip(number, wire_type, RECURSION_LIMIT)?,
        }
    }
    Ok((name, version))
}
